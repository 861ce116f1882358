//! Corrections: no validation oracle (issue 12 point 2), self-service limits and correction
//! requests (point 3, REQ-30, REQ-32).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use guestvault::audit::verify::{verify_export, Problem, PublicKey};

use crate::helpers::{spawn_app, zhang_san};

/// A response without its random `request_id`.
fn shape(status: StatusCode, body: &Value) -> String {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("request_id");
    }
    format!("{status} {b}")
}

#[tokio::test]
async fn a_birth_date_correction_is_no_oracle_for_the_masked_birth_year() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let before = app.audit_count();
    let mut answers = std::collections::BTreeSet::new();
    // 100 candidate years, the stored one (1949) among them.
    for year in 1900..2000 {
        let r = app
            .call(
                Method::PATCH,
                &format!("/v1/guests/{id}"),
                Some("front_desk"),
                Some("check_in"),
                Some(json!({"fields":{"birth_date":format!("{year}-12-31")}})),
            )
            .await;
        answers.insert(shape(r.status, &r.body));
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    let only = answers.into_iter().next().unwrap();
    assert!(only.starts_with("422"), "{only}");
    assert!(
        only.contains(r#""errors":[{"code":"required_for_cross_check","field":"id_number"}]"#),
        "{only}"
    );
    assert!(!only.contains("1949"), "{only}");
    // Every attempt is audited alike: same action, outcome, reason and field list.
    let rows = app.sql_rows(
        "SELECT action, outcome, reason, fields FROM audit_events WHERE seq > ?1",
        &[&before],
    );
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r == &rows[0]), "{:?}", rows[0]);
    // Nothing changed: the PMS still reads the registered birth date.
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.body["fields"]["birth_date"], "1949-12-31");
}

#[tokio::test]
async fn a_correction_with_the_document_is_checked_against_the_request_only() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}");
    let patch = |fields: Value| {
        app.call(
            Method::PATCH,
            &path,
            Some("front_desk"),
            Some("check_in"),
            Some(json!({ "fields": fields })),
        )
    };
    // The birth date contradicts the ID sent with it: refused, whatever is stored.
    let r = patch(json!({"birth_date":"1950-01-01","id_type":"cn_resident_id","id_number":"11010519491231002X"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.body["errors"],
        json!([{"field":"birth_date","code":"mismatch_id_number"}])
    );
    // A new resident ID needs the birth date front desk sees only masked (the gender it sees
    // in plain is checked as stored; by default a mismatch is a data-quality flag, issue 15).
    let r = patch(json!({"id_number":"110101199003074477"})).await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"birth_date","code":"required_for_cross_check"}])
    );
    let r = patch(json!({"id_number":"110101199003074477","birth_date":"1990-03-07","gender":"M"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body.get("data_quality").is_none(), "{}", r.text);
    // The stored gender (now M) is plain to front desk, so it is checked: M against the even
    // digit 17 of this ID is accepted with a warning computed from the request and that gender
    // (`tests/api/data_quality.rs` has the strict policy's 422).
    let r = patch(json!({"id_number":"11010519491231002X","birth_date":"1949-12-31"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["data_quality"],
        json!([{"code":"gender_mismatch_id_number","fields":["gender","id_number"]}])
    );
    let r = patch(json!({"gender":"M"})).await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"id_number","code":"required_for_cross_check"}])
    );
}

/// A request with the guest's own token under `data_subject_request`.
async fn as_guest(
    app: &crate::helpers::TestApp,
    id: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> crate::helpers::Resp {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.addr))
        .bearer_auth(app.token_for("guest", id))
        .header("X-Purpose", "data_subject_request");
    if let Some(b) = body {
        req = req.json(&b);
    }
    app.send(req).await
}

async fn dsr(
    app: &crate::helpers::TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> crate::helpers::Resp {
    app.call(
        method,
        path,
        Some("dsr_officer"),
        Some("data_subject_request"),
        body,
    )
    .await
}

const QUEUE: &str = "/v1/dsr-requests?kind=correction&status=pending_verification";

/// REQ-30, REQ-32: a guest corrects its contact data directly; its identity and membership
/// wait for a DSR officer, who applies or rejects with a reason code.
#[tokio::test]
async fn a_guest_corrects_contact_data_but_only_requests_identity_corrections() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}");

    // Self-service: applied at once.
    let r = as_guest(
        &app,
        &id,
        Method::PATCH,
        &path,
        Some(json!({"fields":{"mobile":"13900002222","dietary_needs":"vegetarian"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["mobile"], "+8613900002222");

    // Identity: a request, nothing changes yet.
    let r = as_guest(
        &app,
        &id,
        Method::PATCH,
        &path,
        Some(json!({"fields":{"full_name":"李四光","birth_date":"1950-01-01"}})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validated like any correction: {}",
        r.text
    );
    let r = as_guest(
        &app,
        &id,
        Method::PATCH,
        &path,
        Some(json!({"fields":{"full_name":"李四光","mobile":"13900003333"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["status"], "pending_verification");
    assert_eq!(r.body["fields"], json!(["full_name", "mobile"]));
    assert!(r.body["due_at"].as_str().unwrap().len() == 10);
    let name_request = r.body["request_id"].as_str().unwrap().to_string();
    let r = as_guest(
        &app,
        &id,
        Method::PATCH,
        &path,
        Some(json!({"fields":{"membership_level":"platinum"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let level_request = r.body["request_id"].as_str().unwrap().to_string();
    let r = as_guest(&app, &id, Method::GET, &path, None).await;
    assert_eq!(r.body["fields"]["full_name"], "张三丰");
    assert_eq!(
        r.body["fields"]["mobile"], "+8613900002222",
        "a mixed patch waits whole"
    );
    assert_eq!(r.body["fields"]["membership_level"], "gold");

    // The proposal is stored only as ciphertext, and the trail names fields only.
    {
        let blobs: Vec<Vec<u8>> = app
            .sql_column("SELECT ciphertext FROM correction_requests", &[])
            .iter()
            .map(|b| crate::helpers::sql::unhex(b.as_deref().unwrap()))
            .collect();
        assert_eq!(blobs.len(), 2);
        for b in &blobs {
            let text = String::from_utf8_lossy(b);
            assert!(!text.contains("李四光") && !text.contains("platinum"));
        }
        let trail: String = app
            .sql_column(
                "SELECT fields || coalesce(reason,'') || coalesce(justification,'') || coalesce(value_hashes,'') FROM audit_events",
                &[],
            )
            .into_iter()
            .map(Option::unwrap)
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            !trail.contains("李四光")
                && !trail.contains("platinum")
                && !trail.contains("13900003333")
        );
        let statuses = app.sql_rows(
            "SELECT kind, status FROM dsr_requests WHERE status = 'pending_verification'",
            &[],
        );
        assert_eq!(
            statuses,
            vec![
                vec![
                    Some("correction".into()),
                    Some("pending_verification".into())
                ];
                2
            ]
        );
    }

    // The queue: both, by due date, names only. Other roles may not see it.
    let r = dsr(&app, Method::GET, QUEUE, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ids: Vec<&str> = r.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![name_request.as_str(), level_request.as_str()]);
    assert_eq!(r.body["requests"][0]["guest_id"], id);
    assert!(!r.text.contains("李四光"));
    let r = app
        .call(
            Method::GET,
            QUEUE,
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = as_guest(&app, &id, Method::GET, QUEUE, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = dsr(
        &app,
        Method::GET,
        "/v1/dsr-requests?kind=erasure&status=pending_verification",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The officer reads the proposal to compare it with the document.
    let r = dsr(
        &app,
        Method::GET,
        &format!("/v1/dsr-requests/{name_request}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["proposed"],
        json!({"full_name":"李四光","mobile":"+8613900003333"})
    );

    // A reason is a code, not free text.
    let apply = format!("/v1/dsr-requests/{name_request}/apply");
    let r = dsr(
        &app,
        Method::POST,
        &apply,
        Some(json!({"reason":"guest lives at 北京"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body["errors"],
        json!([{"field":"reason","code":"unknown_reason"}])
    );
    let r = dsr(
        &app,
        Method::POST,
        &apply,
        Some(json!({"reason":"document_checked","ticket":"DSR-42"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "completed");
    let r = dsr(
        &app,
        Method::POST,
        &apply,
        Some(json!({"reason":"document_checked"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "decided: out of the queue");

    let r = dsr(
        &app,
        Method::POST,
        &format!("/v1/dsr-requests/{level_request}/reject"),
        Some(json!({"reason":"not_a_correction"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "rejected");
    let r = dsr(&app, Method::GET, QUEUE, None).await;
    assert_eq!(r.body["requests"], json!([]));

    let r = as_guest(&app, &id, Method::GET, &path, None).await;
    assert_eq!(r.body["fields"]["full_name"], "李四光");
    assert_eq!(r.body["fields"]["mobile"], "+8613900003333");
    assert_eq!(r.body["fields"]["membership_level"], "gold");
    // The guest follows its requests by id.
    let r = as_guest(
        &app,
        &id,
        Method::GET,
        &format!("/v1/erasure-requests/{level_request}"),
        None,
    )
    .await;
    assert_eq!(r.body["status"], "rejected", "{}", r.text);
    assert_eq!(r.body["reason"], "not_a_correction");

    // The applied correction's event: keyed hashes of before and after, never the values.
    let row = app.sql_rows(
        "SELECT value_hashes, justification FROM audit_events WHERE action = 'correction.decide' AND reason = 'correction applied'",
        &[],
    );
    assert_eq!(row.len(), 1);
    let (hashes, justification) = (row[0][0].clone().unwrap(), row[0][1].clone().unwrap());
    assert_eq!(justification, "reason=document_checked ticket=DSR-42");
    let hashes: Value = serde_json::from_str(&hashes).unwrap();
    let keys = app.vault.keys();
    let h = |f: &str, v: &str| {
        guestvault::crypto::hex(&keys.indexer().digest(&format!("audit-value-hash/{f}"), v))
    };
    assert_eq!(
        hashes,
        json!([
            {"field":"full_name","before_hash":h("full_name","张三丰"),"after_hash":h("full_name","李四光")},
            {"field":"mobile","before_hash":h("mobile","+8613900002222"),"after_hash":h("mobile","+8613900003333")},
        ])
    );
    // A direct correction carries them too.
    let direct = app.sql_text(
        "SELECT value_hashes FROM audit_events WHERE action = 'guest.update' AND role = 'guest' AND reason IS NULL",
        &[],
    );
    assert!(direct.contains(&h("mobile", "+8613900002222")), "{direct}");

    // The police still read the name registered at check-in, next to the corrected one.
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
    assert_eq!(r.body["fields"]["full_name"], "李四光");
    assert_eq!(r.body["fields"]["registered_full_name"], "张三丰");
    assert!(
        r.body["fields"].get("registered_mobile").is_none(),
        "contact data is not statutory"
    );
    // Other purposes do not see it.
    let r = app
        .call(
            Method::GET,
            &path,
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert!(r.body["fields"].get("registered_full_name").is_none());

    // The chain with value hashes verifies, in the vault and as an export (JSONL and CSV);
    // a changed value hash does not.
    let officer = Some("compliance_officer");
    let r = app
        .call(Method::GET, "/v1/audit/verify", officer, None, None)
        .await;
    assert_eq!(r.body["intact"], true, "{}", r.text);
    let r = app
        .call(Method::GET, "/v1/audit/public-key", officer, None, None)
        .await;
    let key = PublicKey::parse(r.body["public_key"].as_str().unwrap()).unwrap();
    for format in ["jsonl", "csv"] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/audit/export?format={format}"),
                officer,
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let report = verify_export(r.text.as_bytes(), &key).unwrap();
        assert!(report.events > 0);
        let after = h("full_name", "李四光");
        assert!(r.text.contains(&after), "{format}");
        let tampered = r.text.replacen(&after, &h("full_name", "王五"), 1);
        let err = verify_export(tampered.as_bytes(), &key).unwrap_err();
        assert_eq!(err.problem, Problem::HashMismatch, "{format}");
    }
}

/// The registered value stays while the statutory period runs (also after an erasure request,
/// as storage-only data for the police), and goes with its class when the period ends.
#[tokio::test]
async fn registered_values_outlive_an_erasure_request_until_their_class_is_swept() {
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
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields":{"full_name":"张三"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = as_guest(
        &app,
        &id,
        Method::PATCH,
        &path,
        Some(json!({"fields":{"full_name":"张三丰"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let request = r.body["request_id"].as_str().unwrap().to_string();
    let count = |sql: &str| -> i64 { app.sql_i64(sql, &[]) };
    assert_eq!(count("SELECT count(*) FROM guest_field_history"), 1);

    let r = as_guest(
        &app,
        &id,
        Method::POST,
        &format!("{path}/erasure"),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "partially_completed", "{}", r.text);
    assert_eq!(count("SELECT count(*) FROM guest_field_history"), 1);
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
    assert_eq!(r.body["fields"]["registered_full_name"], "张三丰");
    assert_eq!(r.body["fields"]["full_name"], "张三");

    // Storage-only data is not corrected; the officer rejects the request instead.
    let r = dsr(
        &app,
        Method::POST,
        &format!("/v1/dsr-requests/{request}/apply"),
        Some(json!({"reason":"document_checked"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["code"], "restricted");
    let r = dsr(
        &app,
        Method::POST,
        &format!("/v1/dsr-requests/{request}/reject"),
        Some(json!({"reason":"data_restricted"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(count("SELECT count(*) FROM correction_requests"), 0);

    // Three years and a day later the identity class is swept, and the registered value too.
    app.clock.advance(time::Duration::days(3 * 366 + 2));
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
    assert_eq!(count("SELECT count(*) FROM guest_field_history"), 0);
    assert_eq!(count("SELECT count(*) FROM guests"), 0);
}
