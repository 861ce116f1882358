//! Token lifetime and `sub` rules (issue 12 point 9).

use super::*;
use proptest::prelude::*;

fn now() -> u64 {
    unix_now()
}

fn setup(by_role: &[(&str, u64)]) -> (tempfile::TempDir, Vec<u8>, Authenticator) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    for (role, ttl) in by_role {
        config
            .auth
            .max_token_ttl_secs_by_role
            .insert(role.to_string(), *ttl);
    }
    write_new_secret(&config.hs256_secret_file()).unwrap();
    let secret = read_secret_file("k", &config.hs256_secret_file()).unwrap();
    let auth = Authenticator::from_config(&config).unwrap();
    (dir, secret.to_vec(), auth)
}

fn sign(secret: &[u8], claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn claims(role: &str, sub: &str, iat: Option<u64>, exp: u64) -> serde_json::Value {
    let mut c = serde_json::json!({
        "sub": sub, "role": role, "iss": "guestvault", "aud": "guestvault", "exp": exp,
    });
    if let Some(iat) = iat {
        c["iat"] = iat.into();
    }
    c
}

fn kind(auth: &Authenticator, token: &str) -> &'static str {
    match auth.verify(token) {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

#[test]
fn a_token_lives_at_most_the_configured_lifetime() {
    let (_d, secret, auth) = setup(&[]);
    let t = now();
    let day = crate::config::DEFAULT_MAX_TOKEN_TTL_SECS;
    let ok = sign(&secret, claims("front_desk", "fd-1", Some(t), t + day));
    assert_eq!(kind(&auth, &ok), "ok");
    let long = sign(&secret, claims("front_desk", "fd-1", Some(t), t + day + 1));
    assert_eq!(kind(&auth, &long), "lifetime_too_long");
    let forever = sign(&secret, claims("front_desk", "fd-1", Some(t), u64::MAX));
    assert_eq!(kind(&auth, &forever), "lifetime_too_long");
    // Without `iat` the cap cannot be checked: refused.
    let no_iat = sign(&secret, claims("front_desk", "fd-1", None, t + 60));
    assert_eq!(kind(&auth, &no_iat), "missing_iat");
}

#[test]
fn only_the_configured_roles_get_a_longer_lifetime() {
    let month = 30 * 24 * 3600;
    let (_d, secret, auth) = setup(&[("pms", month)]);
    let t = now();
    let pms = sign(&secret, claims("pms", "pms-1", Some(t), t + month));
    assert_eq!(kind(&auth, &pms), "ok");
    let pms_longer = sign(&secret, claims("pms", "pms-1", Some(t), t + month + 1));
    assert_eq!(kind(&auth, &pms_longer), "lifetime_too_long");
    let desk = sign(&secret, claims("front_desk", "fd-1", Some(t), t + month));
    assert_eq!(kind(&auth, &desk), "lifetime_too_long");
}

#[test]
fn iat_or_nbf_beyond_the_leeway_in_the_future_is_refused() {
    let (_d, secret, auth) = setup(&[]);
    let t = now();
    // Default leeway: 30 s.
    let soon = sign(&secret, claims("pms", "p", Some(t + 20), t + 600));
    assert_eq!(kind(&auth, &soon), "ok");
    let later = sign(&secret, claims("pms", "p", Some(t + 120), t + 600));
    assert_eq!(kind(&auth, &later), "issued_in_future");
    let mut c = claims("pms", "p", Some(t), t + 600);
    c["nbf"] = (t + 120).into();
    assert_eq!(kind(&auth, &sign(&secret, c)), "not_yet_valid");
}

#[test]
fn e_mail_addresses_and_odd_subs_are_refused() {
    let (_d, secret, auth) = setup(&[]);
    let t = now();
    for (sub, want) in [
        ("zhang.san@hotel.example", "malformed_claims"),
        ("-1+2", "malformed_claims"),
        ("张三", "malformed_claims"),
        ("a b", "malformed_claims"),
        ("", "malformed_claims"),
        (&"a".repeat(129), "malformed_claims"),
        (&"a".repeat(128), "ok"),
        ("staff:fd-1.a_b", "ok"),
    ] {
        let token = sign(&secret, claims("pms", sub, Some(t), t + 60));
        assert_eq!(kind(&auth, &token), want, "{sub}");
    }
}

proptest! {
    #[test]
    fn a_sub_is_accepted_exactly_when_it_is_an_opaque_id(sub in "[A-Za-z0-9._:@+= -]{0,130}") {
        let class = !sub.is_empty()
            && sub.len() <= 128
            && sub.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
            && !sub.starts_with('-');
        prop_assert_eq!(is_valid_sub(&sub), class);
        prop_assert!(!(is_valid_sub(&sub) && sub.contains('@')));
    }
}
