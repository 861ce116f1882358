//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie (Secure under TLS),
//! the session itself on the server, in memory. A session lives no longer than the token it
//! was made from (`exp`); it holds the token's `sub` and `role` and a CSRF token for its forms,
//! never the token. Sessions are per process: a restart or another node signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;

/// Cookie of the session id.
pub const SESSION_COOKIE: &str = "gv_console_session";
/// Cookie of the CSRF token of the signed-out forms (sign-in, language), checked by double
/// submit: a cross-site page can neither read it nor set it.
pub const PRE_COOKIE: &str = "gv_console_pre";
/// Cookie of the chosen language.
pub const LANG_COOKIE: &str = "gv_lang";
/// Sessions held at most; past it, expired ones are dropped and then the oldest.
const MAX_SESSIONS: usize = 10_000;

/// A signed-in console user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub sub: String,
    pub role: String,
    /// Unix seconds: the token's `exp`.
    pub expires_at: u64,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

/// The in-memory session store.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session; returns its id (the cookie value).
    pub fn create(
        &self,
        sub: String,
        role: String,
        expires_at: u64,
        now: u64,
    ) -> Option<NewSession> {
        let id = random_token()?;
        let session = Session {
            sub,
            role,
            expires_at,
            csrf: random_token()?,
        };
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires_at > now);
            while map.len() >= MAX_SESSIONS {
                let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.expires_at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), session.clone());
        Some(NewSession { id, session })
    }

    /// The live session of `id`; an expired one is removed and `None` answered.
    pub fn get(&self, id: &str, now: u64) -> Option<Session> {
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A new session and its id.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub session: Session,
}

/// 32 random bytes in hex; `None` if the system random source failed (the caller answers
/// 500: a guessable token is never issued).
pub fn random_token() -> Option<String> {
    crate::crypto::random_bytes::<32>()
        .ok()
        .map(|b| crate::crypto::hex(&b))
}

/// Compares two tokens in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty()
        && a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value scoped to the console: HttpOnly, SameSite=Strict, Secure under TLS.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/console; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// The current Unix time in seconds (the clock token verification uses).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `exp` of a token that has just been verified (its signature and claims were checked,
/// so its payload can be read as is).
pub fn verified_token_exp(token: &str) -> Option<u64> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Exp {
        exp: u64,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Exp>(&bytes).ok().map(|e| e.exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_removed() {
        let s = Sessions::default();
        let new = s.create("u1".into(), "admin".into(), 100, 10).unwrap();
        assert_eq!(new.id.len(), 64);
        assert_eq!(s.get(&new.id, 99).map(|x| x.role), Some("admin".into()));
        assert_eq!(s.get(&new.id, 100), None);
        assert!(s.is_empty());
        assert_eq!(s.get("nope", 0), None);
    }

    #[test]
    fn ids_and_csrf_tokens_differ() {
        let s = Sessions::default();
        let a = s.create("u".into(), "r".into(), 100, 0).unwrap();
        let b = s.create("u".into(), "r".into(), 100, 0).unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.session.csrf, b.session.csrf);
        assert_ne!(a.id, a.session.csrf);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("", ""));
        assert!(!same_token("abc", "abcd"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; gv_lang=en".parse().unwrap());
        h.append("cookie", "gv_console_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, "gv_lang"), Some("en"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        let c = set_cookie("n", "v", 5, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!set_cookie("n", "v", 5, false).contains("Secure"));
    }
}
