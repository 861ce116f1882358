//! Bearer-token authentication. Tokens are JWTs signed with the HS256 secret or one of the
//! configured PEM public keys (Ed25519, RSA, P-256); each key pins its own algorithm, so a
//! token cannot choose a weaker one. `sub`, `role`, `iss`, `aud`, `exp` and `iat` are required,
//! with a small explicit leeway. A token lives at most `auth.max_token_ttl_secs` (`exp - iat`,
//! longer only for roles listed in `auth.max_token_ttl_secs_by_role`), and an `iat` or `nbf`
//! beyond the leeway in the future is refused. `sub` lands in the audit trail for years, so it
//! is an opaque id (`[A-Za-z0-9._:-]{1,128}`, no e-mail address). Any failure is the same 401:
//! the reason is logged, never returned.

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
    /// One audience or several (RFC 7519 §4.1.3); validation needs the configured one in it.
    aud: Audience,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
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
            Self::Invalid(m) if m.contains("mmature") => "not_yet_valid",
            Self::Invalid(m) if m.starts_with("lifetime") => "lifetime_too_long",
            Self::Invalid(m) if m.starts_with("issued") => "issued_in_future",
            Self::Invalid(m) if m.starts_with("missing iat") => "missing_iat",
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
    #[error("config key `auth.public_key_files`: `{path}`: {reason}")]
    BadKey { path: String, reason: &'static str },
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
    lifetime: Lifetime,
}

/// The lifetime rules a token's `iat` and `exp` must meet.
#[derive(Debug, Clone)]
struct Lifetime {
    leeway: u64,
    max_ttl: u64,
    max_ttl_by_role: std::collections::BTreeMap<String, u64>,
}

impl Lifetime {
    /// `iat` present, not beyond the leeway in the future, and `exp - iat` within the role's cap.
    fn check(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
        let Some(iat) = claims.iat else {
            return Err(AuthError::Invalid("missing iat".into()));
        };
        if iat > now.saturating_add(self.leeway) {
            return Err(AuthError::Invalid("issued in the future".into()));
        }
        let cap = self
            .max_ttl_by_role
            .get(&claims.role)
            .copied()
            .unwrap_or(self.max_ttl);
        if claims.exp.saturating_sub(iat) > cap {
            return Err(AuthError::Invalid("lifetime beyond the cap".into()));
        }
        Ok(())
    }
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
            let bad = |reason| AuthSetupError::BadKey {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|_| bad("cannot read the file"))?;
            let (algorithm, key) = parse_public_key(&pem).map_err(bad)?;
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
            lifetime: Lifetime {
                leeway: config.auth.leeway_secs,
                max_ttl: config.auth.max_token_ttl_secs,
                max_ttl_by_role: config.auth.max_token_ttl_secs_by_role.clone(),
            },
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
        let (principal, exp) = self.verify_uncached(token, now)?;
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

    fn verify_uncached(&self, token: &str, now: u64) -> Result<(Principal, u64), AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let mut last = AuthError::Invalid("no key for the token's algorithm".into());
        for k in self.keys.iter().filter(|k| k.algorithm == header.alg) {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &k.validation) {
                Ok(data) => {
                    self.lifetime.check(&data.claims, now)?;
                    let exp = data.claims.exp;
                    return principal(data.claims).map(|p| (p, exp));
                }
                Err(e) => last = AuthError::Invalid(e.to_string()),
            }
        }
        Err(last)
    }
}

const NOT_A_KEY: &str = "not an Ed25519, RSA or P-256 public key in PEM (SubjectPublicKeyInfo)";
/// DER of the OIDs id-ecPublicKey (1.2.840.10045.2.1) and prime256v1 (1.2.840.10045.3.1.7).
const OID_EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A PEM public key and the one algorithm it verifies: Ed25519 → EdDSA, P-256 → ES256,
/// RSA → RS256. EC keys on other curves are refused (ring verifies ES256 on P-256 only, and a
/// P-384 key would otherwise load and then reject every token).
fn parse_public_key(pem: &[u8]) -> Result<(Algorithm, DecodingKey), &'static str> {
    let text = std::str::from_utf8(pem).map_err(|_| NOT_A_KEY)?;
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok((Algorithm::EdDSA, k));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        let der = pem_body(text).ok_or(NOT_A_KEY)?;
        let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
        if !has(&OID_EC_PUBLIC_KEY) || !has(&OID_P256) {
            return Err("an EC key on a curve other than P-256: only P-256 (ES256) is supported");
        }
        return Ok((Algorithm::ES256, k));
    }
    if text.contains("RSA") || text.contains("PUBLIC KEY") {
        if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            return Ok((Algorithm::RS256, k));
        }
    }
    Err(NOT_A_KEY)
}

/// The DER inside a PEM block.
fn pem_body(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let b64: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// `[A-Za-z0-9._:-]{1,128}`, not starting with `-` (a formula when the audit trail is opened
/// as CSV). No `@`: an e-mail address as `sub` would stay in the audit trail forever.
pub fn is_valid_sub(sub: &str) -> bool {
    (1..=MAX_SUB_CHARS).contains(&sub.len())
        && sub
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
        && !sub.starts_with('-')
}

fn principal(claims: Claims) -> Result<Principal, AuthError> {
    if !is_valid_sub(&claims.sub) {
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
        aud: Audience::One(audience.to_string()),
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
mod lifetime_tests;

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

    // ---- PEM public keys (Ed25519, P-256, RSA) ----

    use ring::signature::KeyPair as _;

    /// SubjectPublicKeyInfo DER prefixes (algorithm identifier + BIT STRING header).
    const ED25519_SPKI: &[u8] = &[
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    const P256_SPKI: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    const P384_SPKI: &[u8] = &[
        0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05,
        0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
    ];
    /// A 2048-bit RSA key made with `openssl genrsa -traditional` for these tests only.
    const RSA_TEST_PRIVATE_PEM: &str = include_str!("testdata/rsa2048-test-only.key.pem");
    const RSA_TEST_PUBLIC_PEM: &str = include_str!("testdata/rsa2048-test-only.pub.pem");

    fn spki_pem(prefix: &[u8], public: &[u8]) -> String {
        use base64::Engine;
        let der = [prefix, public].concat();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn ed25519() -> (Vec<u8>, String) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let pem = spki_pem(ED25519_SPKI, pair.public_key().as_ref());
        (pkcs8.as_ref().to_vec(), pem)
    }

    fn ecdsa(
        signing: &'static ring::signature::EcdsaSigningAlgorithm,
        prefix: &[u8],
    ) -> (Vec<u8>, String) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
        let pair =
            ring::signature::EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).unwrap();
        let pem = spki_pem(prefix, pair.public_key().as_ref());
        (pkcs8.as_ref().to_vec(), pem)
    }

    /// A config whose only verification keys are `pems`, with an HS256 secret lying in the
    /// data dir (which must then be ignored).
    fn pem_config(dir: &std::path::Path, pems: &[&str]) -> Config {
        let mut config = Config::default();
        config.storage.data_dir = dir.to_owned();
        write_new_secret(&config.hs256_secret_file()).unwrap();
        for (i, pem) in pems.iter().enumerate() {
            let path = dir.join(format!("key{i}.pem"));
            std::fs::write(&path, pem).unwrap();
            config.auth.public_key_files.push(path);
        }
        config
    }

    fn sign(alg: Algorithm, key: &EncodingKey, aud: serde_json::Value) -> String {
        let claims = serde_json::json!({
            "sub": "pms-1", "role": "pms", "iss": "guestvault", "aud": aud, "exp": now() + 60,
            "iat": now(),
        });
        jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
    }

    #[test]
    fn pem_public_keys_verify_tokens_signed_by_their_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (ed_private, ed_pem) = ed25519();
        let (ec_private, ec_pem) =
            ecdsa(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, P256_SPKI);
        let config = pem_config(dir.path(), &[&ed_pem, &ec_pem, RSA_TEST_PUBLIC_PEM]);
        let auth = Authenticator::from_config(&config).unwrap();
        assert_eq!(
            auth.keys.iter().map(|k| k.algorithm).collect::<Vec<_>>(),
            vec![Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
        );
        let aud = serde_json::json!("guestvault");
        let pms = Principal {
            sub: "pms-1".into(),
            role: "pms".into(),
        };
        let ed = sign(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_der(&ed_private),
            aud.clone(),
        );
        assert_eq!(auth.verify(&ed), Ok(pms.clone()));
        let es = sign(
            Algorithm::ES256,
            &EncodingKey::from_ec_der(&ec_private),
            aud.clone(),
        );
        assert_eq!(auth.verify(&es), Ok(pms.clone()));
        let rsa_key = EncodingKey::from_rsa_pem(RSA_TEST_PRIVATE_PEM.as_bytes()).unwrap();
        let rs = sign(Algorithm::RS256, &rsa_key, aud.clone());
        assert_eq!(auth.verify(&rs), Ok(pms));
        // Another key of the same kind is not enough.
        let (other_ed, _) = ed25519();
        let forged = sign(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_der(&other_ed),
            aud.clone(),
        );
        assert_eq!(auth.verify(&forged).unwrap_err().kind(), "bad_signature");
        let (other_ec, _) = ecdsa(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, P256_SPKI);
        let forged = sign(Algorithm::ES256, &EncodingKey::from_ec_der(&other_ec), aud);
        assert!(auth.verify(&forged).is_err());
        // With only PEM keys configured, the data dir's HS256 secret is off: its tokens fail.
        let hs =
            mint_with_config(&config, "pms", "pms-1", std::time::Duration::from_secs(60)).unwrap();
        assert!(auth.verify(&hs).is_err());
        // An RSA-signed token relabelled as HS256 (key confusion) fails too.
        let mut parts: Vec<&str> = rs.split('.').collect();
        use base64::Engine;
        let hs_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        parts[0] = &hs_header;
        assert!(auth.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn ec_keys_on_other_curves_than_p256_are_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (_, p384_pem) = ecdsa(&ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING, P384_SPKI);
        let config = pem_config(dir.path(), &[&p384_pem]);
        let err = Authenticator::from_config(&config).unwrap_err();
        assert!(matches!(err, AuthSetupError::BadKey { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("auth.public_key_files"), "{msg}");
        assert!(msg.contains("key0.pem"), "{msg}");
        assert!(msg.contains("P-256"), "{msg}");
        // Not a key at all.
        let dir = tempfile::tempdir().unwrap();
        let config = pem_config(dir.path(), &["hello"]);
        let msg = Authenticator::from_config(&config).unwrap_err().to_string();
        assert!(
            msg.contains("not an Ed25519, RSA or P-256 public key"),
            "{msg}"
        );
    }

    #[test]
    fn an_array_audience_must_contain_ours() {
        let (_d, config, auth) = setup();
        let secret = read_secret_file("k", &config.hs256_secret_file()).unwrap();
        let key = EncodingKey::from_secret(&secret);
        let t = sign(
            Algorithm::HS256,
            &key,
            serde_json::json!(["billing-api", "guestvault"]),
        );
        assert!(auth.verify(&t).is_ok());
        let t = sign(Algorithm::HS256, &key, serde_json::json!(["billing-api"]));
        assert_eq!(auth.verify(&t).unwrap_err().kind(), "wrong_audience");
    }
}
