//! Legal holds (issue 16 §2, REQ-23; PIPL Art. 47(2)): while a hold stands the sweeper purges
//! nothing of its guest and an erasure restricts instead of deleting; lifting it (or its
//! `until` passing) lets the next sweep or a repeated erasure finish. Holds survive a restore.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::helpers::{spawn_app, zhang_san, Resp, TestApp};

const DSR: (&str, &str) = ("dsr_officer", "data_subject_request");

/// The purpose each role acts under here (`guest.hold` takes the role's X-Purpose).
fn purpose_of(role: &str) -> Option<&'static str> {
    match role {
        "compliance_officer" => Some("audit"),
        "dsr_officer" => Some("data_subject_request"),
        _ => None,
    }
}

async fn place(app: &TestApp, role: &str, id: &str, body: Value) -> Resp {
    app.call(
        Method::POST,
        &format!("/v1/guests/{id}/holds"),
        Some(role),
        purpose_of(role),
        Some(body),
    )
    .await
}

async fn hold(app: &TestApp, id: &str, body: Value) -> String {
    let r = place(app, "compliance_officer", id, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "active");
    r.body["hold_id"].as_str().unwrap().to_string()
}

async fn lift(app: &TestApp, id: &str, hold_id: &str) -> Resp {
    app.call(
        Method::DELETE,
        &format!("/v1/guests/{id}/holds/{hold_id}"),
        Some(DSR.0),
        Some(DSR.1),
        None,
    )
    .await
}

async fn holds_of(app: &TestApp, id: &str) -> Resp {
    app.call(
        Method::GET,
        &format!("/v1/guests/{id}/holds"),
        Some("compliance_officer"),
        Some("audit"),
        None,
    )
    .await
}

async fn erase(app: &TestApp, id: &str) -> Resp {
    app.call(
        Method::POST,
        &format!("/v1/guests/{id}/erasure"),
        Some(DSR.0),
        Some(DSR.1),
        Some(json!({"reason":"guest_request"})),
    )
    .await
}

async fn sweep(app: &TestApp) -> Value {
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
    r.body
}

/// The police read of a guest (works on restricted data): status and mobile.
async fn police_mobile(app: &TestApp, id: &str) -> (StatusCode, Value) {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("police_liaison"),
            Some("police_report"),
            None,
        )
        .await;
    (r.status, r.body["fields"]["mobile"].clone())
}

/// REQ-23: a sweep after the period purges nothing of a held guest; once the hold is lifted,
/// the next sweep does.
#[tokio::test]
async fn req23_a_sweep_after_the_period_keeps_everything_of_a_held_guest_until_the_hold_is_lifted()
{
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-01-05 10:00 UTC));
    // Contact data only: 1 year after creation (no stay), then the whole guest goes.
    let id = app.create_guest(json!({"mobile": "13900002222"})).await;
    let other = app.create_guest(json!({"mobile": "13900003333"})).await;
    let hold_id = hold(
        &app,
        &id,
        json!({"reason":"litigation","ticket":"CASE-2026.17"}),
    )
    .await;

    app.clock.set(datetime!(2028-01-05 10:00 UTC));
    let report = sweep(&app).await;
    assert_eq!(report["guests_held"], 1, "{report}");
    assert_eq!(
        report["guests_erased"], 1,
        "the unheld guest goes: {report}"
    );
    assert_eq!(
        police_mobile(&app, &id).await,
        (StatusCode::OK, json!("+8613900002222"))
    );
    assert_eq!(police_mobile(&app, &other).await.0, StatusCode::NOT_FOUND);

    let r = lift(&app, &id, &hold_id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "lifted");
    let listed = holds_of(&app, &id).await;
    assert_eq!(
        listed.body["holds"][0]["status"], "lifted",
        "{}",
        listed.text
    );
    assert_eq!(listed.body["holds"][0]["lifted_by"], "test-dsr_officer");

    let report = sweep(&app).await;
    assert_eq!(
        (
            report["guests_held"].as_u64(),
            report["guests_erased"].as_u64()
        ),
        (Some(0), Some(1)),
        "{report}"
    );
    assert_eq!(police_mobile(&app, &id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.columns_containing(&id, |t| !t.starts_with("audit")),
        Vec::<String>::new()
    );
    // Placing, listing and lifting were audited with codes and ids, never free text.
    let reasons: Vec<String> = app
        .sql_column(
            "SELECT reason FROM audit_events WHERE guest_id = ?1 AND action = 'guest.hold' ORDER BY seq",
            &[&id],
        )
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(
        reasons,
        vec![
            format!("legal hold {hold_id} placed: litigation"),
            format!("legal hold {hold_id} lifted"),
            "legal holds listed".to_string(),
        ]
    );
    let justification = app.sql_text(
        "SELECT justification FROM audit_events WHERE guest_id = ?1 AND action = 'guest.hold' ORDER BY seq LIMIT 1",
        &[&id],
    );
    assert_eq!(justification, "reason=litigation ticket=CASE-2026.17");
}

fn texts(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

/// REQ-23, REQ-24: an erasure under a hold restricts instead of deleting, its receipt names
/// the hold's reason and ticket; the access package lists the hold; after the hold is lifted a
/// repeated erasure deletes what the hold kept (and restricts only the registration).
#[tokio::test]
async fn req23_erasure_under_a_hold_restricts_names_the_hold_and_finishes_once_lifted() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(zhang_san()).await;
    let stay = json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-23","room_number":"1208"}});
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/stays"),
            Some("pms"),
            Some("check_in"),
            Some(stay),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    app.clock.set(datetime!(2026-11-24 09:00 UTC));
    // The DSR officer may place holds too (the policy gives both officers `guest.hold`).
    let r = place(
        &app,
        DSR.0,
        &id,
        json!({"reason":"police_investigation","ticket":"PSB-88","until":"2027-06-30"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let hold_id = r.body["hold_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["until"], "2027-06-30");

    let r = erase(&app, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let receipt = r.body.clone();
    assert_eq!(receipt["status"], "partially_completed");
    assert_eq!(
        receipt["erased"],
        json!([]),
        "nothing is deleted under a hold"
    );
    assert_eq!(
        receipt["holds"],
        json!([{"hold_id": hold_id, "reason":"police_investigation","ticket":"PSB-88","until":"2027-06-30"}])
    );
    let retained = receipt["retained"].as_array().unwrap();
    let mobile = retained.iter().find(|k| k["field"] == "mobile").unwrap();
    let basis = mobile["basis"].as_str().unwrap();
    assert!(
        basis.contains("police_investigation") && basis.contains("PSB-88"),
        "{basis}"
    );
    assert_eq!(mobile["until"], "2027-06-30");
    assert_eq!(mobile["held_by"], json!([hold_id]));
    let stays = retained.iter().find(|k| k["field"] == "stays").unwrap();
    assert_eq!(stays["held_by"], json!([hold_id]));
    // The registration is kept by its own (statutory) basis, not by the hold.
    let id_number = retained.iter().find(|k| k["field"] == "id_number").unwrap();
    assert!(id_number.get("held_by").is_none(), "{id_number}");
    assert_eq!(id_number["until"], "2029-11-23");

    // Restricted: storage only; the police still read everything the hold keeps.
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.body["code"], "restricted");
    assert_eq!(
        police_mobile(&app, &id).await,
        (StatusCode::OK, json!("+8613812345678"))
    );

    // The access package lists the hold (no officer ids).
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}/export?reason=data_subject_request"),
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["holds"],
        json!([{"hold_id": hold_id, "reason":"police_investigation","ticket":"PSB-88",
                "until":"2027-06-30","status":"active","placed_at": r.body["holds"][0]["placed_at"]}])
    );

    // Asked again while the hold stands: the same receipt.
    let again = erase(&app, &id).await;
    assert_eq!(again.body["request_id"], receipt["request_id"]);

    assert_eq!(lift(&app, &id, &hold_id).await.status, StatusCode::OK);
    let r = erase(&app, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_ne!(r.body["request_id"], receipt["request_id"]);
    assert!(r.body.get("holds").is_none(), "{}", r.text);
    let erased = texts(&r.body["erased"]);
    for f in ["mobile", "email", "address", "stays"] {
        assert!(erased.contains(&f), "{f} not erased: {erased:?}");
    }
    let kept: Vec<&str> = r.body["retained"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["field"].as_str().unwrap())
        .collect();
    assert!(
        kept.contains(&"id_number") && !kept.contains(&"mobile"),
        "{kept:?}"
    );
    assert_eq!(
        police_mobile(&app, &id).await,
        (StatusCode::OK, Value::Null)
    );
}

/// REQ-23: an erasure held back by a hold finishes by itself at the first sweep after the
/// hold's `until` (it lapses), and its receipt then says so.
#[tokio::test]
async fn req23_a_hold_with_until_lapses_by_itself_and_the_next_sweep_finishes_the_erasure() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-03-02 10:00 UTC));
    let id = app.create_guest(json!({"mobile": "13900004444"})).await;
    let hold_id = hold(
        &app,
        &id,
        json!({"reason":"regulator_inquiry","ticket":"CAC-1","until":"2026-03-10"}),
    )
    .await;
    let r = erase(&app, &id).await;
    assert_eq!(r.body["status"], "partially_completed", "{}", r.text);
    assert_eq!(r.body["retained"][0]["until"], "2026-03-10");
    let rid = r.body["request_id"].as_str().unwrap().to_string();

    // The last day of the hold: it still stands.
    app.clock.set(datetime!(2026-03-10 23:00 UTC));
    assert_eq!(sweep(&app).await["guests_held"], 1);
    assert_eq!(
        holds_of(&app, &id).await.body["holds"][0]["status"],
        "active"
    );
    assert_eq!(police_mobile(&app, &id).await.0, StatusCode::OK);

    // The day after: lapsed, and the erasure the guest asked for is done.
    app.clock.set(datetime!(2026-03-11 01:00 UTC));
    let listed = holds_of(&app, &id).await;
    assert_eq!(listed.body["holds"][0]["hold_id"], hold_id.as_str());
    assert_eq!(listed.body["holds"][0]["status"], "lapsed");
    let report = sweep(&app).await;
    assert_eq!(
        (
            report["guests_held"].as_u64(),
            report["guests_erased"].as_u64()
        ),
        (Some(0), Some(1)),
        "{report}"
    );
    assert_eq!(police_mobile(&app, &id).await.0, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/erasure-requests/{rid}"),
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "completed", "{}", r.text);
    assert_eq!(r.body["erased"], json!(["mobile"]));
}

/// REQ-23: after a lifted hold, a sweep finishes a held-back erasure of a guest whose
/// registration is still kept: the receipt loses the hold and keeps only the registration.
#[tokio::test]
async fn req23_the_sweep_after_a_lift_deletes_what_the_hold_kept_and_rewrites_the_receipt() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(zhang_san()).await;
    let stay = json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-23","room_number":"1208"}});
    app.call(
        Method::POST,
        &format!("/v1/guests/{id}/stays"),
        Some("pms"),
        Some("check_in"),
        Some(stay),
    )
    .await;
    let hold_id = hold(&app, &id, json!({"reason":"litigation","ticket":"C-9"})).await;
    let r = erase(&app, &id).await;
    let rid = r.body["request_id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["retained"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["field"] == "mobile")
            .unwrap()["until"],
        "until_lifted"
    );
    assert_eq!(lift(&app, &id, &hold_id).await.status, StatusCode::OK);
    let report = sweep(&app).await;
    assert_eq!(report["guests_affected"], 1, "{report}");
    assert_eq!(report["guests_erased"], 0, "{report}");
    assert_eq!(
        police_mobile(&app, &id).await,
        (StatusCode::OK, Value::Null)
    );
    let r = app
        .call(
            Method::GET,
            &format!("/v1/erasure-requests/{rid}"),
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "partially_completed", "{}", r.text);
    assert!(r.body.get("holds").is_none(), "{}", r.text);
    assert!(texts(&r.body["erased"]).contains(&"mobile"), "{}", r.text);
    assert!(r.body["retained"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k.get("held_by").is_none() && k["class"] == "identity"));
}

/// REQ-23: only the roles the policy gives `guest.hold` place, list or lift holds; unknown and
/// malformed guests, and unknown holds, answer 404 like every other route.
#[tokio::test]
async fn req23_holds_are_for_the_officers_the_policy_names_and_unknown_ids_answer_404() {
    let app = spawn_app().await;
    let id = app.create_guest(json!({"mobile": "13900005555"})).await;
    let body = json!({"reason":"litigation","ticket":"CASE-1"});
    for role in ["front_desk", "concierge", "pms", "admin", "police_liaison"] {
        let r = place(&app, role, &id, body.clone()).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{role}"
        );
        let r = app
            .call(
                Method::GET,
                &format!("/v1/guests/{id}/holds"),
                Some(role),
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
    }
    // The guest itself cannot place or lift a hold on its own data.
    let me = app.token_for("guest", &id);
    let r = app
        .send(
            app.client
                .post(format!("{}/v1/guests/{id}/holds", app.addr))
                .bearer_auth(&me)
                .header("X-Purpose", "data_subject_request")
                .json(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Without a purpose: 400 like every guest route; with one outside the role: 403.
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}/holds"),
            Some("compliance_officer"),
            None,
            None,
        )
        .await;
    assert_eq!(r.body["code"], "purpose_required");
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}/holds"),
            Some("compliance_officer"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.body["code"], "purpose_not_allowed");
    assert_eq!(holds_of(&app, &id).await.body["holds"], json!([]));

    let unknown = uuid::Uuid::new_v4().to_string();
    for gid in [unknown.as_str(), "not-a-guest"] {
        let r = place(&app, "compliance_officer", gid, body.clone()).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("guest_not_found")),
            "{gid}"
        );
        assert_eq!(holds_of(&app, gid).await.status, StatusCode::NOT_FOUND);
    }
    let r = lift(&app, &id, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("guest_not_found"))
    );
    // A hold of another guest is unknown here.
    let other = app.create_guest(json!({"mobile": "13900006666"})).await;
    let theirs = hold(&app, &other, body.clone()).await;
    assert_eq!(lift(&app, &id, &theirs).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        holds_of(&app, &other).await.body["holds"][0]["status"],
        "active"
    );
    // Lifting twice answers the first lift.
    let first = lift(&app, &other, &theirs).await;
    let second = lift(&app, &other, &theirs).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.body["lifted_at"], second.body["lifted_at"]);
}

/// REQ-23: a bad body answers 422 with a code per field, never echoes a value, and places
/// nothing.
#[tokio::test]
async fn req23_a_bad_hold_body_is_refused_with_codes_and_places_nothing() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-24 09:00 UTC));
    let id = app.create_guest(json!({"mobile": "13900007777"})).await;
    let cases = [
        (
            json!({}),
            json!([{"field":"reason","code":"required"},{"field":"ticket","code":"required"}]),
        ),
        (
            json!({"reason":"curiosity","ticket":"13900007777 zhang"}),
            json!([{"field":"reason","code":"unknown_reason"},{"field":"ticket","code":"invalid_format"}]),
        ),
        (
            json!({"reason":"litigation","ticket":"C-1","until":"2026-13-01"}),
            json!([{"field":"until","code":"invalid_format"}]),
        ),
        (
            json!({"reason":"litigation","ticket":"C-1","until":"2026-11-23"}),
            json!([{"field":"until","code":"in_the_past"}]),
        ),
    ];
    for (body, errors) in cases {
        let r = place(&app, "compliance_officer", &id, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.body["code"], "validation_failed");
        assert_eq!(r.body["errors"], errors, "{body}");
        for secret in ["13900007777", "curiosity", "2026-13-01"] {
            assert!(!r.text.contains(secret), "{secret} echoed: {}", r.text);
        }
    }
    let r = place(
        &app,
        "compliance_officer",
        &id,
        json!({"reason":"litigation","ticket":"C-1","note":"free text"}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
    assert_eq!(holds_of(&app, &id).await.body["holds"], json!([]));
    // Today is allowed: the hold stands through the end of the day.
    let r = place(
        &app,
        "compliance_officer",
        &id,
        json!({"reason":"litigation","ticket":"C-1","until":"2026-11-24"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// REQ-23, REQ-27: holds survive a backup and restore. A hold in the snapshot is restored
/// with it; a hold placed after the snapshot is placed again from the erasure ledger before
/// the later erasure is re-applied, so the replay restricts instead of deleting.
#[tokio::test]
async fn req23_holds_survive_backup_and_restore_and_hold_back_the_replayed_erasure() {
    if crate::helpers::skip_on_postgres(
        "`guestvault backup`/`restore` snapshot and replace the SQLite file (VACUUM INTO); \
         a PostgreSQL database is backed up with the server's own tools",
    ) {
        return;
    }
    let app = spawn_app().await;
    let early = app.create_guest(json!({"mobile": "13900008888"})).await;
    let early_hold = hold(
        &app,
        &early,
        json!({"reason":"litigation","ticket":"OLD-1"}),
    )
    .await;
    let late = app.create_guest(json!({"mobile": "13900009999"})).await;
    let backup = app.dir.path().join("snapshot.db");
    guestvault::ops::backup(&app.config, &backup).unwrap();
    // After the snapshot: a hold on `late`, then its erasure (held back).
    let late_hold = hold(&app, &late, json!({"reason":"litigation","ticket":"NEW-2"})).await;
    assert_eq!(
        erase(&app, &late).await.body["status"],
        "partially_completed"
    );
    let (dir, config) = app.stop().await;

    guestvault::ops::restore(&config, &backup, false)
        .await
        .unwrap();
    let app = crate::helpers::spawn_on(dir, config).await;
    assert_eq!(
        holds_of(&app, &early).await.body["holds"][0]["hold_id"],
        early_hold.as_str()
    );
    let listed = holds_of(&app, &late).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["holds"][0]["hold_id"], late_hold.as_str());
    assert_eq!(listed.body["holds"][0]["status"], "active");
    assert_eq!(listed.body["holds"][0]["ticket"], "NEW-2");
    // The erasure was re-applied as decided: restricted, nothing deleted.
    assert_eq!(
        police_mobile(&app, &late).await,
        (StatusCode::OK, json!("+8613900009999"))
    );
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{late}"),
            Some("pms"),
            Some("guest_service"),
            None,
        )
        .await;
    assert_eq!(r.body["code"], "restricted");
}

/// REQ-24, issue 16 §3: a guest who never stayed has no lodging registration to keep, so an
/// erasure deletes its identity data too and shreds it; a guest with a stay keeps it.
#[tokio::test]
async fn req24_a_guest_who_never_stayed_is_erased_whole() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let never = app.create_guest(zhang_san()).await;
    let r = erase(&app, &never).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "completed", "{}", r.text);
    assert_eq!(r.body["retained"], json!([]));
    assert!(
        texts(&r.body["erased"]).contains(&"id_number"),
        "{}",
        r.text
    );
    assert_eq!(police_mobile(&app, &never).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.columns_containing(&never, |t| !t.starts_with("audit")),
        Vec::<String>::new()
    );

    let stayed = app.create_guest(zhang_san()).await;
    let stay =
        json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-21"}});
    let s = app
        .call(
            Method::POST,
            &format!("/v1/guests/{stayed}/stays"),
            Some("pms"),
            Some("check_in"),
            Some(stay),
        )
        .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
    let r = erase(&app, &stayed).await;
    assert_eq!(r.body["status"], "partially_completed", "{}", r.text);
    let id_number = r.body["retained"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["field"] == "id_number")
        .unwrap()
        .clone();
    assert_eq!(id_number["until"], "2029-11-21");
    // The honest basis text (legal analysis §3.8).
    let basis = id_number["basis"].as_str().unwrap();
    for words in [
        "statutory",
        "no law or regulation sets",
        "business choice",
        "Civil Code Art. 188",
        "public security bureau",
    ] {
        assert!(basis.contains(words), "{words:?} not in {basis}");
    }
    // Stays are not statutory: erased, not kept.
    assert!(texts(&r.body["erased"]).contains(&"stays"), "{}", r.text);
    // A repeated request (the stays are gone now) still keeps the registration.
    let again = erase(&app, &stayed).await;
    assert_eq!(again.body["request_id"], r.body["request_id"]);
    assert_eq!(police_mobile(&app, &stayed).await.0, StatusCode::OK);
}

/// REQ-23, issue 16 §3: with `anonymize = true` in the stays' class an erasure keeps each
/// stay's dates, amount and currency, linked to nobody, and deletes the rest of it.
#[tokio::test]
async fn req23_stays_are_anonymized_when_their_class_says_so() {
    let app = crate::helpers::spawn_app_with(|config, dir| {
        let policies = dir.join("policies");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        // Every file (the notices too); retention.toml is replaced below.
        crate::helpers::copy_policies(&policies);
        let retention = std::fs::read_to_string(src.join("retention.toml"))
            .unwrap()
            .replacen("anonymize = false", "anonymize = true", 1);
        std::fs::write(policies.join("retention.toml"), retention).unwrap();
        config.policies.dir = Some(policies);
    })
    .await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(zhang_san()).await;
    let stay = json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-23",
        "room_number":"1208","amount":"1234.50","currency":"CNY"}});
    let s = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/stays"),
            Some("pms"),
            Some("check_in"),
            Some(stay),
        )
        .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
    let stay_id = s.body["stay_id"].as_str().unwrap().to_string();
    assert_eq!(app.sql_i64("SELECT count(*) FROM anonymized_stays", &[]), 0);
    let r = erase(&app, &id).await;
    assert!(texts(&r.body["erased"]).contains(&"stays"), "{}", r.text);
    let rows = app.sql_rows(
        "SELECT check_in, check_out, amount, currency FROM anonymized_stays",
        &[],
    );
    let want: Vec<Option<String>> = ["2026-11-20", "2026-11-23", "1234.50", "CNY"]
        .iter()
        .map(|v| Some(v.to_string()))
        .collect();
    assert_eq!(rows, vec![want]);
    // Nothing links it back: no guest id or stay id anywhere but the audit trail, no room.
    assert_eq!(
        app.columns_containing(&stay_id, |t| !t.starts_with("audit")),
        Vec::<String>::new()
    );
    assert!(app
        .columns_containing(&id, |t| t == "anonymized_stays")
        .is_empty());
    assert!(app
        .columns_containing("1208", |t| t == "anonymized_stays")
        .is_empty());
}
