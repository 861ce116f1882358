//! The audit trail's safety properties over HTTP: no personal data in an export (REQ-11,
//! REQ-18), fail closed when the trail cannot be written (503, nothing shown), and signed
//! checkpoints every N events and at shutdown.

use guestvault::audit::verify::{verify_export, PublicKey};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_on, test_config, zhang_san};

const OFFICER: Option<&str> = Some("compliance_officer");

const CANARY_NAME: &str = "欧阳金丝雀";
const CANARY_MOBILE: &str = "13700112233";
const CANARY_EMAIL: &str = "canary.qv55@example.net";
const CANARY_ID: &str = "11010519491231002X";
const CANARY_DIET: &str = "pangolin-canary-diet";
/// The reveal's reason code and ticket, which the trail does keep.
const CANARY_JUSTIFICATION_OK: &str = "reason=identity_check_at_desk ticket=REG-2026-11";

#[tokio::test]
async fn an_export_of_a_canary_planted_vault_contains_no_canary_value() {
    let app = spawn_app().await;
    let id = app
        .create_guest(json!({
            "full_name": CANARY_NAME, "mobile": CANARY_MOBILE, "email": CANARY_EMAIL,
            "id_type": "cn_resident_id", "id_number": CANARY_ID, "gender": "F",
            "birth_date": "1949-12-31", "dietary_needs": CANARY_DIET,
        }))
        .await;
    let path = format!("/v1/guests/{id}");
    for (role, purpose) in [
        ("front_desk", "check_in"),
        ("concierge", "guest_service"),
        ("marketing", "marketing"),
    ] {
        app.call(Method::GET, &path, Some(role), Some(purpose), None)
            .await;
    }
    let r = app
        .call(
            Method::POST,
            &format!("{path}/reveal"),
            Some("front_desk"),
            Some("check_in"),
            Some(json!({"fields":["mobile","id_number"],"reason":"identity_check_at_desk","ticket":"REG-2026-11"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (field, value) in [
        ("mobile", CANARY_MOBILE),
        ("email", CANARY_EMAIL),
        ("full_name", CANARY_NAME),
    ] {
        app.call(
            Method::POST,
            "/v1/guests/search",
            Some("pms"),
            Some("check_in"),
            Some(json!({"field": field, "value": value})),
        )
        .await;
    }
    app.call(
        Method::PATCH,
        &path,
        Some("pms"),
        Some("check_in"),
        Some(json!({"fields":{"mobile": CANARY_EMAIL}})),
    )
    .await;
    app.call(Method::GET, &path, Some("pms"), Some(CANARY_MOBILE), None)
        .await;
    app.call(
        Method::GET,
        &format!("/v1/audit/events?actor={CANARY_MOBILE}"),
        OFFICER,
        None,
        None,
    )
    .await;

    let r = app
        .call(Method::GET, "/v1/audit/public-key", OFFICER, None, None)
        .await;
    let key = PublicKey::parse(r.body["public_key"].as_str().unwrap()).unwrap();
    let mut exports = Vec::new();
    for format in ["jsonl", "csv"] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/audit/export?format={format}"),
                OFFICER,
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        verify_export(r.text.as_bytes(), &key).unwrap();
        exports.push(r.text);
    }
    let r = app
        .call(
            Method::GET,
            "/v1/audit/events?limit=1000",
            OFFICER,
            None,
            None,
        )
        .await;
    exports.push(r.text);
    // The scan can fail: the export does hold what the trail should hold.
    assert!(exports[0].contains("\"guest.reveal\"") && exports[0].contains(&id));
    assert!(
        exports[0].contains(CANARY_JUSTIFICATION_OK),
        "the justification is audited"
    );
    for canary in [
        CANARY_NAME,
        CANARY_MOBILE,
        CANARY_EMAIL,
        CANARY_ID,
        CANARY_DIET,
        "+8613700112233",
    ] {
        for text in &exports {
            assert!(
                !text.contains(canary),
                "canary {canary:?} in an audit export"
            );
        }
    }
}

#[tokio::test]
async fn when_the_trail_cannot_be_written_reads_fail_with_503_and_show_nothing() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}");
    app.refuse_audit_writes();
    let before = app.audit_count();
    for (role, purpose) in [
        ("front_desk", Some("check_in")),
        ("pms", Some("guest_service")),
    ] {
        let r = app
            .call(Method::GET, &path, Some(role), purpose, None)
            .await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
        assert_eq!(r.body["code"], "audit_unavailable");
        assert_eq!(r.headers["content-type"], "application/problem+json");
        for value in [
            "张三丰",
            "13812345678",
            "1234",
            "zhang",
            "11010519491231002X",
            "海淀",
            "peanut",
        ] {
            let text = r.text_without_request_id();
            assert!(!text.contains(value), "{value:?} leaked in {text}");
        }
    }
    let r = app
        .call(
            Method::POST,
            &format!("{path}/reveal"),
            Some("front_desk"),
            Some("check_in"),
            Some(json!({"fields":["mobile"],"reason":"identity_check_at_desk"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!r.text_without_request_id().contains("138"));
    // An export is refused before a single byte of the trail leaves.
    let r = app
        .call(Method::GET, "/v1/audit/export", OFFICER, None, None)
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("audit_unavailable"))
    );
    assert_eq!(app.audit_count(), before);
    // Once the trail can be written again, so can the read.
    app.let_audit_be_written();
    let r = app
        .call(
            Method::GET,
            &path,
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn checkpoints_are_signed_every_n_events_and_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.audit.checkpoint_every = 3;
    guestvault::cli::init(&config).unwrap();
    let app = spawn_on(dir, config).await;
    let id = app.create_guest(zhang_san()).await;
    for _ in 0..4 {
        app.call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    }
    let checkpoints = |config: &guestvault::config::Config| -> Vec<i64> {
        crate::helpers::sql::rows_on(
            config,
            "SELECT seq FROM audit_checkpoints ORDER BY seq",
            &[],
        )
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect()
    };
    let seen = checkpoints(&app.config);
    assert!(
        seen.len() >= 2 && seen.windows(2).all(|w| w[1] - w[0] >= 3),
        "{seen:?}"
    );
    let head = app.audit_count();
    app.call(
        Method::GET,
        &format!("/v1/guests/{id}"),
        Some("front_desk"),
        Some("check_in"),
        None,
    )
    .await;
    let (dir, config) = app.stop().await;
    assert_eq!(
        checkpoints(&config).last().copied(),
        Some(head + 1),
        "a checkpoint at shutdown covers the head"
    );
    drop(dir);
}

#[tokio::test]
async fn a_timer_signs_new_events_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.audit.checkpoint_interval_secs = 1;
    guestvault::cli::init(&config).unwrap();
    let app = spawn_on(dir, config).await;
    app.create_guest(zhang_san()).await;
    let head = app.audit_count();
    let latest = || -> Option<i64> {
        app.sql_opt("SELECT max(seq) FROM audit_checkpoints", &[])
            .map(|s| s.parse().unwrap())
    };
    for _ in 0..40 {
        if latest() == Some(head) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(latest(), Some(head));
}
