//! Consent ledger and enforcement (REQ-05, REQ-07, REQ-09) and the guest's own access.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, zhang_san, TestApp};

async fn consent(
    app: &TestApp,
    id: &str,
    purpose: &str,
    body: Option<Value>,
) -> crate::helpers::Resp {
    let method = if body.is_some() {
        Method::PUT
    } else {
        Method::DELETE
    };
    app.call(
        method,
        &format!("/v1/guests/{id}/consents/{purpose}"),
        Some("pms"),
        Some("check_in"),
        body,
    )
    .await
}

async fn marketing_read(app: &TestApp, id: &str) -> crate::helpers::Resp {
    let path = format!("/v1/guests/{id}");
    app.call(
        Method::GET,
        &path,
        Some("marketing"),
        Some("marketing"),
        None,
    )
    .await
}

#[tokio::test]
async fn marketing_is_denied_until_consent_and_again_right_after_withdrawal() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;

    let r = marketing_read(&app, &id).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("consent_required"))
    );

    let r = consent(
        &app,
        &id,
        "marketing",
        Some(json!({"notice_version":"2026-11","channel":"front_desk"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "granted");
    assert_eq!(r.body["separate"], false);

    let r = marketing_read(&app, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["email"], "z****@example.com");
    assert!(r.body["fields"].get("id_number").is_none());

    let r = consent(&app, &id, "marketing", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "withdrawn");
    let r = marketing_read(&app, &id).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("consent_required"))
    );

    // The ledger keeps both entries; the denials and the changes are in the audit trail.
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}/consents"),
            Some("pms"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let history: Vec<&str> = r.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["granted", "withdrawn"]);
    let (denied, changes) = (
        app.sql_i64(
            "SELECT count(*) FROM audit_events WHERE outcome = 'denied' AND reason = 'consent_required'",
            &[],
        ),
        app.sql_i64(
            "SELECT count(*) FROM audit_events WHERE action = 'consent.write'",
            &[],
        ),
    );
    assert_eq!((denied, changes), (2, 2));

    // Withdrawing twice is safe.
    assert_eq!(
        consent(&app, &id, "marketing", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn service_never_depends_on_consent() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    consent(
        &app,
        &id,
        "marketing",
        Some(json!({"notice_version":"2026-11","channel":"app"})),
    )
    .await;
    consent(&app, &id, "marketing", None).await;
    for (role, purpose) in [
        ("front_desk", "check_in"),
        ("concierge", "guest_service"),
        ("finance", "billing"),
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
        assert_eq!(r.status, StatusCode::OK, "{role}/{purpose}: {}", r.text);
    }
}

#[tokio::test]
async fn sensitive_fields_need_a_separate_consent() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}");
    consent(
        &app,
        &id,
        "personalization",
        Some(json!({"notice_version":"2026-11","channel":"app"})),
    )
    .await;
    let r = app
        .call(
            Method::GET,
            &path,
            Some("marketing"),
            Some("personalization"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body["fields"].get("dietary_needs").is_none(),
        "{}",
        r.text
    );
    assert_eq!(r.body["fields"]["membership_level"], "gold");
    let reason = app.sql_text(
        "SELECT reason FROM audit_events WHERE role = 'marketing' ORDER BY seq DESC LIMIT 1",
        &[],
    );
    assert!(reason.contains("dietary_needs"), "{reason}");

    consent(
        &app,
        &id,
        "personalization",
        Some(json!({"separate":true,"notice_version":"2026-11","channel":"app"})),
    )
    .await;
    let r = app
        .call(
            Method::GET,
            &path,
            Some("marketing"),
            Some("personalization"),
            None,
        )
        .await;
    assert_eq!(r.body["fields"]["dietary_needs"], "****");
    assert_eq!(r.body["views"]["dietary_needs"], "masked");
}

#[tokio::test]
async fn only_consent_purposes_accept_consents_and_bad_input_is_named() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let r = consent(
        &app,
        &id,
        "check_in",
        Some(json!({"notice_version":"2026-11","channel":"app"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body["errors"][0],
        json!({"field":"purpose","code":"not_consent_based"})
    );
    let r = consent(
        &app,
        &id,
        "marketing",
        Some(json!({"channel":"carrier pigeon"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = r.body["errors"].as_array().unwrap();
    assert!(errors.contains(&json!({"field":"notice_version","code":"required"})));
    assert!(errors.contains(&json!({"field":"channel","code":"not_allowed"})));
    assert!(!r.text.contains("pigeon"));
}

#[tokio::test]
async fn consents_given_at_registration_apply_at_once() {
    let app = spawn_app().await;
    let body = json!({
        "fields": {"full_name": "李四", "mobile": "13900001111"},
        "consents": [{"purpose": "marketing", "notice_version": "2026-11", "channel": "front_desk"}]
    });
    let r = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["guest_id"].as_str().unwrap();
    let r = marketing_read(&app, id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["mobile"], "+86 139****1111");

    let bad = json!({"fields": {"full_name": "王五"}, "consents": [{"purpose": "billing", "notice_version": "2026-11", "channel": "app"}]});
    let r = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(bad),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body["errors"][0],
        json!({"field":"consents.purpose","code":"not_consent_based"})
    );
}

#[tokio::test]
async fn a_guest_token_sees_its_own_record_and_cannot_detect_another() {
    let app = spawn_app().await;
    let mine = app.create_guest(zhang_san()).await;
    let theirs = app
        .create_guest(json!({"full_name":"李四","mobile":"13900001111"}))
        .await;
    let me = app.token_for("guest", &mine);
    let get = |id: String| {
        let req = app
            .client
            .get(format!("{}/v1/guests/{id}", app.addr))
            .bearer_auth(&me)
            .header("X-Purpose", "data_subject_request");
        app.send(req)
    };
    let r = get(mine.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["mobile"], "+8613812345678");
    assert_eq!(r.body["fields"]["dietary_needs"], "peanut allergy");

    let other = get(theirs.clone()).await;
    let unknown = get("0191a1d2-0000-7000-8000-000000000000".into()).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("request_id");
        v
    };
    assert_eq!(
        strip(other.body),
        strip(unknown.body),
        "another guest must look exactly like no guest"
    );

    // Own consents: grant and list; another guest's consents: 404.
    let req = app
        .client
        .put(format!("{}/v1/guests/{mine}/consents/marketing", app.addr))
        .bearer_auth(&me)
        .header("X-Purpose", "data_subject_request")
        .json(&json!({"notice_version":"2026-11","channel":"app"}));
    assert_eq!(app.send(req).await.status, StatusCode::OK);
    let req = app
        .client
        .get(format!("{}/v1/guests/{theirs}/consents", app.addr))
        .bearer_auth(&me)
        .header("X-Purpose", "data_subject_request");
    assert_eq!(app.send(req).await.status, StatusCode::NOT_FOUND);
    // Own correction.
    let req = app
        .client
        .patch(format!("{}/v1/guests/{mine}", app.addr))
        .bearer_auth(&me)
        .header("X-Purpose", "data_subject_request")
        .json(&json!({"fields":{"email":"new@example.com"}}));
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["email"], "new@example.com");
    // No search for a guest token.
    let req = app
        .client
        .post(format!("{}/v1/guests/search", app.addr))
        .bearer_auth(&me)
        .header("X-Purpose", "data_subject_request")
        .json(&json!({"field":"mobile","value":"13900001111"}));
    assert_eq!(app.send(req).await.status, StatusCode::FORBIDDEN);

    // The other guest's stays, export, erasure, correction and consents: 404 as well,
    // and nothing of it changes.
    let other = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = app
            .client
            .request(method, format!("{}/v1/guests/{theirs}{path}", app.addr))
            .bearer_auth(&me)
            .header("X-Purpose", "data_subject_request");
        if let Some(b) = body {
            req = req.json(&b);
        }
        app.send(req)
    };
    // (Adding stays is not a guest action at all: 403 for every id, its own included.)
    let attempts = [
        (reqwest::Method::GET, "/stays", None),
        (reqwest::Method::GET, "/export", None),
        (reqwest::Method::POST, "/erasure", Some(json!({}))),
        (
            reqwest::Method::PATCH,
            "",
            Some(json!({"fields":{"email":"x@example.com"}})),
        ),
        (
            reqwest::Method::PUT,
            "/consents/marketing",
            Some(json!({"notice_version":"2026-11","channel":"app"})),
        ),
        (reqwest::Method::DELETE, "/consents/marketing", None),
    ];
    let n = attempts.len() as i64;
    for (method, path, body) in attempts {
        let r = other(method.clone(), path, body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.text
        );
    }
    let theirs_rows = app.sql_i64(
        "SELECT (SELECT count(*) FROM stays WHERE guest_id = ?1)
              + (SELECT count(*) FROM consents WHERE guest_id = ?1)
              + (SELECT count(*) FROM guest_fields WHERE guest_id = ?1 AND field = 'email')",
        &[&theirs],
    );
    assert_eq!(theirs_rows, 0, "nothing of the other guest changed");

    // Every attempt on the other guest is audited as denied, under the guest's own id as actor.
    let denied = app.sql_i64(
        "SELECT count(*) FROM audit_events WHERE actor = ?1 AND guest_id = ?2 AND outcome = 'denied'",
        &[&mine, &theirs],
    );
    assert_eq!(denied, 2 + n);
}

#[tokio::test]
async fn compliance_officer_sees_the_effective_policy_matrix() {
    let app = spawn_app().await;
    let r = app
        .call(
            Method::GET,
            "/v1/policy",
            Some("compliance_officer"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["purposes"]["marketing"]["basis"], "consent");
    assert_eq!(
        r.body["roles"]["front_desk"]["views"]["check_in"]["fields"]["id_number"],
        "reveal"
    );
    assert!(
        r.body["roles"]["front_desk"]["views"]["guest_service"]["fields"]
            .get("id_number")
            .is_none()
    );
    assert_eq!(r.body["roles"]["guest"]["self_only"], true);
    // Sensitive fields under a consent purpose are flagged as needing a separate consent.
    assert_eq!(
        r.body["purposes"]["personalization"]["separate_consent_fields"],
        json!(["accessibility_needs", "dietary_needs"])
    );
    assert_eq!(
        r.body["purposes"]["guest_service"]["separate_consent_fields"],
        json!([])
    );
    let r = app
        .call(Method::GET, "/v1/policy", Some("concierge"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
