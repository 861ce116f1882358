//! The audit trail over HTTP and the CLI (REQ-18, REQ-20): a compliance officer exports, an
//! auditor verifies offline with the public key alone, and any edit is caught. Other roles are
//! refused; every query, export and verification is itself audited.

use std::process::Command;

use guestvault::audit::verify::{verify_export, Problem, PublicKey};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app, zhang_san, TestApp};

const OFFICER: Option<&str> = Some("compliance_officer");
const T0: time::OffsetDateTime = time::macros::datetime!(2020-03-01 08:00 UTC);

/// A guest created, read, revealed and refused once: a few events of each outcome.
async fn some_activity(app: &TestApp) -> String {
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}");
    let r = app
        .call(
            Method::GET,
            &path,
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Method::GET,
            &path,
            Some("marketing"),
            Some("marketing"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    id
}

async fn public_key(app: &TestApp) -> PublicKey {
    let r = app
        .call(Method::GET, "/v1/audit/public-key", OFFICER, None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["algorithm"], "Ed25519");
    assert_eq!(r.body["key_id"].as_str().unwrap().len(), 16);
    PublicKey::parse(r.body["public_key"].as_str().unwrap()).unwrap()
}

async fn export(app: &TestApp, query: &str) -> String {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/audit/export{query}"),
            OFFICER,
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.text
}

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_guestvault"));
    c.env_remove("RUST_LOG");
    c
}

#[tokio::test]
async fn an_http_export_verifies_with_the_published_key_and_a_tampered_copy_fails() {
    let app = spawn_app().await;
    some_activity(&app).await;
    let key = public_key(&app).await;
    let r = app
        .call(Method::GET, "/v1/audit/export", OFFICER, None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    let text = r.text;
    let report = verify_export(text.as_bytes(), &key).unwrap();
    // Every event so far, including this export's own event (REQ-20), is in the file.
    assert_eq!(report.events, app.audit_count() as u64);
    let own = text.lines().rev().nth(1).unwrap();
    assert!(own.contains("\"action\":\"audit.export\""), "{own}");

    // One byte changed in the third event.
    let third = text.lines().nth(3).unwrap();
    let tampered = text.replacen(third, &third.replacen("\"allowed\"", "\"denied\"", 1), 1);
    let err = verify_export(tampered.as_bytes(), &key).unwrap_err();
    assert_eq!((err.seq, err.problem), (Some(3), Problem::HashMismatch));

    // The auditor's command line: the file and the key file as the endpoint returned it.
    let dir = tempfile::tempdir().unwrap();
    let (good, bad, key_file) = (
        dir.path().join("a.jsonl"),
        dir.path().join("b.jsonl"),
        dir.path().join("key.json"),
    );
    std::fs::write(&good, &text).unwrap();
    std::fs::write(&bad, &tampered).unwrap();
    let k = app
        .call(Method::GET, "/v1/audit/public-key", OFFICER, None, None)
        .await;
    std::fs::write(&key_file, &k.text).unwrap();
    let ok = cli()
        .args(["audit", "verify"])
        .arg(&good)
        .arg("--public-key")
        .arg(&key_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success() && stdout.starts_with("intact: jsonl export of seq 1..="),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1);
    let no = cli()
        .args(["audit", "verify"])
        .arg(&bad)
        .arg("--public-key")
        .arg(&key_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&no.stderr);
    assert_eq!(no.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("seq 3: hash does not match"), "{stderr}");

    // A deleted line, a reordered pair, and a signature replaced by a valid signature of the
    // same checkpoint under another key: each exits 1 naming the first bad seq.
    let lines: Vec<&str> = text.lines().collect();
    let join = |ls: Vec<&str>| ls.join("\n") + "\n";
    let mut deleted = lines.clone();
    deleted.remove(3);
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    let last: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(last["type"], "checkpoint");
    let seq = last["seq"].as_u64().unwrap();
    let hash: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&last["hash"].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let other = guestvault::crypto::Keyring::generate().unwrap();
    let forged = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(other.audit_sign(
            &guestvault::audit::checkpoint::checkpoint_message(seq, &hash),
        ))
    };
    let resigned = text.replacen(last["signature"].as_str().unwrap(), &forged, 1);
    assert_ne!(resigned, text);
    for (name, body, expect) in [
        (
            "deleted",
            join(deleted),
            "seq 3: record out of place".to_string(),
        ),
        (
            "swapped",
            join(swapped),
            "seq 2: record out of place".to_string(),
        ),
        (
            "resigned",
            resigned,
            format!("seq {seq}: the checkpoint signature does not verify"),
        ),
    ] {
        let file = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&file, body).unwrap();
        let out = cli()
            .args(["audit", "verify"])
            .arg(&file)
            .arg("--public-key")
            .arg(&key_file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.starts_with("NOT INTACT: ") && stderr.contains(&expect),
            "{name}: {stderr}"
        );
    }
}

#[tokio::test]
async fn other_roles_cannot_query_export_or_verify_and_the_refusal_is_audited() {
    let app = spawn_app().await;
    for path in ["/v1/audit/events", "/v1/audit/export", "/v1/audit/verify"] {
        for role in ["front_desk", "dsr_officer", "admin"] {
            let r = app.call(Method::GET, path, Some(role), None, None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role} {path}");
            assert_eq!(r.body["code"], "forbidden");
        }
        let r = app.call(Method::GET, path, None, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let denied = app.sql_i64(
        "SELECT count(*) FROM audit_events WHERE action LIKE 'audit.%' AND outcome = 'denied'",
        &[],
    );
    assert_eq!(denied, 9);
    // A purpose the officer's role does not have is refused too.
    let r = app
        .call(
            Method::GET,
            "/v1/audit/events",
            OFFICER,
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.body["code"], "purpose_not_allowed");
}

#[tokio::test]
async fn queries_filter_page_with_a_cursor_and_are_audited_by_parameter_name() {
    let app = spawn_app().await;
    let id = some_activity(&app).await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/audit/events?guest_id={id}&limit=2"),
            OFFICER,
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let events = r.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| e["guest_id"] == id.as_str() && e["hash"].as_str().unwrap().len() == 64));
    let next = r.body["next_after_seq"].as_u64().unwrap();
    let r = app
        .call(
            Method::GET,
            &format!("/v1/audit/events?guest_id={id}&after_seq={next}&limit=1000"),
            OFFICER,
            None,
            None,
        )
        .await;
    let rest = r.body["events"].as_array().unwrap();
    assert!(!rest.is_empty() && rest.iter().all(|e| e["seq"].as_u64().unwrap() > next));
    assert_eq!(r.body["next_after_seq"], Value::Null);
    let r = app
        .call(
            Method::GET,
            "/v1/audit/events?outcome=denied&action=guest.read",
            OFFICER,
            None,
            None,
        )
        .await;
    let denied = r.body["events"].as_array().unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["reason"], "consent_required");
    // The query itself: its parameter names, the guest it targeted, never other values.
    let row = app.sql_rows(
        "SELECT fields, guest_id FROM audit_events WHERE action = 'audit.read' ORDER BY seq LIMIT 1",
        &[],
    );
    assert_eq!(
        (row[0][0].as_deref(), row[0][1].as_deref()),
        (Some(r#"["guest_id"]"#), Some(id.as_str()))
    );
}

#[tokio::test]
async fn bad_query_parameters_are_422_naming_the_parameter_without_its_value() {
    let app = spawn_app().await;
    let r = app
        .call(
            Method::GET,
            "/v1/audit/events?since=13912345678&limit=0&colour=red",
            OFFICER,
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["code"], "validation_failed");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["since", "colour", "limit"]);
    assert!(!r.text.contains("13912345678") && !r.text.contains("red\""));
    let r = app
        .call(
            Method::GET,
            "/v1/audit/export?format=pdf",
            OFFICER,
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["field"], "format");
    // Refused requests are audited as errors.
    let errors = app.sql_i64(
        "SELECT count(*) FROM audit_events WHERE outcome = 'error' AND reason = 'validation_failed'",
        &[],
    );
    assert_eq!(errors, 2);
}

#[tokio::test]
async fn a_range_csv_export_verifies_and_the_cli_writes_the_same_bytes() {
    let app = spawn_app().await;
    app.clock.set(T0);
    some_activity(&app).await;
    some_activity(&app).await;
    app.clock.set(T0 + time::Duration::hours(1));
    let key = public_key(&app).await;
    let window = "since=2020-02-29&until=2020-03-01T08:01:00Z";
    for (format, ext) in [("jsonl", "jsonl"), ("csv", "csv")] {
        let http = export(
            &app,
            &format!("?{window}&action=guest.read&format={format}"),
        )
        .await;
        let report = verify_export(http.as_bytes(), &key).unwrap();
        // Per activity: the read shape after the PMS's correction, the front desk's read and
        // the refused marketing read.
        assert_eq!((report.anchor_seq, report.events), (0, 6), "{http}");
        assert!(report.stubs > 2);
        let out = app.dir.path().join(format!("cli.{ext}"));
        let run = crate::helpers::storage_env(&mut cli(), &app.config)
            .args([
                "audit",
                "export",
                "--since",
                "2020-02-29",
                "--until",
                "2020-03-01T08:01:00Z",
            ])
            .args(["--action", "guest.read", "--format", format, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(String::from_utf8_lossy(&run.stdout).starts_with("exported seq 1..="));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), http, "{format}");
    }
    // The CLI's own exports are in the trail, under the operator's login.
    let cli_exports = app.sql_i64(
        "SELECT count(*) FROM audit_events WHERE actor LIKE 'cli:%' AND action = 'audit.export'",
        &[],
    );
    assert_eq!(cli_exports, 2);
}

#[tokio::test]
async fn the_verify_endpoint_checks_chain_and_checkpoints_and_finds_a_rewritten_row() {
    let app = spawn_app().await;
    some_activity(&app).await;
    export(&app, "").await; // leaves a checkpoint
    let r = app
        .call(
            Method::GET,
            "/v1/audit/verify?full=true",
            OFFICER,
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["intact"], true, "{}", r.text);
    assert_eq!(r.body["mode"], "full", "{}", r.text);
    // The verification's own event is in the trail before the check runs.
    assert_eq!(r.body["events"].as_i64().unwrap(), app.audit_count());
    assert_eq!(r.body["from_seq"], 1);
    assert_eq!(r.body["to_seq"].as_i64().unwrap(), app.audit_count());
    assert_eq!(r.body["checkpoints"], 1);
    assert!(r.body.get("first_bad_seq").is_none());

    // Someone with file access bypasses the trigger and rewrites event 2.
    app.tamper_audit_row(2, "actor = 'nobody'");
    let r = app
        .call(
            Method::GET,
            "/v1/audit/verify?full=true",
            OFFICER,
            None,
            None,
        )
        .await;
    assert_eq!(
        (r.body["intact"].as_bool(), r.body["first_bad_seq"].as_u64()),
        (Some(false), Some(2)),
        "{}",
        r.text
    );
    // And an export of it stops before a signature: the file does not verify.
    let key = public_key(&app).await;
    let resp = app
        .client
        .get(format!("{}/v1/audit/export", app.addr))
        .bearer_auth(app.token("compliance_officer"))
        .send()
        .await
        .unwrap();
    let body = resp.text().await.unwrap_or_default();
    assert!(verify_export(body.as_bytes(), &key).is_err());
    assert!(!body.contains("\"type\":\"checkpoint\""));
}
