//! Cryptography facade: the keyring (KEKs, blind-index root key, audit signing key), DEK
//! envelopes, field ciphertext and blind indexes. Every construction uses a domain-separation
//! constant so that a ciphertext or digest made for one purpose is useless for another.
//!
//! `ring` provides randomness, HMAC, HKDF, SHA-256 and Ed25519; `aes-gcm` does the AEAD.

mod cipher;
mod keyring;
pub mod seal;

pub use cipher::{BlindIndexer, Dek, FieldCipher, WrappedDek};
pub use keyring::{Keyring, KeyringError, KEYRING_FORMAT};

/// Errors from sealing and opening; deliberately carry no detail that could help an attacker.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("ciphertext could not be authenticated")]
    Decrypt,
    #[error("unknown key version {0}")]
    UnknownKeyVersion(u32),
    #[error("random number generator failed")]
    Rng,
}

/// Fills a fresh array with cryptographically secure random bytes.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::Rng)?;
    Ok(out)
}

/// Lower-case hex encoding (digests in exports and the blind index are shown this way).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Decodes lower- or upper-case hex; `None` on odd length or a non-hex character.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    // `from_str_radix` alone would also take a sign: "+a" would decode like "0a", so an
    // audit export with a hash digit edited to `+` still verified (found by fuzzing).
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The id of an Ed25519 public key: the first 16 hex digits of the SHA-256 of its 32 raw bytes.
/// Exports name the key that signed them with it, so a verifier can say "wrong key" plainly.
pub fn key_id(public_key: &[u8]) -> String {
    hex(&sha256(&[public_key])[..8])
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhex_takes_hex_digits_only() {
        assert_eq!(unhex("0aFf"), Some(vec![0x0a, 0xff]));
        // `u8::from_str_radix` accepts a sign; a hash must not (fuzzing, issue 13).
        assert_eq!(unhex("+a"), None);
        assert_eq!(unhex("-0"), None);
        assert_eq!(unhex("0a+b"), None);
        assert_eq!(unhex("abc"), None);
    }
}
