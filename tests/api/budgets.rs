//! Request budgets and security alerts (issue 12, REQ-38): 429 `rate_limited` with
//! `Retry-After`, a flood of refusals that leaves the audit trail bounded yet complete, and
//! alerts as audit events, log lines and a Prometheus counter.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app_with, zhang_san, TestApp};

/// `(action, reason, actor, guest_id, justification)` of every event with `action`.
fn events(app: &TestApp, action: &str) -> Vec<(String, String, String, Option<String>, String)> {
    app.sql_rows(
        "SELECT action, reason, actor, guest_id, justification FROM audit_events \
         WHERE action = ?1 ORDER BY seq",
        &[&action],
    )
    .into_iter()
    .map(|r| {
        let mut r = r.into_iter();
        let mut next = || r.next().unwrap();
        (
            next().unwrap(),
            next().unwrap_or_default(),
            next().unwrap(),
            next(),
            next().unwrap_or_default(),
        )
    })
    .collect()
}

fn count_of(justification: &str) -> u64 {
    justification
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("count="))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_100000_denied_requests_adds_at_most_a_few_hundred_audit_events() {
    let app = spawn_app_with(|_, _| {}).await;
    let victim = app.create_guest(zhang_san()).await;
    // A guest token probing someone else's record: every answer is a 404, audited.
    let prober = uuid::Uuid::new_v4().to_string();
    let token = app.token_for("guest", &prober);
    let before = app.audit_count();
    let started = std::time::Instant::now();
    const FLOOD: usize = 100_000;
    const TASKS: usize = 32;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (app, token, victim) = (app.clone(), token.clone(), victim.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::<u16, usize>::new();
            let mut retry_after_ok = true;
            for _ in (t..FLOOD).step_by(TASKS) {
                let resp = app
                    .client
                    .get(format!("{}/v1/guests/{victim}", app.addr))
                    .bearer_auth(&token)
                    .header("X-Purpose", "data_subject_request")
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                if status == 429 {
                    retry_after_ok &= resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|s| s >= 1);
                }
                let _ = resp.bytes().await;
                *seen.entry(status).or_default() += 1;
            }
            (seen, retry_after_ok)
        }));
    }
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for t in tasks {
        let (s, retry_after_ok) = t.await.unwrap();
        assert!(retry_after_ok, "a 429 without a usable Retry-After");
        for (k, v) in s {
            *seen.entry(k).or_default() += v;
        }
    }
    assert_eq!(seen.values().sum::<usize>(), FLOOD);
    assert!(seen.keys().all(|s| *s == 404 || *s == 429), "{seen:?}");
    assert!(seen[&429] > FLOOD * 9 / 10, "{seen:?}");
    let app = Arc::into_inner(app).unwrap();
    // The last report is written at shutdown.
    let (dir, config) = app.stop().await;
    let app = crate::helpers::spawn_on(dir, config).await;
    let added = app.audit_count() - before;
    // The bound follows from the default denied budget (burst 100, 120 a minute): at most the
    // burst, plus what refills while the flood runs, plus one aggregate per minute, plus a few
    // events of the restart. On a machine that floods in 20 s that is about 150; the count does
    // not grow with the 100,000 requests, only with the flood's duration.
    let secs = i64::try_from(started.elapsed().as_secs()).unwrap() + 1;
    let bound = 100 + 2 * secs + secs / 60 + 1 + 10;
    assert!(
        added <= bound,
        "{added} audit events for one client's flood of {secs} s (bound {bound})"
    );
    assert!(
        added <= 1_000,
        "{added} audit events for one client's flood"
    );
    // Nothing went unrecorded: each 404 has its event, the 429s are counted in aggregates
    // that name no guest.
    let denied = app.sql_i64(
        "SELECT count(*) FROM audit_events WHERE actor = ?1 AND action = 'guest.read'",
        &[&prober],
    ) as usize;
    assert_eq!(denied, seen[&404]);
    let throttled = events(&app, "access.throttled");
    assert!(!throttled.is_empty());
    let mut counted = 0;
    for (_, reason, actor, guest_id, justification) in &throttled {
        assert_eq!(reason, "rate_limited");
        assert_eq!(actor, &prober);
        assert_eq!(guest_id, &None);
        assert!(!justification.contains(&victim), "{justification}");
        counted += count_of(justification);
    }
    assert_eq!(counted as usize, seen[&429]);
    // Probing other ids raised an alert.
    let alerts = events(&app, "security.alert");
    assert!(
        alerts
            .iter()
            .any(|a| a.1 == "guest_probing" && a.2 == prober),
        "{alerts:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn over_its_read_budget_a_principal_gets_429_while_others_are_served() {
    let app = spawn_app_with(|c, _| {
        c.budgets.reads_burst = 5;
        c.budgets.reads_per_min = 1;
    })
    .await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}");
    let read = |sub: &'static str| {
        let req = app
            .client
            .get(format!("{}{path}", app.addr))
            .bearer_auth(app.token_for("front_desk", sub))
            .header("X-Purpose", "check_in");
        app.send(req)
    };
    for _ in 0..5 {
        assert_eq!(read("desk-1").await.status, StatusCode::OK);
    }
    let r = read("desk-1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.body["code"], "rate_limited");
    assert_eq!(
        r.headers["content-type"], "application/problem+json",
        "{:?}",
        r.headers
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another principal of the same role, and the pms integration, are unaffected.
    assert_eq!(read("desk-2").await.status, StatusCode::OK);
    let r = app
        .call(Method::GET, &path, Some("pms"), Some("check_in"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Liveness has no budget.
    for _ in 0..20 {
        let r = app.call(Method::GET, "/healthz", None, None, None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    app.stop().await;
}

#[tokio::test]
async fn search_misses_over_the_threshold_raise_one_alert_in_trail_log_and_metrics() {
    let app = spawn_app_with(|c, _| {
        c.alerts.search_misses = 3;
    })
    .await;
    app.create_guest(zhang_san()).await;
    let sub = "pms-probe-7";
    for i in 0..6 {
        let req = app
            .client
            .post(format!("{}/v1/guests/search", app.addr))
            .bearer_auth(app.token_for("pms", sub))
            .header("X-Purpose", "check_in")
            .json(&json!({ "field": "mobile", "value": format!("1390000000{i}") }));
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["guest_ids"], json!([]));
    }
    // The audit event is written in the background.
    let mut alerts = Vec::new();
    for _ in 0..50 {
        alerts = events(&app, "security.alert");
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let (_, reason, actor, guest_id, justification) = &alerts[0];
    assert_eq!(reason, "search_miss_burst");
    assert_eq!(actor, sub);
    assert_eq!(guest_id, &None);
    assert_eq!(count_of(justification), 3);
    assert!(!justification.contains("1390000000"));
    let logs = crate::helpers::captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("security alert") && l.contains("search_miss_burst"))
        .expect("an alert log line");
    assert!(
        !line.contains(sub) && !line.contains("1390000000"),
        "{line}"
    );
    let metrics = app.call(Method::GET, "/metrics", None, None, None).await;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l.starts_with("guestvault_security_alerts_total{kind=\"search_miss_burst\"}")),
        "{}",
        metrics.text
    );
    app.stop().await;
}

/// Waits for the `security.alert` events (written in the background) and checks the one alert
/// of `kind`: in the trail with `actor` and the count, in the log without the actor or any of
/// `secrets`, and in `guestvault_security_alerts_total{kind}`.
async fn assert_one_alert(app: &TestApp, kind: &str, actor: &str, count: u64, secrets: &[&str]) {
    for _ in 0..50 {
        if !events(app, "security.alert").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Give a second (wrong) alert the time to arrive as well.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let alerts = events(app, "security.alert");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let (_, reason, who, guest_id, justification) = &alerts[0];
    assert_eq!(reason, kind);
    assert_eq!(who, actor);
    assert_eq!(guest_id, &None, "an alert names no guest");
    assert_eq!(count_of(justification), count, "{justification}");
    for s in secrets {
        assert!(!justification.contains(s), "{justification}");
    }
    let logs = crate::helpers::captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("security alert") && l.contains(kind))
        .unwrap_or_else(|| panic!("no {kind} log line"));
    assert!(!line.contains(actor), "{line}");
    for s in secrets {
        assert!(!line.contains(s), "{line}");
    }
    let metrics = app.call(Method::GET, "/metrics", None, None, None).await;
    let counter = metrics
        .text
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "guestvault_security_alerts_total{{kind=\"{kind}\"}}"
            ))
        })
        .unwrap_or_else(|| panic!("no counter for {kind}: {}", metrics.text));
    assert!(counter.ends_with(" 1"), "{counter}");
}

#[tokio::test]
async fn a_burst_of_reveals_raises_one_alert_in_trail_log_and_metrics() {
    let app = spawn_app_with(|c, _| {
        c.alerts.reveals = 3;
    })
    .await;
    let id = app.create_guest(zhang_san()).await;
    let sub = "desk-clerk-4711";
    let token = app.token_for("front_desk", sub);
    for _ in 0..5 {
        let req = app
            .client
            .post(format!("{}/v1/guests/{id}/reveal", app.addr))
            .bearer_auth(&token)
            .header("X-Purpose", "check_in")
            .json(&json!({"fields": ["mobile"], "reason": "identity_check_at_desk"}));
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["fields"]["mobile"], "+8613812345678", "{}", r.text);
    }
    assert_one_alert(&app, "reveal_burst", sub, 3, &["13812345678", &id]).await;
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_exports_raises_one_alert_in_trail_log_and_metrics() {
    let app = spawn_app_with(|c, _| {
        c.alerts.exports = 2;
    })
    .await;
    let id = app.create_guest(zhang_san()).await;
    let sub = "dsr-officer-17";
    let token = app.token_for("dsr_officer", sub);
    for _ in 0..4 {
        let req = app
            .client
            .get(format!(
                "{}/v1/guests/{id}/export?reason=data_subject_request&ticket=DSR-17",
                app.addr
            ))
            .bearer_auth(&token)
            .header("X-Purpose", "data_subject_request");
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_one_alert(
        &app,
        "export_burst",
        sub,
        2,
        &["13812345678", "张三丰", &id],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_storm_of_forged_tokens_from_one_peer_raises_an_alert_and_then_429() {
    let app = spawn_app_with(|c, _| {
        c.alerts.token_failures = 5;
        c.budgets.auth_failures_burst = 10;
        c.budgets.auth_failures_per_min = 1;
    })
    .await;
    let good = app.token("front_desk");
    // Same header and claims, another signature.
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{head}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let req = app
            .client
            .get(format!("{}/v1/policy", app.addr))
            .bearer_auth(&forged);
        statuses.push(app.send(req).await.status.as_u16());
    }
    assert!(statuses[..10].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[11..].iter().all(|s| *s == 429), "{statuses:?}");
    let mut alerts = Vec::new();
    for _ in 0..50 {
        alerts = events(&app, "security.alert");
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].1, "token_failure_storm");
    assert_eq!(alerts[0].2, "peer:127.0.0.0/24");
    app.stop().await;
}

#[tokio::test]
async fn a_budget_of_zero_is_a_config_error_naming_the_key() {
    let err = guestvault::config::Config::load_with_env(
        None,
        [(
            "GUESTVAULT_BUDGETS_REVEALS_PER_MIN".to_string(),
            "0".to_string(),
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`budgets.reveals_per_min`"), "{err}");
    assert!(err.contains("GUESTVAULT_BUDGETS_REVEALS_PER_MIN"), "{err}");
}
