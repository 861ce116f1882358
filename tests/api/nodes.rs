//! Several vault nodes on one PostgreSQL database (issue 14, requirement 8): each node is the
//! real `guestvault` binary as a child process with its own data dir (a copy of the same
//! keyring and token secret), all on one test database. Skipped with a message unless
//! `GUESTVAULT_TEST_POSTGRES_URL` is set.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guestvault::config::Config;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::pg;

const BIN: &str = env!("CARGO_BIN_EXE_guestvault");
static NEXT_MOBILE: AtomicU64 = AtomicU64::new(0);

/// One test's database and the config every node shares (but for its data dir).
struct Cluster {
    _db: Option<Arc<pg::TestDatabase>>,
    config: Config,
    dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// `None` (after saying why) without a PostgreSQL server to test against.
    fn new(nodes: usize) -> Option<Self> {
        if !pg::backend_is_postgres() {
            eprintln!(
                "skipped: {} is not set (several nodes need PostgreSQL)",
                pg::URL_VAR
            );
            return None;
        }
        let first = tempfile::tempdir().unwrap();
        let config = crate::helpers::test_config(first.path());
        guestvault::cli::init(&config).unwrap();
        let db = pg::take_database(&config);
        let mut dirs = vec![first];
        for _ in 1..nodes {
            let dir = tempfile::tempdir().unwrap();
            for file in ["keyring.json", "hs256.secret"] {
                std::fs::copy(dirs[0].path().join(file), dir.path().join(file)).unwrap();
            }
            dirs.push(dir);
        }
        Some(Self {
            _db: db,
            config,
            dirs,
        })
    }

    async fn start(&self, i: usize) -> Node {
        Node::start(&self.config, self.dirs[i].path()).await
    }
}

struct Node {
    child: Child,
    base: String,
    config: Config,
    client: reqwest::Client,
    log: std::path::PathBuf,
    _logdir: tempfile::TempDir,
}

impl Node {
    async fn start(shared: &Config, data_dir: &Path) -> Self {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("node.log");
        let out = std::fs::File::create(&log).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(BIN);
        cmd.current_dir(logdir.path()).env_remove("RUST_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("GUESTVAULT_") {
                cmd.env_remove(k);
            }
        }
        let url = shared.storage.postgres_url.clone().unwrap();
        cmd.arg("serve")
            .env("GUESTVAULT_STORAGE_DATA_DIR", data_dir)
            .env("GUESTVAULT_STORAGE_BACKEND", "postgres")
            .env("GUESTVAULT_STORAGE_POSTGRES_URL", url)
            .env("GUESTVAULT_SERVER_LISTEN", format!("127.0.0.1:{port}"));
        if let Some(file) = &shared.storage.postgres_password_file {
            cmd.env("GUESTVAULT_STORAGE_POSTGRES_PASSWORD_FILE", file);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the node exited during start-up ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status() == StatusCode::OK {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not ready in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut config = shared.clone();
        config.storage.data_dir = data_dir.to_owned();
        Self {
            child,
            base,
            config,
            client,
            log,
            _logdir: logdir,
        }
    }

    fn token(&self, role: &str) -> String {
        guestvault::auth::mint_with_config(
            &self.config,
            role,
            &format!("nodes-{role}"),
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        role: &str,
        purpose: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token(role))
            .header("X-Purpose", purpose);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self) -> String {
        let i = NEXT_MOBILE.fetch_add(1, Ordering::Relaxed);
        let mut fields = crate::helpers::zhang_san();
        fields["mobile"] = json!(format!("136{i:08}"));
        // Registration fields only (check_in does not take the rest).
        for f in ["email", "membership_level", "dietary_needs"] {
            fields.as_object_mut().unwrap().remove(f);
        }
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/guests",
                "pms",
                "check_in",
                Some(json!({ "fields": fields })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["guest_id"].as_str().unwrap().to_string()
    }

    async fn verify(&self) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                "/v1/audit/verify?full=true",
                "compliance_officer",
                "audit",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_serve_one_database_with_one_chain() {
    let Some(cluster) = Cluster::new(2) else {
        return;
    };
    let a = cluster.start(0).await;
    let b = cluster.start(1).await;
    let get = reqwest::Method::GET;

    // Created on A, read on B.
    let id = a.create().await;
    let (status, on_b) = b
        .call(
            get.clone(),
            &format!("/v1/guests/{id}"),
            "front_desk",
            "check_in",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{on_b}");
    assert_eq!(on_b["fields"]["full_name"], "张三丰");
    assert_eq!(on_b["fields"]["id_number"], "1***************2X");

    // A consent granted on B holds on A; withdrawn on A, it is gone on B at the very next
    // request (no node caches consent state).
    let path = format!("/v1/guests/{id}/consents/marketing");
    let (status, body) = b
        .call(
            reqwest::Method::PUT,
            &path,
            "pms",
            "check_in",
            Some(json!({"notice_version": "2026-11", "channel": "front_desk"})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let guest = format!("/v1/guests/{id}");
    assert_eq!(
        a.call(get.clone(), &guest, "marketing", "marketing", None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = a
        .call(reqwest::Method::DELETE, &path, "pms", "check_in", None)
        .await;
    assert!(status.is_success());
    let (status, body) = b
        .call(get.clone(), &guest, "marketing", "marketing", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "consent_required");

    // Erased on B (contact data only, nothing statutory: everything is deleted), then 404 on
    // A; and a registration record erased on B is restricted on A at once.
    let (status, body) = b
        .call(
            reqwest::Method::POST,
            "/v1/guests",
            "pms",
            "check_in",
            Some(json!({"fields": {"mobile": "13311112222"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let other = body["guest_id"].as_str().unwrap().to_string();
    let (status, body) = b
        .call(
            reqwest::Method::POST,
            &format!("/v1/guests/{other}/erasure"),
            "dsr_officer",
            "data_subject_request",
            Some(json!({"reason": "guest_request"})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = a
        .call(
            get.clone(),
            &format!("/v1/guests/{other}"),
            "front_desk",
            "check_in",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The registration guest stayed, so an erasure keeps its registration (restricted); one
    // who never stayed would be erased whole (issue 16 §3).
    let (status, body) = a
        .call(
            reqwest::Method::POST,
            &format!("/v1/guests/{id}/stays"),
            "pms",
            "check_in",
            Some(
                json!({"fields": {"property": "SHA01", "check_in": "2026-11-20",
                "check_out": "2026-11-23", "room_number": "1208"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = b
        .call(
            reqwest::Method::POST,
            &format!("/v1/guests/{id}/erasure"),
            "dsr_officer",
            "data_subject_request",
            Some(json!({"reason": "guest_request"})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = a
        .call(get.clone(), &guest, "front_desk", "check_in", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "restricted");

    // Interleaved writes from both nodes land in one chain that both verify alike.
    let mut tasks = Vec::new();
    for node in [&a, &b] {
        for _ in 0..20 {
            let (client, base, token) = (node.client.clone(), node.base.clone(), node.token("pms"));
            tasks.push(tokio::spawn(async move {
                let i = NEXT_MOBILE.fetch_add(1, Ordering::Relaxed);
                let r = client
                    .post(format!("{base}/v1/guests"))
                    .bearer_auth(&token)
                    .header("X-Purpose", "check_in")
                    .json(&json!({"fields": {"mobile": format!("134{i:08}"), "full_name": "李四"}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (va, vb) = (a.verify().await, b.verify().await);
    assert_eq!(va["intact"], true, "{va}");
    assert_eq!(vb["intact"], true, "{vb}");
    // B's verification sees A's (audited) verification as the one newer event.
    assert_eq!(
        vb["events"].as_u64().unwrap(),
        va["events"].as_u64().unwrap() + 1,
        "{va} {vb}"
    );
    let events = va["events"].as_u64().unwrap();
    assert!(events >= 48, "{va}");
    // The seqs run 1..=n without a gap, with events of both nodes' callers in them.
    let (status, page) = a
        .call(
            get,
            "/v1/audit/events?limit=1000",
            "compliance_officer",
            "audit",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    assert!(seqs.len() as u64 >= events - 3, "the page holds the trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_node_under_load_loses_no_acknowledged_write_and_the_other_serves() {
    let Some(cluster) = Cluster::new(2) else {
        return;
    };
    let a = cluster.start(0).await;
    let b = cluster.start(1).await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked_on_b_after_kill = Arc::new(AtomicU64::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (node, n) in [(&a, 12), (&b, 12)] {
        let on_b = std::ptr::eq(node, &b);
        for _ in 0..n {
            let (client, base, token) = (node.client.clone(), node.base.clone(), node.token("pms"));
            let (acked, after, killed, stop) = (
                acked.clone(),
                acked_on_b_after_kill.clone(),
                killed.clone(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let i = NEXT_MOBILE.fetch_add(1, Ordering::Relaxed);
                    let r = client
                        .post(format!("{base}/v1/guests"))
                        .bearer_auth(&token)
                        .header("X-Purpose", "check_in")
                        .json(&json!({"fields": {"mobile": format!("135{i:08}"), "full_name": "李四"}}))
                        .send()
                        .await;
                    let Ok(r) = r else {
                        // The killed node's connections fail; its tasks end.
                        assert!(!on_b, "node B stopped answering");
                        return;
                    };
                    let status = r.status();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    if status == StatusCode::CREATED {
                        acked
                            .lock()
                            .unwrap()
                            .push(body["guest_id"].as_str().unwrap().to_string());
                        if on_b && killed.load(Ordering::SeqCst) {
                            after.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        assert!(!on_b, "node B answered {status} {body}");
                    }
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log_a = a.log();
    a.kill9();
    killed.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let after = acked_on_b_after_kill.load(Ordering::Relaxed);
    assert!(after > 0, "node B served nothing after A was killed");
    // Every acknowledged write, through either node, is there (read through B).
    let mut missing = 0;
    for id in &acked {
        let (status, _) = b
            .call(
                reqwest::Method::GET,
                &format!("/v1/guests/{id}"),
                "front_desk",
                "check_in",
                None,
            )
            .await;
        if status != StatusCode::OK {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged writes lost",
        acked.len()
    );
    let v = b.verify().await;
    assert_eq!(v["intact"], true, "{v}\n{log_a}");
    eprintln!(
        "kill -9 of node A under load: {} acknowledged writes all present, {after} served by B after the kill; {} events verify",
        acked.len(),
        v["events"]
    );
}

/// Runs `sql` on the test server's maintenance database (as the test URL's user).
fn admin(sql: &str) {
    let url = std::env::var(pg::URL_VAR).unwrap();
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
        });
    })
    .join()
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_lost_mid_run_gives_503_and_not_ready_then_recovers_by_itself() {
    let Some(cluster) = Cluster::new(1) else {
        return;
    };
    let a = cluster.start(0).await;
    let id = a.create().await;
    let guest = format!("/v1/guests/{id}");
    let name = cluster
        .config
        .storage
        .postgres_url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .map(|s| s.split('?').next().unwrap().to_string())
        .unwrap();
    // The database goes away: no new connection is allowed and every session is ended.
    admin(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ));
    for _ in 0..3 {
        let (status, body) = a
            .call(reqwest::Method::GET, &guest, "front_desk", "check_in", None)
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "unavailable", "{body}");
        let text = body.to_string();
        assert!(!text.contains("张三丰") && !text.contains(&name), "{text}");
    }
    // Readiness is cached for a second.
    let until = Instant::now() + Duration::from_secs(10);
    let body: Value = loop {
        let r = a
            .client
            .get(format!("{}/readyz", a.base))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            break r.json().await.unwrap();
        }
        assert!(Instant::now() < until, "/readyz stayed ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["reason"], "database_unavailable", "{body}");
    // It comes back: the node reconnects by itself.
    admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = a
            .call(reqwest::Method::GET, &guest, "front_desk", "check_in", None)
            .await;
        if status == StatusCode::OK {
            assert_eq!(body["fields"]["full_name"], "张三丰");
            break;
        }
        assert!(Instant::now() < until, "not recovered: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = a
            .client
            .get(format!("{}/readyz", a.base))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < until, "/readyz did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every connection of the node was ended, not only the first one used again: none of
    // them may fail a request once the database is back (each writer and reader connection
    // learns it is dead only when next used, and must then reconnect, not answer 503).
    for _ in 0..30 {
        let (status, body) = a
            .call(reqwest::Method::GET, &guest, "front_desk", "check_in", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(a.verify().await["intact"], true);
}
