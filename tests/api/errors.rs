//! 400/401/403/404/413/415/422 paths: each answers problem+json with a stable code, echoes no
//! value, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, zhang_san};

fn guests_stored(app: &crate::helpers::TestApp) -> i64 {
    app.sql_i64("SELECT count(*) FROM guests", &[])
}

#[tokio::test]
async fn missing_expired_or_forged_tokens_are_401_with_www_authenticate() {
    let app = spawn_app().await;
    let r = app
        .call(
            Method::GET,
            "/v1/guests/0191a1d2-0000-7000-8000-000000000000",
            None,
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["code"], "unauthorized");
    assert!(r
        .headers
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/problem+json"
    );

    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let secret =
        guestvault::config::read_secret_file("k", &app.config.hs256_secret_file()).unwrap();
    let expired = guestvault::auth::mint_hs256(
        &secret,
        "guestvault",
        "guestvault",
        "pms",
        "s",
        std::time::Duration::ZERO,
        now - 3600,
    )
    .unwrap();
    let forged = guestvault::auth::mint_hs256(
        &[7u8; 32],
        "guestvault",
        "guestvault",
        "pms",
        "s",
        std::time::Duration::from_secs(600),
        now,
    )
    .unwrap();
    for token in [expired, forged, "not.a.jwt".to_string()] {
        let req = app
            .client
            .get(format!("{}/v1/guests/x", app.addr))
            .bearer_auth(token)
            .header("X-Purpose", "check_in");
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn purpose_is_required_and_must_belong_to_the_role() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}");
    let r = app
        .call(Method::GET, &path, Some("concierge"), None, None)
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("purpose_required"))
    );
    let r = app
        .call(Method::GET, &path, Some("concierge"), Some("billing"), None)
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("purpose_not_allowed"))
    );
    let r = app
        .call(
            Method::GET,
            &path,
            Some("concierge"),
            Some("astrology"),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("purpose_not_allowed"))
    );
}

#[tokio::test]
async fn unknown_roles_and_roles_without_the_action_are_forbidden() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    for (role, purpose) in [
        ("janitor", "check_in"),
        ("admin", "administration"),
        ("compliance_officer", "audit"),
    ] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/guests/{id}"),
                Some(role),
                Some(purpose),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
        assert_eq!(r.body["code"], "forbidden", "{role}");
    }
}

#[tokio::test]
async fn consent_purposes_are_denied_without_consent() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("marketing"),
            Some("marketing"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["code"], "consent_required");
}

#[tokio::test]
async fn unknown_and_malformed_guest_ids_are_404() {
    let app = spawn_app().await;
    for id in [
        "0191a1d2-0000-7000-8000-000000000000",
        "not-an-id",
        "13812345678",
    ] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/guests/{id}"),
                Some("pms"),
                Some("check_in"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(r.body["code"], "guest_not_found");
        assert!(!r.text.contains(id));
    }
}

#[tokio::test]
async fn invalid_input_is_422_names_fields_and_stores_nothing() {
    let app = spawn_app().await;
    let before = guests_stored(&app);
    let cases = [
        (
            json!({"id_type":"cn_resident_id","id_number":"110101199003074478"}),
            "id_number",
            "invalid_checksum",
        ),
        (
            json!({"id_type":"cn_resident_id","id_number":"91010519491231002X"}),
            "id_number",
            "invalid_region",
        ),
        (json!({"mobile":"12812345678"}), "mobile", "invalid_format"),
        (json!({"religion":"none"}), "religion", "unknown_field"),
        (json!({"full_name": 42}), "full_name", "wrong_type"),
        (
            json!({"occupation": "engineer"}),
            "occupation",
            "field_not_permitted_for_purpose",
        ),
    ];
    for (fields, field, code) in cases {
        let r = app
            .call(
                Method::POST,
                "/v1/guests",
                Some("pms"),
                Some("check_in"),
                Some(json!({"fields": fields})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            r.text
        );
        assert_eq!(r.body["code"], "validation_failed");
        assert!(
            r.body["errors"]
                .as_array()
                .unwrap()
                .contains(&json!({"field": field, "code": code})),
            "{}",
            r.text
        );
        assert!(!r.text.contains("110101199003074478") && !r.text.contains("12812345678"));
    }
    assert_eq!(guests_stored(&app), before);
}

#[tokio::test]
async fn malformed_oversize_and_wrongly_typed_bodies_are_rejected() {
    let app = spawn_app().await;
    let url = format!("{}/v1/guests", app.addr);
    let base = || {
        app.client
            .post(&url)
            .bearer_auth(app.token("pms"))
            .header("X-Purpose", "check_in")
    };
    let r = app
        .send(
            base()
                .header("content-type", "application/json")
                .body("{\"fields\": {\"mobile\": \"138"),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
    assert!(!r.text_without_request_id().contains("138"));
    let r = app.send(base().body("{}")).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    let huge = json!({"fields": {"address": "x".repeat(200_000)}});
    let r = app.send(base().json(&huge)).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let r = app
        .send(base().json(&json!({"fields": [], "extra": 1})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(guests_stored(&app), 0);
}

#[tokio::test]
async fn every_error_carries_a_request_id() {
    let app = spawn_app().await;
    let r = app
        .call(Method::GET, "/v1/nothing-here", Some("pms"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let rid = r.body["request_id"].as_str().unwrap();
    assert!(!rid.is_empty());
    assert_eq!(
        r.headers.get("x-request-id").unwrap().to_str().unwrap(),
        rid
    );
}

#[tokio::test]
async fn a_path_segment_that_is_not_utf8_answers_like_an_unknown_guest() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/v1/guests/%FF%FE"),
        (Method::DELETE, "/v1/guests/%FF/consents/marketing"),
    ] {
        let r = app
            .call(method, path, Some("pms"), Some("check_in"), None)
            .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("guest_not_found")),
            "{path}: {}",
            r.text
        );
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
}

/// (action, guest_id, outcome, reason, rules, fields, actor) of the audit events after `seq`.
type Row = (
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    String,
    String,
);

fn events_after(app: &crate::helpers::TestApp, seq: i64) -> Vec<Row> {
    app.sql_rows(
        "SELECT action, guest_id, outcome, reason, rules, fields, actor FROM audit_events
         WHERE seq > ?1 ORDER BY seq",
        &[&seq],
    )
    .into_iter()
    .map(|r| {
        let mut r = r.into_iter();
        let mut next = || r.next().unwrap();
        (
            next().unwrap(),
            next(),
            next().unwrap(),
            next(),
            next().unwrap(),
            next().unwrap(),
            next().unwrap(),
        )
    })
    .collect()
}

fn max_seq(app: &crate::helpers::TestApp) -> i64 {
    app.sql_i64("SELECT COALESCE(max(seq), 0) FROM audit_events", &[])
}

#[tokio::test]
async fn rejections_before_the_service_are_audited_for_authenticated_callers() {
    const CANARY: &str = "13911112222";
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let guests = format!("{}/v1/guests", app.addr);
    let cases: Vec<(
        reqwest::RequestBuilder,
        StatusCode,
        &str,
        &str,
        Option<&str>,
    )> = vec![
        (
            app.client
                .post(&guests)
                .header("content-type", "application/json")
                .body(format!("{{\"fields\": {{\"mobile\": \"{CANARY}")),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "guest.create",
            None,
        ),
        (
            app.client
                .patch(format!("{guests}/{id}"))
                .body(format!("{{\"fields\":{{\"mobile\":\"{CANARY}\"}}}}")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "guest.update",
            Some(id.as_str()),
        ),
        (
            app.client
                .post(format!("{guests}/search"))
                .json(&json!({"field": "mobile", "value": CANARY.repeat(10_000)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "guest.search",
            None,
        ),
        (
            app.client.get(format!("{guests}/%FF%FE/stays")),
            StatusCode::NOT_FOUND,
            "guest_not_found",
            "stay.read",
            None,
        ),
    ];
    for (req, status, code, action, guest_id) in cases {
        let before = max_seq(&app);
        let r = app
            .send(
                req.bearer_auth(app.token("pms"))
                    .header("X-Purpose", "check_in"),
            )
            .await;
        assert_eq!((r.status, r.body["code"].as_str()), (status, Some(code)));
        let events = events_after(&app, before);
        assert_eq!(
            events,
            vec![(
                action.to_string(),
                guest_id.map(str::to_string),
                "error".to_string(),
                Some(code.to_string()),
                "[\"http.request_rejected\"]".to_string(),
                "[]".to_string(),
                "test-pms".to_string(),
            )],
            "{code}"
        );
    }
    // No token: 401 before anything else, and nothing to attribute an event to.
    let before = max_seq(&app);
    let r = app
        .send(
            app.client
                .post(&guests)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(events_after(&app, before), vec![]);
    // A route that touches no personal data is not a guest access.
    let r = app
        .call(Method::GET, "/v1/nothing-here", Some("pms"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(events_after(&app, before), vec![]);
    // Every column of every event, as text (blobs as hex).
    let all: String = app
        .sql_rows("SELECT * FROM audit_events", &[])
        .into_iter()
        .flatten()
        .map(|v| v.unwrap_or_default() + "\u{1f}")
        .collect();
    assert!(!all.contains(CANARY), "a submitted value reached the trail");
}

/// Found by fuzzing (issue 13): serde's derived body types also took a JSON array of their
/// fields in order, so `[{"full_name": ...}]` registered a guest. Bodies are objects only.
#[tokio::test]
async fn a_body_given_as_a_json_array_is_malformed_and_changes_nothing() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let before = guests_stored(&app);
    let cases = [
        (
            app.client.post(format!("{}/v1/guests", app.addr)),
            json!([{ "full_name": "李四" }]),
            "check_in",
        ),
        (
            app.client.patch(format!("{}/v1/guests/{id}", app.addr)),
            json!([{ "full_name": "李四" }]),
            "check_in",
        ),
        (
            app.client.post(format!("{}/v1/guests/search", app.addr)),
            json!(["mobile", "+8613812345678"]),
            "check_in",
        ),
    ];
    for (req, body, purpose) in cases {
        let r = app
            .send(
                req.bearer_auth(app.token("pms"))
                    .header("X-Purpose", purpose)
                    .json(&body),
            )
            .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("malformed_json")),
            "{body}"
        );
    }
    assert_eq!(guests_stored(&app), before);
}
