//! Stay dates are sane, and stays entered in error can be corrected (issue 12 point 4).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, zhang_san, TestApp};

fn day(offset: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(offset)).to_string()
}

async fn add(app: &TestApp, id: &str, check_in: &str, check_out: &str) -> crate::helpers::Resp {
    app.call(
        Method::POST,
        &format!("/v1/guests/{id}/stays"),
        Some("pms"),
        Some("check_in"),
        Some(json!({"fields":{"property":"SHA01","check_in":check_in,"check_out":check_out,"room_number":"1208"}})),
    )
    .await
}

fn last_checkout(app: &TestApp, id: &str) -> Option<String> {
    app.sql_opt(
        "SELECT last_checkout FROM guests WHERE guest_id = ?1",
        &[&id],
    )
}

#[tokio::test]
async fn implausible_stay_dates_are_refused_with_a_field_code() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let before = app.audit_count();
    for (check_in, check_out, field, code) in [
        (day(731), day(733), "check_in", "too_far_ahead"),
        (
            day(-2),
            "9999-12-31".to_string(),
            "check_out",
            "stay_too_long",
        ),
        (day(0), day(366), "check_out", "stay_too_long"),
    ] {
        let r = add(&app, &id, &check_in, &check_out).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(
            r.body["errors"],
            json!([{"field":field,"code":code}]),
            "{check_in}..{check_out}"
        );
        assert!(
            !r.text.contains(&check_out[..4]) || check_out.starts_with("20"),
            "no echo"
        );
    }
    assert_eq!(app.audit_count(), before + 3, "each refusal is audited");
    assert_eq!(last_checkout(&app, &id), None, "nothing stored");
    // The limits themselves are accepted.
    let r = add(&app, &id, &day(730), &day(730 + 365)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn stay_limits_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(dir.path());
    config.stays.max_stay_days = 30;
    guestvault::cli::init(&config).unwrap();
    let app = crate::helpers::spawn_on(dir, config).await;
    let id = app.create_guest(zhang_san()).await;
    let r = add(&app, &id, &day(0), &day(31)).await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"check_out","code":"stay_too_long"}]),
        "{}",
        r.text
    );
    assert_eq!(
        add(&app, &id, &day(0), &day(30)).await.status,
        StatusCode::CREATED
    );
}

async fn correct(
    app: &TestApp,
    role: &str,
    purpose: &str,
    id: &str,
    stay: &str,
    body: Value,
) -> crate::helpers::Resp {
    app.call(
        Method::PATCH,
        &format!("/v1/guests/{id}/stays/{stay}"),
        Some(role),
        Some(purpose),
        Some(body),
    )
    .await
}

async fn delete(
    app: &TestApp,
    role: &str,
    purpose: &str,
    id: &str,
    stay: &str,
    body: Value,
) -> crate::helpers::Resp {
    app.call(
        Method::DELETE,
        &format!("/v1/guests/{id}/stays/{stay}"),
        Some(role),
        Some(purpose),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_stay_entered_in_error_is_corrected_or_deleted_and_retention_follows() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let first = add(&app, &id, &day(-10), &day(-8)).await.body["stay_id"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = add(&app, &id, &day(-3), &day(300)).await.body["stay_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(last_checkout(&app, &id), Some(day(300)));

    // Front desk may not; a reason code is required; the result must stay plausible.
    let fix = json!({"fields":{"check_out":day(-1)},"reason":"entered_in_error","ticket":"PMS-7"});
    let r = correct(&app, "front_desk", "check_in", &id, &wrong, fix.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = correct(
        &app,
        "pms",
        "check_in",
        &id,
        &wrong,
        json!({"fields":{"check_out":day(-1)},"reason":"typed by mistake"}),
    )
    .await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"reason","code":"unknown_reason"}]),
        "{}",
        r.text
    );
    let r = correct(
        &app,
        "pms",
        "check_in",
        &id,
        &wrong,
        json!({"fields":{"check_out":day(500)},"reason":"entered_in_error"}),
    )
    .await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"check_out","code":"stay_too_long"}]),
        "{}",
        r.text
    );
    let r = correct(
        &app,
        "pms",
        "check_in",
        &id,
        &wrong,
        json!({"fields":{"check_out":day(-4)},"reason":"entered_in_error"}),
    )
    .await;
    assert_eq!(
        r.body["errors"],
        json!([{"field":"check_out","code":"not_after_check_in"}]),
        "{}",
        r.text
    );
    let r = correct(
        &app,
        "pms",
        "check_in",
        &id,
        &wrong,
        json!({"fields":{"check_out":null},"reason":"entered_in_error"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    let r = correct(&app, "pms", "check_in", &id, &wrong, fix).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        last_checkout(&app, &id),
        Some(day(-1)),
        "retention runs from the corrected date"
    );
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}/stays"),
            Some("pms"),
            Some("check_in"),
            None,
        )
        .await;
    let stay = r.body["stays"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stay_id"] == wrong.as_str())
        .unwrap()
        .clone();
    assert_eq!(stay["fields"]["check_out"], day(-1));
    assert_eq!(stay["fields"]["room_number"], "1208", "other fields kept");

    // The event: reason and ticket, keyed hashes of the old and new check-out, no dates.
    let [reason, justification, hashes] = <[String; 3]>::try_from(app.sql_texts(
        "SELECT reason, justification, value_hashes FROM audit_events WHERE action = 'stay.correct' AND outcome = 'allowed'",
        &[],
    ))
    .unwrap();
    assert_eq!(
        (reason.as_str(), justification.as_str()),
        ("stay corrected", "reason=entered_in_error ticket=PMS-7")
    );
    let keys = app.vault.keys();
    let h = |v: &str| {
        guestvault::crypto::hex(&keys.indexer().digest("audit-value-hash/stay.check_out", v))
    };
    assert_eq!(
        serde_json::from_str::<Value>(&hashes).unwrap(),
        json!([{"field":"stay.check_out","before_hash":h(&day(300)),"after_hash":h(&day(-1))}])
    );
    assert!(!hashes.contains(&day(300)));

    // Another guest's stay answers like an unknown one.
    let other = app.create_guest(zhang_san()).await;
    let r = delete(
        &app,
        "dsr_officer",
        "data_subject_request",
        &other,
        &first,
        json!({"reason":"entered_in_error"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // A DSR officer deletes the stay entered in error; last_checkout falls back to the other.
    let r = delete(
        &app,
        "dsr_officer",
        "data_subject_request",
        &id,
        &wrong,
        json!({"reason":"entered_in_error"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(last_checkout(&app, &id), Some(day(-8)));
    let r = delete(
        &app,
        "dsr_officer",
        "data_subject_request",
        &id,
        &first,
        json!({"reason":"entered_in_error"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(last_checkout(&app, &id), None);
    let r = delete(
        &app,
        "dsr_officer",
        "data_subject_request",
        &id,
        &first,
        json!({"reason":"entered_in_error"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A stay stored before the limits existed (`9999-12-31`) does not hold the registration
/// beyond what the schedule allows from a plausible check-out.
#[tokio::test]
async fn a_legacy_far_future_check_out_does_not_block_erasure_forever() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let stay = add(&app, &id, &day(-3), &day(-1)).await.body["stay_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.sql_exec(
        "UPDATE stays SET check_out = '9999-12-31' WHERE stay_id = ?1",
        &[&stay],
    );
    app.sql_exec(
        "UPDATE guests SET last_checkout = '9999-12-31' WHERE guest_id = ?1",
        &[&id],
    );
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/erasure"),
            Some("dsr_officer"),
            Some("data_subject_request"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // At most created + 730 + 365 days (a plausible check-out), plus the 3-year period.
    let horizon =
        time::OffsetDateTime::now_utc().date() + time::Duration::days(730 + 365 + 3 * 366 + 1);
    let text = r.text.clone();
    assert!(!text.contains("9999"), "{text}");
    for until in r.body["retained"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["until"].as_str())
    {
        let until =
            time::Date::parse(until, &time::format_description::well_known::Iso8601::DATE).unwrap();
        assert!(until <= horizon, "{until} > {horizon}");
    }
    assert!(!r.body["retained"].as_array().unwrap().is_empty(), "{text}");
}
