//! `spawn_app`: a vault on 127.0.0.1:0 with a fresh data dir, tokens per role, and a capture of
//! everything the server logs (for the canary scans).
//!
//! Both backends (issue 14): SQLite by default; with `GUESTVAULT_TEST_POSTGRES_URL` set, every
//! config made by [`test_config`] uses `storage.backend = "postgres"` on a database of its own
//! (see [`pg`]). Tests that only make sense on SQLite start with
//! `if helpers::skip_on_postgres("why") { return; }`.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use guestvault::clock::{Clock, ManualClock};
use guestvault::config::Config;
use guestvault::startup::App;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Everything any test server logged, at debug level.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer_buf = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || CaptureWriter(writer_buf.clone()))
            .try_init();
        buf
    })
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub use pg::{backend_is_postgres, skip_on_postgres};
#[allow(unused_imports, reason = "only some tests use them")]
pub use sql::{storage_env, with_store};

pub struct TestApp {
    pub addr: String,
    pub config: Config,
    pub client: reqwest::Client,
    #[allow(dead_code, reason = "time-travel tests use it")]
    pub clock: Arc<ManualClock>,
    /// The running vault, for operations that have no HTTP route (paused rotations).
    #[allow(dead_code, reason = "only some tests use it")]
    pub vault: guestvault::service::Vault,
    /// The handlers' state, to build the router without a socket.
    #[allow(dead_code, reason = "only some tests use it")]
    pub state: guestvault::http::AppState,
    /// Every response body with a 4xx/5xx status, for the canary scan.
    pub error_bodies: Mutex<Vec<String>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// The test's PostgreSQL database (None on SQLite): dropped with the app, unless
    /// [`TestApp::stop`] hands it back for a restart on the same config.
    pg_db: Option<Arc<pg::TestDatabase>>,
    pub dir: tempfile::TempDir,
}

/// A config on `dir` listening on a free port; on PostgreSQL (when the test server is set),
/// also on a new database of its own, kept until the server started on it is dropped.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = dir.to_owned();
    config.server.listen = "127.0.0.1:0".into();
    if backend_is_postgres() {
        pg::use_new_database(&mut config, dir);
    }
    config
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    guestvault::cli::init(&config).unwrap();
    spawn_on(dir, config).await
}

/// [`spawn_app`] with some config keys changed first (edge limits, budgets, TLS).
#[allow(dead_code, reason = "only some tests use it")]
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config, &std::path::Path)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    guestvault::cli::init(&config).unwrap();
    tweak(&mut config, dir.path());
    spawn_on(dir, config).await
}

pub async fn spawn_on(dir: tempfile::TempDir, config: Config) -> TestApp {
    log_buffer();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let pg_db = pg::take_database(&config);
    let app = App::build_with_clock(config.clone(), clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    let addr = format!("http://127.0.0.1:{}", app.port());
    let vault = (*app.state().vault).clone();
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        addr,
        config,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        clock,
        vault,
        state,
        error_bodies: Mutex::new(Vec::new()),
        stop: Some(stop),
        server: Some(server),
        pg_db,
        dir,
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// The body without its `request_id`: a random UUID can contain any short digit string,
    /// so leak scans for short values look at everything else.
    pub fn text_without_request_id(&self) -> String {
        let mut body = self.body.clone();
        match body.as_object_mut() {
            Some(o) => {
                o.remove("request_id");
                body.to_string()
            }
            // Not a JSON object: scan the whole text.
            None => self.text.clone(),
        }
    }
}

impl TestApp {
    pub fn token(&self, role: &str) -> String {
        self.token_for(role, &format!("test-{role}"))
    }

    pub fn token_for(&self, role: &str, sub: &str) -> String {
        guestvault::auth::mint_with_config(&self.config, role, sub, Duration::from_secs(600))
            .unwrap()
    }

    /// Sends a request as `role` (None: no token) under `purpose` (None: no header).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        role: Option<&str>,
        purpose: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.addr));
        if let Some(role) = role {
            req = req.bearer_auth(self.token(role));
        }
        if let Some(p) = purpose {
            req = req.header("X-Purpose", p);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            self.error_bodies.lock().unwrap().push(text.clone());
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// Registers a guest the way a PMS does: identity fields under `check_in`, then service
    /// fields (email, membership, dietary and accessibility needs, preferences) under
    /// `guest_service`, since each purpose may only collect its own fields (REQ-03).
    pub async fn create_guest(&self, fields: Value) -> String {
        const SERVICE: [&str; 5] = [
            "email",
            "membership_level",
            "dietary_needs",
            "accessibility_needs",
            "preferences",
        ];
        let mut registration = fields.as_object().unwrap().clone();
        let mut service = serde_json::Map::new();
        for f in SERVICE {
            if let Some(v) = registration.remove(f) {
                service.insert(f.to_string(), v);
            }
        }
        let r = self
            .call(
                Method::POST,
                "/v1/guests",
                Some("pms"),
                Some("check_in"),
                Some(serde_json::json!({ "fields": registration })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["guest_id"].as_str().unwrap().to_string();
        if !service.is_empty() {
            let r = self
                .call(
                    Method::PATCH,
                    &format!("/v1/guests/{id}"),
                    Some("pms"),
                    Some("guest_service"),
                    Some(serde_json::json!({ "fields": service })),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        id
    }

    /// A read-only look at the SQLite database, for SQLite-only tests; the others use the
    /// backend-neutral `sql_*` helpers (see [`sql`]). On PostgreSQL this fails saying so.
    pub fn db(&self) -> rusqlite::Connection {
        assert!(
            !backend_is_postgres(),
            "this test reads the SQLite file (`TestApp::db`): skip it on PostgreSQL with \
             `helpers::skip_on_postgres` or port it"
        );
        rusqlite::Connection::open_with_flags(
            self.config.database_file(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    pub fn audit_count(&self) -> i64 {
        if let Some(db) = &self.pg_db {
            return db.count("SELECT count(*) FROM audit_events");
        }
        self.db()
            .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
            .unwrap()
    }

    /// Stops the server gracefully and waits for it (the writer thread ends once every handle
    /// on the vault, including this one, is gone).
    pub async fn stop(self) -> (tempfile::TempDir, Config) {
        let TestApp {
            dir,
            config,
            stop,
            server,
            vault,
            state,
            pg_db,
            ..
        } = self;
        drop(vault);
        drop(state);
        if let Some(s) = stop {
            let _ = s.send(());
        }
        if let Some(h) = server {
            h.await.unwrap();
        }
        // The next `spawn_on` with this config finds its database again.
        pg::put_back(&config, pg_db);
        (dir, config)
    }
}

/// Copies the shipped `policies/` (with its `notices/` texts) into `to`.
#[allow(dead_code, reason = "only some tests use it")]
pub fn copy_policies(to: &std::path::Path) {
    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let p = entry.unwrap().path();
            let target = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy_dir(&p, &target);
            } else {
                std::fs::copy(&p, target).unwrap();
            }
        }
    }
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        to,
    );
}

/// A registration record for tests.
pub fn zhang_san() -> Value {
    serde_json::json!({
        "full_name": "张三丰",
        "gender": "F",
        "birth_date": "1949-12-31",
        "nationality": "CN",
        "id_type": "cn_resident_id",
        "id_number": "11010519491231002X",
        "mobile": "13812345678",
        "email": "zhang.sanfeng@example.com",
        "address": "北京市海淀区中关村大街1号",
        "membership_level": "gold",
        "dietary_needs": "peanut allergy",
    })
}

pub mod pg;
pub mod sql;
