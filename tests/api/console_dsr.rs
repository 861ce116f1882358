//! The console's pages for the DSR officer (issue 17): data-subject requests (the queue with
//! China working-day deadlines, correction review and decision, erasure receipts, the access
//! package, desk intake) and guest lookup (search by POST, masked record, reveal with a reason,
//! consents, stays, requests, audit events). Role gating on every page and action, CSRF
//! refusals, headers and weight, audit events for the page reads, and no personal data in any
//! URL or log line.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::console::{assert_console_headers, audit_rows, Browser, Page};
use crate::helpers::{captured_logs, spawn_app, zhang_san, TestApp};

const DSR_ACTOR: &str = "test-dsr_officer";

/// A guest asks (its own token) to correct its name: a correction request (REQ-30).
async fn guest_asks_correction(app: &TestApp, gid: &str, name: &str) -> String {
    let req = app
        .client
        .request(Method::PATCH, format!("{}/v1/guests/{gid}", app.addr))
        .bearer_auth(app.token_for("guest", gid))
        .header("X-Purpose", "data_subject_request")
        .json(&json!({"fields":{"full_name": name}}));
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    r.body["request_id"].as_str().unwrap().to_string()
}

async fn own_read(app: &TestApp, gid: &str) -> crate::helpers::Resp {
    let req = app
        .client
        .get(format!("{}/v1/guests/{gid}", app.addr))
        .bearer_auth(app.token_for("guest", gid))
        .header("X-Purpose", "data_subject_request");
    app.send(req).await
}

fn reasons_of(app: &TestApp, actor: &str) -> Vec<String> {
    app.sql_column(
        "SELECT COALESCE(reason, '') FROM audit_events WHERE actor = ?1 ORDER BY seq",
        &[&actor],
    )
    .into_iter()
    .flatten()
    .collect()
}

/// Every URL a page holds or sends the browser to: links, form actions, the redirect.
fn urls(p: &Page) -> Vec<String> {
    let mut out = vec![p.location().to_string()];
    for attr in ["href=\"", "action=\"", "formaction=\"", "src=\""] {
        for (i, _) in p.text.match_indices(attr) {
            let rest = &p.text[i + attr.len()..];
            out.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    out
}

fn percent(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn the_dsr_officer_signs_in_and_sees_only_its_pages() {
    let app = spawn_app().await;
    let mut b = Browser::signed_in(&app, "dsr_officer").await;
    let home = b.get("/console/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text.contains("href=\"/console/dsr\""), "{}", home.text);
    assert!(home.text.contains("href=\"/console/guest\""));
    assert!(!home.text.contains("href=\"/console/audit\""));
    // The audit trail is the compliance officer's: 403, and audited as refused.
    let r = b.get("/console/audit").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // The requests page reads through the audited desk calls (REQ-32).
    let before = audit_rows(&app, DSR_ACTOR).len();
    let page = b.get("/console/dsr").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let rows = audit_rows(&app, DSR_ACTOR);
    let new: Vec<_> = rows[before..].to_vec();
    assert_eq!(new.len(), 3, "{new:?}");
    for (action, role, purpose, outcome) in &new {
        assert!(
            action == "guest.erase" || action == "correction.decide",
            "{action}"
        );
        assert_eq!(role, "dsr_officer");
        assert_eq!(purpose.as_deref(), Some("data_subject_request"));
        assert_eq!(outcome, "allowed");
    }
    let reasons = reasons_of(&app, DSR_ACTOR);
    for r in [
        "open requests listed",
        "correction requests listed",
        "erasure receipts listed",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r}: {reasons:?}");
    }
}

/// REQ-32: the queue shows each open request's due date (15 Chinese working days, the
/// National Day holiday not counted) and the working days left, then "overdue".
#[tokio::test]
async fn the_queue_shows_due_dates_in_china_working_days_and_what_is_left() {
    let app = spawn_app().await;
    // Friday 2026-09-25, 10:00 in Beijing: due 2026-10-22 (README, "Deadlines").
    app.clock.set(datetime!(2026-09-25 02:00 UTC));
    let gid = app.create_guest(zhang_san()).await;
    let rid = guest_asks_correction(&app, &gid, "张三").await;
    let mut b = Browser::signed_in(&app, "dsr_officer").await;
    let csrf = b.csrf().await;
    let access = b
        .post(
            "/console/dsr/intake",
            &[("csrf", &csrf), ("kind", "access"), ("guest_id", &gid)],
        )
        .await;
    assert_eq!(access.status, StatusCode::OK, "{}", access.text);
    assert!(access.text.contains("2026-10-22"), "{}", access.text);
    let page = b.get("/console/dsr").await;
    assert_eq!(page.status, StatusCode::OK);
    let row = |p: &Page, id: &str| {
        let at = p
            .text
            .find(&format!("data-request=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} not in the queue: {}", p.text));
        p.text[at..at + p.text[at..].find("</tr>").unwrap()].to_string()
    };
    let corr = row(&page, &rid);
    assert!(corr.contains("2026-10-22"), "{corr}");
    assert!(corr.contains("15 working days left"), "{corr}");
    // Which clock set the date (REQ-32, REQ-48): a guest without `eu` runs on China's alone.
    assert!(corr.contains("data-clock=\"cn\""), "{corr}");
    assert!(corr.contains("China clock: 15 working days"), "{corr}");
    assert!(!corr.contains(" · EU "), "{corr}");
    assert!(
        page.text.contains(&format!("data-correction=\"{rid}\"")),
        "a pending correction is also in the verification list"
    );
    // Tuesday 2026-10-20 (after the holiday): two working days left (21st, 22nd).
    app.clock.set(datetime!(2026-10-20 02:00 UTC));
    let page = b.get("/console/dsr").await;
    assert!(row(&page, &rid).contains("2 working days left"));
    // Friday 2026-10-23: overdue by one day, and the API's overdue list agrees.
    app.clock.set(datetime!(2026-10-23 02:00 UTC));
    let page = b.get("/console/dsr").await;
    let corr = row(&page, &rid);
    assert!(corr.contains("data-deadline=\"overdue\""), "{corr}");
    assert!(corr.contains("Overdue by 1 days"), "{corr}");
    let overdue = app
        .call(
            Method::GET,
            "/v1/erasure-requests?status=overdue",
            Some("dsr_officer"),
            Some("data_subject_request"),
            None,
        )
        .await;
    assert!(overdue.text.contains(&rid), "{}", overdue.text);
    // In Chinese, the same page.
    b.lang = "zh-CN";
    let page = b.get("/console/dsr").await;
    assert!(page.text.contains("已逾期"), "{}", page.text);
    assert!(page.text.contains("数据主体请求"));
}

/// REQ-32, REQ-48: for a guest under the GDPR too, the queue shows both due dates, the clock
/// that decides, and an extension of the GDPR clock with its reason code.
#[tokio::test]
async fn the_queue_shows_both_clocks_and_an_extension_for_an_eu_guest() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-09-25 02:00 UTC));
    let mut fields = zhang_san();
    fields["jurisdictions"] = json!(["cn", "eu"]);
    let gid = app.create_guest(fields).await;
    let rid = guest_asks_correction(&app, &gid, "张三").await;
    let r = app
        .call(
            Method::POST,
            &format!("/v1/dsr-requests/{rid}/extend"),
            Some("dsr_officer"),
            Some("data_subject_request"),
            Some(json!({"reason":"complex_request","ticket":"T-9"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut b = Browser::signed_in(&app, "dsr_officer").await;
    let page = b.get("/console/dsr").await;
    let at = page.text.find(&format!("data-request=\"{rid}\"")).unwrap();
    let row = &page.text[at..at + page.text[at..].find("</tr>").unwrap()];
    assert!(row.contains("data-clock=\"cn\""), "{row}");
    assert!(
        row.contains(" · EU <time datetime=\"2026-12-25\">"),
        "{row}"
    );
    assert!(row.contains("data-extension=\"2\""), "{row}");
    assert!(
        row.contains("complex_request") && row.contains("T-9"),
        "{row}"
    );
    assert!(!row.contains(&gid), "the queue names no guest");
}

/// REQ-30: the officer reviews the proposed value, approves with a reason code; the request
/// leaves the queue and the record holds the new value. A bad reason changes nothing.
#[tokio::test]
async fn approving_a_correction_applies_it_and_it_leaves_the_queue() {
    let app = spawn_app().await;
    let gid = app.create_guest(zhang_san()).await;
    let rid = guest_asks_correction(&app, &gid, "张三").await;
    let other = guest_asks_correction(&app, &gid, "张三二").await;
    let mut b = Browser::signed_in(&app, "dsr_officer").await;
    let review = b.get(&format!("/console/dsr/corrections/{rid}")).await;
    assert_eq!(review.status, StatusCode::OK, "{}", review.text);
    assert!(review.text.contains("张三"), "the proposed value is shown");
    let csrf = review.csrf();
    let decide = format!("/console/dsr/corrections/{rid}/decide");
    let bad = b
        .post(
            &decide,
            &[
                ("csrf", &csrf),
                ("decision", "apply"),
                ("reason", "because"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    assert!(bad.text.contains("unknown_reason"), "{}", bad.text);
    assert!(!bad.text.contains("because"), "the value is not echoed");
    assert_eq!(
        own_read(&app, &gid).await.body["fields"]["full_name"],
        "张三丰"
    );
    let done = b
        .post(
            &decide,
            &[
                ("csrf", &csrf),
                ("decision", "apply"),
                ("reason", "document_checked"),
                ("ticket", "DSR-42"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("id=\"notice\""), "{}", done.text);
    assert!(!done.text.contains(&format!("data-correction=\"{rid}\"")));
    assert!(!done.text.contains(&format!("data-request=\"{rid}\"")));
    assert!(done.text.contains(&format!("data-correction=\"{other}\"")));
    assert_eq!(
        own_read(&app, &gid).await.body["fields"]["full_name"],
        "张三"
    );
    let j: Vec<String> = app
        .sql_column(
            "SELECT COALESCE(justification, '') FROM audit_events WHERE actor = ?1 AND action = 'correction.decide'",
            &[&DSR_ACTOR],
        )
        .into_iter()
        .flatten()
        .collect();
    assert!(
        j.iter()
            .any(|x| x == "reason=document_checked ticket=DSR-42"),
        "{j:?}"
    );
    // Deciding it again: 404, as the API answers.
    let again = b
        .post(
            &decide,
            &[
                ("csrf", &csrf),
                ("decision", "reject"),
                ("reason", "document_checked"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // Reject the other: it leaves the queue, the name stays.
    let r = b
        .post(
            &format!("/console/dsr/corrections/{other}/decide"),
            &[
                ("csrf", &csrf),
                ("decision", "reject"),
                ("reason", "document_not_provided"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains(&format!("data-correction=\"{other}\"")));
    assert_eq!(
        own_read(&app, &gid).await.body["fields"]["full_name"],
        "张三"
    );
}

/// REQ-24, REQ-28, REQ-30, REQ-32: requests taken in at the desk. Erasure is carried out
/// (receipt, then in the receipts list); an access request waits in the queue until the
/// package is exported; a correction request waits for verification.
#[tokio::test]
async fn requests_taken_in_at_the_desk_erase_record_access_and_record_corrections() {
    let app = spawn_app().await;
    let gid = app.create_guest(zhang_san()).await;
    // A guest who stayed: its registration is kept (restricted) by the erasure below; one who
    // never stayed would be erased whole (issue 16 §3).
    let stay = serde_json::json!({"fields":{"property":"SHA01","check_in":"2026-11-20",
        "check_out":"2026-11-23","room_number":"1208"}});
    let r = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/guests/{gid}/stays"),
            Some("pms"),
            Some("check_in"),
            Some(stay),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut b = Browser::signed_in(&app, "dsr_officer").await;
    let csrf = b.csrf().await;
    let intake = "/console/dsr/intake";

    // Access: recorded, open, answered by the export.
    let a = b
        .post(
            intake,
            &[("csrf", &csrf), ("kind", "access"), ("guest_id", &gid)],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let at = a.text.find("id=\"recorded-id\">").unwrap() + "id=\"recorded-id\">".len();
    let access_id = a.text[at..at + 36].to_string();
    let queue = b.get("/console/dsr").await;
    assert!(queue
        .text
        .contains(&format!("data-request=\"{access_id}\"")));
    let no_reason = b
        .post(
            "/console/dsr/export",
            &[("csrf", &csrf), ("guest_id", &gid), ("reason", "")],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pkg = b
        .post(
            "/console/dsr/export",
            &[
                ("csrf", &csrf),
                ("guest_id", &gid),
                ("reason", "data_subject_request"),
                ("ticket", "DSR-7"),
            ],
        )
        .await;
    assert_eq!(pkg.status, StatusCode::OK, "{}", pkg.text);
    assert!(pkg.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_console_headers("/console/dsr/export", &pkg);
    let v: Value = serde_json::from_str(&pkg.text).unwrap();
    assert_eq!(v["format"], "guestvault-export/v1");
    assert_eq!(v["guest_id"], gid.as_str());
    assert_eq!(v["fields"]["mobile"], "+8613812345678");
    let queue = b.get("/console/dsr").await;
    assert!(
        !queue
            .text
            .contains(&format!("data-request=\"{access_id}\"")),
        "the export answered the access request"
    );
    let status = app.sql_text(
        "SELECT status FROM dsr_requests WHERE request_id = ?1",
        &[&access_id],
    );
    assert_eq!(status, "completed");

    // Correction: recorded for verification, not applied.
    let c = b
        .post(
            intake,
            &[
                ("csrf", &csrf),
                ("kind", "correction"),
                ("guest_id", &gid),
                ("field", "email"),
                ("value", "new.address@example.com"),
            ],
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    let at = c.text.find("id=\"recorded-id\">").unwrap() + "id=\"recorded-id\">".len();
    let corr_id = c.text[at..at + 36].to_string();
    assert_eq!(
        own_read(&app, &gid).await.body["fields"]["email"],
        "zhang.sanfeng@example.com"
    );
    let queue = b.get("/console/dsr").await;
    assert!(queue
        .text
        .contains(&format!("data-correction=\"{corr_id}\"")));
    let bad = b
        .post(
            intake,
            &[
                ("csrf", &csrf),
                ("kind", "correction"),
                ("guest_id", &gid),
                ("field", "no_such_field"),
                ("value", "x"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);

    // Erasure: not without the confirmation; then the receipt, and it is in the list.
    let unconfirmed = b
        .post(
            intake,
            &[
                ("csrf", &csrf),
                ("kind", "erasure"),
                ("guest_id", &gid),
                ("reason", "guest_request"),
            ],
        )
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(own_read(&app, &gid).await.status, StatusCode::OK);
    let e = b
        .post(
            intake,
            &[
                ("csrf", &csrf),
                ("kind", "erasure"),
                ("guest_id", &gid),
                ("reason", "guest_request"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(e.status, StatusCode::OK, "{}", e.text);
    assert!(e.text.contains("id=\"receipt\""));
    assert!(
        e.text.contains("data-status=\"partially_completed\""),
        "{}",
        e.text
    );
    assert!(e.text.contains("<code>mobile</code>"), "mobile is erased");
    assert!(
        e.text.contains("<code>id_number</code>"),
        "id_number is kept"
    );
    let at = e.text.find("id=\"receipt-id\">").unwrap() + "id=\"receipt-id\">".len();
    let erasure_id = e.text[at..at + 36].to_string();
    let front_desk = app
        .call(
            Method::GET,
            &format!("/v1/guests/{gid}"),
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(
        front_desk.status,
        StatusCode::FORBIDDEN,
        "restricted to storage"
    );
    assert_eq!(front_desk.body["code"], "restricted");
    let queue = b.get("/console/dsr").await;
    assert!(queue
        .text
        .contains(&format!("href=\"/console/dsr/requests/{erasure_id}\"")));
    // The guest is restricted, not gone: its pending correction stays, to be rejected (a
    // restricted guest's data cannot be changed).
    assert!(queue
        .text
        .contains(&format!("data-correction=\"{corr_id}\"")));
    let apply = b
        .post(
            &format!("/console/dsr/corrections/{corr_id}/decide"),
            &[
                ("csrf", &csrf),
                ("decision", "apply"),
                ("reason", "document_checked"),
            ],
        )
        .await;
    assert_eq!(apply.status, StatusCode::FORBIDDEN, "{}", apply.text);
    let receipt = b.get(&format!("/console/dsr/requests/{erasure_id}")).await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.text);
    assert!(receipt.text.contains("data-status=\"partially_completed\""));
    assert!(
        receipt.text.contains("<code>identity</code>"),
        "{}",
        receipt.text
    );
}

/// Search by POST only, the masked view, a reveal with a reason code (audited), consents,
/// stays, the guest's requests and its audit events; no searched or revealed value in any
/// URL, redirect or log line (canaries).
#[tokio::test]
async fn guest_lookup_searches_by_post_reveals_with_a_reason_and_leaks_nothing() {
    let app = spawn_app().await;
    const MOBILE: &str = "13955501717";
    const NAME: &str = "欧阳金丝雀";
    const EMAIL: &str = "canary.h17d@example.com";
    const NEW_EMAIL: &str = "canary.h17d.new@example.com";
    let mut fields = zhang_san();
    fields["full_name"] = json!(NAME);
    fields["mobile"] = json!(MOBILE);
    fields["email"] = json!(EMAIL);
    let gid = app.create_guest(fields).await;
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/guests/{gid}/consents/marketing"),
            Some("pms"),
            Some("check_in"),
            Some(json!({"notice_version":"2026-11","channel":"front_desk"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let today = time::OffsetDateTime::now_utc().date();
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{gid}/stays"),
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields":{"property":"SHA01","check_in":(today - time::Duration::days(2)).to_string(),"check_out":today.to_string(),"room_number":"1208"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let mut b = Browser::signed_in(&app, "dsr_officer").await;
    let mut pages = Vec::new();
    let form = b.get("/console/guest").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(form
        .text
        .contains("method=\"post\" action=\"/console/guest\""));
    let csrf = form.csrf();
    pages.push(form);
    let found = b
        .post(
            "/console/guest",
            &[("csrf", &csrf), ("field", "mobile"), ("value", MOBILE)],
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert!(found
        .text
        .contains(&format!("href=\"/console/guests/{gid}\"")));
    assert!(
        !found.text.contains(MOBILE),
        "the searched value is not shown back"
    );
    pages.push(found);
    // An ID-number search needs a reason (search_requires_justification).
    let r = b
        .post(
            "/console/guest",
            &[
                ("csrf", &csrf),
                ("field", "id_number"),
                ("value", "11010519491231002X"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    pages.push(r);

    let record = b.get(&format!("/console/guests/{gid}")).await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.text);
    assert!(!record.text.contains(MOBILE), "masked in the record");
    assert!(
        !record.text.contains(NAME),
        "full_name is masked for the officer"
    );
    assert!(record.text.contains("id=\"consents\""));
    assert!(record.text.contains("marketing"));
    assert!(
        record.text.contains("2026-11"),
        "notice version in the ledger"
    );
    assert!(record.text.contains("SHA01"), "the stay");
    assert!(
        record.text.contains("guest.create"),
        "the guest's audit events"
    );
    pages.push(record);
    let before = app.audit_count();
    let no_reason = b
        .post(
            &format!("/console/guests/{gid}/reveal"),
            &[("csrf", &csrf), ("field", "mobile")],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!no_reason.text.contains(MOBILE));
    pages.push(no_reason);
    let shown = b
        .post(
            &format!("/console/guests/{gid}/reveal"),
            &[
                ("csrf", &csrf),
                ("field", "mobile"),
                ("reason", "data_subject_request"),
                ("ticket", "DSR-9"),
            ],
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert!(shown
        .text
        .contains(&format!("data-revealed=\"mobile\">+86{MOBILE}<")));
    assert!(app.audit_count() > before);
    let j: Vec<String> = app
        .sql_column(
            "SELECT COALESCE(justification, '') FROM audit_events WHERE actor = ?1 AND action = 'guest.reveal' AND outcome = 'allowed'",
            &[&DSR_ACTOR],
        )
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        j,
        vec!["reason=data_subject_request ticket=DSR-9".to_string()]
    );
    pages.push(shown);
    // Each page read is audited under the officer's role and purpose.
    let actions: Vec<String> = audit_rows(&app, DSR_ACTOR)
        .into_iter()
        .filter(|(_, role, purpose, _)| {
            role == "dsr_officer" && purpose.as_deref() == Some("data_subject_request")
        })
        .map(|(a, ..)| a)
        .collect();
    for a in [
        "guest.search",
        "guest.read",
        "guest.reveal",
        "consent.read",
        "stay.read",
        "guest.export",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
    // A desk correction with a new value: in the POST body only.
    let c = b
        .post(
            "/console/dsr/intake",
            &[
                ("csrf", &csrf),
                ("kind", "correction"),
                ("guest_id", &gid),
                ("field", "email"),
                ("value", NEW_EMAIL),
            ],
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    pages.push(c);
    pages.push(b.get("/console/dsr").await);

    let canaries = [MOBILE, NAME, EMAIL, NEW_EMAIL];
    for p in &pages {
        assert!(p.text.len() < 150_000, "page weight {}", p.text.len());
        for u in urls(p) {
            for c in canaries {
                assert!(
                    !u.contains(c) && !u.contains(&percent(c)),
                    "{c} in a URL: {u}"
                );
            }
        }
    }
    let logs = captured_logs();
    for c in canaries {
        assert!(!logs.contains(c), "{c} in the logs");
    }
    for line in logs.lines().filter(|l| l.contains("/console/guest")) {
        assert!(!line.contains(MOBILE), "{line}");
    }
}

/// Role gating: a role whose policy does not allow the DSR purpose (the compliance officer)
/// gets 403 on every DSR page and action, with a valid session and CSRF token, and nothing
/// changes.
#[tokio::test]
async fn every_dsr_page_and_action_answers_403_to_a_role_the_policy_does_not_allow() {
    let app = spawn_app().await;
    let gid = app.create_guest(zhang_san()).await;
    let rid = guest_asks_correction(&app, &gid, "张三").await;
    let mut b = Browser::signed_in(&app, "compliance_officer").await;
    let home = b.get("/console/").await;
    assert!(!home.text.contains("href=\"/console/dsr\""));
    assert!(!home.text.contains("href=\"/console/guest\""));
    let csrf = b.csrf().await;
    for path in [
        "/console/dsr".to_string(),
        "/console/guest".to_string(),
        format!("/console/guests/{gid}"),
        format!("/console/dsr/corrections/{rid}"),
        format!("/console/dsr/requests/{rid}"),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert_console_headers(&path, &r);
    }
    let decide = format!("/console/dsr/corrections/{rid}/decide");
    let reveal = format!("/console/guests/{gid}/reveal");
    let posts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/console/guest",
            vec![("field", "mobile"), ("value", "13812345678")],
        ),
        (
            reveal.as_str(),
            vec![("field", "mobile"), ("reason", "data_subject_request")],
        ),
        (
            decide.as_str(),
            vec![("decision", "apply"), ("reason", "document_checked")],
        ),
        (
            "/console/dsr/intake",
            vec![("kind", "erasure"), ("guest_id", &gid), ("confirm", "yes")],
        ),
        (
            "/console/dsr/intake",
            vec![("kind", "access"), ("guest_id", &gid)],
        ),
        (
            "/console/dsr/intake",
            vec![
                ("kind", "correction"),
                ("guest_id", &gid),
                ("field", "email"),
                ("value", "a@b.cn"),
            ],
        ),
        (
            "/console/dsr/export",
            vec![("guest_id", &gid), ("reason", "data_subject_request")],
        ),
    ];
    for (path, mut form) in posts {
        form.push(("csrf", &csrf));
        let r = b.post(path, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert_console_headers(path, &r);
    }
    // Nothing changed: the guest is whole, the correction still pending, no request recorded.
    assert_eq!(
        own_read(&app, &gid).await.body["fields"]["full_name"],
        "张三丰"
    );
    assert_eq!(
        app.sql_text(
            "SELECT status FROM dsr_requests WHERE request_id = ?1",
            &[&rid]
        ),
        "pending_verification"
    );
    assert_eq!(app.sql_i64("SELECT COUNT(*) FROM dsr_requests", &[]), 1);
    // The refusals are in the trail.
    let denied = audit_rows(&app, "test-compliance_officer")
        .into_iter()
        .filter(|(_, _, _, o)| o == "denied")
        .count();
    assert!(denied >= 10, "{denied}");
}

/// Every DSR form refuses a POST without the session's CSRF token, and changes and audits
/// nothing; every DSR page carries the console's headers and stays under 150 KB.
#[tokio::test]
async fn dsr_forms_refuse_a_missing_csrf_token_and_pages_carry_the_headers() {
    let app = spawn_app().await;
    let gid = app.create_guest(zhang_san()).await;
    let rid = guest_asks_correction(&app, &gid, "张三").await;
    let mut b = Browser::signed_in(&app, "dsr_officer").await;
    let before = app.audit_count();
    let decide = format!("/console/dsr/corrections/{rid}/decide");
    let reveal = format!("/console/guests/{gid}/reveal");
    for path in [
        "/console/guest",
        reveal.as_str(),
        decide.as_str(),
        "/console/dsr/intake",
        "/console/dsr/export",
    ] {
        for bad in ["", "0000", &"a".repeat(64)] {
            let r = b
                .post(
                    path,
                    &[
                        ("csrf", bad),
                        ("kind", "erasure"),
                        ("confirm", "yes"),
                        ("guest_id", &gid),
                        ("decision", "apply"),
                        ("reason", "document_checked"),
                        ("field", "mobile"),
                        ("value", "13812345678"),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} with {bad:?}");
            assert!(r.text.contains("did not come from this console"), "{path}");
            assert_console_headers(path, &r);
        }
    }
    assert_eq!(app.audit_count(), before, "a refused form reads nothing");
    assert_eq!(own_read(&app, &gid).await.status, StatusCode::OK);
    for path in [
        "/console/dsr".to_string(),
        "/console/guest".to_string(),
        format!("/console/guests/{gid}"),
        format!("/console/dsr/corrections/{rid}"),
        "/console/guests/not-a-guest".to_string(),
        "/console/dsr/corrections/not-a-request".to_string(),
    ] {
        let r = b.get(&path).await;
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status
        );
        assert!(r.text.len() < 150_000, "{path}: {} bytes", r.text.len());
        assert_console_headers(&path, &r);
    }
    // Signed out, every DSR page sends the browser to the sign-in page.
    let mut anon = Browser::new(&app);
    for path in ["/console/dsr", "/console/guest"] {
        let r = anon.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.location(), "/console/sign-in");
    }
}
