//! Bearer-token authentication. Tokens are JWTs signed with the HS256 secret or one of the
//! configured PEM public keys (Ed25519, RSA, P-256); each key pins its own algorithm, so a
//! token cannot choose a weaker one. `sub`, `role`, `iss`, `aud` and `exp` are required, with a
//! small explicit leeway. Any failure is the same 401: the reason is logged, never returned.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{read_secret_file, Config};

/// Shortest HS256 secret accepted (bytes).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
const MAX_SUB_CHARS: usize = 128;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub role: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iss: String,
    aud: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token rejected: {0}")]
    Invalid(String),
}

impl AuthError {
    /// A fixed description of the failure, safe to log (no token text).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid(m) if m.contains("xpired") => "expired",
            Self::Invalid(m) if m.contains("ignature") => "bad_signature",
            Self::Invalid(m) if m.contains("udience") => "wrong_audience",
            Self::Invalid(m) if m.contains("ssuer") => "wrong_issuer",
            Self::Invalid(m) if m.contains("algorithm") => "algorithm_not_allowed",
            Self::Invalid(m) if m.starts_with("malformed") => "malformed_claims",
            Self::Invalid(_) => "invalid",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("config key `auth.hs256_secret_file`: the secret must be at least {MIN_HS256_SECRET_BYTES} bytes")]
    WeakSecret,
    #[error("config key `auth.public_key_files`: `{0}` is not an Ed25519, RSA or P-256 public key in PEM")]
    BadKey(String),
    #[error("config key `auth.hs256_secret_file`: `{0}` is readable by group or others; run `chmod 600` on it")]
    SecretPermissions(String),
    #[error("no token verification key: set `auth.hs256_secret_file` or `auth.public_key_files` (or run `guestvault init`)")]
    NoKeys,
}

struct VerifyKey {
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

/// Verifies bearer tokens against the configured keys.
pub struct Authenticator {
    keys: Vec<VerifyKey>,
    /// Tokens verified in the last minute (never past their `exp`): a client sends the same
    /// token with every request, and re-checking its signature and claims each time was a
    /// measurable share of a read.
    cache: std::sync::Mutex<std::collections::HashMap<String, (Principal, u64)>>,
}

const CACHE_SECS: u64 = 60;
const CACHE_MAX_ENTRIES: usize = 10_000;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "algorithms",
                &self.keys.iter().map(|k| k.algorithm).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Authenticator {
    pub fn from_config(config: &Config) -> Result<Self, AuthSetupError> {
        let mut keys = Vec::new();
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.set_issuer(&[&config.auth.issuer]);
            v.set_audience(&[&config.auth.audience]);
            v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            v.leeway = config.auth.leeway_secs;
            v.validate_nbf = true;
            v
        };
        // HS256 (shared secret) is for development and small sites: it is on when configured
        // explicitly, or by default only when no public keys are configured, so adding
        // `public_key_files` turns the data dir's dev secret off.
        let secret_file = config.hs256_secret_file();
        let hs256 = config.auth.hs256_secret_file.is_some()
            || (config.auth.public_key_files.is_empty() && secret_file.exists());
        if hs256 {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&secret_file)
                    .map(|m| m.permissions().mode())
                    .unwrap_or(0);
                if mode & 0o077 != 0 {
                    return Err(AuthSetupError::SecretPermissions(
                        secret_file.display().to_string(),
                    ));
                }
            }
            let secret = read_secret_file("auth.hs256_secret_file", &secret_file)?;
            if secret.len() < MIN_HS256_SECRET_BYTES {
                return Err(AuthSetupError::WeakSecret);
            }
            keys.push(VerifyKey {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(&secret),
                validation: validation(Algorithm::HS256),
            });
        }
        for path in &config.auth.public_key_files {
            let pem = std::fs::read(path)
                .map_err(|_| AuthSetupError::BadKey(path.display().to_string()))?;
            let (algorithm, key) = parse_public_key(&pem)
                .ok_or_else(|| AuthSetupError::BadKey(path.display().to_string()))?;
            keys.push(VerifyKey {
                algorithm,
                key,
                validation: validation(algorithm),
            });
        }
        if keys.is_empty() {
            return Err(AuthSetupError::NoKeys);
        }
        Ok(Self {
            keys,
            cache: std::sync::Mutex::default(),
        })
    }

    /// Verifies `token` and returns its principal (from the cache when it was verified in the
    /// last minute and has not expired).
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = unix_now();
        if let Ok(cache) = self.cache.lock() {
            if let Some((p, until)) = cache.get(token) {
                if now < *until {
                    return Ok(p.clone());
                }
            }
        }
        let (principal, exp) = self.verify_uncached(token)?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(
                token.to_string(),
                (principal.clone(), exp.min(now + CACHE_SECS)),
            );
        }
        Ok(principal)
    }

    fn verify_uncached(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let mut last = AuthError::Invalid("no key for the token's algorithm".into());
        for k in self.keys.iter().filter(|k| k.algorithm == header.alg) {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &k.validation) {
                Ok(data) => {
                    let exp = data.claims.exp;
                    return principal(data.claims).map(|p| (p, exp));
                }
                Err(e) => last = AuthError::Invalid(e.to_string()),
            }
        }
        Err(last)
    }
}

fn parse_public_key(pem: &[u8]) -> Option<(Algorithm, DecodingKey)> {
    let text = std::str::from_utf8(pem).ok()?;
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Some((Algorithm::EdDSA, k));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        // P-256 is the only curve ring verifies for ES256; P-384 keys would need ES384.
        return Some((Algorithm::ES256, k));
    }
    if text.contains("RSA") || text.contains("PUBLIC KEY") {
        if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            return Some((Algorithm::RS256, k));
        }
    }
    None
}

fn principal(claims: Claims) -> Result<Principal, AuthError> {
    let sub_ok = !claims.sub.is_empty()
        && claims.sub.chars().count() <= MAX_SUB_CHARS
        && claims
            .sub
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@'));
    if !sub_ok {
        return Err(AuthError::Invalid("malformed sub".into()));
    }
    if !crate::policy::is_identifier(&claims.role) {
        return Err(AuthError::Invalid("malformed role".into()));
    }
    Ok(Principal {
        sub: claims.sub,
        role: claims.role,
    })
}

/// Mints an HS256 development token (CLI `token` and `demo`).
pub fn mint_hs256(
    secret: &[u8],
    issuer: &str,
    audience: &str,
    role: &str,
    sub: &str,
    ttl: std::time::Duration,
    now_unix: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        sub: sub.to_string(),
        role: role.to_string(),
        iss: issuer.to_string(),
        aud: audience.to_string(),
        exp: now_unix + ttl.as_secs(),
        iat: Some(now_unix),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

/// Mints with the configured secret file.
pub fn mint_with_config(
    config: &Config,
    role: &str,
    sub: &str,
    ttl: std::time::Duration,
) -> anyhow::Result<String> {
    let secret = read_secret_file("auth.hs256_secret_file", &config.hs256_secret_file())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    Ok(mint_hs256(
        &secret,
        &config.auth.issuer,
        &config.auth.audience,
        role,
        sub,
        ttl,
        now,
    )?)
}

/// Writes a fresh random HS256 secret (base64 of 32 random bytes), mode 0600.
pub fn write_new_secret(path: &Path) -> anyhow::Result<()> {
    use base64::Engine;
    use std::io::Write;
    let bytes = crate::crypto::random_bytes::<32>()?;
    let text = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Config, Authenticator) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().to_owned();
        write_new_secret(&config.hs256_secret_file()).unwrap();
        let auth = Authenticator::from_config(&config).unwrap();
        (dir, config, auth)
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_minted_token_verifies() {
        let (_d, config, auth) = setup();
        let t = mint_with_config(
            &config,
            "front_desk",
            "fd-1",
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            auth.verify(&t).unwrap(),
            Principal {
                sub: "fd-1".into(),
                role: "front_desk".into()
            }
        );
    }

    #[test]
    fn expired_forged_and_wrong_audience_tokens_are_rejected() {
        let (_d, config, auth) = setup();
        let secret = read_secret_file("k", &config.hs256_secret_file()).unwrap();
        let expired = mint_hs256(
            &secret,
            "guestvault",
            "guestvault",
            "pms",
            "s",
            std::time::Duration::ZERO,
            now() - 3600,
        )
        .unwrap();
        assert!(auth.verify(&expired).is_err());
        let forged = mint_hs256(
            &[1u8; 32],
            "guestvault",
            "guestvault",
            "pms",
            "s",
            std::time::Duration::from_secs(60),
            now(),
        )
        .unwrap();
        assert!(auth.verify(&forged).is_err());
        let aud = mint_hs256(
            &secret,
            "guestvault",
            "other",
            "pms",
            "s",
            std::time::Duration::from_secs(60),
            now(),
        )
        .unwrap();
        assert!(auth.verify(&aud).is_err());
        let iss = mint_hs256(
            &secret,
            "evil",
            "guestvault",
            "pms",
            "s",
            std::time::Duration::from_secs(60),
            now(),
        )
        .unwrap();
        assert!(auth.verify(&iss).is_err());
    }

    #[test]
    fn a_cached_token_still_expires() {
        let (_d, config, auth) = setup();
        let secret = read_secret_file("k", &config.hs256_secret_file()).unwrap();
        // exp two seconds ago, within the 30 s leeway: valid now, but the cache must not keep
        // it past exp.
        let t = mint_hs256(
            &secret,
            "guestvault",
            "guestvault",
            "pms",
            "s",
            std::time::Duration::ZERO,
            now() - 2,
        )
        .unwrap();
        assert!(auth.verify(&t).is_ok());
        let until = auth.cache.lock().unwrap().get(&t).unwrap().1;
        assert!(until <= now(), "cached until {until}, past exp");
    }

    #[test]
    fn unsigned_tokens_are_rejected() {
        let (_d, _config, auth) = setup();
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(
                r#"{{"sub":"s","role":"pms","iss":"guestvault","aud":"guestvault","exp":{}}}"#,
                now() + 60
            ))
        );
        assert!(auth.verify(&t).is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().to_owned();
        std::fs::write(config.hs256_secret_file(), "short").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = config.hs256_secret_file();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                Authenticator::from_config(&config),
                Err(AuthSetupError::SecretPermissions(_))
            ));
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(
            Authenticator::from_config(&config),
            Err(AuthSetupError::WeakSecret)
        ));
    }
}
