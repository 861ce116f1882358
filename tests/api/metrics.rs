//! `GET /metrics`: Prometheus text with route templates (never ids), writer, audit, guests,
//! rotation and retention; only for the scrapers the config allows.

use reqwest::{Method, StatusCode};

use crate::helpers::{spawn_app, spawn_on, test_config, zhang_san};

/// The value of the first sample of `name` (with any labels).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_scrape_during_load_shows_every_family_and_no_guest_id() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}");
    let r = app
        .call(
            Method::POST,
            "/v1/admin/retention/run",
            Some("admin"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let load = async {
        for _ in 0..20 {
            let r = app
                .call(Method::GET, &path, Some("pms"), Some("check_in"), None)
                .await;
            assert_eq!(r.status, StatusCode::OK);
        }
    };
    let (_, r) = tokio::join!(load, app.call(Method::GET, "/metrics", None, None, None));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let r = app.call(Method::GET, "/metrics", None, None, None).await;
    let text = r.text;
    for family in [
        "guestvault_http_requests_total",
        "guestvault_http_request_duration_seconds_bucket",
        "guestvault_http_requests_in_flight",
        "guestvault_http_open_connections",
        "guestvault_writer_batch_size_bucket",
        "guestvault_writer_commit_duration_seconds_bucket",
        "guestvault_audit_events_total",
        "guestvault_guests_stored",
        "guestvault_kek_active_version",
        "guestvault_key_rotation_running",
        "guestvault_key_rotation_deks_done",
        "guestvault_key_rotation_deks_total",
        "guestvault_retention_sweeps_total",
        "guestvault_retention_guests_checked_total",
        "guestvault_build_info",
    ] {
        assert!(
            sample(&text, family).is_some(),
            "{family} missing from:\n{text}"
        );
    }
    assert!(
        text.contains(r#"route="/v1/guests/{id}",status="200""#),
        "{text}"
    );
    assert!(text.contains(r#"trigger="api",result="ok""#), "{text}");
    assert!(!text.contains(&id), "a guest id in a label");
    assert!(sample(&text, "guestvault_audit_events_total").unwrap() >= 20.0);
    // The scrape itself is a connection (and a request) in flight.
    assert!(sample(&text, "guestvault_http_open_connections").unwrap() >= 1.0);
    assert!(sample(&text, "guestvault_http_requests_in_flight").unwrap() >= 1.0);
}

#[tokio::test]
async fn without_an_allowed_network_a_scrape_needs_a_token_of_an_allowed_role() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.metrics.allow = vec![];
    config.metrics.bearer_roles = vec!["admin".into()];
    guestvault::cli::init(&config).unwrap();
    let app = spawn_on(dir, config).await;
    let r = app.call(Method::GET, "/metrics", None, None, None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let r = app
        .call(Method::GET, "/metrics", Some("pms"), None, None)
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let r = app
        .call(Method::GET, "/metrics", Some("admin"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("guestvault_http_requests_total"));
}

#[tokio::test]
async fn a_peer_outside_the_allowed_networks_is_refused_when_no_role_may_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.metrics.allow = vec!["10.0.0.0/8".into()];
    guestvault::cli::init(&config).unwrap();
    let app = spawn_on(dir, config).await;
    for role in [None, Some("admin")] {
        let r = app.call(Method::GET, "/metrics", role, None, None).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );
    }
    // Health and the document stay public.
    let r = app
        .call(Method::GET, "/openapi.json", None, None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_rejected_scrape_token_is_logged_by_kind_without_its_claims() {
    const CANARY: &str = "scrape-canary-iat-5521";
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.metrics.allow = vec![];
    config.metrics.bearer_roles = vec!["admin".into()];
    guestvault::cli::init(&config).unwrap();
    let app = spawn_on(dir, config).await;
    // Correctly signed, but `iat` has the wrong type: the JWT library's error quotes it.
    let secret = guestvault::config::read_secret_file(
        "auth.hs256_secret_file",
        &app.config.hs256_secret_file(),
    )
    .unwrap();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub":"s","role":"admin","iss":"guestvault","aud":"guestvault","exp":exp,"iat":CANARY}),
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();
    let r = app
        .send(
            app.client
                .get(format!("{}/metrics", app.addr))
                .bearer_auth(token),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let logs = crate::helpers::captured_logs();
    assert!(
        logs.contains("bearer token rejected"),
        "the rejection must be logged"
    );
    assert!(!logs.contains(CANARY), "a claim value reached the log");
}
