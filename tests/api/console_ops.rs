//! The console's policy, operations and overview pages over HTTP (issue 17): role gating on
//! every page and action (REQ-16), the CSRF token on the rotation and the dry run, the
//! security headers and the page weight, audit events for the reads (REQ-18), the policy grid
//! against the effective policy cell by cell (REQ-04), the rotation run to 100%, and the
//! charts against planted events (days in China time, reveals per role, requests per week
//! against their deadlines, REQ-32).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::console::{assert_console_headers, audit_rows, Browser, Page};
use crate::helpers::{spawn_app, spawn_app_with, zhang_san, TestApp};

/// Each `<tag … name="value" …>`'s attributes for the elements carrying `marker`.
fn elements_with<'t>(text: &'t str, marker: &str) -> Vec<&'t str> {
    text.match_indices(marker)
        .map(|(i, _)| {
            let start = text[..i].rfind('<').unwrap();
            let end = i + text[i..].find('>').unwrap();
            &text[start..end]
        })
        .collect()
}

fn attr<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

fn nav_links(p: &Page) -> Vec<String> {
    let nav = &p.text[p.text.find("<nav").unwrap()..p.text.find("</nav>").unwrap()];
    nav.match_indices("href=\"")
        .map(|(i, _)| {
            let rest = &nav[i + 6..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

fn active_version(app: &TestApp) -> u32 {
    app.vault.keys().active_kek_version()
}

#[tokio::test]
async fn each_new_page_and_action_answers_403_to_a_role_whose_policy_does_not_allow_it_req16() {
    let app = spawn_app().await;
    // The compliance officer: overview and policy, never operations.
    let mut co = Browser::signed_in(&app, "compliance_officer").await;
    let home = co.get("/console/").await;
    let links = nav_links(&home);
    for want in ["/console/audit", "/console/overview", "/console/policy"] {
        assert!(links.iter().any(|l| l == want), "{links:?}");
    }
    assert!(
        !links.iter().any(|l| l == "/console/operations"),
        "{links:?}"
    );
    assert_eq!(co.get("/console/overview").await.status, StatusCode::OK);
    assert_eq!(co.get("/console/policy").await.status, StatusCode::OK);
    let csrf = co.csrf().await;
    for (method, path) in [
        (Method::GET, "/console/operations"),
        (Method::GET, "/console/operations/progress.json"),
        (Method::POST, "/console/operations/rotate"),
        (Method::POST, "/console/operations/retention-dry-run"),
    ] {
        let r = if method == Method::GET {
            co.get(path).await
        } else {
            co.post(path, &[("csrf", &csrf)]).await
        };
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert!(r.text.contains("may not open this page"), "{path}");
        assert_console_headers(path, &r);
    }
    assert_eq!(active_version(&app), 1, "no rotation ran");
    let rows = audit_rows(&app, "test-compliance_officer");
    let refused: Vec<_> = rows
        .iter()
        .filter(|r| r.3 == "denied")
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(
        refused,
        ["admin.keys", "admin.keys", "admin.keys", "admin.retention"],
        "each refusal is audited: {rows:?}"
    );

    // The admin signs in (it has console pages now): operations and policy, not the trail.
    let mut admin = Browser::signed_in(&app, "admin").await;
    let links = nav_links(&admin.get("/console/").await);
    for want in ["/console/operations", "/console/policy"] {
        assert!(links.iter().any(|l| l == want), "{links:?}");
    }
    for absent in ["/console/audit", "/console/overview"] {
        assert!(!links.iter().any(|l| l == absent), "{links:?}");
    }
    assert_eq!(
        admin.get("/console/operations").await.status,
        StatusCode::OK
    );
    assert_eq!(admin.get("/console/policy").await.status, StatusCode::OK);
    for path in ["/console/overview", "/console/audit"] {
        let r = admin.get(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    let rows = audit_rows(&app, "test-admin");
    assert!(
        rows.iter()
            .any(|r| r.0 == "audit.read" && r.3 == "denied" && r.1 == "admin"),
        "{rows:?}"
    );
    // The operations page is an audited admin.keys read under `administration`, the policy
    // page an audited policy.read under the role's own purpose.
    assert!(rows.contains(&(
        "admin.keys".into(),
        "admin".into(),
        Some("administration".into()),
        "allowed".into()
    )));
    assert!(rows.contains(&(
        "policy.read".into(),
        "admin".into(),
        Some("administration".into()),
        "allowed".into()
    )));
    let co_rows = audit_rows(&app, "test-compliance_officer");
    assert!(co_rows.contains(&(
        "policy.read".into(),
        "compliance_officer".into(),
        Some("audit".into()),
        "allowed".into()
    )));
    // Roles with none of these pages still cannot sign in.
    let mut fd = Browser::new(&app);
    assert_eq!(
        fd.sign_in_with(&app.token("front_desk")).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_rotation_from_the_console_needs_the_csrf_token_and_its_progress_reaches_100_percent() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.create_guest(zhang_san()).await;
    }
    let mut b = Browser::signed_in(&app, "admin").await;
    let page = b.get("/console/operations").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("data-state=\"none\""), "{}", page.text);
    assert!(page.text.contains("data-version=\"1\" data-deks=\"3\""));
    assert!(page.text.contains("data-ready=\"ready\""));
    assert!(page.text.contains("data-metric=\"guests_stored\">3<"));
    let before = app.audit_count();
    for path in [
        "/console/operations/rotate",
        "/console/operations/retention-dry-run",
    ] {
        for bad in ["", "0000", &"a".repeat(64)] {
            let r = b.post(path, &[("csrf", bad)]).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} with {bad:?}");
            assert!(r.text.contains("did not come from this console"));
            assert_console_headers(path, &r);
        }
    }
    assert_eq!(app.audit_count(), before, "a refused form does nothing");
    assert_eq!(active_version(&app), 1);

    let csrf = b.csrf().await;
    let r = b
        .post("/console/operations/rotate", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.location(), "/console/operations");
    let mut last = Value::Null;
    for _ in 0..200 {
        let p = b.get("/console/operations/progress.json").await;
        assert_eq!(p.status, StatusCode::OK);
        assert_console_headers("progress.json", &p);
        last = serde_json::from_str(&p.text).unwrap();
        if last["state"] == "finished" {
            break;
        }
        assert_eq!(last["state"], "running", "{last}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["state"], "finished", "{last}");
    assert_eq!(last["percent"], 100);
    assert_eq!(
        (last["done"].as_u64(), last["total"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(last["active_version"], 2);
    assert_eq!(active_version(&app), 2);
    let page = b.get("/console/operations").await;
    assert!(page.text.contains("data-state=\"finished\""));
    assert!(page.text.contains("data-version=\"1\" data-deks=\"0\""));
    assert!(page.text.contains("data-version=\"2\" data-deks=\"3\""));
    assert!(page.text.contains("value=\"3\""), "the bar is full");
    // The rotation is audited as the admin's `admin.keys`, like the API's.
    let reasons = app.sql_rows(
        "SELECT reason FROM audit_events WHERE actor = ?1 AND action = 'admin.keys' ORDER BY seq",
        &[&"test-admin"],
    );
    assert!(
        reasons
            .iter()
            .any(|r| r[0].as_deref().is_some_and(|s| s.contains("rotat"))),
        "{reasons:?}"
    );

    // The dry run counts per class and changes nothing.
    let r = b
        .post("/console/operations/retention-dry-run", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.text.contains("id=\"dry-run-result\" data-checked=\"3\""),
        "{}",
        r.text
    );
    assert_eq!(
        app.vault
            .readers()
            .run(guestvault::store::count_guests)
            .await
            .unwrap(),
        3
    );
    let rows = audit_rows(&app, "test-admin");
    assert!(rows.contains(&(
        "admin.retention".into(),
        "admin".into(),
        Some("administration".into()),
        "allowed".into()
    )));
}

#[tokio::test]
async fn the_new_pages_carry_the_security_headers_and_weigh_under_150_kb() {
    let app = spawn_app().await;
    app.create_guest(zhang_san()).await;
    let mut co = Browser::signed_in(&app, "compliance_officer").await;
    let mut admin = Browser::signed_in(&app, "admin").await;
    for (who, path) in [
        ("co", "/console/overview"),
        ("co", "/console/policy"),
        ("admin", "/console/policy"),
        ("admin", "/console/operations"),
        ("admin", "/console/operations/progress.json"),
    ] {
        let b = if who == "co" { &mut co } else { &mut admin };
        let r = b.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_console_headers(path, &r);
        assert!(r.text.len() < 150_000, "{path}: {} bytes", r.text.len());
    }
    let csrf = admin.csrf().await;
    let r = admin
        .post("/console/operations/retention-dry-run", &[("csrf", &csrf)])
        .await;
    assert_console_headers("dry run", &r);
    assert!(r.text.len() < 150_000);
    // The language switch may come back to the new pages.
    for path in ["/console/overview", "/console/policy"] {
        let csrf = co.csrf().await;
        let r = co
            .post(
                "/console/lang",
                &[("csrf", &csrf), ("lang", "zh-CN"), ("back", path)],
            )
            .await;
        assert_eq!(r.location(), path);
    }
    let zh = co.get("/console/policy").await;
    assert!(zh.text.contains("访问矩阵") && zh.text.contains("保存期限类别"));
    let zh = co.get("/console/overview").await;
    assert!(zh.text.contains("每日审计事件"));
}

/// The `(role, purpose) → field → view` of the page's grid.
fn grid(text: &str) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let table = &text[text.find("<table class=\"matrix\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    for row in table.split("<tr data-role=\"").skip(1) {
        let role = &row[..row.find('"').unwrap()];
        let purpose = attr(&row[..row.find('>').unwrap()], "data-purpose").unwrap();
        for cell in elements_with(row, "data-view=\"") {
            out.push((
                role.to_string(),
                purpose.to_string(),
                attr(cell, "data-field").unwrap().to_string(),
                attr(cell, "data-view").unwrap().to_string(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn the_policy_grid_matches_the_effective_policy_cell_by_cell_req04() {
    let app = spawn_app().await;
    let mut b = Browser::signed_in(&app, "compliance_officer").await;
    let page = b.get("/console/policy").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let cells = grid(&page.text);
    // The API's matrix (`GET /v1/policy`, another code path) is the reference.
    let api = app
        .call(
            Method::GET,
            "/v1/policy",
            Some("compliance_officer"),
            Some("audit"),
            None,
        )
        .await;
    assert_eq!(api.status, StatusCode::OK);
    let roles = api.body["roles"].as_object().unwrap();
    let guest_fields = app
        .vault
        .policies()
        .catalog
        .fields(guestvault::policy::FieldScope::Guest)
        .count();
    let stay_fields = app
        .vault
        .policies()
        .catalog
        .fields(guestvault::policy::FieldScope::Stay)
        .count();
    let mut rows = 0;
    for (role, summary) in roles {
        for purpose in summary["purposes"].as_array().unwrap() {
            let purpose = purpose.as_str().unwrap();
            rows += 1;
            let views = &summary["views"][purpose];
            let mine: Vec<_> = cells
                .iter()
                .filter(|c| c.0 == *role && c.1 == purpose)
                .collect();
            assert_eq!(mine.len(), guest_fields + stay_fields, "{role}/{purpose}");
            for (_, _, field, view) in mine {
                let (scope, name) = field.split_once('.').unwrap();
                let key = if scope == "guest" {
                    "fields"
                } else {
                    "stay_fields"
                };
                let want = views[key][name].as_str().unwrap_or("none");
                assert_eq!(view, want, "{role} / {purpose} / {field}");
            }
        }
    }
    assert_eq!(cells.len(), rows * (guest_fields + stay_fields));
    // And a few facts of the shipped access.toml, in case both paths went wrong together.
    let cell = |r: &str, p: &str, f: &str| {
        cells
            .iter()
            .find(|c| c.0 == r && c.1 == p && c.2 == f)
            .map(|c| c.3.clone())
            .unwrap_or_else(|| panic!("no cell {r}/{p}/{f}"))
    };
    assert_eq!(cell("front_desk", "check_in", "guest.id_number"), "reveal");
    assert_eq!(cell("front_desk", "check_in", "guest.full_name"), "plain");
    assert_eq!(cell("front_desk", "check_in", "guest.birth_date"), "masked");
    assert_eq!(
        cell("front_desk", "guest_service", "guest.id_number"),
        "none"
    );
    assert_eq!(
        cell("concierge", "guest_service", "guest.full_name"),
        "masked"
    );
    assert_eq!(cell("finance", "billing", "stay.amount"), "plain");
    assert_eq!(cell("admin", "administration", "guest.full_name"), "none");
    // A letter beside the colour, the view's name in words, and a legend.
    let fd = elements_with(
        &page.text,
        "data-field=\"guest.id_number\" data-view=\"reveal\"",
    );
    assert!(attr(fd[0], "class").unwrap().contains("v-reveal"));
    assert!(attr(fd[0], "aria-label").unwrap().contains("reveal"));
    assert!(page
        .text
        .contains("data-view=\"reveal\" title=\"front_desk / check_in / id_number: reveal"));
    // A sensitive field under a consent purpose is marked: it needs separate consent.
    assert!(page
        .text
        .contains("data-role=\"marketing\" data-purpose=\"personalization\""));
    // Purposes with their legal basis; retention classes with period and statutory flag.
    assert!(page
        .text
        .contains("data-purpose=\"check_in\" data-basis=\"legal_obligation\""));
    assert!(page
        .text
        .contains("data-purpose=\"marketing\" data-basis=\"consent\""));
    assert!(page
        .text
        .contains("data-purpose=\"billing\" data-basis=\"contract\""));
    assert!(page
        .text
        .contains("data-class=\"identity\" data-retain=\"3y\" data-statutory=\"true\""));
    assert!(page
        .text
        .contains("data-class=\"contact\" data-retain=\"1y\" data-statutory=\"false\""));
    // The `policy check` result: the CLI's summary line for the files the server loaded.
    assert!(page.text.contains("data-check=\"ok\""));
    let report = guestvault::policy::check(app.vault.policies().source.as_deref());
    let line = report
        .summary()
        .unwrap()
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(line.starts_with("policy ok: 19 guest fields"), "{line}");
    assert!(page.text.contains(&line), "{line} in {}", page.text);
}

#[tokio::test]
async fn the_policy_check_shows_the_problems_of_the_loaded_files_by_file_and_key() {
    let app = spawn_app_with(|config, dir| {
        let policies = dir.join("policies");
        crate::helpers::copy_policies(&policies);
        config.policies.dir = Some(policies);
    })
    .await;
    let dir = app.config.policies.dir.clone().unwrap();
    let mut b = Browser::signed_in(&app, "admin").await;
    let ok = b.get("/console/policy").await;
    assert!(ok.text.contains("data-check=\"ok\""), "{}", ok.text);
    assert!(ok.text.contains(&dir.display().to_string()));
    // The file on disk goes bad while the server runs: the page says what a restart would.
    let access = std::fs::read_to_string(dir.join("access.toml")).unwrap();
    std::fs::write(
        dir.join("access.toml"),
        access.replace(
            "[roles.concierge]\npurposes = [\"guest_service\"]",
            "[roles.concierge]\npurposes = [\"no_such_purpose\"]",
        ),
    )
    .unwrap();
    let bad = b.get("/console/policy").await;
    assert_eq!(bad.status, StatusCode::OK);
    assert!(bad.text.contains("data-check=\"invalid\""), "{}", bad.text);
    assert!(
        bad.text.contains("access.toml") && bad.text.contains("roles.concierge"),
        "{}",
        bad.text
    );
    // The grid still shows the policy the server runs under.
    assert!(bad
        .text
        .contains("data-role=\"concierge\" data-purpose=\"guest_service\""));
}

/// The rows of one of the overview's tables: `data-<key>` → the row's other data attributes.
fn table_rows(text: &str, id: &str, key: &str) -> Vec<(String, Vec<(String, u64)>)> {
    let start = text
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id}"));
    let table = &text[start..];
    let table = &table[..table.find("</table>").unwrap()];
    elements_with(table, &format!("<tr data-{key}=\""))
        .into_iter()
        .map(|tag| {
            let k = attr(tag, &format!("data-{key}")).unwrap().to_string();
            let nums = tag
                .split(" data-")
                .skip(2)
                .map(|kv| {
                    let (n, v) = kv.split_once("=\"").unwrap();
                    (n.to_string(), v.trim_end_matches('"').parse().unwrap())
                })
                .collect();
            (k, nums)
        })
        .collect()
}

fn num(rows: &[(String, Vec<(String, u64)>)], key: &str, name: &str) -> u64 {
    rows.iter()
        .find(|r| r.0 == key)
        .unwrap_or_else(|| panic!("no row {key}"))
        .1
        .iter()
        .find(|(n, _)| n == name)
        .unwrap()
        .1
}

#[tokio::test]
async fn the_charts_count_planted_events_by_china_day_role_and_week_against_deadlines_req18_req32()
{
    let app = spawn_app().await;
    // Friday 2026-11-20, 18:00 in Beijing: a guest, two reveals, a refused reveal, a
    // correction request by the guest (pending) and an access export (answered at once).
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let gid = app.create_guest(zhang_san()).await;
    for _ in 0..2 {
        let r = app
            .call(
                Method::POST,
                &format!("/v1/guests/{gid}/reveal"),
                Some("front_desk"),
                Some("check_in"),
                Some(json!({"fields": ["mobile"], "reason": "contact_guest"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{gid}/reveal"),
            Some("concierge"),
            Some("guest_service"),
            Some(json!({"fields": ["mobile"], "reason": "contact_guest"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let guest = app.token_for("guest", &gid);
    let r = app
        .send(
            app.client
                .patch(format!("{}/v1/guests/{gid}", app.addr))
                .bearer_auth(&guest)
                .header("X-Purpose", "data_subject_request")
                .json(&json!({"fields": {"full_name": "张三"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let due = r.body["due_at"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{gid}/export?reason=data_subject_request"),
            Some("dsr_officer"),
            Some("data_subject_request"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Wednesday 2026-11-25, 10:00 in Beijing: a spike of 8 denials (marketing, no consent).
    app.clock.set(datetime!(2026-11-25 02:00 UTC));
    let path = format!("/v1/guests/{gid}");
    let marketing_read = || {
        app.call(
            Method::GET,
            &path,
            Some("marketing"),
            Some("marketing"),
            None,
        )
    };
    for _ in 0..8 {
        assert_eq!(marketing_read().await.status, StatusCode::FORBIDDEN);
    }
    // 16:30 UTC on the 26th is 00:30 on the 27th in Beijing: it counts on the 27th.
    app.clock.set(datetime!(2026-11-26 16:30 UTC));
    assert_eq!(marketing_read().await.status, StatusCode::FORBIDDEN);

    app.clock.set(datetime!(2026-12-10 02:00 UTC));
    let mut b = Browser::signed_in(&app, "compliance_officer").await;
    let page = b.get("/console/overview").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let days = table_rows(&page.text, "outcomes-table", "day");
    assert_eq!(days.len(), 30);
    assert_eq!(days.first().unwrap().0, "2026-11-11");
    assert_eq!(days.last().unwrap().0, "2026-12-10");
    assert_eq!(
        num(&days, "2026-11-20", "denied"),
        1,
        "the concierge's reveal"
    );
    assert!(
        num(&days, "2026-11-20", "allowed") >= 5,
        "create, reveals, correction, export"
    );
    assert_eq!(num(&days, "2026-11-25", "denied"), 8);
    assert_eq!(num(&days, "2026-11-26", "denied"), 0);
    assert_eq!(num(&days, "2026-11-27", "denied"), 1);
    let denied: u64 = days.iter().map(|d| num(&days, &d.0, "denied")).sum();
    assert_eq!(denied, 10);
    // The spike stands out: marked on its bar, in the table and above the chart.
    assert!(
        page.text.contains("data-spikes=\"2026-11-25\""),
        "{}",
        page.text
    );
    assert!(page
        .text
        .contains("<g data-day=\"2026-11-25\" data-spike=\"true\">"));
    assert!(!page.text.contains("<g data-day=\"2026-11-27\" data-spike"));
    // A text alternative for each chart.
    assert_eq!(page.text.matches("<title id=").count(), 3);
    assert_eq!(page.text.matches("<desc id=").count(), 3);
    let reveals = table_rows(&page.text, "reveals-table", "role");
    assert_eq!(num(&reveals, "front_desk", "allowed"), 2);
    assert_eq!(num(&reveals, "front_desk", "denied"), 0);
    assert_eq!(num(&reveals, "concierge", "allowed"), 0);
    assert_eq!(num(&reveals, "concierge", "denied"), 1);
    assert_eq!(reveals.len(), 2);
    let weeks = table_rows(&page.text, "requests-table", "week");
    assert_eq!(weeks.len(), 12);
    assert_eq!(weeks.last().unwrap().0, "2026-12-07");
    assert_eq!(num(&weeks, "2026-11-16", "received"), 2);
    assert_eq!(num(&weeks, "2026-11-16", "on-time"), 1, "the export");
    assert_eq!(
        num(&weeks, "2026-11-16", "open"),
        1,
        "the correction, due {due}"
    );
    assert_eq!(num(&weeks, "2026-11-16", "overdue"), 0);
    // After the due date, the unanswered correction is overdue.
    app.clock.set(datetime!(2026-12-20 02:00 UTC));
    let later = b.get("/console/overview").await;
    let weeks = table_rows(&later.text, "requests-table", "week");
    assert_eq!(num(&weeks, "2026-11-16", "overdue"), 1, "due {due}");
    assert_eq!(num(&weeks, "2026-11-16", "open"), 0);
    assert_eq!(num(&weeks, "2026-11-16", "on-time"), 1);
    // Each view is an audited read of the trail.
    let reads = app.sql_rows(
        "SELECT purpose, outcome FROM audit_events WHERE actor = ?1 AND action = 'audit.read' AND reason = 'charts read'",
        &[&"test-compliance_officer"],
    );
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads
        .iter()
        .all(|r| r[0].as_deref() == Some("audit") && r[1].as_deref() == Some("allowed")));
}
