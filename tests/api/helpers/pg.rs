//! The PostgreSQL side of the harness: one database per test config, named
//! `gv_api_<pid>_<uuid>` on the server of `GUESTVAULT_TEST_POSTGRES_URL`.
//!
//! Lifetime: [`super::test_config`] creates the database and files it under the config's data dir;
//! [`super::spawn_on`] takes it into the [`super::TestApp`]; dropping the app drops the database
//! (`WITH (FORCE)`); [`super::TestApp::stop`] files it again, so a restart on the same
//! `(dir, config)` finds its data. A database filed but never taken again is dropped once its
//! data dir is gone (checked whenever a new one is made), and those of test processes that are
//! no longer running are dropped by the first test of the next run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use guestvault::config::Config;

pub const URL_VAR: &str = "GUESTVAULT_TEST_POSTGRES_URL";
const PREFIX: &str = "gv_api_";

/// Whether this run tests the PostgreSQL backend.
pub fn backend_is_postgres() -> bool {
    std::env::var_os(URL_VAR).is_some()
}

/// `true` (after saying why) when the test must not run on this backend: the caller
/// returns.
pub fn skip_on_postgres(reason: &str) -> bool {
    if backend_is_postgres() {
        eprintln!("skipped on PostgreSQL ({URL_VAR} is set): {reason}");
        return true;
    }
    false
}

/// One test's database; dropped with the value.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    data_dir: PathBuf,
}

impl TestDatabase {
    /// One number from the database (`SELECT count(*) ...`).
    pub fn count(&self, sql: &str) -> i64 {
        let url = with_dbname(&server_url(), &self.name).0;
        let sql = sql.to_string();
        on_own_runtime(move || async move {
            let client = connect(&url).await;
            client.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0)
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let url = server_url();
        let dropped = std::thread::spawn(move || {
            run(async move {
                let client = connect(&url).await;
                client.batch_execute(&sql).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: test database {} was not dropped", self.name);
        }
    }
}

/// Databases made by [`use_new_database`] and not held by a running app, by data dir.
fn filed() -> &'static Mutex<HashMap<PathBuf, Arc<TestDatabase>>> {
    static FILED: OnceLock<Mutex<HashMap<PathBuf, Arc<TestDatabase>>>> = OnceLock::new();
    FILED.get_or_init(Default::default)
}

fn server_url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| panic!("{URL_VAR} is not set"))
}

/// Creates a database for a test config on `dir` and points `config` at it.
pub fn use_new_database(config: &mut Config, dir: &Path) {
    sweep_dead_runs();
    let name = format!(
        "{PREFIX}{}_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let admin = server_url();
    let create = format!("CREATE DATABASE {name}");
    on_own_runtime(move || async move {
        connect(&admin).await.batch_execute(&create).await.unwrap();
    });
    let (url, password) = with_dbname(&server_url(), &name);
    config.storage.backend = "postgres".into();
    config.storage.postgres_url = Some(url);
    if let Some(password) = password {
        let file = dir.join("postgres.password");
        std::fs::write(&file, password).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        config.storage.postgres_password_file = Some(file);
    }
    let db = Arc::new(TestDatabase {
        name,
        data_dir: dir.to_owned(),
    });
    let mut filed = filed().lock().unwrap();
    // Data dirs that are gone belong to finished tests: their databases go too.
    filed.retain(|d, _| d.exists());
    filed.insert(dir.to_owned(), db);
}

/// The database filed for `config`'s data dir, for the app about to start on it.
pub fn take_database(config: &Config) -> Option<Arc<TestDatabase>> {
    if config.storage.backend != "postgres" {
        return None;
    }
    filed().lock().unwrap().remove(&config.storage.data_dir)
}

/// Files `db` again under `config`'s data dir (a stopped app that may be restarted).
pub fn put_back(config: &Config, db: Option<Arc<TestDatabase>>) {
    if let Some(db) = db {
        filed()
            .lock()
            .unwrap()
            .insert(config.storage.data_dir.clone(), db);
    }
}

impl TestDatabase {
    /// The data dir the database was made for.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// Drops, once per run, the databases of earlier runs whose process is gone (a test that
/// panicked in a way that skipped drops, a killed run). Databases of live processes (other
/// runs on the same server) are left alone.
fn sweep_dead_runs() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let admin = server_url();
        on_own_runtime(move || async move {
            let client = connect(&admin).await;
            let rows = client
                .query(
                    r"SELECT datname FROM pg_database WHERE datname LIKE 'gv\_api\_%'",
                    &[],
                )
                .await
                .unwrap();
            for row in rows {
                let name: String = row.get(0);
                let pid = name[PREFIX.len()..].split('_').next().unwrap_or("");
                if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            }
        });
    });
}

/// `url` with its database replaced by `dbname` and its password taken out (the vault
/// refuses a password in `storage.postgres_url`): `(url, password)`.
pub fn with_dbname(url: &str, dbname: &str) -> (String, Option<String>) {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("{URL_VAR} must be a postgres:// URL"));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    let (authority, password) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) => (format!("{user}@{host}"), Some(percent_decode(password))),
            None => (authority.to_string(), None),
        },
        None => (authority.to_string(), None),
    };
    (format!("{scheme}://{authority}/{dbname}{query}"), password)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = url
        .parse::<tokio_postgres::Config>()
        .unwrap()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server ({URL_VAR}): {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn run<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

/// Runs `make()`'s future on a runtime of its own, on a thread of its own (the callers
/// are often inside a test's runtime, where blocking on another is not allowed).
fn on_own_runtime<T, F, Fut>(make: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || run(make()))
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
fn the_test_url_gets_the_database_and_loses_its_password() {
    assert_eq!(
        with_dbname("postgres://postgres@127.0.0.1:5432/postgres", "gv_api_1_x"),
        ("postgres://postgres@127.0.0.1:5432/gv_api_1_x".into(), None)
    );
    assert_eq!(
        with_dbname("postgresql://u:p%40ss@db:5433?sslmode=disable", "d"),
        (
            "postgresql://u@db:5433/d?sslmode=disable".into(),
            Some("p@ss".into())
        )
    );
    assert_eq!(
        with_dbname("postgres://u@h/x?application_name=a", "d").0,
        "postgres://u@h/d?application_name=a"
    );
}

#[tokio::test]
async fn a_test_config_on_postgres_has_a_database_until_its_app_is_dropped() {
    if !backend_is_postgres() {
        eprintln!("skipped: {URL_VAR} is not set");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = super::test_config(dir.path());
    assert_eq!(config.storage.backend, "postgres");
    let db = take_database(&config).unwrap();
    assert_eq!(db.data_dir(), dir.path());
    let name = db.name.clone();
    let exists = |name: String| {
        let admin = server_url();
        on_own_runtime(move || async move {
            connect(&admin)
                .await
                .query_one(
                    "SELECT count(*) FROM pg_database WHERE datname = $1",
                    &[&name],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 1
        })
    };
    assert!(exists(name.clone()));
    assert_eq!(db.count("SELECT (41 + 1)::bigint"), 42);
    put_back(&config, Some(db));
    assert!(take_database(&config).is_some_and(|d| d.name == name));
    // Taken and dropped: gone.
    assert!(!exists(name));
}
