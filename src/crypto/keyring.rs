//! The keyring file: KEK versions (one active), the blind-index root key and the Ed25519 audit
//! signing key. It lives beside the database, never inside it (mode 0600), so a copy of the
//! database alone reveals nothing. The database's `meta` table keeps only the fingerprint, and
//! the server refuses to start when the two do not match.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::cipher::{BlindIndexer, Dek, WrappedDek};
use super::seal::{self, SealKey, SealedFile};
use super::{hex, random_bytes, CryptoError};

pub const KEYRING_FORMAT: &str = "guestvault-keyring/v1";
const FINGERPRINT_LABEL: &[u8] = b"guestvault/keyring-fingerprint/v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring file `{0}` already exists")]
    Exists(PathBuf),
    #[error("cannot read keyring file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write keyring file `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keyring file `{0}` is readable by group or others; run `chmod 600` on it")]
    Permissions(PathBuf),
    #[error("keyring file `{path}` is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("keyring file `{0}` is sealed: wrong passphrase, or the file is damaged")]
    WrongPassphrase(PathBuf),
    #[error("keyring file `{0}` is sealed: set keys.passphrase_file (GUESTVAULT_KEYS_PASSPHRASE_FILE) or run in a terminal to be asked")]
    PassphraseNeeded(PathBuf),
    #[error("KEK version {0}: {1}")]
    Retire(u32, &'static str),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// On-disk shape. Key material is base64; the struct is zeroized after use.
#[derive(Serialize, Deserialize)]
struct KeyringFile {
    format: String,
    active_kek: u32,
    keks: Vec<KekEntry>,
    index_root_key: String,
    audit_signing_key: String,
}

#[derive(Serialize, Deserialize)]
struct KekEntry {
    version: u32,
    key: String,
}

impl Drop for KeyringFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.index_root_key.zeroize();
        self.audit_signing_key.zeroize();
        for k in &mut self.keks {
            k.key.zeroize();
        }
    }
}

/// Loaded key material. Every secret is zeroized on drop; `Debug` shows only public facts.
pub struct Keyring {
    keks: BTreeMap<u32, Zeroizing<[u8; 32]>>,
    active_kek: u32,
    index_root: Zeroizing<[u8; 32]>,
    indexer: BlindIndexer,
    audit_pkcs8: Zeroizing<Vec<u8>>,
    audit_key: Ed25519KeyPair,
    fingerprint: String,
    /// Present when the file is sealed with a passphrase (re-sealed on every save).
    seal: Option<SealKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("kek_versions", &self.keks.keys().collect::<Vec<_>>())
            .field("active_kek", &self.active_kek)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A fresh keyring: KEK v1, an index root key and an audit signing key.
    pub fn generate() -> Result<Self, KeyringError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| CryptoError::Rng)?;
        let mut keks = BTreeMap::new();
        keks.insert(1, Zeroizing::new(random_bytes::<32>()?));
        Self::assemble(
            keks,
            1,
            Zeroizing::new(random_bytes::<32>()?),
            Zeroizing::new(pkcs8.as_ref().to_vec()),
        )
        .map_err(|reason| KeyringError::Malformed {
            path: PathBuf::new(),
            reason,
        })
    }

    fn assemble(
        keks: BTreeMap<u32, Zeroizing<[u8; 32]>>,
        active_kek: u32,
        index_root: Zeroizing<[u8; 32]>,
        audit_pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<Self, String> {
        if !keks.contains_key(&active_kek) {
            return Err(format!("active_kek {active_kek} is not among the keks"));
        }
        let audit_key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&audit_pkcs8)
            .map_err(|_| "audit_signing_key is not an Ed25519 PKCS#8 key".to_string())?;
        let fp_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, index_root.as_ref());
        let mut ctx = ring::hmac::Context::with_key(&fp_key);
        ctx.update(FINGERPRINT_LABEL);
        ctx.update(audit_key.public_key().as_ref());
        let fingerprint = hex(&ctx.sign().as_ref()[..16]);
        Ok(Self {
            indexer: BlindIndexer::new(&index_root),
            keks,
            active_kek,
            index_root,
            audit_pkcs8,
            audit_key,
            fingerprint,
            seal: None,
        })
    }

    /// Writes a new keyring to `path` (mode 0600); fails if the file exists.
    pub fn create_file(path: &Path) -> Result<Self, KeyringError> {
        Self::create_sealed(path, None)
    }

    /// Like [`Keyring::create_file`], sealed when a passphrase key is given.
    pub fn create_sealed(path: &Path, seal: Option<SealKey>) -> Result<Self, KeyringError> {
        if path.exists() {
            return Err(KeyringError::Exists(path.to_owned()));
        }
        let mut keyring = Self::generate()?;
        keyring.seal = seal;
        keyring.write_file(path, true)?;
        Ok(keyring)
    }

    pub fn is_sealed(&self) -> bool {
        self.seal.is_some()
    }

    /// Adds a KEK version and makes it active (the first step of a rotation).
    pub fn add_kek(&mut self) -> Result<u32, KeyringError> {
        let version = self.keks.keys().next_back().copied().unwrap_or(0) + 1;
        self.keks
            .insert(version, Zeroizing::new(random_bytes::<32>()?));
        self.active_kek = version;
        Ok(version)
    }

    /// Makes `version`, already in the keyring, the KEK new DEKs are wrapped under. On
    /// PostgreSQL the vault's active KEK is the database's (the rotation gate, docs/storage.md
    /// "Coordination between nodes"), and a node's keyring follows it.
    pub fn activate(&mut self, version: u32) -> Result<(), KeyringError> {
        if !self.keks.contains_key(&version) {
            return Err(KeyringError::Retire(version, "is not in the keyring"));
        }
        self.active_kek = version;
        Ok(())
    }

    /// Removes a KEK version. The caller must first check that no DEK uses it.
    pub fn retire(&mut self, version: u32) -> Result<(), KeyringError> {
        if version == self.active_kek {
            return Err(KeyringError::Retire(version, "is the active KEK"));
        }
        if self.keks.remove(&version).is_none() {
            return Err(KeyringError::Retire(version, "is not in the keyring"));
        }
        Ok(())
    }

    /// The unsealed file content (what [`Keyring::from_bytes`] reads back).
    pub(crate) fn to_plain_json(&self) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
        let file = KeyringFile {
            format: KEYRING_FORMAT.to_string(),
            active_kek: self.active_kek,
            keks: self
                .keks
                .iter()
                .map(|(v, k)| KekEntry {
                    version: *v,
                    key: B64.encode(k.as_ref()),
                })
                .collect(),
            index_root_key: B64.encode(self.index_root.as_ref()),
            audit_signing_key: B64.encode(self.audit_pkcs8.as_slice()),
        };
        serde_json::to_vec_pretty(&file).map(Zeroizing::new)
    }

    /// Saves the keyring, atomically replacing `path` (used after a KEK is added or retired).
    pub fn write_file(&self, path: &Path, create_new: bool) -> Result<(), KeyringError> {
        let malformed = |e: serde_json::Error| KeyringError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut json = self.to_plain_json().map_err(malformed)?;
        if let Some(key) = &self.seal {
            let sealed = seal::seal(key, &json)?;
            json = Zeroizing::new(serde_json::to_vec_pretty(&sealed).map_err(malformed)?);
        }
        let write_err = |source| KeyringError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let target = if create_new { path } else { tmp.as_path() };
        if create_new {
            opts.create_new(true);
        }
        let mut f = opts.open(target).map_err(write_err)?;
        f.write_all(&json).map_err(write_err)?;
        f.sync_all().map_err(write_err)?;
        if !create_new {
            std::fs::rename(&tmp, path).map_err(write_err)?;
        }
        Ok(())
    }

    /// Loads an unsealed keyring, refusing a file that group or others can read.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        Self::load_with(path, || {
            Err(KeyringError::PassphraseNeeded(path.to_owned()))
        })
    }

    /// What can be checked before a passphrase is asked for: the file is not readable by group
    /// or others, and a sealed one uses at least [`seal::MIN_ITERATIONS`]. Returns whether it
    /// is sealed.
    pub fn check_file(path: &Path) -> Result<bool, KeyringError> {
        let read_err = |source| KeyringError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(KeyringError::Permissions(path.to_owned()));
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let bytes = Zeroizing::new(std::fs::read(path).map_err(read_err)?);
        match serde_json::from_slice::<SealedFile>(&bytes) {
            Ok(sealed) if sealed.format == seal::SEALED_FORMAT => {
                if sealed.iterations < seal::MIN_ITERATIONS {
                    return Err(KeyringError::Malformed {
                        path: path.to_owned(),
                        reason: format!(
                            "sealed with {} PBKDF2 iterations, fewer than the minimum {}",
                            sealed.iterations,
                            seal::MIN_ITERATIONS
                        ),
                    });
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Loads a keyring; `passphrase` is asked only if the file is sealed, and only after
    /// [`Keyring::check_file`] passed.
    pub fn load_with(
        path: &Path,
        passphrase: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, KeyringError>,
    ) -> Result<Self, KeyringError> {
        let read_err = |source| KeyringError::Read {
            path: path.to_owned(),
            source,
        };
        Self::check_file(path)?;
        let bytes = Zeroizing::new(std::fs::read(path).map_err(read_err)?);
        Self::from_bytes(path, &bytes, passphrase)
    }

    /// The parsing half of [`Keyring::load_with`]: the file's bytes, plain or sealed, into a
    /// keyring, without touching the file system (`path` only names the file in errors). The
    /// fuzz target `crate::fuzzing::keyring` calls it directly.
    pub(crate) fn from_bytes(
        path: &Path,
        bytes: &[u8],
        passphrase: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, KeyringError>,
    ) -> Result<Self, KeyringError> {
        let malformed = |reason: String| KeyringError::Malformed {
            path: path.to_owned(),
            reason,
        };
        let mut seal_key = None;
        let bytes = match serde_json::from_slice::<SealedFile>(bytes) {
            Ok(sealed) if sealed.format == seal::SEALED_FORMAT => {
                let pass = passphrase()?;
                let (plain, key) = seal::open(&sealed, &pass)
                    .map_err(|_| KeyringError::WrongPassphrase(path.to_owned()))?;
                seal_key = Some(key);
                plain
            }
            _ => Zeroizing::new(bytes.to_vec()),
        };
        let file: KeyringFile =
            serde_json::from_slice(&bytes).map_err(|e| malformed(format!("{e}")))?;
        if file.format != KEYRING_FORMAT {
            return Err(malformed(format!("unsupported format `{}`", file.format)));
        }
        let mut keks = BTreeMap::new();
        for entry in &file.keks {
            keks.insert(
                entry.version,
                decode_key(&entry.key).ok_or_else(|| {
                    malformed(format!(
                        "key of kek version {} is not 32 bytes",
                        entry.version
                    ))
                })?,
            );
        }
        let index_root = decode_key(&file.index_root_key)
            .ok_or_else(|| malformed("index_root_key is not 32 bytes".into()))?;
        let pkcs8 = Zeroizing::new(
            B64.decode(&file.audit_signing_key)
                .map_err(|_| malformed("audit_signing_key is not base64".into()))?,
        );
        let mut keyring =
            Self::assemble(keks, file.active_kek, index_root, pkcs8).map_err(malformed)?;
        keyring.seal = seal_key;
        Ok(keyring)
    }

    /// Identifies this keyring without revealing any key (stored in the database `meta`).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn active_kek_version(&self) -> u32 {
        self.active_kek
    }

    pub fn kek_versions(&self) -> Vec<u32> {
        self.keks.keys().copied().collect()
    }

    /// Wraps `dek` for `guest_id` under the active KEK.
    pub fn wrap_dek(&self, dek: &Dek, guest_id: &str) -> Result<WrappedDek, CryptoError> {
        let kek = self
            .keks
            .get(&self.active_kek)
            .ok_or(CryptoError::UnknownKeyVersion(self.active_kek))?;
        dek.wrap_with(kek, self.active_kek, guest_id)
    }

    pub fn unwrap_dek(&self, wrapped: &WrappedDek, guest_id: &str) -> Result<Dek, CryptoError> {
        let kek = self
            .keks
            .get(&wrapped.kek_version)
            .ok_or(CryptoError::UnknownKeyVersion(wrapped.kek_version))?;
        Dek::unwrap_with(kek, wrapped, guest_id)
    }

    pub fn indexer(&self) -> &BlindIndexer {
        &self.indexer
    }

    /// Signs `message` with the audit key (Ed25519).
    pub fn audit_sign(&self, message: &[u8]) -> Vec<u8> {
        self.audit_key.sign(message).as_ref().to_vec()
    }

    /// The raw 32-byte Ed25519 public key of the audit signing key.
    pub fn audit_public_key(&self) -> &[u8] {
        self.audit_key.public_key().as_ref()
    }

    /// A short, stable identifier of the audit key: the first 16 hex digits of its SHA-256.
    pub fn audit_key_id(&self) -> String {
        super::key_id(self.audit_public_key())
    }
}

fn decode_key(b64: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(B64.decode(b64).ok()?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return None;
    }
    key.copy_from_slice(&bytes);
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let created = Keyring::create_file(&path).unwrap();
        let loaded = Keyring::load(&path).unwrap();
        assert_eq!(created.fingerprint(), loaded.fingerprint());
        let dek = Dek::generate().unwrap();
        let wrapped = created.wrap_dek(&dek, "g").unwrap();
        assert!(loaded.unwrap_dek(&wrapped, "g").is_ok());
        assert!(matches!(
            Keyring::create_file(&path),
            Err(KeyringError::Exists(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn keyring_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        Keyring::create_file(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Keyring::load(&path),
            Err(KeyringError::Permissions(_))
        ));
    }

    #[test]
    fn sealed_keyring_opens_only_with_its_passphrase_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let seal = SealKey::new(b"s3cret pass", seal::MIN_ITERATIONS).unwrap();
        let mut created = Keyring::create_sealed(&path, Some(seal)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(seal::SEALED_FORMAT) && !text.contains("index_root_key"));
        let pass = |p: &'static [u8]| move || Ok(Zeroizing::new(p.to_vec()));
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(
            Keyring::load_with(&path, pass(b"wrong")),
            Err(KeyringError::WrongPassphrase(_))
        ));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "nothing written on a wrong passphrase"
        );
        assert!(matches!(
            Keyring::load(&path),
            Err(KeyringError::PassphraseNeeded(_))
        ));
        let loaded = Keyring::load_with(&path, pass(b"s3cret pass")).unwrap();
        assert_eq!(loaded.fingerprint(), created.fingerprint());
        // Rotation re-seals with the same passphrase.
        assert_eq!(created.add_kek().unwrap(), 2);
        created.write_file(&path, false).unwrap();
        let reloaded = Keyring::load_with(&path, pass(b"s3cret pass")).unwrap();
        assert_eq!(reloaded.active_kek_version(), 2);
        assert_eq!(reloaded.kek_versions(), vec![1, 2]);
    }

    #[test]
    fn a_weakly_sealed_or_group_readable_keyring_is_refused_before_the_passphrase_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let weak = SealKey::new(b"s3cret pass", seal::MIN_ITERATIONS - 1).unwrap();
        Keyring::create_sealed(&path, Some(weak)).unwrap();
        let never = || -> Result<Zeroizing<Vec<u8>>, KeyringError> {
            panic!("the passphrase must not be asked for")
        };
        match Keyring::load_with(&path, never) {
            Err(KeyringError::Malformed { reason, .. }) => {
                assert!(reason.contains("fewer than the minimum 100000"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let path = dir.path().join("other.json");
        let seal = SealKey::new(b"s3cret pass", seal::MIN_ITERATIONS).unwrap();
        Keyring::create_sealed(&path, Some(seal)).unwrap();
        assert!(Keyring::check_file(&path).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
            assert!(matches!(
                Keyring::load_with(&path, never),
                Err(KeyringError::Permissions(_))
            ));
        }
    }

    #[test]
    fn the_active_kek_cannot_be_retired() {
        let mut k = Keyring::generate().unwrap();
        assert_eq!(k.add_kek().unwrap(), 2);
        assert!(k.retire(2).is_err());
        k.retire(1).unwrap();
        assert_eq!(k.kek_versions(), vec![2]);
    }

    #[test]
    fn an_added_kek_can_wait_inactive_and_only_a_held_one_is_activated() {
        let mut k = Keyring::generate().unwrap();
        assert_eq!(k.add_kek().unwrap(), 2);
        k.activate(1).unwrap();
        assert_eq!(k.active_kek_version(), 1);
        assert_eq!(k.kek_versions(), vec![1, 2]);
        let wrapped = k.wrap_dek(&Dek::generate().unwrap(), "g-1").unwrap();
        assert_eq!(wrapped.kek_version, 1);
        assert!(k.activate(3).is_err());
        assert_eq!(k.active_kek_version(), 1);
        k.activate(2).unwrap();
        assert_eq!(k.active_kek_version(), 2);
    }

    #[test]
    fn two_keyrings_have_different_fingerprints() {
        let a = Keyring::generate().unwrap();
        let b = Keyring::generate().unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(!format!("{a:?}").contains(&B64.encode(a.index_root.as_ref())));
    }

    #[test]
    fn audit_signature_verifies_with_the_public_key() {
        let k = Keyring::generate().unwrap();
        let sig = k.audit_sign(b"msg");
        let pk = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            k.audit_public_key(),
        );
        assert!(pk.verify(b"msg", &sig).is_ok());
        assert!(pk.verify(b"msh", &sig).is_err());
    }
}
