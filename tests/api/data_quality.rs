//! Issue 15: a gender that contradicts digit 17 of a resident ID (odd = M, even = F) is a
//! data-quality flag by default (legal analysis §(d.1) step 8), a 422 under a strict policy,
//! and never an oracle for the ID number (REQ-44, REQ-15).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{self, spawn_app, spawn_app_with, zhang_san, TestApp};

/// zhang_san()'s resident ID: digit 17 is 2 (even, F).
const ID_F: &str = "11010519491231002X";
/// The same birth date, digit 17 is 1 (odd, M).
const ID_M: &str = "110105194912310011";

fn flag() -> Value {
    json!([{"code":"gender_mismatch_id_number","fields":["gender","id_number"]}])
}

/// zhang_san()'s registration fields (those `check_in` collects) with another gender and ID
/// number.
fn guest(gender: &str, id_number: &str) -> Value {
    let mut g = zhang_san();
    let o = g.as_object_mut().unwrap();
    for service in ["email", "membership_level", "dietary_needs"] {
        o.remove(service);
    }
    g["gender"] = json!(gender);
    g["id_number"] = json!(id_number);
    g
}

/// Registers `fields` as the PMS does at check-in and returns the whole 201 body.
async fn register(app: &TestApp, fields: Value) -> Value {
    let r = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(json!({ "fields": fields })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

async fn read(app: &TestApp, id: &str, role: &str, purpose: &str) -> helpers::Resp {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some(role),
            Some(purpose),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

async fn read_as_guest(app: &TestApp, id: &str) -> Value {
    let req = app
        .client
        .get(format!("{}/v1/guests/{id}", app.addr))
        .bearer_auth(app.token_for("guest", id))
        .header("X-Purpose", "data_subject_request");
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

async fn patch(app: &TestApp, id: &str, role: &str, fields: Value) -> helpers::Resp {
    app.call(
        Method::PATCH,
        &format!("/v1/guests/{id}"),
        Some(role),
        Some("check_in"),
        Some(json!({ "fields": fields })),
    )
    .await
}

/// A policy dir whose `fields.toml` sets `gender_vs_id_number` to `mode`.
fn policies_with(dir: &std::path::Path, mode: &str) -> std::path::PathBuf {
    let policies = dir.join("policies");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    // Every file (the notices too); fields.toml is replaced below.
    crate::helpers::copy_policies(&policies);
    let fields = std::fs::read_to_string(src.join("fields.toml")).unwrap();
    let changed = fields.replace(
        "gender_vs_id_number = \"warn\"",
        &format!("gender_vs_id_number = \"{mode}\""),
    );
    assert_ne!(changed, fields);
    std::fs::write(policies.join("fields.toml"), changed).unwrap();
    policies
}

/// REQ-44: by default the registration succeeds and the PMS is told (201 + flag); a reader
/// that sees both values in plain (police, the guest itself) sees the flag, the PMS (ID number
/// masked in reads) sees it when it reveals the number. The audit trail keeps no value.
#[tokio::test]
async fn a_gender_against_id_digit_17_is_accepted_and_flagged_for_the_pms() {
    let app = spawn_app().await;
    let before = app.audit_count();
    let created = register(&app, guest("M", ID_F)).await;
    assert_eq!(created["data_quality"], flag(), "{created}");
    let id = created["guest_id"].as_str().unwrap().to_string();
    // A matching gender, or `U`, has no flag, and no `data_quality` member at all.
    for (gender, number) in [("F", ID_F), ("M", ID_M), ("U", ID_F)] {
        let ok = register(&app, guest(gender, number)).await;
        assert!(ok.get("data_quality").is_none(), "{gender} {ok}");
        let ok_id = ok["guest_id"].as_str().unwrap();
        let r = read(&app, ok_id, "police_liaison", "police_report").await;
        assert!(r.body.get("data_quality").is_none(), "{}", r.text);
    }
    // The gender is stored as given.
    let r = read(&app, &id, "police_liaison", "police_report").await;
    assert_eq!(r.body["fields"]["gender"], "M");
    assert_eq!(r.body["fields"]["id_number"], ID_F);
    assert_eq!(r.body["data_quality"], flag(), "{}", r.text);
    assert_eq!(read_as_guest(&app, &id).await["data_quality"], flag());
    // The PMS sees the ID number masked in a read: no flag there...
    let r = read(&app, &id, "pms", "check_in").await;
    assert_eq!(r.body["views"]["id_number"], "masked");
    assert!(r.body.get("data_quality").is_none(), "{}", r.text);
    // ...but once it reveals the number it knows both values, and is told.
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/reveal"),
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields":["id_number"],"reason":"identity_check_at_desk"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["data_quality"], flag(), "{}", r.text);
    // Revealing a field that takes no part in the rule shows none.
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/reveal"),
            Some("front_desk"),
            Some("check_in"),
            Some(json!({"fields":["mobile"],"reason":"contact_guest"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("data_quality").is_none(), "{}", r.text);
    // No event carries the ID number or the gender value.
    let rows = app.sql_rows(
        "SELECT actor, role, purpose, action, guest_id, fields, outcome, reason, rules, \
         justification FROM audit_events WHERE seq > ?1",
        &[&before],
    );
    assert!(!rows.is_empty());
    for cell in rows.iter().flatten().flatten() {
        assert!(
            !cell.contains(ID_F)
                && !cell.contains("1949")
                && cell != "M"
                && !cell.contains("\"M\""),
            "{cell}"
        );
    }
}

/// REQ-44: `[validation] gender_vs_id_number = "strict"` makes the mismatch a 422 again, on
/// registration and on a correction checked against the gender the caller sees in plain;
/// nothing is stored. An invalid value stops the start naming the file and the key.
#[tokio::test]
async fn a_strict_policy_refuses_a_gender_against_id_digit_17() {
    let app = spawn_app_with(|config, dir| {
        config.policies.dir = Some(policies_with(dir, "strict"));
    })
    .await;
    let before = app.sql_rows("SELECT count(*) FROM guests", &[]);
    let r = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(json!({ "fields": guest("M", ID_F) })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.body["errors"],
        json!([{"field":"gender","code":"mismatch_id_number"}])
    );
    assert!(!r.text.contains(ID_F));
    assert_eq!(app.sql_rows("SELECT count(*) FROM guests", &[]), before);
    // A new resident ID against the stored gender front desk sees in plain (M): refused.
    let id = register(&app, guest("M", ID_M)).await["guest_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = patch(
        &app,
        &id,
        "front_desk",
        json!({"id_number":ID_F,"birth_date":"1949-12-31"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.body["errors"],
        json!([{"field":"gender","code":"mismatch_id_number"}])
    );
    let r = read(&app, &id, "police_liaison", "police_report").await;
    assert_eq!(r.body["fields"]["id_number"], ID_M);
    drop(app);

    // `guestvault policy check` and the start run the same validator.
    let dir = tempfile::tempdir().unwrap();
    let mut config = helpers::test_config(dir.path());
    guestvault::cli::init(&config).unwrap();
    config.policies.dir = Some(policies_with(dir.path(), "lenient"));
    let err = format!(
        "{:#}",
        guestvault::startup::App::build(config).await.unwrap_err()
    );
    assert!(
        err.contains("fields.toml") && err.contains("`validation.gender_vs_id_number`"),
        "{err}"
    );
    assert!(!err.contains("lenient"), "{err}");
}

/// The flags the police (ID number and gender in plain) see on `id`; `null` when none.
async fn police(app: &TestApp, id: &str) -> Value {
    read(app, id, "police_liaison", "police_report").await.body["data_quality"].clone()
}

/// `body` without what differs between two guests for a caller: the guest id and the values
/// of `visible` fields (the caller sees them, so they may differ).
fn without(body: &Value, visible: &[&str]) -> String {
    let mut b = body.clone();
    let o = b.as_object_mut().unwrap();
    o.remove("guest_id");
    o.remove("request_id");
    for f in visible {
        if let Some(v) = o.get_mut("fields").and_then(|all| all.get_mut(*f)) {
            *v = json!("(differs)");
        }
    }
    b.to_string()
}

/// No oracle (issue 15, tried as an insider): front desk sees the ID number masked and the
/// concierge not at all, so a flagged and an unflagged guest give them byte-identical answers
/// (aside from the guest id and the masked number itself) to reads and to corrections that do
/// not carry both values, and identical audit events.
#[tokio::test]
async fn the_flag_is_no_oracle_for_callers_that_see_the_id_number_masked() {
    let app = spawn_app().await;
    // Both are F; digit 17 is even for one (agrees) and odd for the other (flagged).
    let agrees = app.create_guest(guest("F", ID_F)).await;
    let flagged = app.create_guest(guest("F", ID_M)).await;
    let r = read(&app, &flagged, "police_liaison", "police_report").await;
    assert_eq!(r.body["data_quality"], flag(), "the flag is set");
    let r = read(&app, &agrees, "police_liaison", "police_report").await;
    assert!(r.body.get("data_quality").is_none());

    for (role, purpose) in [
        ("front_desk", "check_in"),
        ("front_desk", "guest_service"),
        ("concierge", "guest_service"),
        ("pms", "check_in"),
    ] {
        let a = read(&app, &agrees, role, purpose).await;
        let b = read(&app, &flagged, role, purpose).await;
        assert_eq!(
            without(&a.body, &["id_number"]),
            without(&b.body, &["id_number"]),
            "{role} {purpose}"
        );
        assert!(!b.text.contains("data_quality"), "{role}: {}", b.text);
    }
    // A correction that does not carry both values answers the same way too.
    let before = app.audit_count();
    let mut answers = Vec::new();
    for id in [&agrees, &flagged] {
        let r = patch(
            &app,
            id,
            "front_desk",
            json!({"address":"上海市黄浦区南京东路1号"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        answers.push(without(&r.body, &["id_number"]));
        let r = read(&app, id, "front_desk", "check_in").await;
        answers.push(without(&r.body, &["id_number"]));
    }
    assert_eq!(answers[0], answers[2]);
    assert_eq!(answers[1], answers[3]);
    assert!(!answers.concat().contains("data_quality"));
    // The audit events of both rounds are alike too.
    let rows = app.sql_rows(
        "SELECT role, purpose, action, fields, outcome, reason, rules FROM audit_events \
         WHERE seq > ?1 ORDER BY seq",
        &[&before],
    );
    assert!(rows.len() >= 4 && rows.len() % 2 == 0, "{rows:?}");
    let (a, b) = rows.split_at(rows.len() / 2);
    assert_eq!(a, b);
}

/// REQ-44, REQ-30: the PATCH answer warns only from the request and values the caller sees in
/// plain; what is stored is judged again after the write, and the flag goes once gender or
/// ID number is corrected to agree.
#[tokio::test]
async fn a_correction_recomputes_the_flag_and_clears_it_when_the_values_agree() {
    let app = spawn_app().await;
    let id = register(&app, guest("M", ID_F)).await["guest_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(police(&app, &id).await, flag());
    // A correction of another field: the PMS sees the ID number masked, so its answer shows
    // no flag although the stored record has one.
    let r = patch(&app, &id, "pms", json!({"mobile":"13900002222"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("data_quality").is_none(), "{}", r.text);
    assert_eq!(police(&app, &id).await, flag());
    // The gender corrected to agree (the PMS must send the ID number it sees masked).
    let r = patch(&app, &id, "pms", json!({"gender":"F"})).await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"id_number","code":"required_for_cross_check"}])
    );
    let r = patch(&app, &id, "pms", json!({"gender":"F","id_number":ID_F})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("data_quality").is_none(), "{}", r.text);
    assert!(police(&app, &id).await.is_null(), "cleared");
    assert!(read_as_guest(&app, &id).await.get("data_quality").is_none());
    // Set again by a request that carries both values: the answer warns.
    let r = patch(&app, &id, "pms", json!({"gender":"M","id_number":ID_F})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["data_quality"], flag(), "{}", r.text);
    assert_eq!(police(&app, &id).await, flag());
    // The ID number corrected instead, checked against the gender the PMS sees in plain.
    let r = patch(&app, &id, "pms", json!({"id_number":ID_M})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("data_quality").is_none(), "{}", r.text);
    assert!(police(&app, &id).await.is_null(), "cleared");
    // Front desk: a new ID against the gender it sees in plain warns in the answer, computed
    // from the request and that plain gender only.
    let r = patch(
        &app,
        &id,
        "front_desk",
        json!({"id_number":ID_F,"birth_date":"1949-12-31"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["data_quality"], flag(), "{}", r.text);
    assert_eq!(police(&app, &id).await, flag());
}

/// The `data_quality` member is documented in `/openapi.json` on the create, read, correction
/// and reveal answers.
#[tokio::test]
async fn the_openapi_document_describes_data_quality() {
    let app = spawn_app().await;
    let r = app
        .call(Method::GET, "/openapi.json", None, None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let schemas = &r.body["components"]["schemas"];
    let flag = &schemas["DataQualityFlag"];
    assert_eq!(flag["properties"]["code"]["type"], "string", "{flag}");
    assert_eq!(flag["properties"]["fields"]["type"], "array", "{flag}");
    for owner in ["GuestView", "RevealView", "GuestCreated"] {
        let member = &schemas[owner]["properties"]["data_quality"];
        assert_eq!(member["type"], "array", "{owner}: {member}");
        assert_eq!(
            member["items"]["$ref"], "#/components/schemas/DataQualityFlag",
            "{owner}: {member}"
        );
    }
}
