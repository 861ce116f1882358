//! The compliance officer's request deadlines (`/console/deadlines`, issue 17), the one
//! deadline rule shared with the API's overdue list (the China date, REQ-32), and a guest's
//! audit events paged with a cursor and authorized as `guest.history`.

use reqwest::{Method, StatusCode};
use serde_json::json;
use time::macros::datetime;

use crate::console::{assert_console_headers, audit_rows, Browser, Page};
use crate::helpers::{spawn_app, spawn_app_with, zhang_san, TestApp};

const CO_ACTOR: &str = "test-compliance_officer";
const DSR_ACTOR: &str = "test-dsr_officer";

/// A guest asks (its own token) to correct its name: a correction request (REQ-30), due in
/// 15 Chinese working days.
async fn guest_asks_correction(app: &TestApp, gid: &str) -> String {
    let req = app
        .client
        .request(Method::PATCH, format!("{}/v1/guests/{gid}", app.addr))
        .bearer_auth(app.token_for("guest", gid))
        .header("X-Purpose", "data_subject_request")
        .json(&json!({"fields":{"full_name": "张三"}}));
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    r.body["request_id"].as_str().unwrap().to_string()
}

/// The `<tr>` of request `id` in the section `section` of `p`, or `None`.
fn row_in(p: &Page, section: &str, id: &str) -> Option<String> {
    let start = p.text.find(&format!("id=\"{section}\""))?;
    let rest = &p.text[start..];
    let end = rest.find("</section>").unwrap_or(rest.len());
    let sec = &rest[..end];
    let at = sec.find(&format!("data-request=\"{id}\""))?;
    Some(sec[at..at + sec[at..].find("</tr>").unwrap()].to_string())
}

async fn overdue_ids(app: &TestApp) -> String {
    let r = app
        .call(
            Method::GET,
            "/v1/erasure-requests?status=overdue",
            Some("dsr_officer"),
            Some("data_subject_request"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.text
}

/// REQ-32, REQ-16: the compliance officer lists every open and overdue request (kind, status,
/// received, due, days left or overdue by), read-only and naming no guest, through an audited
/// `audit.read` under `audit`; the DSR officer's page is its own, and each is 403 to the other.
#[tokio::test]
async fn the_compliance_officer_lists_overdue_requests_read_only_and_audited() {
    let app = spawn_app().await;
    // Friday 2026-09-25, 10:00 in Beijing: due 2026-10-22 (National Day off).
    app.clock.set(datetime!(2026-09-25 02:00 UTC));
    let gid = app.create_guest(zhang_san()).await;
    let late = guest_asks_correction(&app, &gid).await;
    let mut dsr = Browser::signed_in(&app, "dsr_officer").await;
    let csrf = dsr.csrf().await;
    // An access request taken in at the desk a week later: still open on the 23rd.
    app.clock.set(datetime!(2026-10-02 02:00 UTC));
    let access = dsr
        .post(
            "/console/dsr/intake",
            &[("csrf", &csrf), ("kind", "access"), ("guest_id", &gid)],
        )
        .await;
    assert_eq!(access.status, StatusCode::OK, "{}", access.text);
    // Friday 2026-10-23: the correction is overdue by one day.
    app.clock.set(datetime!(2026-10-23 02:00 UTC));

    let mut co = Browser::signed_in(&app, "compliance_officer").await;
    let home = co.get("/console/").await;
    assert!(
        home.text.contains("href=\"/console/deadlines\""),
        "{}",
        home.text
    );
    assert!(!home.text.contains("href=\"/console/dsr\""));
    let before = audit_rows(&app, CO_ACTOR).len();
    let page = co.get("/console/deadlines").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_console_headers("/console/deadlines", &page);
    assert!(page.text.contains("aria-current=\"page\""));
    assert!(
        page.text.contains("datetime=\"2026-10-23\""),
        "today in China"
    );
    let row = row_in(&page, "overdue", &late).expect("the late request is overdue");
    assert!(row.contains("data-kind=\"correction\""), "{row}");
    assert!(
        row.contains("data-status=\"pending_verification\""),
        "{row}"
    );
    assert!(row.contains("2026-10-22"), "{row}");
    assert!(
        row.contains("2026-09-25 10:00:00"),
        "received, China time: {row}"
    );
    assert!(row.contains("Overdue by 1 days"), "{row}");
    assert!(row_in(&page, "upcoming", &late).is_none());
    let open: Vec<String> = app
        .sql_column(
            "SELECT request_id FROM dsr_requests WHERE kind = 'access' AND status = 'received'",
            &[],
        )
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(open.len(), 1);
    let up = row_in(&page, "upcoming", &open[0]).expect("the access request is open");
    assert!(up.contains("data-deadline=\"open\""), "{up}");
    assert!(up.contains("working days left"), "{up}");
    assert!(
        page.text.contains("id=\"overdue-count\">1<"),
        "{}",
        page.text
    );
    // Read-only, and no guest: no id, no link into a request, no form but the frame's.
    assert!(!page.text.contains(&gid), "no guest id on the page");
    assert!(!page.text.contains("张三"));
    assert!(
        !page.text.contains("/console/dsr/"),
        "no link into a request"
    );
    assert!(!page.text.contains("/console/guests/"));
    assert_eq!(
        page.text.matches("<form").count(),
        2,
        "sign-out and language only"
    );
    // One audited read: audit.read under audit, allowed.
    let new = audit_rows(&app, CO_ACTOR)[before..].to_vec();
    assert_eq!(
        new,
        vec![(
            "audit.read".to_string(),
            "compliance_officer".to_string(),
            Some("audit".to_string()),
            "allowed".to_string()
        )]
    );
    let reason: Vec<Option<String>> = app.sql_column(
        "SELECT reason FROM audit_events WHERE actor = ?1 ORDER BY seq DESC LIMIT 1",
        &[&CO_ACTOR],
    );
    assert_eq!(reason, vec![Some("dsr deadlines read".to_string())]);
    // The DSR officer's own page handles the same request (a review link); this one is 403.
    let queue = dsr.get("/console/dsr").await;
    assert!(queue
        .text
        .contains(&format!("href=\"/console/dsr/corrections/{late}\"")));
    assert!(!queue.text.contains("href=\"/console/deadlines\""));
    let r = dsr.get("/console/deadlines").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_console_headers("/console/deadlines", &r);
    let denied = audit_rows(&app, DSR_ACTOR);
    assert_eq!(
        denied.last().unwrap(),
        &(
            "audit.read".to_string(),
            "dsr_officer".to_string(),
            Some("audit".to_string()),
            "denied".to_string()
        )
    );
    // And the DSR officer's page is 403 to the compliance officer.
    let r = co.get("/console/dsr").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // The admin has no audit.read either.
    let mut admin = Browser::signed_in(&app, "admin").await;
    let r = admin.get("/console/deadlines").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // Signed out: to the sign-in page.
    let r = Browser::new(&app).get("/console/deadlines").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/console/sign-in");
    // In Chinese.
    co.lang = "zh-CN";
    let zh = co.get("/console/deadlines").await;
    assert!(zh.text.contains("逾期的请求"), "{}", zh.text);
    assert!(zh.text.contains("已逾期"));
}

/// REQ-32: "today" is the China date for the API's overdue list and for both console pages.
/// 15:30 UTC on the due date is 23:30 in Beijing (due today); 16:30 UTC is 00:30 the next
/// day in Beijing (overdue), while the UTC date is still the due date.
#[tokio::test]
async fn overdue_starts_at_midnight_in_china_not_at_midnight_utc() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-09-25 02:00 UTC));
    let gid = app.create_guest(zhang_san()).await;
    let rid = guest_asks_correction(&app, &gid).await;
    let mut co = Browser::signed_in(&app, "compliance_officer").await;
    let mut dsr = Browser::signed_in(&app, "dsr_officer").await;

    app.clock.set(datetime!(2026-10-22 15:30 UTC));
    assert!(
        !overdue_ids(&app).await.contains(&rid),
        "23:30 in Beijing: not yet"
    );
    let page = co.get("/console/deadlines").await;
    let row = row_in(&page, "upcoming", &rid).expect("due today is not overdue");
    assert!(row.contains("data-deadline=\"due_today\""), "{row}");
    let queue = dsr.get("/console/dsr").await;
    let q = row_in(&queue, "open-requests", &rid).unwrap();
    assert!(q.contains("data-deadline=\"due_today\""), "{q}");

    app.clock.set(datetime!(2026-10-22 16:30 UTC));
    assert!(
        overdue_ids(&app).await.contains(&rid),
        "00:30 in Beijing: overdue"
    );
    let page = co.get("/console/deadlines").await;
    let row = row_in(&page, "overdue", &rid).expect("overdue in China");
    assert!(row.contains("data-days=\"1\""), "{row}");
    let queue = dsr.get("/console/dsr").await;
    let q = row_in(&queue, "open-requests", &rid).unwrap();
    assert!(q.contains("data-deadline=\"overdue\""), "{q}");
    assert!(q.contains("Overdue by 1 days"), "{q}");
}

/// The page's only form is the frame's: the language switch and sign-out refuse a missing or
/// wrong CSRF token, and the switch comes back to this page.
#[tokio::test]
async fn the_deadline_page_forms_need_the_csrf_token_and_pages_are_no_store() {
    let app = spawn_app().await;
    let mut co = Browser::signed_in(&app, "compliance_officer").await;
    let page = co.get("/console/deadlines").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains("id=\"no-overdue\"") || page.text.contains("data-empty=\"overdue\"")
    );
    assert_console_headers("/console/deadlines", &page);
    let csrf = page.csrf();
    for bad in ["", "0000"] {
        let r = co
            .post(
                "/console/lang",
                &[
                    ("csrf", bad),
                    ("lang", "zh-CN"),
                    ("back", "/console/deadlines"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_console_headers("/console/lang", &r);
        let r = co.post("/console/sign-out", &[("csrf", bad)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    let r = co
        .post(
            "/console/lang",
            &[
                ("csrf", &csrf),
                ("lang", "zh-CN"),
                ("back", "/console/deadlines"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.location(), "/console/deadlines");
    // A POST to the page itself is not a page (405), with the console's headers.
    let r = co.post("/console/deadlines", &[("csrf", &csrf)]).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_console_headers("/console/deadlines", &r);
}

/// PIPL Art. 44, 45, 48: the DSR officer pages through one guest's audit events with a cursor
/// (the last event's number), authorized and audited as `guest.history`; a bad cursor is 422;
/// a role without `guest.history` is refused (403, audited).
#[tokio::test]
async fn a_guests_audit_events_are_paged_with_a_cursor_as_guest_history() {
    let app = spawn_app().await;
    let gid = app.create_guest(zhang_san()).await;
    for _ in 0..60 {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/guests/{gid}"),
                Some("front_desk"),
                Some("check_in"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let mut dsr = Browser::signed_in(&app, "dsr_officer").await;
    let record = dsr.get(&format!("/console/guests/{gid}")).await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.text);
    let seqs = |p: &Page| -> Vec<u64> {
        p.text
            .match_indices("data-seq=\"")
            .map(|(i, m)| {
                let rest = &p.text[i + m.len()..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    };
    let first = seqs(&record);
    assert_eq!(first.len(), guestvault::service::GUEST_EVENTS_LIMIT);
    let last = *first.last().unwrap();
    let next = format!("/console/guests/{gid}/events?after_seq={last}");
    assert!(
        record.text.contains(&format!("href=\"{next}\"")),
        "{}",
        record.text
    );
    let page2 = dsr.get(&next).await;
    assert_eq!(page2.status, StatusCode::OK, "{}", page2.text);
    assert_console_headers("/console/guests/{id}/events", &page2);
    let second = seqs(&page2);
    assert!(!second.is_empty());
    assert!(second.iter().all(|s| *s > last), "{second:?}");
    assert!(page2.text.contains("id=\"events-first\""));
    // 61 events of this guest (the create and 60 reads) and the officer's own reads: at most
    // two pages and a bit; walk them to the end.
    let mut seen = first.len() + second.len();
    let mut p = page2;
    while let Some(at) = p.text.find("id=\"events-next\"") {
        let _ = at;
        let s = *seqs(&p).last().unwrap();
        p = dsr
            .get(&format!("/console/guests/{gid}/events?after_seq={s}"))
            .await;
        seen += seqs(&p).len();
    }
    let stored: Vec<Option<String>> = app.sql_column(
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE guest_id = ?1",
        &[&gid],
    );
    assert!(seen >= 61, "{seen} of {stored:?}");
    // Authorized and audited as guest.history under data_subject_request.
    let reads: Vec<Option<String>> = app.sql_column(
        "SELECT purpose FROM audit_events WHERE actor = ?1 AND action = 'guest.history' AND outcome = 'allowed' AND guest_id = ?2",
        &[&DSR_ACTOR, &gid],
    );
    assert!(reads.len() >= 2, "{reads:?}");
    assert!(reads
        .iter()
        .all(|p| p.as_deref() == Some("data_subject_request")));
    assert_eq!(
        app.sql_column(
            "SELECT reason FROM audit_events WHERE actor = ?1 AND action = 'guest.history' ORDER BY seq DESC LIMIT 1",
            &[&DSR_ACTOR],
        ),
        vec![Some("guest audit events read".to_string())]
    );
    // A cursor that is not a number: 422, nothing listed.
    for bad in [
        "after_seq=abc",
        "after_seq=",
        "x=1",
        "after_seq=1&after_seq=2",
    ] {
        let r = dsr
            .get(&format!("/console/guests/{gid}/events?{bad}"))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
        assert!(!r.text.contains("data-seq"));
    }
    // The compliance officer reads the trail, not a guest's history through the desk.
    let mut co = Browser::signed_in(&app, "compliance_officer").await;
    let r = co.get(&format!("/console/guests/{gid}/events")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(
        audit_rows(&app, CO_ACTOR).last().unwrap(),
        &(
            "guest.history".to_string(),
            "compliance_officer".to_string(),
            Some("data_subject_request".to_string()),
            "denied".to_string()
        )
    );
}

/// Fail closed: with `guest.history` taken from the DSR officer, its guest page still shows
/// the record but no audit event (the section says so), and the events page is 403.
#[tokio::test]
async fn without_guest_history_the_officer_sees_no_audit_events() {
    let app = spawn_app_with(|config, dir| {
        let policies = dir.join("policies");
        crate::helpers::copy_policies(&policies);
        let access = policies.join("access.toml");
        let text = std::fs::read_to_string(&access).unwrap();
        let t = text.replace(", \"guest.history\"", "");
        assert_ne!(
            t, text,
            "the shipped policy gives dsr_officer guest.history"
        );
        std::fs::write(&access, t).unwrap();
        config.policies.dir = Some(policies);
    })
    .await;
    let gid = app.create_guest(zhang_san()).await;
    let mut dsr = Browser::signed_in(&app, "dsr_officer").await;
    let record = dsr.get(&format!("/console/guests/{gid}")).await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.text);
    let at = record.text.find("id=\"guest-events\"").unwrap();
    let section = &record.text[at..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(!section.contains("data-seq"), "{section}");
    assert!(section.contains("may not"), "{section}");
    let r = dsr.get(&format!("/console/guests/{gid}/events")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let denied: Vec<Option<String>> = app.sql_column(
        "SELECT outcome FROM audit_events WHERE actor = ?1 AND action = 'guest.history'",
        &[&DSR_ACTOR],
    );
    assert!(!denied.is_empty());
    assert!(denied.iter().all(|o| o.as_deref() == Some("denied")));
}
