//! Corrections: no validation oracle (issue 12 point 2), self-service limits and correction
//! requests (point 3, REQ-30, REQ-32).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

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
    let rows: Vec<(String, String, Option<String>, String)> = app
        .db()
        .prepare("SELECT action, outcome, reason, fields FROM audit_events WHERE seq > ?1")
        .unwrap()
        .query_map([before], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
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
    // A new resident ID needs the birth date front desk sees only masked; the gender it sees
    // in plain is checked as stored (F against a male ID).
    let r = patch(json!({"id_number":"110101199003074477"})).await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"birth_date","code":"required_for_cross_check"},
               {"field":"gender","code":"mismatch_id_number"}])
    );
    let r = patch(json!({"id_number":"110101199003074477","birth_date":"1990-03-07","gender":"M"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The stored gender (now M) is plain to front desk, so it is checked: M against the even
    // digit 17 of this ID.
    let r = patch(json!({"id_number":"11010519491231002X","birth_date":"1949-12-31"})).await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"gender","code":"mismatch_id_number"}])
    );
    let r = patch(json!({"gender":"M"})).await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"id_number","code":"required_for_cross_check"}])
    );
}
