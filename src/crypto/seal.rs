//! Sealing the keyring file with a passphrase, so a stolen disk or backup of the data dir does
//! not reveal the keys: PBKDF2-HMAC-SHA256 (ring) stretches the passphrase into a 256-bit key,
//! and AES-256-GCM seals the keyring JSON. The salt and iteration count are stored beside the
//! ciphertext; a wrong passphrase fails authentication and nothing is written.

use std::num::NonZeroU32;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{random_bytes, CryptoError};

pub const SEALED_FORMAT: &str = "guestvault-keyring-sealed/v1";
/// OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256.
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// A sealed file with fewer iterations is refused when opened: it would make guessing the
/// passphrase of a stolen copy cheap, and a rotation would keep re-sealing it that weakly.
pub const MIN_ITERATIONS: u32 = 100_000;
const AAD: &[u8] = b"guestvault/keyring-seal/v1";

/// The key derived from a passphrase, kept so the keyring can be re-sealed after a rotation
/// without asking again. Zeroized on drop.
#[derive(Clone)]
pub struct SealKey {
    salt: [u8; 16],
    iterations: u32,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl SealKey {
    /// Derives a key with a fresh random salt.
    pub fn new(passphrase: &[u8], iterations: u32) -> Result<Self, CryptoError> {
        Ok(Self::derive(passphrase, random_bytes::<16>()?, iterations))
    }

    fn derive(passphrase: &[u8], salt: [u8; 16], iterations: u32) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        let n = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            n,
            &salt,
            passphrase,
            key.as_mut(),
        );
        Self {
            salt,
            iterations,
            key,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedFile {
    pub format: String,
    pub kdf: String,
    pub iterations: u32,
    pub salt: String,
    pub nonce: String,
    pub ciphertext: String,
}

pub fn seal(key: &SealKey, plaintext: &[u8]) -> Result<SealedFile, CryptoError> {
    let nonce = random_bytes::<12>()?;
    let ct = Aes256Gcm::new(key.key.as_ref().into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: AAD,
            },
        )
        .map_err(|_| CryptoError::Decrypt)?;
    Ok(SealedFile {
        format: SEALED_FORMAT.into(),
        kdf: "pbkdf2-hmac-sha256".into(),
        iterations: key.iterations,
        salt: B64.encode(key.salt),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ct),
    })
}

/// Opens a sealed keyring; `Err(Decrypt)` for a wrong passphrase or a damaged file.
pub fn open(
    file: &SealedFile,
    passphrase: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, SealKey), CryptoError> {
    let parts = parse(file)?;
    let key = SealKey::derive(passphrase, parts.salt, file.iterations);
    let plain = decrypt(&key, &parts)?;
    Ok((plain, key))
}

/// [`open`] with an already derived key: the same parsing and decryption without the KDF, so
/// the fuzz target (`crate::fuzzing::keyring`) runs at parser speed, not at 100k PBKDF2 rounds.
pub(crate) fn open_with_key(
    file: &SealedFile,
    key: &SealKey,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    decrypt(key, &parse(file)?)
}

/// The decoded parts of a sealed file, checked before any key is derived.
struct Parts {
    salt: [u8; 16],
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn parse(file: &SealedFile) -> Result<Parts, CryptoError> {
    if file.kdf != "pbkdf2-hmac-sha256" || file.iterations < MIN_ITERATIONS {
        return Err(CryptoError::Decrypt);
    }
    let salt: [u8; 16] = B64
        .decode(&file.salt)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or(CryptoError::Decrypt)?;
    let nonce = B64.decode(&file.nonce).map_err(|_| CryptoError::Decrypt)?;
    let ciphertext = B64
        .decode(&file.ciphertext)
        .map_err(|_| CryptoError::Decrypt)?;
    if nonce.len() != 12 {
        return Err(CryptoError::Decrypt);
    }
    Ok(Parts {
        salt,
        nonce,
        ciphertext,
    })
}

fn decrypt(key: &SealKey, parts: &Parts) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let plain = Aes256Gcm::new(key.key.as_ref().into())
        .decrypt(
            Nonce::from_slice(&parts.nonce),
            Payload {
                msg: &parts.ciphertext,
                aad: AAD,
            },
        )
        .map_err(|_| CryptoError::Decrypt)?;
    Ok(Zeroizing::new(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_round_trip_and_wrong_passphrase() {
        let key = SealKey::new(b"correct horse", MIN_ITERATIONS).unwrap();
        let file = seal(&key, b"{\"k\":1}").unwrap();
        assert_eq!(
            open(&file, b"correct horse").unwrap().0.as_slice(),
            b"{\"k\":1}"
        );
        assert_eq!(
            open(&file, b"wrong horse").unwrap_err(),
            CryptoError::Decrypt
        );
        assert!(!format!("{key:?}").contains("key:"));
        let weak = SealKey::new(b"correct horse", MIN_ITERATIONS - 1).unwrap();
        let file = seal(&weak, b"{\"k\":1}").unwrap();
        assert_eq!(
            open(&file, b"correct horse").unwrap_err(),
            CryptoError::Decrypt,
            "too few iterations"
        );
    }
}
