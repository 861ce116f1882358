//! Tests of [`PgSettings`]: what a connection is opened with, what is never shown, and the
//! errors of a bad password file, CA file or unreachable database. The tests that need a
//! server use `GUESTVAULT_TEST_POSTGRES_URL` (skipped without it); the TLS test starts a
//! private PostgreSQL server of its own with `ssl=on` (when `initdb` is installed).

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
    let Some(db) = crate::store::postgres::conn::testdb::TestDb::create() else {
        return;
    };
    // Defaults of the database that would weaken durability or lift the timeout: the
    // session's own settings must win over them.
    db.connect()
        .batch(&format!(
            "ALTER DATABASE {0} SET synchronous_commit = off; \
             ALTER DATABASE {0} SET statement_timeout = 0",
            db.name
        ))
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}dbname={}", db.name);
    let s = PgSettings::from_config(&config(&format!(
        "postgres_url = \"{url}\"\npostgres_statement_timeout_ms = 1234\npostgres_tls = \"off\""
    )))
    .unwrap();
    assert!(
        s.describe().contains(&format!("dbname={}", db.name)),
        "{}",
        s.describe()
    );
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

/// A PostgreSQL server of the test's own on a free port, accepting only TLS connections
/// (`hostssl` in `pg_hba.conf`) with a certificate for `localhost` signed by a test CA.
/// Stopped (`immediate`) with the value.
struct TlsServer {
    pg_ctl: std::path::PathBuf,
    data: std::path::PathBuf,
    as_postgres: bool,
    port: u16,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

/// `program args…`, as the `postgres` user when this process is root (initdb refuses root).
fn run_as(as_postgres: bool, program: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if as_postgres {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    cmd.args(args).output().unwrap()
}

impl TlsServer {
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            eprintln!("skipped: no /usr/lib/postgresql/*/bin/initdb to start a TLS server with");
            return None;
        };
        let uid = std::process::Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // The CA, and a server certificate for `localhost` only (so 127.0.0.1 is a wrong name).
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "guestvault test db CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let cert_file = private_file(dir.path(), "server.crt", &leaf.pem(), 0o600);
        let key_file = private_file(dir.path(), "server.key", &leaf_key.serialize_pem(), 0o600);
        if as_postgres {
            let out = std::process::Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "chown: {out:?}");
        }
        let data_s = data.display().to_string();
        let out = run_as(
            as_postgres,
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(out.status.success(), "initdb: {out:?}");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        use std::io::Write as _;
        write!(
            conf,
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
            dir.path().display(),
            cert_file.display(),
            key_file.display()
        )
        .unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let pg_ctl = bin.join("pg_ctl");
        let log = dir.path().join("server.log").display().to_string();
        let out = run_as(
            as_postgres,
            &pg_ctl,
            &["-D", &data_s, "-l", &log, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {out:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(Self {
            pg_ctl,
            data,
            as_postgres,
            port,
            ca_pem,
            _dir: dir,
        })
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = run_as(
            self.as_postgres,
            &self.pg_ctl,
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        );
    }
}

#[test]
fn tls_verifies_the_chain_and_the_host_name_and_refuses_otherwise() {
    let Some(server) = TlsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = private_file(dir.path(), "db-ca.pem", &server.ca_pem, 0o644);
    let settings = |host: &str, ca: &std::path::Path| {
        PgSettings::from_config(&config(&format!(
            "postgres_url = \"host={host} hostaddr=127.0.0.1 port={} user=postgres dbname=postgres\"\n\
             postgres_ca_file = \"{}\"\npostgres_connect_timeout_ms = 10000",
            server.port,
            toml_path(ca)
        )))
        .unwrap()
    };
    // The right CA and the certificate's name: connected, over TLS.
    let conn = settings("localhost", &ca_file).open_at_start().unwrap();
    let ssl: bool = conn
        .query_dyn(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()[0]
        .get(0);
    assert!(ssl);
    drop(conn);
    // Another CA: the chain does not verify.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_ca = private_file(dir.path(), "other-ca.pem", &other.cert.pem(), 0o644);
    let err = settings("localhost", &other_ca)
        .open_at_start()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("check config key `storage.postgres_ca_file`"),
        "{err}"
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    // The right CA but a name the certificate does not hold.
    let err = settings("127.0.0.1", &ca_file)
        .open_at_start()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("check config key `storage.postgres_ca_file`"),
        "{err}"
    );
    assert!(err.contains("not valid for name"), "{err}");
    // And the server takes no plain connection, so the TLS above was not optional.
    let plain = PgSettings::from_config(&config(&format!(
        "postgres_url = \"postgres://postgres@127.0.0.1:{}/postgres\"",
        server.port
    )))
    .unwrap();
    let err = plain.open_at_start().unwrap_err().to_string();
    assert!(err.contains("no pg_hba.conf entry"), "{err}");
}
