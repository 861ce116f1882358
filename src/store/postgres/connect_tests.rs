//! Tests of [`PgSettings`]: what a connection is opened with, what is never shown, and the
//! errors of a bad password file, CA file or unreachable database. The tests that need a
//! server use `GUESTVAULT_TEST_POSTGRES_URL` (skipped without it); the TLS test starts a
//! private server of its own (`tls_tests.rs` beside this file).

use super::*;

/// A config on the PostgreSQL backend with these `[storage]` lines (built directly: the
/// loader refuses the backend in this build).
fn config(storage_toml: &str) -> Config {
    toml::from_str(&format!(
        "[storage]\nbackend = \"postgres\"\n{storage_toml}"
    ))
    .unwrap()
}

fn private_file(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    path
}

fn toml_path(p: &std::path::Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

#[test]
fn debug_and_describe_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pg.pw", "s3cret-Passw0rd\n", 0o600);
    let s = PgSettings::from_config(&config(&format!(
        "postgres_url = \"postgres://vault@127.0.0.1:5544/gvdb\"\npostgres_password_file = \"{}\"",
        toml_path(&pw)
    )))
    .unwrap();
    assert_eq!(
        s.password.as_ref().map(|p| p.as_slice()),
        Some(&b"s3cret-Passw0rd"[..])
    );
    assert_eq!(
        s.config.get_password(),
        None,
        "kept apart from the driver's config"
    );
    let debug = format!("{s:?}");
    let described = s.describe();
    for text in [&debug, &described] {
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("host=127.0.0.1 port=5544 dbname=gvdb user=vault tls=off"),
            "{text}"
        );
    }
    assert!(debug.contains("<from file>"), "{debug}");
}

#[test]
fn a_password_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pg.pw", "s3cret", 0o644);
    let err = PgSettings::from_config(&config(&format!(
        "postgres_url = \"postgres://vault@localhost/gvdb\"\npostgres_password_file = \"{}\"",
        toml_path(&pw)
    )))
    .unwrap_err()
    .to_string();
    assert!(err.contains("storage.postgres_password_file"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    let empty = private_file(dir.path(), "empty.pw", "\n", 0o600);
    let err = PgSettings::from_config(&config(&format!(
        "postgres_url = \"postgres://vault@localhost/gvdb\"\npostgres_password_file = \"{}\"",
        toml_path(&empty)
    )))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("storage.postgres_password_file") && err.contains("empty"),
        "{err}"
    );
    let err = PgSettings::from_config(&config(&format!(
        "postgres_url = \"postgres://vault@localhost/gvdb\"\npostgres_password_file = \"{}\"",
        toml_path(&dir.path().join("missing"))
    )))
    .unwrap_err()
    .to_string();
    assert!(err.contains("storage.postgres_password_file"), "{err}");
}

#[test]
fn every_session_sets_the_statement_timeout_and_synchronous_commit_after_the_urls_options() {
    let s = PgSettings::from_config(&config(
        "postgres_url = \"postgres://vault@localhost/gvdb?options=-c%20search_path%3Dgv\"\n\
         postgres_statement_timeout_ms = 1500\npostgres_connect_timeout_ms = 700\n\
         postgres_pool_size = 3",
    ))
    .unwrap();
    assert_eq!(
        s.config.get_options(),
        Some("-c search_path=gv -c statement_timeout=1500 -c synchronous_commit=on")
    );
    assert_eq!(s.config.get_application_name(), Some("guestvault"));
    assert_eq!(
        s.config.get_connect_timeout(),
        Some(&Duration::from_millis(700))
    );
    assert_eq!(s.config.get_ssl_mode(), SslMode::Disable);
    assert_eq!(s.config.get_keepalives_idle(), KEEPALIVE_IDLE);
    assert_eq!(s.pool_size(), 3);
    assert_eq!(s.statement_timeout(), Duration::from_millis(1500));
    // A node name given in the URL is kept.
    let s = PgSettings::from_config(&config(
        "postgres_url = \"postgres://vault@localhost/gvdb?application_name=gv-node-2\"",
    ))
    .unwrap();
    assert_eq!(s.config.get_application_name(), Some("gv-node-2"));
    assert_eq!(
        s.config.get_options(),
        Some("-c statement_timeout=30000 -c synchronous_commit=on")
    );
}

#[test]
fn a_ca_file_turns_on_required_tls_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["db.example.com".into()]).unwrap();
    let ca_file = private_file(dir.path(), "ca.pem", &ca.cert.pem(), 0o644);
    let s = PgSettings::from_config(&config(&format!(
        "postgres_url = \"postgres://vault@db.example.com/gvdb\"\npostgres_ca_file = \"{}\"",
        toml_path(&ca_file)
    )))
    .unwrap();
    assert_eq!(s.config.get_ssl_mode(), SslMode::Require);
    assert!(
        s.describe().ends_with("tls=verify-full"),
        "{}",
        s.describe()
    );
    for (name, text) in [("junk.pem", "not a certificate"), ("empty.pem", "")] {
        let bad = private_file(dir.path(), name, text, 0o644);
        let err = PgSettings::from_config(&config(&format!(
            "postgres_url = \"postgres://vault@db.example.com/gvdb\"\npostgres_ca_file = \"{}\"",
            toml_path(&bad)
        )))
        .unwrap_err()
        .to_string();
        assert!(err.contains("storage.postgres_ca_file"), "{name}: {err}");
    }
}

#[test]
fn a_database_that_never_answers_times_out_naming_the_keys() {
    // Accepts TCP (the kernel's backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let s = PgSettings::from_config(&config(&format!(
        "postgres_url = \"postgres://vault@127.0.0.1:{port}/gvdb\"\npostgres_connect_timeout_ms = 300"
    )))
    .unwrap();
    let started = std::time::Instant::now();
    let err = s.open_at_start().unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("within 300 ms"), "{err}");
    assert!(err.contains("storage.postgres_connect_timeout_ms"), "{err}");
    assert!(err.contains(&format!("port={port}")), "{err}");
    drop(silent);
}

#[test]
fn a_refused_connection_names_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = PgSettings::from_config(&config(&format!(
        "postgres_url = \"postgres://vault@127.0.0.1:{port}/gvdb\""
    )))
    .unwrap();
    let err = s.open_at_start().unwrap_err().to_string();
    assert!(
        err.contains("check config key `storage.postgres_url`"),
        "{err}"
    );
}

/// The test server's URL, or `None` (with a message) when it is not set.
pub(super) fn test_server_url() -> Option<String> {
    let var = crate::store::postgres::conn::testdb::URL_VAR;
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("skipped: {var} is not set (a PostgreSQL server to test against)");
            None
        }
    }
}

#[test]
fn an_opened_connection_runs_with_the_configured_session_settings() {
    let Some(url) = test_server_url() else {
        return;
    };
    let s = PgSettings::from_config(&config(&format!(
        "postgres_url = \"{url}\"\npostgres_statement_timeout_ms = 1234\npostgres_tls = \"off\""
    )))
    .unwrap();
    let conn = s.open().unwrap();
    let show =
        |what: &str| -> String { conn.query_dyn(&format!("SHOW {what}"), &[]).unwrap()[0].get(0) };
    assert_eq!(show("statement_timeout"), "1234ms");
    assert_eq!(show("synchronous_commit"), "on");
    assert_eq!(show("application_name"), "guestvault");
    // The server enforces the timeout.
    match conn.batch("SELECT pg_sleep(3)") {
        Err(StoreError::Postgres(e)) => {
            assert_eq!(e.code(), Some(&SqlState::QUERY_CANCELED), "{e:?}")
        }
        other => panic!("expected a statement timeout, got {other:?}"),
    }
    // The connection task runs on the connection's own runtime, so the client stays usable.
    assert_eq!(show("synchronous_commit"), "on");
    assert!(!conn.is_closed());
}
