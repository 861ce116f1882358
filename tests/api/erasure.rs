//! Erasure with the storage-only fallback (REQ-24), retention sweeps in time (REQ-23, REQ-25),
//! export (REQ-28, REQ-29) and deadlines (REQ-32).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::helpers::{spawn_app, zhang_san, TestApp};

const DSR: (&str, &str) = ("dsr_officer", "data_subject_request");

async fn erase(app: &TestApp, id: &str) -> crate::helpers::Resp {
    app.call(
        Method::POST,
        &format!("/v1/guests/{id}/erasure"),
        Some(DSR.0),
        Some(DSR.1),
        Some(json!({"reason":"guest_request"})),
    )
    .await
}

/// A guest with a mobile number only (contact data: nothing statutory), registered by the PMS.
async fn contact_only(app: &TestApp, mobile: &str) -> String {
    let r = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(json!({ "fields": { "mobile": mobile } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["guest_id"].as_str().unwrap().to_string()
}

async fn sweep(app: &TestApp, dry_run: bool) -> Value {
    let r = app
        .call(
            Method::POST,
            &format!("/v1/admin/retention/run?dry_run={dry_run}"),
            Some("admin"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// Rows in any table other than the audit trail that still name `id`.
fn rows_naming(app: &TestApp, id: &str) -> Vec<String> {
    app.columns_containing(id, |t| !t.starts_with("audit"))
}

#[tokio::test]
async fn erasure_of_a_guest_with_a_recent_stay_restricts_identity_and_stays_and_deletes_the_rest() {
    // Issue 16 §3: the stay period is a business choice, so the stays are deleted now and only
    // the registration (identity) is restricted; the name is kept for the compliance table.
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(zhang_san()).await;
    let stay = json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-23","room_number":"1208"}});
    assert_eq!(
        app.call(
            Method::POST,
            &format!("/v1/guests/{id}/stays"),
            Some("pms"),
            Some("check_in"),
            Some(stay)
        )
        .await
        .status,
        StatusCode::CREATED
    );
    app.clock.set(datetime!(2026-11-24 09:00 UTC));

    let r = erase(&app, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let receipt = r.body.clone();
    assert_eq!(receipt["status"], "partially_completed");
    let erased: Vec<&str> = receipt["erased"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in [
        "mobile",
        "email",
        "address",
        "dietary_needs",
        "membership_level",
        "stays",
    ] {
        assert!(erased.contains(&f), "{f} not erased: {erased:?}");
    }
    let retained = receipt["retained"].as_array().unwrap();
    let id_number = retained.iter().find(|r| r["field"] == "id_number").unwrap();
    assert_eq!(id_number["until"], "2029-11-23");
    assert_eq!(id_number["class"], "identity");
    assert!(id_number["basis"]
        .as_str()
        .unwrap()
        .contains("旅馆业治安管理办法"));
    assert!(
        retained.iter().all(|r| r["field"] != "stays"),
        "stays are not statutory: {retained:?}"
    );
    assert_eq!(receipt["due_at"], "2026-12-15");

    // Storage only: every purpose is refused except the restricted_access ones.
    let path = format!("/v1/guests/{id}");
    for (role, purpose) in [
        ("front_desk", "check_in"),
        ("concierge", "guest_service"),
        ("pms", "billing"),
        ("finance", "billing"),
    ] {
        let r = app
            .call(Method::GET, &path, Some(role), Some(purpose), None)
            .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("restricted")),
            "{role}"
        );
    }
    // Consent-based purposes are refused too (the guest gave no consent, and it is restricted).
    for purpose in ["marketing", "personalization"] {
        let r = app
            .call(Method::GET, &path, Some("marketing"), Some(purpose), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{purpose}");
        assert!(r.body.get("fields").is_none());
    }
    let r = app
        .call(
            Method::GET,
            &path,
            Some("police_liaison"),
            Some("police_report"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["id_number"], "11010519491231002X");
    assert!(r.body["fields"].get("mobile").is_none());
    let r = app
        .call(
            Method::GET,
            &format!("{path}/stays"),
            Some("police_liaison"),
            Some("police_report"),
            None,
        )
        .await;
    assert_eq!(r.body["stays"], json!([]), "the stays were deleted");
    // Search: the mobile is gone from the index; the ID is findable by the police only.
    let search =
        |role: &'static str, purpose: &'static str, field: &'static str, value: &'static str| {
            app.call(
                Method::POST,
                "/v1/guests/search",
                Some(role),
                Some(purpose),
                Some(json!({"field":field,"value":value})),
            )
        };
    assert_eq!(
        search("pms", "check_in", "mobile", "13812345678")
            .await
            .body["guest_ids"],
        json!([])
    );
    assert_eq!(
        search("pms", "check_in", "id_number", "11010519491231002X")
            .await
            .body["guest_ids"],
        json!([])
    );
    assert_eq!(
        search(
            "police_liaison",
            "police_report",
            "id_number",
            "11010519491231002X"
        )
        .await
        .body["guest_ids"],
        json!([id])
    );

    // The receipt can be fetched later; repeating the request is safe.
    let rid = receipt["request_id"].as_str().unwrap();
    let r = app
        .call(
            Method::GET,
            &format!("/v1/erasure-requests/{rid}"),
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["retained"], receipt["retained"]);
    let again = erase(&app, &id).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.body["request_id"], receipt["request_id"],
        "a repeated request returns the receipt already given"
    );

    // A day before the end of the statutory period: still kept. A day after: gone.
    app.clock.set(datetime!(2029-11-23 12:00 UTC));
    assert_eq!(sweep(&app, false).await["guests_erased"], 0);
    assert_eq!(
        app.call(
            Method::GET,
            &path,
            Some("police_liaison"),
            Some("police_report"),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    app.clock.set(datetime!(2029-11-24 12:00 UTC));
    let report = sweep(&app, false).await;
    assert_eq!(report["guests_erased"], 1, "{report}");
    assert_eq!(
        app.call(
            Method::GET,
            &path,
            Some("police_liaison"),
            Some("police_report"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(rows_naming(&app, &id), Vec::<String>::new());
    let r = app
        .call(
            Method::GET,
            &format!("/v1/erasure-requests/{rid}"),
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "completed");
}

#[tokio::test]
async fn full_erasure_leaves_no_row_keyed_by_the_guest_outside_the_audit_trail() {
    let app = spawn_app().await;
    // Contact and service data only: nothing statutory.
    let id = contact_only(&app, "13700001234").await;
    let patch = json!({"fields":{"email":"erase.me@example.com","dietary_needs":"halal","preferences":{"pillow":"soft"}}});
    assert_eq!(
        app.call(
            Method::PATCH,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("guest_service"),
            Some(patch)
        )
        .await
        .status,
        StatusCode::OK
    );
    let put = json!({"notice_version":"2026-11","channel":"app"});
    app.call(
        Method::PUT,
        &format!("/v1/guests/{id}/consents/marketing"),
        Some("pms"),
        Some("check_in"),
        Some(put),
    )
    .await;

    // The guest's key material and ciphertext as stored: after the erasure none of these
    // bytes may remain in any file of the data dir, the WAL included (on PostgreSQL, where
    // the database is not in the data dir: nor in any table; what the server's own files
    // keep until it vacuums is out of the vault's reach).
    let secrets: Vec<Vec<u8>> = {
        let unhex = crate::helpers::sql::unhex;
        let mut v = vec![unhex(&app.sql_text(
            "SELECT wrapped_dek FROM guest_keys WHERE guest_id = ?1",
            &[&id],
        ))];
        v.extend(
            app.sql_column(
                "SELECT ciphertext FROM guest_fields WHERE guest_id = ?1",
                &[&id],
            )
            .iter()
            .map(|c| unhex(c.as_deref().unwrap())),
        );
        v
    };
    assert!(secrets.len() >= 4, "a data key and the field ciphertexts");
    let on_disk = |app: &TestApp| -> usize {
        let mut files: Vec<Vec<u8>> = std::fs::read_dir(app.dir.path())
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default())
            .collect();
        if crate::helpers::backend_is_postgres() {
            files.extend(
                crate::helpers::sql::dump_on(&app.config)
                    .into_iter()
                    .map(|(_, bytes)| bytes),
            );
        }
        secrets
            .iter()
            .filter(|s| {
                files
                    .iter()
                    .any(|f| f.windows(s.len()).any(|w| w == &s[..]))
            })
            .count()
    };
    assert_eq!(on_disk(&app), secrets.len(), "the scan finds what is there");

    // The guest asks, with its own token.
    let me = app.token_for("guest", &id);
    let req = app
        .client
        .post(format!("{}/v1/guests/{id}/erasure", app.addr))
        .bearer_auth(&me)
        .header("X-Purpose", "data_subject_request")
        .json(&json!({}));
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["retained"], json!([]));
    let receipt = r.body.clone();

    assert_eq!(
        app.call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("guest_service"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .call(
            Method::POST,
            "/v1/guests/search",
            Some("pms"),
            Some("check_in"),
            Some(json!({"field":"mobile","value":"13700001234"})),
        )
        .await;
    assert_eq!(r.body["guest_ids"], json!([]));
    assert_eq!(rows_naming(&app, &id), Vec::<String>::new());
    // Crypto-shredding reaches the files too: the WAL is emptied within the checkpointer's
    // next rounds (every 500 ms), while the server keeps running.
    let mut left = on_disk(&app);
    for _ in 0..40 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        left = on_disk(&app);
    }
    assert_eq!(
        left, 0,
        "wrapped DEK or ciphertext still on disk after erasure"
    );
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(app.dir.path())
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap_or_default())
        .collect();
    if crate::helpers::backend_is_postgres() {
        files.extend(
            crate::helpers::sql::dump_on(&app.config)
                .into_iter()
                .map(|(_, bytes)| bytes),
        );
    }
    for bytes in files {
        for canary in ["erase.me@example.com", "13700001234", "halal"] {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{canary} on disk"
            );
        }
    }
    let audit = app.sql_i64(
        "SELECT count(*) FROM audit_events WHERE guest_id = ?1",
        &[&id],
    );
    assert!(audit >= 4, "the audit trail keeps the opaque id");

    // Repeating returns the same receipt.
    let again = erase(&app, &id).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["request_id"], receipt["request_id"]);
    // Another guest's token cannot read the receipt.
    let rid = receipt["request_id"].as_str().unwrap();
    let other = app.token_for("guest", "0191a1d2-0000-7000-8000-000000000000");
    let req = app
        .client
        .get(format!("{}/v1/erasure-requests/{rid}", app.addr))
        .bearer_auth(other)
        .header("X-Purpose", "data_subject_request");
    assert_eq!(app.send(req).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_sweeper_purges_each_class_the_day_after_its_period_and_audits_it() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(zhang_san()).await;
    let stay =
        json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-23"}});
    app.call(
        Method::POST,
        &format!("/v1/guests/{id}/stays"),
        Some("pms"),
        Some("check_in"),
        Some(stay),
    )
    .await;
    let fields = |app: &TestApp| -> Vec<String> {
        app.sql_column(
            "SELECT field FROM guest_fields WHERE guest_id = ?1 ORDER BY field",
            &[&id],
        )
        .into_iter()
        .map(Option::unwrap)
        .collect()
    };
    let has = |app: &TestApp, f: &str| fields(app).iter().any(|x| x == f);

    // sensitive_preferences: check-out + 30 days.
    app.clock.set(datetime!(2026-12-23 12:00 UTC));
    sweep(&app, false).await;
    assert!(has(&app, "dietary_needs"));
    app.clock.set(datetime!(2026-12-24 12:00 UTC));
    let dry = sweep(&app, true).await;
    assert_eq!(
        dry["classes"]["sensitive_preferences"]["fields"], 1,
        "{dry}"
    );
    assert!(has(&app, "dietary_needs"), "a dry run changes nothing");
    let report = sweep(&app, false).await;
    assert_eq!(report["classes"]["sensitive_preferences"]["fields"], 1);
    assert!(!has(&app, "dietary_needs"));
    let row = app.sql_rows(
        "SELECT fields, reason FROM audit_events WHERE action = 'retention.purge' AND guest_id = ?1",
        &[&id],
    );
    assert_eq!(row.len(), 1);
    let (fields_json, reason) = (row[0][0].clone().unwrap(), row[0][1].clone().unwrap());
    assert_eq!(fields_json, r#"["dietary_needs"]"#);
    assert!(
        reason.contains("sensitive_preferences: 1 fields"),
        "{reason}"
    );

    // contact: last check-out + 1 year.
    app.clock.set(datetime!(2027-11-23 12:00 UTC));
    sweep(&app, false).await;
    assert!(has(&app, "mobile"));
    app.clock.set(datetime!(2027-11-24 12:00 UTC));
    sweep(&app, false).await;
    assert!(!has(&app, "mobile") && !has(&app, "email") && !has(&app, "address"));
    // Identity is kept; from the same day its ID number is pseudonymized (the value goes, the
    // blind-index entry stays: tests/api/stages.rs).
    assert!(has(&app, "full_name") && !has(&app, "id_number"));

    // identity and stays: 3 years; then nothing remains and the guest is shredded.
    app.clock.set(datetime!(2029-11-24 12:00 UTC));
    let report = sweep(&app, false).await;
    assert_eq!(report["guests_erased"], 1, "{report}");
    assert_eq!(rows_naming(&app, &id), Vec::<String>::new());
}

#[tokio::test]
async fn withdrawing_personalization_consent_expires_preferences_at_the_next_sweep() {
    let app = spawn_app().await;
    let id = app.create_guest(json!({"full_name":"李四","mobile":"13900001111","preferences":{"room":"high floor"},"membership_level":"gold"})).await;
    let put = json!({"notice_version":"2026-11","channel":"app"});
    app.call(
        Method::PUT,
        &format!("/v1/guests/{id}/consents/personalization"),
        Some("pms"),
        Some("check_in"),
        Some(put),
    )
    .await;
    sweep(&app, false).await;
    let count = |f: &str| -> i64 {
        app.sql_i64(
            "SELECT count(*) FROM guest_fields WHERE guest_id = ?1 AND field = ?2",
            &[&id, &f],
        )
    };
    assert_eq!(count("preferences"), 1);
    app.call(
        Method::DELETE,
        &format!("/v1/guests/{id}/consents/personalization"),
        Some("pms"),
        Some("check_in"),
        None,
    )
    .await;
    sweep(&app, false).await;
    assert_eq!(count("preferences"), 0);
    assert_eq!(
        count("membership_level"),
        1,
        "fields kept for other reasons stay"
    );
}

#[tokio::test]
async fn export_holds_every_catalog_field_stays_consents_and_an_explanation() {
    let app = spawn_app().await;
    // The minors' registration fields too (REQ-10), with an accompanying adult.
    let adult = app.create_guest(zhang_san()).await;
    let mut guest = zhang_san();
    guest["guardian_name"] = json!("张大山");
    guest["guardian_mobile"] = json!("13912345678");
    guest["guardian_relationship"] = json!("parent");
    guest["accompanied_by"] = json!(adult);
    guest["jurisdictions"] = json!(["cn", "eu"]);
    let id = app.create_guest(guest).await;
    let me = app.token_for("guest", &id);
    let patch = json!({"fields":{"occupation":"teacher","preferences":{"room":"quiet"},"accessibility_needs":"step-free access"}});
    let req = app
        .client
        .patch(format!("{}/v1/guests/{id}", app.addr))
        .bearer_auth(&me)
        .header("X-Purpose", "data_subject_request")
        .json(&patch);
    assert_eq!(app.send(req).await.status, StatusCode::OK);
    let stay = json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-23","room_type":"deluxe","room_number":"1208","amount":"1280","currency":"CNY","channel":"direct"}});
    app.call(
        Method::POST,
        &format!("/v1/guests/{id}/stays"),
        Some("pms"),
        Some("check_in"),
        Some(stay),
    )
    .await;
    app.call(
        Method::PUT,
        &format!("/v1/guests/{id}/consents/marketing"),
        Some("pms"),
        Some("check_in"),
        Some(json!({"notice_version":"2026-11","channel":"app"})),
    )
    .await;

    let req = app
        .client
        .get(format!("{}/v1/guests/{id}/export", app.addr))
        .bearer_auth(&me)
        .header("X-Purpose", "data_subject_request");
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let pkg = r.body;
    assert_eq!(pkg["format"], "guestvault-export/v1");
    let policies = guestvault::policy::Policies::load(None).unwrap();
    for f in policies
        .catalog
        .fields(guestvault::policy::FieldScope::Guest)
    {
        assert!(
            pkg["fields"].get(&f.name).is_some(),
            "export lacks field {}",
            f.name
        );
    }
    for f in policies
        .catalog
        .fields(guestvault::policy::FieldScope::Stay)
    {
        assert!(
            pkg["stays"][0]["fields"].get(&f.name).is_some(),
            "export lacks stay field {}",
            f.name
        );
    }
    assert_eq!(
        pkg["fields"]["mobile"], "+8613812345678",
        "plain, not masked"
    );
    assert_eq!(pkg["fields"]["preferences"], json!({"room":"quiet"}));
    assert_eq!(pkg["consents"]["current"][0]["purpose"], "marketing");
    assert!(pkg["processing"]["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["purpose"] == "marketing" && p["basis"] == "consent"));
    assert!(pkg["processing"]["retention"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["class"] == "identity" && c["statutory"] == true));
    assert!(pkg["processing"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["role"] == "front_desk"));
    // The published JSON Schema names every top-level key the export has.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/export.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for key in pkg.as_object().unwrap().keys() {
        assert!(
            schema["properties"].get(key).is_some(),
            "schema lacks {key}"
        );
    }
    // A DSR officer may export too; a concierge may not.
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}/export?reason=data_subject_request&ticket=DSR-17"),
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}/export"),
            Some("concierge"),
            Some("guest_service"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_request_received_before_national_day_is_due_after_it() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-09-25 02:00 UTC));
    let id = contact_only(&app, "13700001234").await;
    let r = erase(&app, &id).await;
    assert_eq!(r.body["due_at"], "2026-10-22", "{}", r.text);
    let r = app
        .call(
            Method::GET,
            "/v1/erasure-requests?status=overdue",
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["requests"],
        json!([]),
        "answered requests are never overdue"
    );
    // A request recorded but not yet answered (e.g. taken in by another intake system) is
    // listed once its due date has passed.
    app.sql_exec(
        "INSERT INTO dsr_requests (request_id, subject, kind, status, received_at, due_at, receipt)
         VALUES ('0191a1d2-0000-7000-8000-00000000abcd', ?1, 'erasure', 'received', '2026-09-01T00:00:00.000000Z', '2026-09-22', '{}')",
        &[&vec![0u8]],
    );
    let r = app
        .call(
            Method::GET,
            "/v1/erasure-requests?status=overdue",
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.body["requests"][0]["due_at"], "2026-09-22", "{}", r.text);
    let r = app
        .call(
            Method::GET,
            "/v1/erasure-requests?status=open",
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_free_text_reason_is_accepted_but_never_stored() {
    let app = spawn_app().await;
    let id = contact_only(&app, "13700001234").await;
    let reason = "Mr 龙傲天 phoned from 13911112222 and asked us to delete everything";
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/erasure"),
            Some(DSR.0),
            Some(DSR.1),
            Some(json!({ "reason": reason })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stored = app.sql_text(
        "SELECT reason FROM audit_events WHERE action = 'guest.erase'",
        &[],
    );
    assert!(stored.contains("other (free text not stored)"), "{stored}");
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        assert!(!bytes
            .windows("13911112222".len())
            .any(|w| w == b"13911112222"));
    }
    // Nor anywhere in the database (on PostgreSQL it is not in the data dir).
    assert_eq!(
        app.columns_containing("13911112222", |_| true),
        Vec::<String>::new()
    );
}

/// REQ-25: withdrawing personalization in the middle of a stay keeps what guest_service (a
/// contract purpose) also uses — the allergy note — through check-out, then the sweep deletes
/// it; the withdrawal is not a licence to keep it for its full 30 days either.
#[tokio::test]
async fn a_withdrawal_during_a_stay_keeps_what_the_stay_needs_until_check_out() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app
        .create_guest(json!({"full_name":"李四","dietary_needs":"peanut allergy","preferences":{"room":"quiet"}}))
        .await;
    let stay =
        json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-23"}});
    for (method, path, body) in [
        (Method::POST, format!("/v1/guests/{id}/stays"), Some(stay)),
        (
            Method::PUT,
            format!("/v1/guests/{id}/consents/personalization"),
            Some(json!({"notice_version":"2026-11","channel":"app","separate":true})),
        ),
        (
            Method::DELETE,
            format!("/v1/guests/{id}/consents/personalization"),
            None,
        ),
    ] {
        let r = app
            .call(method, &path, Some("pms"), Some("check_in"), body)
            .await;
        assert!(r.status.is_success(), "{path}: {}", r.status);
    }
    let has = |f: &str| -> bool {
        app.sql_i64(
            "SELECT count(*) FROM guest_fields WHERE guest_id = ?1 AND field = ?2",
            &[&id, &f],
        ) == 1
    };
    app.clock.set(datetime!(2026-11-23 20:00 UTC));
    sweep(&app, false).await;
    assert!(has("dietary_needs"), "needed for the stay in progress");
    assert!(has("preferences"), "guest_service uses preferences too");
    app.clock.set(datetime!(2026-11-24 09:00 UTC));
    let report = sweep(&app, false).await;
    assert!(!has("dietary_needs"), "{report}");
    assert!(!has("preferences"), "{report}");
    assert!(has("full_name"), "identity keeps its statutory period");
}

/// PIPL Art. 47(2): a correction cannot delete registration data a law requires keeping (the
/// erasure route restricts it instead), and restricted data is storage only — not even a
/// purpose that may read it may change it.
#[tokio::test]
async fn a_correction_cannot_remove_statutory_data_or_change_restricted_data() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    // Issue 16 §3: a guest who never stayed keeps no registration; this one stayed.
    let today = time::OffsetDateTime::now_utc().date();
    let stay = json!({"fields":{"property":"SHA01","check_in":today.to_string(),
        "check_out":today.next_day().unwrap().to_string()}});
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
    let path = format!("/v1/guests/{id}");
    let patch = |fields: Value| {
        app.call(
            Method::PATCH,
            &path,
            Some("dsr_officer"),
            Some("data_subject_request"),
            Some(json!({ "fields": fields })),
        )
    };
    let r = patch(json!({"id_number": null, "mobile": null})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.body["errors"],
        json!([{"field":"id_number","code":"statutory_retention"}]),
        "{}",
        r.text
    );
    let kept = app.sql_i64(
        "SELECT count(*) FROM guest_fields WHERE guest_id = ?1 AND field IN ('id_number','mobile')",
        &[&id],
    );
    assert_eq!(kept, 2, "a refused patch changes nothing");
    // A non-statutory field may be removed; a statutory one corrected.
    let r = patch(json!({"mobile": null, "full_name": "张三"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The correction is a data-subject request: recorded with a due date, field names only.
    let row = app.sql_rows(
        "SELECT kind, status, due_at, receipt FROM dsr_requests WHERE kind = 'correction'",
        &[],
    );
    assert_eq!(row.len(), 1);
    let [kind, status, due, receipt] = <[Option<String>; 4]>::try_from(row[0].clone())
        .unwrap()
        .map(Option::unwrap);
    assert_eq!(
        (kind.as_str(), status.as_str()),
        ("correction", "completed")
    );
    assert_eq!(due.len(), 10, "{due}");
    assert_eq!(
        serde_json::from_str::<Value>(&receipt).unwrap(),
        json!({"fields":["full_name","mobile"]})
    );

    assert_eq!(erase(&app, &id).await.status, StatusCode::OK);
    let r = patch(json!({"full_name": "张三丰"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["code"], "restricted");
}

/// A guest whose every field was removed by corrections holds nothing a class could keep: the
/// next sweep crypto-shreds what is left of it (data key, consents, the guest row).
#[tokio::test]
async fn the_sweeper_shreds_a_guest_that_corrections_left_empty() {
    let app = spawn_app().await;
    let id = contact_only(&app, "13700005678").await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields":{"mobile":null}})),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    assert!(
        !rows_naming(&app, &id).is_empty(),
        "the guest row is still there"
    );
    let report = sweep(&app, false).await;
    assert_eq!(report["guests_erased"], 1, "{report}");
    assert_eq!(rows_naming(&app, &id), Vec::<String>::new());
}

/// The receipt date is Beijing's: 17:00 UTC on Thursday 26 November is already Friday
/// 27 November in China, so 15 working days end on Friday 18 December, not Thursday 17th
/// (REQ-32).
#[tokio::test]
async fn the_deadline_counts_from_the_date_in_china() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-26 17:00 UTC));
    let id = contact_only(&app, "13700001234").await;
    let r = erase(&app, &id).await;
    assert_eq!(r.body["due_at"], "2026-12-18", "{}", r.text);
}
