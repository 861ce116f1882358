//! Deadlines of data-subject requests for guests under two regimes (issue 16 §5): a guest's
//! `jurisdictions`, the earlier of the Chinese and the GDPR clock (REQ-48), the extension of
//! the GDPR clock and the refusal to extend the Chinese one, the clock in the overdue list, and
//! the 80% escalation and overdue alert that the background sweeper raises by itself (REQ-32).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::helpers::{captured_logs, spawn_app, spawn_app_with, zhang_san, TestApp};

const DSR: (&str, &str) = ("dsr_officer", "data_subject_request");

/// A guest registered by the PMS at check-in, with `jurisdictions` when given.
async fn guest(app: &TestApp, jurisdictions: Option<Value>) -> String {
    let mut fields = zhang_san();
    if let Some(j) = jurisdictions {
        fields["jurisdictions"] = j;
    }
    app.create_guest(fields).await
}

/// The guest (its own token) asks to correct its name: an open correction request (REQ-30).
async fn ask_correction(app: &TestApp, gid: &str) -> Value {
    let req = app
        .client
        .request(Method::PATCH, format!("{}/v1/guests/{gid}", app.addr))
        .bearer_auth(app.token_for("guest", gid))
        .header("X-Purpose", DSR.1)
        .json(&json!({"fields":{"full_name":"张三"}}));
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    r.body
}

async fn extend(app: &TestApp, role: &str, request_id: &str, body: Value) -> crate::helpers::Resp {
    app.call(
        Method::POST,
        &format!("/v1/dsr-requests/{request_id}/extend"),
        Some(role),
        Some(DSR.1),
        Some(body),
    )
    .await
}

async fn overdue(app: &TestApp) -> Vec<Value> {
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
    r.body["requests"].as_array().unwrap().clone()
}

/// The shipped policies with a holiday calendar whose February 2026 break runs from the 16th
/// to the 27th, so that 15 working days after 2026-02-02 pass one month (GDPR) and 30 days.
fn long_february(config: &mut guestvault::config::Config, dir: &std::path::Path) {
    let policies = dir.join("policies");
    crate::helpers::copy_policies(&policies);
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let holidays = std::fs::read_to_string(shipped.join("holidays.toml")).unwrap();
    let start = holidays.find("[cn.2026]").unwrap();
    let end = holidays.find("[cn.2027]").unwrap();
    let february: Vec<String> = [16, 17, 18, 19, 20, 23, 24, 25, 26, 27]
        .iter()
        .map(|d| format!("\"2026-02-{d}\""))
        .collect();
    let replaced = format!(
        "{}[cn.2026]\nholidays = [{}]\nworkdays = []\n\n{}",
        &holidays[..start],
        february.join(", "),
        &holidays[end..]
    );
    std::fs::write(policies.join("holidays.toml"), replaced).unwrap();
    config.policies.dir = Some(policies);
}

/// REQ-48, REQ-32: a guest may carry `jurisdictions`; `cn` is always one of them (the hotel is
/// in China, PIPL Art. 3(1)). An EU and CN guest's request is due at the earlier of 15 Chinese
/// working days and one month, and shows both dates and the clock that decided.
#[tokio::test]
async fn req_48_an_eu_and_cn_guest_is_due_at_the_earlier_of_15_working_days_and_one_month() {
    let app = spawn_app().await;
    // Friday 2026-09-25, 10:00 in Beijing (before the National Day holiday).
    app.clock.set(datetime!(2026-09-25 02:00 UTC));
    let eu = guest(&app, Some(json!(["eu", "cn"]))).await;
    let cn = guest(&app, None).await;

    // Stored canonical and shown like any field to the roles whose view allows it.
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{eu}"),
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["jurisdictions"], json!(["cn", "eu"]));

    // EU only is refused: the Chinese rules apply to every guest of the hotel.
    for (bad, code) in [
        (json!(["eu"]), "cn_required"),
        (json!(["cn", "us"]), "not_allowed"),
        (json!(["cn", "cn"]), "duplicate_value"),
        (json!("cn"), "wrong_type"),
    ] {
        let mut fields = zhang_san();
        for service in ["email", "membership_level", "dietary_needs"] {
            fields.as_object_mut().unwrap().remove(service);
        }
        fields["jurisdictions"] = bad;
        let r = app
            .call(
                Method::POST,
                "/v1/guests",
                Some("pms"),
                Some("check_in"),
                Some(json!({ "fields": fields })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(
            r.body["errors"],
            json!([{"field":"jurisdictions","code":code}])
        );
    }
    // A role without a view of the field cannot set it.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/guests/{cn}"),
            Some("concierge"),
            Some("guest_service"),
            Some(json!({"fields":{"jurisdictions":["cn","eu"]}})),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{cn}"),
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert!(
        r.body["fields"].get("jurisdictions").is_none(),
        "{}",
        r.text
    );

    let both = ask_correction(&app, &eu).await;
    assert_eq!(both["due_at"], "2026-10-22", "{both}");
    assert_eq!(both["clock"], "cn");
    assert_eq!(
        both["due_dates"],
        json!({"cn":"2026-10-22","eu":"2026-10-25"})
    );
    let only_cn = ask_correction(&app, &cn).await;
    assert_eq!(only_cn["due_at"], "2026-10-22");
    assert_eq!(only_cn["clock"], "cn");
    assert_eq!(only_cn["due_dates"], json!({"cn":"2026-10-22"}));

    // An erasure receipt carries the same, and its stored copy too.
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{eu}/erasure"),
            Some(DSR.0),
            Some(DSR.1),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["clock"], "cn");
    assert_eq!(r.body["due_dates"]["eu"], "2026-10-25");
    let rid = r.body["request_id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::GET,
            &format!("/v1/erasure-requests/{rid}"),
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(r.body["due_dates"]["eu"], "2026-10-25", "{}", r.text);
}

/// REQ-48: where one month is the earlier date (February, with a long break), the GDPR clock
/// decides, and the overdue list says so for each request (REQ-32).
#[tokio::test]
async fn req_32_the_overdue_list_shows_which_clock_each_request_runs_on() {
    let app = spawn_app_with(long_february).await;
    // Monday 2026-02-02, 10:00 in Beijing.
    app.clock.set(datetime!(2026-02-02 02:00 UTC));
    let eu = guest(&app, Some(json!(["cn", "eu"]))).await;
    let cn = guest(&app, Some(json!(["cn"]))).await;
    let eu_req = ask_correction(&app, &eu).await;
    assert_eq!(eu_req["clock"], "eu", "{eu_req}");
    assert_eq!(eu_req["due_at"], "2026-03-02");
    // 15 working days would be 2026-03-09: the 30-day cap decides the Chinese date.
    assert_eq!(
        eu_req["due_dates"],
        json!({"cn":"2026-03-04","eu":"2026-03-02"})
    );
    let cn_req = ask_correction(&app, &cn).await;
    assert_eq!(cn_req["clock"], "cn");
    assert_eq!(cn_req["due_at"], "2026-03-04");

    app.clock.set(datetime!(2026-03-03 02:00 UTC));
    let list = overdue(&app).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["request_id"], eu_req["request_id"]);
    assert_eq!(list[0]["clock"], "eu");
    assert_eq!(list[0]["due_dates"]["eu"], "2026-03-02");

    app.clock.set(datetime!(2026-03-05 02:00 UTC));
    let list = overdue(&app).await;
    let clocks: Vec<(&str, &str)> = list
        .iter()
        .map(|r| (r["clock"].as_str().unwrap(), r["due_at"].as_str().unwrap()))
        .collect();
    assert_eq!(clocks, [("eu", "2026-03-02"), ("cn", "2026-03-04")]);
    // The list names no guest.
    let text = serde_json::to_string(&list).unwrap();
    assert!(!text.contains(&eu) && !text.contains(&cn));
}

/// REQ-32 (GDPR Art. 12(3)): a DSR officer extends the GDPR clock by up to two months with a
/// reason code and an optional ticket; audited. The Chinese clock cannot be extended (422
/// `clock_not_extendable`), and an answered request cannot either.
#[tokio::test]
async fn req_32_only_the_gdpr_clock_extends_with_a_reason_by_two_months_at_most() {
    let app = spawn_app_with(long_february).await;
    app.clock.set(datetime!(2026-02-02 02:00 UTC));
    let eu = guest(&app, Some(json!(["cn", "eu"]))).await;
    let cn = guest(&app, None).await;
    let eu_id = ask_correction(&app, &eu).await["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cn_id = ask_correction(&app, &cn).await["request_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Without a reason, with an unknown one, with a bad ticket or months: 422, nothing changes.
    for (body, field, code) in [
        (json!({}), "reason", "required"),
        (json!({"reason":"too_busy"}), "reason", "unknown_reason"),
        (
            json!({"reason":"complex_request","ticket":"-bad ticket"}),
            "ticket",
            "invalid_format",
        ),
        (
            json!({"reason":"complex_request","months":3}),
            "months",
            "out_of_range",
        ),
    ] {
        let r = extend(&app, DSR.0, &eu_id, body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.body["errors"], json!([{"field":field,"code":code}]));
    }
    // Not a DSR officer: 403.
    let r = extend(
        &app,
        "front_desk",
        &eu_id,
        json!({"reason":"complex_request"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // One month, with a reason and a ticket: the GDPR date moves to 2026-04-02, the Chinese one
    // (2026-03-04) is now the earlier and decides.
    let r = extend(
        &app,
        DSR.0,
        &eu_id,
        json!({"reason":"complex_request","ticket":"DSR-2026.7","months":1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["due_dates"],
        json!({"cn":"2026-03-04","eu":"2026-04-02"})
    );
    assert_eq!(r.body["clock"], "cn");
    assert_eq!(r.body["due_at"], "2026-03-04");
    assert_eq!(r.body["extension"]["months"], 1);
    assert_eq!(r.body["extension"]["reason"], "complex_request");
    assert_eq!(r.body["extension"]["ticket"], "DSR-2026.7");
    // The second month, without a ticket; a third is refused.
    let r = extend(
        &app,
        DSR.0,
        &eu_id,
        json!({"reason":"number_of_requests","months":1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["due_dates"]["eu"], "2026-05-02");
    assert_eq!(r.body["extension"]["months"], 2);
    assert!(r.body["extension"].get("ticket").is_none());
    let r = extend(
        &app,
        DSR.0,
        &eu_id,
        json!({"reason":"complex_request","months":1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["code"], "extension_limit_reached");

    // The queue shows the extension.
    let r = app
        .call(
            Method::GET,
            "/v1/dsr-requests?kind=correction&status=pending_verification",
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    let queued = r.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["request_id"] == eu_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(queued["extension"]["reason"], "number_of_requests");

    // The Chinese clock is not extendable.
    let r = extend(&app, DSR.0, &cn_id, json!({"reason":"complex_request"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["code"], "clock_not_extendable");
    // An answered request (an erasure, done at once) cannot be extended; an unknown one is 404.
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{eu}/erasure"),
            Some(DSR.0),
            Some(DSR.1),
            Some(json!({})),
        )
        .await;
    let erasure = r.body["request_id"].as_str().unwrap().to_string();
    let r = extend(&app, DSR.0, &erasure, json!({"reason":"complex_request"})).await;
    assert_eq!(r.body["code"], "request_not_open", "{}", r.text);
    let r = extend(
        &app,
        DSR.0,
        "0191a1d2-0000-7000-8000-00000000beef",
        json!({"reason":"complex_request"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // Audited: two extensions allowed, with the reason code and ticket, and the refusals.
    let allowed = app.sql_column(
        "SELECT justification FROM audit_events WHERE action = 'dsr.extend' AND outcome = 'allowed' ORDER BY seq",
        &[],
    );
    assert_eq!(
        allowed,
        [
            Some("reason=complex_request ticket=DSR-2026.7".to_string()),
            Some("reason=number_of_requests".to_string())
        ]
    );
    let refused = app.sql_column(
        "SELECT reason FROM audit_events WHERE action = 'dsr.extend' AND outcome <> 'allowed' ORDER BY seq",
        &[],
    );
    for code in [
        "validation_failed",
        "extension_limit_reached",
        "clock_not_extendable",
        "request_not_open",
        "guest_not_found",
    ] {
        assert!(
            refused.iter().any(|r| r.as_deref() == Some(code)),
            "{code} not audited: {refused:?}"
        );
    }
}

async fn wait_for_events(app: &TestApp, action: &str, n: usize) -> Vec<Option<String>> {
    for _ in 0..100 {
        let rows = app.sql_column(
            "SELECT reason FROM audit_events WHERE action = ?1 ORDER BY seq",
            &[&action],
        );
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {action} event from the background sweeper");
}

/// REQ-32: the background sweeper (no request to the API) escalates a request once 80% of its
/// time has passed and raises an alert the day after its due date, each once: an audit event,
/// a log line and a Prometheus counter, naming the request and its clock, never the guest.
#[tokio::test]
async fn req_32_a_request_escalates_at_80_percent_and_alerts_when_overdue_by_itself() {
    let app = spawn_app_with(|config, _| config.retention.sweep_interval_secs = 1).await;
    app.clock.set(datetime!(2026-09-25 02:00 UTC));
    let gid = guest(&app, Some(json!(["cn", "eu"]))).await;
    let rid = ask_correction(&app, &gid).await["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Due 2026-10-22, 27 days after receipt: 80% is day 21.6. On Oct 16 (day 21) nothing.
    app.clock.set(datetime!(2026-10-16 02:00 UTC));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let none = app.sql_column(
        "SELECT reason FROM audit_events WHERE action IN ('dsr.escalated', 'dsr.overdue')",
        &[],
    );
    assert!(none.is_empty(), "{none:?}");
    // Oct 17 (day 22): escalated.
    app.clock.set(datetime!(2026-10-17 02:00 UTC));
    let escalated = wait_for_events(&app, "dsr.escalated", 1).await;
    assert_eq!(
        escalated,
        [Some(format!("request {rid} (correction) escalated"))]
    );
    // Oct 22, the due date: not overdue yet. Oct 23: overdue.
    app.clock.set(datetime!(2026-10-22 15:00 UTC));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let none = app.sql_column(
        "SELECT reason FROM audit_events WHERE action = 'dsr.overdue'",
        &[],
    );
    assert!(none.is_empty(), "{none:?}");
    app.clock.set(datetime!(2026-10-23 02:00 UTC));
    let alerted = wait_for_events(&app, "dsr.overdue", 1).await;
    assert_eq!(
        alerted,
        [Some(format!("request {rid} (correction) overdue"))]
    );
    // Once each, whatever the number of sweeps after.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rows = app.sql_rows(
        "SELECT action, actor, rules, justification, COALESCE(guest_id, '') FROM audit_events
         WHERE action IN ('dsr.escalated', 'dsr.overdue') ORDER BY seq",
        &[],
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row[1].as_deref(), Some("system:dsr_deadlines"));
        assert_eq!(row[2].as_deref(), Some("[\"deadlines.cn\"]"));
        assert_eq!(row[3].as_deref(), Some("kind=correction clock=cn"));
        assert_eq!(row[4].as_deref(), Some(""), "no guest id");
    }
    let logs = captured_logs();
    assert!(logs.contains("data-subject request overdue"), "{logs}");
    assert!(logs.contains(&rid));
    let metrics = app
        .client
        .get(format!("{}/metrics", app.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for alert in ["escalated", "overdue"] {
        assert!(
            metrics.contains(&format!(
                "guestvault_dsr_deadline_alerts_total{{alert=\"{alert}\",clock=\"cn\"}}"
            )),
            "{metrics}"
        );
    }
    // The overdue list shows it with its clock.
    let list = overdue(&app).await;
    assert_eq!(list[0]["request_id"], rid.as_str());
    assert_eq!(list[0]["clock"], "cn");
    assert_eq!(list[0]["due_dates"]["eu"], "2026-10-25");
}
