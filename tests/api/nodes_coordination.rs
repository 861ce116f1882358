//! Two nodes on one PostgreSQL database (issue 14, requirement 5; docs/storage.md,
//! "Coordination between nodes"): both heartbeat, a rotation started on one does not activate
//! its new KEK until the other holds it, and a retention run while another node's sweep holds
//! the lock answers 409. Runs only with `GUESTVAULT_TEST_POSTGRES_URL` (on a database it
//! creates and drops); skipped otherwise.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_on, test_config, zhang_san, TestApp};

/// The retention sweep's advisory lock ("GVRETENT"; `store::postgres::coordination::lock_id`).
const RETENTION_LOCK: i64 = 0x4756_5245_5445_4e54;

struct Database {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Option<Self> {
        let Ok(base) = std::env::var("GUESTVAULT_TEST_POSTGRES_URL") else {
            eprintln!("skipped: GUESTVAULT_TEST_POSTGRES_URL is not set");
            return None;
        };
        let admin = connect(&base).await;
        let name = format!("gv_nodes_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (path, query) = base.split_once('?').unwrap_or((&base, ""));
        let (server, _) = path.rsplit_once('/').unwrap();
        let url = match query {
            "" => format!("{server}/{name}"),
            q => format!("{server}/{name}?{q}"),
        };
        Some(Self { admin, name, url })
    }

    async fn drop_it(self) {
        let _ = self
            .admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

fn node_config(dir: &std::path::Path, url: &str) -> guestvault::config::Config {
    let mut config = test_config(dir);
    config.storage.backend = "postgres".into();
    config.storage.postgres_url = Some(url.into());
    config.retention.sweep_interval_secs = 0;
    config
}

/// Copies `file` from node `from` to node `to` the way an operator would: whole, replacing the
/// old one at once.
fn copy_to_node(from: &std::path::Path, to: &std::path::Path) {
    let tmp = to.with_extension("copying");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

async fn keys(app: &TestApp) -> Value {
    let r = app
        .call(Method::GET, "/v1/admin/keys", Some("admin"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

async fn read_guest(app: &TestApp, id: &str) -> StatusCode {
    app.call(
        Method::GET,
        &format!("/v1/guests/{id}"),
        Some("front_desk"),
        Some("check_in"),
        None,
    )
    .await
    .status
}

async fn run_retention(app: &TestApp, dry_run: bool) -> crate::helpers::Resp {
    app.call(
        Method::POST,
        &format!("/v1/admin/retention/run?dry_run={dry_run}"),
        Some("admin"),
        None,
        None,
    )
    .await
}

async fn kek_of(db: &tokio_postgres::Client, id: &str) -> i64 {
    db.query_one(
        "SELECT kek_version FROM guest_keys WHERE guest_id = $1",
        &[&id],
    )
    .await
    .unwrap()
    .get(0)
}

async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_heartbeat_rotate_behind_the_gate_and_share_the_sweep_lock() {
    let Some(db) = Database::create().await else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (config_a, config_b) = (
        node_config(dir_a.path(), &db.url),
        node_config(dir_b.path(), &db.url),
    );
    let init = config_a.clone();
    std::thread::spawn(move || guestvault::cli::init(&init).unwrap())
        .join()
        .unwrap();
    // Node B gets node A's keyring and token secret, as an operator sets up a second node.
    copy_to_node(&config_a.keyring_file(), &config_b.keyring_file());
    copy_to_node(&config_a.hs256_secret_file(), &config_b.hs256_secret_file());
    let a = spawn_on(dir_a, config_a).await;
    let b = spawn_on(dir_b, config_b).await;
    let pg = connect(&db.url).await;

    let nodes: Vec<(String, Vec<i32>, i32)> = pg
        .query(
            "SELECT node_id, kek_versions, active_kek FROM nodes ORDER BY node_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(nodes.iter().all(|(_, v, a)| v == &[1] && *a == 1));

    // Created on A, read on B.
    let first = a.create_guest(zhang_san()).await;
    assert_eq!(read_guest(&b, &first).await, StatusCode::OK);

    // A rotates: KEK 2 is added to A's keyring, but B does not hold it, so it stays inactive.
    let r = a
        .call(
            Method::POST,
            "/v1/admin/keys/rotate",
            Some("admin"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // A second rotation, on the other node, is refused while this one runs.
    let r = b
        .call(
            Method::POST,
            "/v1/admin/keys/rotate",
            Some("admin"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["code"], "conflict");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = keys(&a).await;
    assert_eq!(status["active_version"], 1, "{status}");
    assert_eq!(status["rotation"]["running"], true, "{status}");
    assert_eq!(status["rotation"]["target_version"], 2, "{status}");
    // Both nodes go on wrapping under KEK 1, which both hold.
    let during = b.create_guest(zhang_san()).await;
    assert_eq!(kek_of(&pg, &during).await, 1);
    assert_eq!(read_guest(&a, &during).await, StatusCode::OK);

    // The operator copies the new keyring to B: B reloads it and reports KEK 2, the gate opens,
    // and both nodes switch.
    copy_to_node(&a.config.keyring_file(), &b.config.keyring_file());
    eventually("the rotation finished on A", || async {
        let s = keys(&a).await;
        s["active_version"] == 2 && s["rotation"]["running"] == false
    })
    .await;
    eventually("B wraps under KEK 2", || async {
        keys(&b).await["active_version"] == 2
    })
    .await;
    let activated: i32 = pg
        .query_one("SELECT max(version) FROM kek_activations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(activated, 2);
    let after = b.create_guest(zhang_san()).await;
    assert_eq!(kek_of(&pg, &after).await, 2);
    let behind: i64 = pg
        .query_one(
            "SELECT count(*) FROM guest_keys WHERE kek_version <> 2",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(behind, 0, "the rewrap left no DEK under KEK 1");
    for id in [&first, &during, &after] {
        assert_eq!(read_guest(&a, id).await, StatusCode::OK);
        assert_eq!(read_guest(&b, id).await, StatusCode::OK);
    }

    // A live node that has not switched yet (its heartbeat still shows KEK 1 active, as a node
    // whose keyring reload lags would) keeps KEK 1 from being retired: it would wrap new DEKs
    // under it. Once that node's row is gone, the retirement goes through.
    pg.execute(
        "INSERT INTO nodes (node_id, version, keyring_fingerprint, kek_versions, active_kek, listen) \
         SELECT 'lagging-node', version, keyring_fingerprint, kek_versions, 1, '127.0.0.1:1' \
         FROM nodes LIMIT 1",
        &[],
    )
    .await
    .unwrap();
    let ops = guestvault::service::Caller {
        request_id: "t".into(),
        actor: "ops".into(),
        role: "admin".into(),
        purpose: None,
    };
    match a.vault.retire_kek(&ops, 1).await {
        Err(guestvault::service::VaultError::Conflict(why)) => assert_eq!(
            why,
            "KEK v1 is still the active KEK of node(s) lagging-node: retry in a few seconds"
        ),
        other => panic!("retiring v1 while a live node wraps under it: {other:?}"),
    }
    pg.execute("DELETE FROM nodes WHERE node_id = 'lagging-node'", &[])
        .await
        .unwrap();
    a.vault.retire_kek(&ops, 1).await.unwrap();

    // Another node's sweep holds the lock: a run answers 409, a dry run still answers.
    let holder = connect(&db.url).await;
    let taken: bool = holder
        .query_one("SELECT pg_try_advisory_lock($1)", &[&RETENTION_LOCK])
        .await
        .unwrap()
        .get(0);
    assert!(taken);
    let r = run_retention(&b, false).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["code"], "conflict");
    assert_eq!(run_retention(&b, true).await.status, StatusCode::OK);
    drop(holder);
    eventually("the sweep lock is free again", || async {
        run_retention(&b, false).await.status == StatusCode::OK
    })
    .await;

    // A clean shutdown removes the node's row.
    a.stop().await;
    let left: Vec<String> = pg
        .query("SELECT node_id FROM nodes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    b.stop().await;
    drop(pg);
    db.drop_it().await;
}
