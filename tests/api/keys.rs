//! Key rotation online, resumption, retirement, the sealed keyring, and backup/restore that
//! keeps erasures (REQ-11, REQ-27).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_on, test_config, zhang_san, TestApp};

/// Creates `n` guests over HTTP with 32 concurrent clients; returns their ids.
async fn seed(app: &Arc<TestApp>, n: usize) -> Vec<String> {
    let mut tasks = Vec::new();
    for t in 0..32 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let token = app.token("pms");
            let mut ids = Vec::new();
            for i in (t..n).step_by(32) {
                let body =
                    json!({"fields": {"mobile": format!("139{:08}", i), "full_name": "王五"}});
                let r = app
                    .client
                    .post(format!("{}/v1/guests", app.addr))
                    .bearer_auth(&token)
                    .header("X-Purpose", "check_in")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                ids.push(
                    r.json::<serde_json::Value>().await.unwrap()["guest_id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    crate::helpers::storage_env(
        &mut std::process::Command::new(env!("CARGO_BIN_EXE_guestvault")),
        &app.config,
    )
    .args(args)
    .output()
    .unwrap()
}

#[tokio::test]
async fn rotation_of_10k_deks_runs_while_reads_continue_then_the_old_key_is_retired() {
    let app = Arc::new(spawn_app().await);
    let ids = Arc::new(seed(&app, 10_000).await);

    // The active KEK cannot be retired.
    let out = cli(&app, &["keys", "retire", "--version", "1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("active KEK"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (reads, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let reader = {
        let (app, ids, stop, reads, errors) = (
            app.clone(),
            ids.clone(),
            stop.clone(),
            reads.clone(),
            errors.clone(),
        );
        tokio::spawn(async move {
            let token = app.token("front_desk");
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let id = &ids[(i * 7919) % ids.len()];
                let r = app
                    .client
                    .get(format!("{}/v1/guests/{id}", app.addr))
                    .bearer_auth(&token)
                    .header("X-Purpose", "check_in")
                    .send()
                    .await
                    .unwrap();
                if r.status() == StatusCode::OK {
                    reads.fetch_add(1, Ordering::SeqCst)
                } else {
                    errors.fetch_add(1, Ordering::SeqCst)
                };
                i += 1;
            }
        })
    };
    let r = app
        .call(
            Method::POST,
            "/v1/admin/keys/rotate",
            Some("admin"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let status = loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let s = app
            .call(Method::GET, "/v1/admin/keys", Some("admin"), None, None)
            .await
            .body;
        if s["rotation"]["running"] == false
            && s["rotation"]["done"] == s["rotation"]["total"]
            && s["active_version"] == 2
        {
            break s;
        }
    };
    // Creates during and after rotation use the new KEK.
    let new_id = app.create_guest(zhang_san()).await;
    stop.store(true, Ordering::SeqCst);
    reader.await.unwrap();
    assert_eq!(errors.load(Ordering::SeqCst), 0);
    assert!(reads.load(Ordering::SeqCst) > 0);
    assert_eq!(status["rotation"]["total"], 10_000);
    let counts: Vec<(u32, i64)> = app
        .sql_rows(
            "SELECT kek_version, count(*) FROM guest_keys GROUP BY kek_version ORDER BY kek_version",
            &[],
        )
        .into_iter()
        .map(|r| {
            let n = |v: &Option<String>| v.as_deref().unwrap().to_string();
            (n(&r[0]).parse().unwrap(), n(&r[1]).parse().unwrap())
        })
        .collect();
    assert_eq!(counts, vec![(2, 10_001)]);

    // Retire v1 (the CLI, while the server runs), restart, and everything still reads.
    let out = cli(&app, &["keys", "retire", "--version", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = Arc::into_inner(app).unwrap();
    let (dir, config) = app.stop().await;
    let keyring = std::fs::read_to_string(config.keyring_file()).unwrap();
    assert!(
        !keyring.contains("\"version\": 1,"),
        "v1 is gone from the keyring"
    );
    let app = spawn_on(dir, config).await;
    for id in [&ids[0], &ids[9_999], &new_id] {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/guests/{id}"),
                Some("pms"),
                Some("check_in"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // Each step is audited, with what it did: the refusal, start, finish and retirement.
    let steps: Vec<(String, Option<String>)> = app
        .sql_rows(
            "SELECT outcome, reason FROM audit_events WHERE action = 'admin.keys' ORDER BY seq",
            &[],
        )
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone()))
        .collect();
    let expected = [
        ("denied", "KEK v1 is the active KEK"),
        ("allowed", "key rotation to v2 started: 10000 DEKs"),
        (
            "allowed",
            "key rotation to v2 finished: 10000 DEKs rewrapped",
        ),
        ("allowed", "KEK v1 retired"),
    ];
    assert_eq!(
        steps,
        expected
            .iter()
            .map(|(o, r)| (o.to_string(), Some(r.to_string())))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_interrupted_rotation_resumes_without_a_new_key() {
    let app = Arc::new(spawn_app().await);
    seed(&app, 1_200).await;
    let caller = guestvault::service::Caller {
        request_id: "t".into(),
        actor: "ops".into(),
        role: "admin".into(),
        purpose: None,
    };
    let first = app
        .vault
        .rotate_keys(&caller, Some(1), |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (
            first.target_version,
            first.rewrapped,
            first.finished,
            first.resumed
        ),
        (2, 500, false, false)
    );
    // Mid-rotation v1 still wraps 700 DEKs: retiring it is refused.
    match app.vault.retire_kek(&caller, 1).await {
        Err(guestvault::service::VaultError::Conflict(why)) => {
            assert_eq!(
                why,
                "KEK v1 still wraps 700 DEK(s): finish the rotation first"
            )
        }
        other => panic!("retiring v1 mid-rotation: {other:?}"),
    }
    // Creates succeed mid-rotation and while the rotation resumes, all under the new KEK.
    let mid = app.create_guest(zhang_san()).await;
    let creator = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..40 {
                let r = app
                    .call(
                        Method::POST,
                        "/v1/guests",
                        Some("pms"),
                        Some("check_in"),
                        Some(json!({"fields": {"mobile": format!("137{i:08}")}})),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
                ids.push(r.body["guest_id"].as_str().unwrap().to_string());
            }
            ids
        })
    };
    let second = app
        .vault
        .rotate_keys(&caller, None, |_, _| {})
        .await
        .unwrap();
    let created = creator.await.unwrap();
    assert_eq!(created.len(), 40);
    assert_eq!(
        (
            second.target_version,
            second.rewrapped,
            second.finished,
            second.resumed
        ),
        (2, 700, true, true)
    );
    assert_eq!(app.vault.keys().kek_versions(), vec![1, 2]);
    let counts: Vec<(u32, i64)> = app
        .sql_rows(
            "SELECT kek_version, count(*) FROM guest_keys GROUP BY kek_version ORDER BY kek_version",
            &[],
        )
        .into_iter()
        .map(|r| {
            let n = |v: &Option<String>| v.as_deref().unwrap().to_string();
            (n(&r[0]).parse().unwrap(), n(&r[1]).parse().unwrap())
        })
        .collect();
    assert_eq!(counts, vec![(2, 1_200 + 1 + 40)]);
    for id in created.iter().take(3).chain([&mid]) {
        let r = app
            .call(
                Method::GET,
                &format!("/v1/guests/{id}"),
                Some("pms"),
                Some("check_in"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    app.vault.retire_kek(&caller, 1).await.unwrap();
}

#[tokio::test]
async fn a_sealed_keyring_needs_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let pass_file = dir.path().join("passphrase");
    write_private(&pass_file, "a long enough passphrase\n");
    config.keys.passphrase_file = Some(pass_file.clone());
    let seal = guestvault::crypto::seal::SealKey::new(
        b"a long enough passphrase",
        guestvault::crypto::seal::MIN_ITERATIONS,
    )
    .unwrap();
    guestvault::cli::init_sealed(&config, Some(seal)).unwrap();
    let text = std::fs::read_to_string(config.keyring_file()).unwrap();
    assert!(text.contains("guestvault-keyring-sealed/v1") && !text.contains("index_root_key"));

    let app = spawn_on(dir, config).await;
    let id = app.create_guest(zhang_san()).await;
    let (dir, mut config) = app.stop().await;
    std::fs::write(&pass_file, "the wrong passphrase").unwrap();
    let before = std::fs::read(config.keyring_file()).unwrap();
    let err = format!(
        "{:#}",
        guestvault::startup::App::build(config.clone())
            .await
            .unwrap_err()
    );
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(std::fs::read(config.keyring_file()).unwrap(), before);
    config.keys.passphrase_file = Some(pass_file.clone());
    std::fs::write(&pass_file, "a long enough passphrase").unwrap();
    let app = spawn_on(dir, config).await;
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("check_in"),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_guest_erased_after_a_backup_stays_erased_after_restoring_it() {
    if crate::helpers::skip_on_postgres(
        "`guestvault backup`/`restore` snapshot and replace the SQLite file (VACUUM INTO); \
         a PostgreSQL database is backed up with the server's own tools",
    ) {
        return;
    }
    let app = spawn_app().await;
    let gone = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields":{"mobile":"13700001234"}})),
        )
        .await
        .body["guest_id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = app.create_guest(zhang_san()).await;
    let consent = json!({"notice_version":"2026-11","channel":"app"});
    let path = format!("/v1/guests/{kept}/consents/marketing");
    app.call(
        Method::PUT,
        &path,
        Some("pms"),
        Some("check_in"),
        Some(consent),
    )
    .await;
    let backup = app.dir.path().join("snapshot.db");
    let m = guestvault::ops::backup(&app.config, &backup).unwrap();
    assert!(m.audit_head_seq > 0);
    assert_holds_no_key_material(&backup, &app.config.keyring_file());
    // The backup is audited, and its event is inside the snapshot (the newest one there).
    let (action, actor, backup_seq): (String, String, i64) =
        rusqlite::Connection::open_with_flags(&backup, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
            .query_row(
                "SELECT action, actor, seq FROM audit_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
    assert_eq!(action, "admin.backup");
    assert!(actor.starts_with("cli:"), "{actor}");
    assert_eq!(backup_seq as u64, m.audit_head_seq);
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{gone}/erasure"),
            Some("dsr_officer"),
            Some("data_subject_request"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.body["status"], "completed", "{}", r.text);
    // Withdrawn after the snapshot: must stay withdrawn after the restore.
    app.call(Method::DELETE, &path, Some("pms"), Some("check_in"), None)
        .await;

    // No restore under a running server.
    let err = format!(
        "{:#}",
        guestvault::ops::restore(&app.config, &backup, false)
            .await
            .unwrap_err()
    );
    assert!(err.contains("stop the server"), "{err}");
    let (dir, config) = app.stop().await;
    let report = guestvault::ops::restore(&config, &backup, false)
        .await
        .unwrap();
    assert_eq!(
        report.erasures_replayed, 2,
        "one erasure and one withdrawal"
    );
    assert!(report.audit_events_verified > 0);
    // The erasure's own audit events (after the snapshot) survive the restore.
    assert!(report.audit_events_carried >= 1, "{report:?}");

    let app = spawn_on(dir, config).await;
    // The restore is audited after everything it carried over and re-applied.
    let (restore_seq, actor, reason): (i64, String, String) = app
        .db()
        .query_row(
            "SELECT seq, actor, reason FROM audit_events WHERE action = 'admin.restore'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(actor.starts_with("cli:"), "{actor}");
    assert!(reason.contains("2 ledger entries re-applied"), "{reason}");
    let newest_carried: i64 = app
        .db()
        .query_row(
            "SELECT max(seq) FROM audit_events WHERE action = 'guest.erase'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(restore_seq > newest_carried && newest_carried > backup_seq);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{gone}"),
            Some("pms"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{kept}"),
            Some("pms"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        guestvault::audit::verify_chain(&guestvault::store::Conn::Sqlite(&app.db())).unwrap(),
        Ok(app.audit_count() as u64)
    );
    let keys: i64 = app
        .db()
        .query_row(
            "SELECT count(*) FROM guest_keys WHERE guest_id = ?1",
            [&gone],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(keys, 0);

    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{kept}"),
            Some("marketing"),
            Some("marketing"),
            None,
        )
        .await;
    assert_eq!(
        r.body["code"], "consent_required",
        "the withdrawal survived the restore"
    );

    // A tampered snapshot is refused by its manifest.
    let mut bytes = std::fs::read(&backup).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&backup, bytes).unwrap();
    let (_dir, config) = app.stop().await;
    let err = format!(
        "{:#}",
        guestvault::ops::restore(&config, &backup, false)
            .await
            .unwrap_err()
    );
    assert!(err.contains("does not match its manifest"), "{err}");
}

#[tokio::test]
async fn the_audit_cli_exports_and_purges_on_a_sealed_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let pass_file = dir.path().join("passphrase");
    write_private(&pass_file, "a long enough passphrase\n");
    config.keys.passphrase_file = Some(pass_file.clone());
    let seal = guestvault::crypto::seal::SealKey::new(
        b"a long enough passphrase",
        guestvault::crypto::seal::MIN_ITERATIONS,
    )
    .unwrap();
    guestvault::cli::init_sealed(&config, Some(seal)).unwrap();
    let app = spawn_on(dir, config).await;
    app.create_guest(zhang_san()).await;
    let key = app
        .call(
            Method::GET,
            "/v1/audit/public-key",
            Some("compliance_officer"),
            None,
            None,
        )
        .await
        .body["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let data_dir = app.config.storage.data_dir.clone();
    let out = data_dir.join("export.jsonl");
    let run = |args: &[&str]| {
        crate::helpers::storage_env(
            &mut std::process::Command::new(env!("CARGO_BIN_EXE_guestvault")),
            &app.config,
        )
        .args(args)
        .env("GUESTVAULT_KEYS_PASSPHRASE_FILE", &pass_file)
        .output()
        .unwrap()
    };
    let r = run(&["audit", "export", "--out", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let pk = guestvault::audit::verify::PublicKey::parse(&key).unwrap();
    let report =
        guestvault::audit::verify::verify_export(std::fs::File::open(&out).unwrap(), &pk).unwrap();
    assert_eq!(report.events, app.audit_count() as u64);
    let r = run(&["audit", "public-key"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), key);
    let r = run(&["audit", "purge", "--dry-run"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).contains("nothing to purge"));
    // Without the passphrase the sealed keyring is not opened, and says why.
    let r = crate::helpers::storage_env(
        &mut std::process::Command::new(env!("CARGO_BIN_EXE_guestvault")),
        &app.config,
    )
    .args(["audit", "public-key"])
    .env_remove("GUESTVAULT_KEYS_PASSPHRASE_FILE")
    .output()
    .unwrap();
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("is sealed"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

fn ops_caller() -> guestvault::service::Caller {
    guestvault::service::Caller {
        request_id: "t".into(),
        actor: "ops".into(),
        role: "admin".into(),
        purpose: None,
    }
}

#[tokio::test]
async fn a_backup_from_before_a_kek_was_retired_is_refused_and_nothing_is_replaced() {
    if crate::helpers::skip_on_postgres(
        "`guestvault backup`/`restore` snapshot and replace the SQLite file (VACUUM INTO); \
         a PostgreSQL database is backed up with the server's own tools",
    ) {
        return;
    }
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let backup = app.dir.path().join("before-retire.db");
    guestvault::ops::backup(&app.config, &backup).unwrap();
    let caller = ops_caller();
    let r = app
        .vault
        .rotate_keys(&caller, None, |_, _| {})
        .await
        .unwrap();
    assert!(r.finished);
    app.vault.retire_kek(&caller, 1).await.unwrap();
    let (dir, config) = app.stop().await;
    let before = std::fs::read(config.database_file()).unwrap();
    let err = format!(
        "{:#}",
        guestvault::ops::restore(&config, &backup, false)
            .await
            .unwrap_err()
    );
    assert!(
        err.contains("no longer holds: v1 (1 DEK(s))") && err.contains("Nothing was replaced"),
        "{err}"
    );
    assert_eq!(std::fs::read(config.database_file()).unwrap(), before);
    assert!(!config
        .database_file()
        .with_extension("db.restoring")
        .exists());
    let app = spawn_on(dir, config).await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// `keys rotate && keys retire` from the CLI while a server runs: the server rereads the
/// keyring only every 2 s and until then wraps new DEKs under the old KEK. The retirement must
/// wait for the keyring to settle before it counts, so a DEK committed under v1 in that window
/// (inserted here directly, as the server would) makes it refuse instead of orphaning the guest.
#[tokio::test]
async fn a_cli_retire_right_after_a_rotation_waits_and_counts_late_deks() {
    let app = spawn_app().await;
    app.create_guest(zhang_san()).await;
    let out = cli(&app, &["keys", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = std::time::Instant::now();
    let retire = crate::helpers::storage_env(
        &mut std::process::Command::new(env!("CARGO_BIN_EXE_guestvault")),
        &app.config,
    )
    .args(["keys", "retire", "--version", "1"])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    app.sql_exec(
        "INSERT INTO guests (guest_id, created_at, status, last_activity_at)
         VALUES ('late-guest', '2026-11-30T00:00:00Z', 'active', '2026-11-30T00:00:00Z')",
        &[],
    );
    app.sql_exec(
        "INSERT INTO guest_keys (guest_id, kek_version, wrapped_dek) VALUES ('late-guest', 1, ?1)",
        &[&vec![0u8]],
    );
    let out = tokio::task::spawn_blocking(move || retire.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "retired v1 under a late DEK: {stderr}"
    );
    assert!(stderr.contains("KEK v1 still wraps 1 DEK(s)"), "{stderr}");
    assert!(stderr.contains("waiting"), "{stderr}");
    // SQLite: the server wraps under its keyring file's active KEK, reread every 2 s, so the
    // retirement waits for the file to settle before it counts. PostgreSQL: the active KEK is
    // the database's (`kek_activations`), and a retirement is refused while any live node's
    // heartbeat still shows the old one active (`Vault::retire_kek`, `nodes_wrapping_under`),
    // so no wait on the file is needed there; the late DEK is still counted above.
    if !crate::helpers::pg::backend_is_postgres() {
        assert!(
            started.elapsed()
                >= guestvault::service::KEYRING_SETTLE - std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let keyring = std::fs::read_to_string(app.config.keyring_file()).unwrap();
    assert!(
        keyring.contains("\"version\": 1,"),
        "v1 is still in the keyring"
    );
}

/// A vault with one erasure in its ledger and a signed checkpoint, backed up, then stopped.
async fn stopped_after_a_backup() -> (
    tempfile::TempDir,
    guestvault::config::Config,
    std::path::PathBuf,
) {
    let app = spawn_app().await;
    app.create_guest(zhang_san()).await;
    let gone = app.create_guest(json!({"mobile": "13900001111"})).await;
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{gone}/erasure"),
            Some("dsr_officer"),
            Some("data_subject_request"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.body["status"], "completed", "{}", r.text);
    app.vault.checkpoint_now().await.unwrap();
    let backup = app.dir.path().join("snapshot.db");
    let m = guestvault::ops::backup(&app.config, &backup).unwrap();
    assert_eq!(m.erasure_ledger_seq, 1);
    let (dir, config) = app.stop().await;
    (dir, config, backup)
}

async fn restore_err(
    config: &guestvault::config::Config,
    backup: &std::path::Path,
    force: bool,
) -> String {
    let before = std::fs::read(config.database_file()).unwrap();
    let err = format!(
        "{:#}",
        guestvault::ops::restore(config, backup, force)
            .await
            .unwrap_err()
    );
    assert_eq!(
        std::fs::read(config.database_file()).unwrap(),
        before,
        "nothing installed: {err}"
    );
    err
}

#[tokio::test]
async fn restore_needs_the_manifest_unless_forced() {
    if crate::helpers::skip_on_postgres(
        "`guestvault backup`/`restore` snapshot and replace the SQLite file (VACUUM INTO); \
         a PostgreSQL database is backed up with the server's own tools",
    ) {
        return;
    }
    let (_dir, config, backup) = stopped_after_a_backup().await;
    let manifest = backup.with_extension("db.manifest.json");
    std::fs::remove_file(&manifest).unwrap();
    let err = restore_err(&config, &backup, false).await;
    assert!(
        err.contains("no manifest") && err.contains("--force"),
        "{err}"
    );
    let report = guestvault::ops::restore(&config, &backup, true)
        .await
        .unwrap();
    assert!(report.audit_events_verified > 0, "{report:?}");
    // The CLI flag reaches it too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestvault"))
        .args(["restore", backup.to_str().unwrap()])
        .env("GUESTVAULT_STORAGE_DATA_DIR", &config.storage.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
}

#[tokio::test]
async fn restore_refuses_a_ledger_older_than_the_backup() {
    if crate::helpers::skip_on_postgres(
        "`guestvault backup`/`restore` snapshot and replace the SQLite file (VACUUM INTO); \
         a PostgreSQL database is backed up with the server's own tools",
    ) {
        return;
    }
    let (_dir, config, backup) = stopped_after_a_backup().await;
    let ledger = config
        .storage
        .data_dir
        .join(guestvault::ledger::LEDGER_FILE);
    let kept = std::fs::read(&ledger).unwrap();
    std::fs::remove_file(&ledger).unwrap();
    let err = restore_err(&config, &backup, false).await;
    assert!(
        err.contains("ends at seq 0, but it was at seq 1 when this backup was taken"),
        "{err}"
    );
    // Even --force does not waive it while the manifest is there.
    let err = restore_err(&config, &backup, true).await;
    assert!(err.contains("could undo erasures"), "{err}");
    std::fs::write(&ledger, kept).unwrap();
    guestvault::ops::restore(&config, &backup, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn restore_refuses_a_trail_rewritten_with_recomputed_hashes() {
    if crate::helpers::skip_on_postgres(
        "`guestvault backup`/`restore` snapshot and replace the SQLite file (VACUUM INTO); \
         a PostgreSQL database is backed up with the server's own tools",
    ) {
        return;
    }
    let (_dir, config, backup) = stopped_after_a_backup().await;
    {
        // Someone with the backup but not the audit key rewrites event 2 and rehashes the rest.
        let c = rusqlite::Connection::open(&backup).unwrap();
        c.execute_batch("DROP TRIGGER audit_events_no_update;")
            .unwrap();
        let mut prev = guestvault::audit::read_after(&guestvault::store::Conn::Sqlite(&c), 0, 1)
            .unwrap()
            .remove(0)
            .hash;
        for mut e in
            guestvault::audit::read_after(&guestvault::store::Conn::Sqlite(&c), 1, 10_000).unwrap()
        {
            if e.event.seq == 2 {
                e.event.actor = "someone-else".into();
            }
            let hash = e.event.chain_hash(&prev);
            c.execute(
                "UPDATE audit_events SET actor = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                rusqlite::params![e.event.actor, prev, hash.as_slice(), e.event.seq as i64],
            )
            .unwrap();
            prev = hash.to_vec();
        }
        assert!(
            guestvault::audit::verify_chain(&guestvault::store::Conn::Sqlite(&c))
                .unwrap()
                .is_ok()
        );
    }
    // ... and the manifest's checksum to match.
    let manifest = backup.with_extension("db.manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &std::fs::read(&backup).unwrap());
    m["sha256"] = json!(guestvault::crypto::hex(digest.as_ref()));
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = restore_err(&config, &backup, false).await;
    assert!(
        err.contains("does not verify (chain and signed checkpoints)"),
        "{err}"
    );
}

/// Every secret in the (unsealed) keyring file, in each encoding it could leak in: the base64
/// of the file, the raw bytes, lower-case hex; for the audit key also its 32-byte Ed25519 seed
/// inside the PKCS#8 document.
fn key_material(keyring_file: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let k: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keyring_file).unwrap()).unwrap();
    let mut secrets: Vec<(String, String)> = k["keks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                format!("kek v{}", e["version"]),
                e["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    secrets.push((
        "index root key".into(),
        k["index_root_key"].as_str().unwrap().into(),
    ));
    secrets.push((
        "audit signing key".into(),
        k["audit_signing_key"].as_str().unwrap().into(),
    ));
    let mut needles = Vec::new();
    for (name, encoded) in secrets {
        let raw = b64.decode(&encoded).unwrap();
        assert!(raw.len() >= 32, "{name}");
        let mut forms = vec![raw.clone()];
        if name == "audit signing key" {
            // ring's Ed25519 PKCS#8 v2: a 16-byte header, then the 32-byte seed.
            forms.push(raw[16..48].to_vec());
        }
        for f in forms {
            needles.push((format!("{name} (base64)"), b64.encode(&f).into_bytes()));
            needles.push((
                format!("{name} (hex)"),
                guestvault::crypto::hex(&f).into_bytes(),
            ));
            needles.push((format!("{name} (raw)"), f));
        }
    }
    needles
}

fn assert_holds_no_key_material(backup: &std::path::Path, keyring_file: &std::path::Path) {
    let needles = key_material(keyring_file);
    assert!(
        needles.len() >= 12,
        "KEK, index root key and audit key found"
    );
    // The scan finds what it looks for: every base64 form is in the keyring file itself.
    let keyring = std::fs::read(keyring_file).unwrap();
    let in_keyring = needles
        .iter()
        .filter(|(what, n)| {
            what.ends_with("(base64)") && keyring.windows(n.len()).any(|w| w == n.as_slice())
        })
        .count();
    assert_eq!(
        in_keyring,
        needles.len() / 3 - 1,
        "all but the seed's base64"
    );
    let manifest = backup.with_extension("db.manifest.json");
    for file in [backup, manifest.as_path()] {
        let bytes = std::fs::read(file).unwrap();
        assert!(bytes.len() > 1000 || file == manifest.as_path());
        for (what, needle) in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{} holds the {what}",
                file.display()
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
                0o600,
                "{} is owner-only",
                file.display()
            );
        }
    }
}

/// Writes a secret file owner-only, as the vault requires of `keys.passphrase_file`.
fn write_private(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[cfg(unix)]
#[test]
fn a_readable_keyring_or_passphrase_file_is_refused_before_the_passphrase_is_used() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let seal = guestvault::crypto::seal::SealKey::new(
        b"a long enough passphrase",
        guestvault::crypto::seal::MIN_ITERATIONS,
    )
    .unwrap();
    guestvault::cli::init_sealed(&config, Some(seal)).unwrap();
    let keyring = config.keyring_file();
    let pass_file = dir.path().join("passphrase");
    std::fs::write(&pass_file, "a long enough passphrase").unwrap();
    std::fs::set_permissions(&pass_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    config.keys.passphrase_file = Some(pass_file.clone());
    let err = format!(
        "{:#}",
        guestvault::startup::passphrase_for(&config, &keyring).unwrap_err()
    );
    assert!(
        err.contains("keys.passphrase_file") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&pass_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(guestvault::startup::passphrase_for(&config, &keyring)
        .unwrap()
        .is_some());
    // A group-readable keyring is refused before the passphrase file is even read.
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o640)).unwrap();
    config.keys.passphrase_file = Some(dir.path().join("does-not-exist"));
    let err = format!(
        "{:#}",
        guestvault::startup::passphrase_for(&config, &keyring).unwrap_err()
    );
    assert!(
        err.contains("readable by group or others; run `chmod 600`")
            && err.contains("keyring.json"),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_rotation_request_while_one_runs_gets_409() {
    let app = Arc::new(spawn_app().await);
    seed(&app, 2_000).await;
    let post = || {
        app.call(
            Method::POST,
            "/v1/admin/keys/rotate",
            Some("admin"),
            None,
            None,
        )
    };
    let (a, b) = tokio::join!(post(), post());
    let mut statuses = vec![a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        vec![StatusCode::ACCEPTED, StatusCode::CONFLICT],
        "{} / {}",
        a.text,
        b.text
    );
    // Deterministically: while a claim is held, the route refuses; once released it starts.
    loop {
        if let Some(claim) = app.vault.claim_rotation() {
            let r = post().await;
            assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
            assert_eq!(r.body["code"], "conflict");
            drop(claim);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = post().await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}
