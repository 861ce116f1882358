//! Envelope encryption (a random DEK per guest, wrapped by a KEK) and field ciphertext.
//!
//! Field ciphertext is `version(1) | nonce(12) | ciphertext+tag`, AES-256-GCM under the guest's
//! DEK with AAD `"guestvault/field/v1" | 0 | guest_id | 0 | field_name`, so a ciphertext cannot
//! be moved to another guest or another field. Wrapped DEKs use AAD
//! `"guestvault/dek/v1" | 0 | guest_id | 0 | kek_version` for the same reason.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{random_bytes, CryptoError};

const FIELD_FORMAT_V1: u8 = 1;
const NONCE_BYTES: usize = 12;
const DEK_AAD_PREFIX: &[u8] = b"guestvault/dek/v1";
const FIELD_AAD_PREFIX: &[u8] = b"guestvault/field/v1";
const BLIND_INDEX_SALT: &[u8] = b"guestvault/blind-index/v1";

/// A guest's data-encryption key. Zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Dek([u8; 32]);

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

/// A DEK sealed under a KEK version: `nonce(12) | ciphertext+tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDek {
    pub kek_version: u32,
    pub bytes: Vec<u8>,
}

impl Dek {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(random_bytes::<32>()?))
    }

    pub(super) fn wrap_with(
        &self,
        kek: &[u8; 32],
        kek_version: u32,
        guest_id: &str,
    ) -> Result<WrappedDek, CryptoError> {
        let aad = dek_aad(guest_id, kek_version);
        let bytes = seal(kek, &self.0, &aad)?;
        Ok(WrappedDek { kek_version, bytes })
    }

    pub(super) fn unwrap_with(
        kek: &[u8; 32],
        wrapped: &WrappedDek,
        guest_id: &str,
    ) -> Result<Self, CryptoError> {
        let aad = dek_aad(guest_id, wrapped.kek_version);
        let mut plain = open(kek, &wrapped.bytes, &aad)?;
        let mut key = [0u8; 32];
        if plain.len() != key.len() {
            plain.zeroize();
            return Err(CryptoError::Decrypt);
        }
        key.copy_from_slice(&plain);
        plain.zeroize();
        Ok(Self(key))
    }
}

fn dek_aad(guest_id: &str, kek_version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DEK_AAD_PREFIX.len() + guest_id.len() + 6);
    aad.extend_from_slice(DEK_AAD_PREFIX);
    aad.push(0);
    aad.extend_from_slice(guest_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&kek_version.to_be_bytes());
    aad
}

fn field_aad(guest_id: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(FIELD_AAD_PREFIX.len() + guest_id.len() + field.len() + 2);
    aad.extend_from_slice(FIELD_AAD_PREFIX);
    aad.push(0);
    aad.extend_from_slice(guest_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad
}

fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce = random_bytes::<NONCE_BYTES>()?;
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)?;
    let mut out = Vec::with_capacity(NONCE_BYTES + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_BYTES + 16 {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, ct) = sealed.split_at(NONCE_BYTES);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Decrypt)
}

/// Encrypts and decrypts one guest's fields under that guest's DEK.
#[derive(Debug)]
pub struct FieldCipher<'a> {
    dek: &'a Dek,
    guest_id: &'a str,
}

impl<'a> FieldCipher<'a> {
    pub fn new(dek: &'a Dek, guest_id: &'a str) -> Self {
        Self { dek, guest_id }
    }

    /// Seals `plaintext` for `label` (a field name, or `stay:<stay_id>` for a stay document).
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let sealed = seal(&self.dek.0, plaintext, &field_aad(self.guest_id, label))?;
        let mut out = Vec::with_capacity(1 + sealed.len());
        out.push(FIELD_FORMAT_V1);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a ciphertext made by [`FieldCipher::seal`] for the same guest and label.
    pub fn open(&self, label: &str, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match ciphertext.split_first() {
            Some((&FIELD_FORMAT_V1, rest)) => {
                open(&self.dek.0, rest, &field_aad(self.guest_id, label))
            }
            _ => Err(CryptoError::Decrypt),
        }
    }
}

/// Keyed HMAC-SHA256 digests of normalized values for exact-match search (REQ-12). Each field
/// has its own key, derived by HKDF from the index root key, so digests of the same value in two
/// fields do not match and KEK rotation never touches the index.
pub struct BlindIndexer {
    root: ring::hkdf::Prk,
}

impl std::fmt::Debug for BlindIndexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexer(<redacted>)")
    }
}

impl BlindIndexer {
    pub(super) fn new(root_key: &[u8; 32]) -> Self {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, BLIND_INDEX_SALT);
        Self {
            root: salt.extract(root_key),
        }
    }

    fn field_key(&self, field: &str) -> ring::hmac::Key {
        let info = [field.as_bytes()];
        // INVARIANT: HMAC_SHA256's key length (32) is within HKDF-SHA256's output limit,
        // so `expand` and `fill` cannot fail.
        let okm = self
            .root
            .expand(&info, ring::hmac::HMAC_SHA256)
            .unwrap_or_else(|_| unreachable!("hkdf expand with a valid length"));
        ring::hmac::Key::from(okm)
    }

    /// The digest of an already-normalized value of `field`.
    pub fn digest(&self, field: &str, normalized: &str) -> Vec<u8> {
        ring::hmac::sign(&self.field_key(field), normalized.as_bytes())
            .as_ref()
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kek() -> [u8; 32] {
        [7u8; 32]
    }

    #[test]
    fn wrapped_dek_opens_only_for_its_guest_and_version() {
        let dek = Dek::generate().unwrap();
        let wrapped = dek.wrap_with(&kek(), 1, "g1").unwrap();
        assert!(Dek::unwrap_with(&kek(), &wrapped, "g1").is_ok());
        assert_eq!(
            Dek::unwrap_with(&kek(), &wrapped, "g2").unwrap_err(),
            CryptoError::Decrypt
        );
        let other_version = WrappedDek {
            kek_version: 2,
            ..wrapped
        };
        assert!(Dek::unwrap_with(&kek(), &other_version, "g1").is_err());
    }

    #[test]
    fn field_ciphertext_cannot_move_between_guests_or_fields() {
        let dek = Dek::generate().unwrap();
        let ct = FieldCipher::new(&dek, "g1")
            .seal("mobile", b"+8613812345678")
            .unwrap();
        assert!(FieldCipher::new(&dek, "g2").open("mobile", &ct).is_err());
        assert!(FieldCipher::new(&dek, "g1").open("email", &ct).is_err());
        assert_eq!(
            FieldCipher::new(&dek, "g1").open("mobile", &ct).unwrap(),
            b"+8613812345678"
        );
    }

    #[test]
    fn tampered_field_ciphertext_is_rejected() {
        let dek = Dek::generate().unwrap();
        let cipher = FieldCipher::new(&dek, "g1");
        let ct = cipher.seal("full_name", "张三".as_bytes()).unwrap();
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert!(cipher.open("full_name", &bad).is_err(), "byte {i}");
        }
        assert!(cipher.open("full_name", &ct[..ct.len() - 1]).is_err());
    }

    #[test]
    fn blind_index_is_per_field_and_deterministic() {
        let idx = BlindIndexer::new(&[9u8; 32]);
        let a = idx.digest("mobile", "+8613812345678");
        assert_eq!(a, idx.digest("mobile", "+8613812345678"));
        assert_ne!(a, idx.digest("email", "+8613812345678"));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let dek = Dek([0xAB; 32]);
        let s = format!("{dek:?}");
        assert!(
            !s.contains("171") && !s.to_lowercase().contains("ab"),
            "{s}"
        );
    }

    proptest! {
        #[test]
        fn field_round_trip(data in proptest::collection::vec(any::<u8>(), 0..512), label in "[a-z_]{1,20}") {
            let dek = Dek::generate().unwrap();
            let cipher = FieldCipher::new(&dek, "guest");
            let ct = cipher.seal(&label, &data).unwrap();
            prop_assert_eq!(cipher.open(&label, &ct).unwrap(), data);
        }

        #[test]
        fn dek_wrap_round_trip(version in 1u32..1000, gid in "[0-9a-f-]{36}") {
            let dek = Dek::generate().unwrap();
            let wrapped = dek.wrap_with(&kek(), version, &gid).unwrap();
            let back = Dek::unwrap_with(&kek(), &wrapped, &gid).unwrap();
            prop_assert_eq!(back.0, dek.0);
        }
    }
}
