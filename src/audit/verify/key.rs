//! The audit public key as an auditor receives it: base64 of the raw 32 bytes (as
//! `GET /v1/audit/public-key` returns it), that endpoint's whole JSON answer, or PEM.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an Ed25519 public key: {0}")]
pub struct KeyError(&'static str);

/// An Ed25519 audit public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Accepts the base64 of the 32 raw bytes (as `GET /v1/audit/public-key` returns it), that
    /// endpoint's whole JSON answer, or a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.starts_with('{') {
            #[derive(Deserialize)]
            struct Answer {
                algorithm: Option<String>,
                public_key: String,
            }
            let a: Answer = serde_json::from_str(text).map_err(|_| KeyError("unreadable JSON"))?;
            if a.algorithm.as_deref().is_some_and(|alg| alg != "Ed25519") {
                return Err(KeyError("the algorithm is not Ed25519"));
            }
            return Self::parse(&a.public_key);
        }
        let b64: String = if let Some(rest) = text.strip_prefix("-----BEGIN PUBLIC KEY-----") {
            let body = rest
                .split("-----END PUBLIC KEY-----")
                .next()
                .ok_or(KeyError("unterminated PEM"))?;
            body.chars().filter(|c| !c.is_whitespace()).collect()
        } else {
            text.to_string()
        };
        let bytes = B64.decode(b64).map_err(|_| KeyError("not base64"))?;
        let raw = match bytes.len() {
            32 => bytes.as_slice(),
            44 if bytes.starts_with(&ED25519_SPKI_PREFIX) => &bytes[12..],
            _ => {
                return Err(KeyError(
                    "expected 32 raw bytes or an Ed25519 SubjectPublicKeyInfo",
                ))
            }
        };
        Self::from_raw(raw).ok_or(KeyError("wrong length"))
    }

    pub fn from_raw(raw: &[u8]) -> Option<Self> {
        raw.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn key_id(&self) -> String {
        crate::crypto::key_id(&self.0)
    }

    /// The key as a PEM SubjectPublicKeyInfo.
    pub fn to_pem(&self) -> String {
        let der = [ED25519_SPKI_PREFIX.as_slice(), &self.0].concat();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            B64.encode(der)
        )
    }
}
