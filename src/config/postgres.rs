//! The PostgreSQL keys of `[storage]` (issue 14, requirement 2): where the database is, how to
//! authenticate and trust it, and the connection limits. Checked at load only when
//! `storage.backend = "postgres"`; set while the backend is `sqlite` they are refused, since a
//! node that meant to join a shared database but silently opened a local SQLite file would
//! serve an empty vault of its own.
//!
//! TLS: `postgres_ca_file` turns on `verify-full` (the server's chain must lead to that CA and
//! its certificate must name the host of the URL). Without a CA file, plain TCP is allowed
//! only to this machine (loopback addresses, `localhost`, a unix socket); any other host is
//! refused unless `postgres_tls = "off"` says so explicitly (e.g. a TLS tunnel or sidecar on
//! the node).

use std::path::PathBuf;
use std::time::Duration;

use super::StorageConfig;

/// Default `storage.postgres_pool_size`: reader connections per node. Four, not eight: on the
/// 2-core bench host one node with four served as much as with eight (within the 5–8% that
/// runs differ by), and every node's readers add up on the one database, whose cores are what
/// runs them (BENCHMARKS.md, stop 29).
pub const DEFAULT_PG_POOL_SIZE: usize = 4;
/// Most reader connections per node (like `storage.readers`).
pub const MAX_PG_POOL_SIZE: usize = 64;
/// Default `storage.postgres_writers`: writer connections per node. Two, not four: on the
/// 2-core bench host (database, nodes and load generator sharing the cores) two connections
/// made groups about twice as large and served more in every scenario, one node and two
/// (BENCHMARKS.md, stop 28: create +18%, two nodes +61%; read +7%); one connection runs its
/// units one round trip after another and served a third as much.
pub const DEFAULT_PG_WRITERS: usize = 2;
/// Most writer connections per node.
pub const MAX_PG_WRITERS: usize = 32;
/// Default `storage.postgres_statement_timeout_ms`.
pub const DEFAULT_PG_STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// Default `storage.postgres_connect_timeout_ms`.
pub const DEFAULT_PG_CONNECT_TIMEOUT_MS: u64 = 5_000;
const STATEMENT_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=3_600_000;
const CONNECT_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=300_000;

/// How the vault talks to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTls {
    /// Plain TCP or a unix socket.
    Off,
    /// TLS, the server's chain checked against the CAs in this PEM file and its certificate
    /// against the host name (libpq's `sslmode=verify-full`).
    VerifyFull { ca_file: PathBuf },
}

impl PgTls {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::VerifyFull { .. } => "verify-full",
        }
    }
}

/// The PostgreSQL keys, checked, with their defaults applied.
#[derive(Debug, Clone)]
pub struct PostgresKeys {
    /// The connection URL (or `key=value` string); it holds no password.
    pub url: String,
    pub password_file: Option<PathBuf>,
    pub tls: PgTls,
    pub pool_size: usize,
    pub writers: usize,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Every PostgreSQL key, with whether it is set (for the refusal under `sqlite`).
fn keys_set(s: &StorageConfig) -> [(&'static str, bool); 8] {
    [
        ("storage.postgres_url", s.postgres_url.is_some()),
        (
            "storage.postgres_password_file",
            s.postgres_password_file.is_some(),
        ),
        ("storage.postgres_ca_file", s.postgres_ca_file.is_some()),
        ("storage.postgres_tls", s.postgres_tls.is_some()),
        ("storage.postgres_pool_size", s.postgres_pool_size.is_some()),
        ("storage.postgres_writers", s.postgres_writers.is_some()),
        (
            "storage.postgres_statement_timeout_ms",
            s.postgres_statement_timeout_ms.is_some(),
        ),
        (
            "storage.postgres_connect_timeout_ms",
            s.postgres_connect_timeout_ms.is_some(),
        ),
    ]
}

/// The first PostgreSQL key set while the backend is not `postgres`.
pub(super) fn refuse_when_unused(s: &StorageConfig) -> Result<(), (String, String)> {
    match keys_set(s).iter().find(|(_, set)| *set) {
        Some((key, _)) => Err((
            (*key).to_string(),
            "is set but `storage.backend` is not `postgres`: set `storage.backend = \
             \"postgres\"`, or remove the key"
                .into(),
        )),
        None => Ok(()),
    }
}

impl StorageConfig {
    /// The PostgreSQL keys with their defaults, or the first bad key and what is wrong with
    /// it. The URL is never quoted in a message (it may be a secret of its own).
    pub fn postgres(&self) -> Result<PostgresKeys, (String, String)> {
        let bad = |k: &str, m: String| Err((k.to_string(), m));
        let Some(url) = self.postgres_url.clone() else {
            return bad(
                "storage.postgres_url",
                "must be set when `storage.backend` is `postgres`".into(),
            );
        };
        let facts = match crate::store::postgres::connect::inspect_url(&url) {
            Ok(facts) => facts,
            Err(message) => return bad("storage.postgres_url", message),
        };
        let pool_size = self.postgres_pool_size.unwrap_or(DEFAULT_PG_POOL_SIZE);
        if !(1..=MAX_PG_POOL_SIZE).contains(&pool_size) {
            return bad(
                "storage.postgres_pool_size",
                format!("must be between 1 and {MAX_PG_POOL_SIZE} (connections)"),
            );
        }
        let writers = self.postgres_writers.unwrap_or(DEFAULT_PG_WRITERS);
        if !(1..=MAX_PG_WRITERS).contains(&writers) {
            return bad(
                "storage.postgres_writers",
                format!("must be between 1 and {MAX_PG_WRITERS} (connections)"),
            );
        }
        let statement_ms = self
            .postgres_statement_timeout_ms
            .unwrap_or(DEFAULT_PG_STATEMENT_TIMEOUT_MS);
        if !STATEMENT_TIMEOUT_RANGE_MS.contains(&statement_ms) {
            return bad(
                "storage.postgres_statement_timeout_ms",
                "must be between 100 and 3600000 (milliseconds)".into(),
            );
        }
        let connect_ms = self
            .postgres_connect_timeout_ms
            .unwrap_or(DEFAULT_PG_CONNECT_TIMEOUT_MS);
        if !CONNECT_TIMEOUT_RANGE_MS.contains(&connect_ms) {
            return bad(
                "storage.postgres_connect_timeout_ms",
                "must be between 100 and 300000 (milliseconds)".into(),
            );
        }
        if self
            .postgres_password_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return bad(
                "storage.postgres_password_file",
                "must be a file path".into(),
            );
        }
        let ca_file = self.postgres_ca_file.clone();
        if ca_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return bad("storage.postgres_ca_file", "must be a file path".into());
        }
        let tls = match (self.postgres_tls.as_deref(), ca_file) {
            (None | Some("verify-full"), Some(ca_file)) => PgTls::VerifyFull { ca_file },
            (Some("verify-full"), None) => {
                return bad(
                    "storage.postgres_ca_file",
                    "must be set with `storage.postgres_tls = \"verify-full\"` (the CA the \
                     database's certificate is checked against)"
                        .into(),
                )
            }
            (Some("off"), Some(_)) => {
                return bad(
                    "storage.postgres_tls",
                    "is `off` but `storage.postgres_ca_file` is set: remove one of them".into(),
                )
            }
            (Some("off"), None) => PgTls::Off,
            (None, None) if facts.local => PgTls::Off,
            (None, None) => {
                return bad(
                    "storage.postgres_ca_file",
                    "must be set for a database on another machine (TLS, verify-full); \
                     or set `storage.postgres_tls = \"off\"` to connect without TLS"
                        .into(),
                )
            }
            (Some(_), _) => {
                return bad(
                    "storage.postgres_tls",
                    "must be `verify-full` or `off`".into(),
                )
            }
        };
        if matches!(tls, PgTls::VerifyFull { .. }) && facts.unix_socket {
            return bad(
                "storage.postgres_url",
                "names a unix socket, which has no TLS: use a host name with \
                 `storage.postgres_ca_file`, or remove the CA file"
                    .into(),
            );
        }
        Ok(PostgresKeys {
            url,
            password_file: self.postgres_password_file.clone(),
            tls,
            pool_size,
            writers,
            statement_timeout: Duration::from_millis(statement_ms),
            connect_timeout: Duration::from_millis(connect_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The load error for these environment variables on the PostgreSQL backend.
    fn load_error(pairs: &[(&str, &str)]) -> String {
        let mut vars = env(&[("GUESTVAULT_STORAGE_BACKEND", "postgres")]);
        vars.extend(env(pairs));
        Config::load_with_env(None, vars).unwrap_err().to_string()
    }

    /// `[storage]` from TOML, checked by the PostgreSQL rules (not by the loader, which still
    /// refuses the backend in this build).
    fn keys(storage_toml: &str) -> Result<PostgresKeys, (String, String)> {
        let config: Config = toml::from_str(&format!("[storage]\n{storage_toml}")).unwrap();
        config.storage.postgres()
    }

    #[test]
    fn a_password_in_the_url_is_refused_naming_the_key_and_not_the_password() {
        for url in [
            "postgres://vault:hunter2@db.example.com/guestvault",
            "host=127.0.0.1 user=vault password=hunter2 dbname=guestvault",
        ] {
            let err = load_error(&[("GUESTVAULT_STORAGE_POSTGRES_URL", url)]);
            assert!(err.contains("`storage.postgres_url`"), "{err}");
            assert!(err.contains("GUESTVAULT_STORAGE_POSTGRES_URL"), "{err}");
            assert!(err.contains("must not hold a password"), "{err}");
            assert!(err.contains("storage.postgres_password_file"), "{err}");
            assert!(!err.contains("hunter2") && !err.contains("vault@"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "[storage]\nbackend = \"postgres\"\npostgres_url = \"postgres://v:pw@localhost/g\"\n",
        )
        .unwrap();
        let err = Config::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`storage.postgres_url`") && err.contains("g.toml"),
            "{err}"
        );
    }

    #[test]
    fn bad_numbers_are_refused_with_their_key() {
        let url = (
            "GUESTVAULT_STORAGE_POSTGRES_URL",
            "postgres://v@127.0.0.1/g",
        );
        for (var, value, key) in [
            (
                "GUESTVAULT_STORAGE_POSTGRES_POOL_SIZE",
                "0",
                "`storage.postgres_pool_size`",
            ),
            (
                "GUESTVAULT_STORAGE_POSTGRES_POOL_SIZE",
                "65",
                "`storage.postgres_pool_size`",
            ),
            (
                "GUESTVAULT_STORAGE_POSTGRES_POOL_SIZE",
                "eight",
                "`storage.postgres_pool_size`",
            ),
            (
                "GUESTVAULT_STORAGE_POSTGRES_STATEMENT_TIMEOUT_MS",
                "0",
                "`storage.postgres_statement_timeout_ms`",
            ),
            (
                "GUESTVAULT_STORAGE_POSTGRES_STATEMENT_TIMEOUT_MS",
                "3600001",
                "`storage.postgres_statement_timeout_ms`",
            ),
            (
                "GUESTVAULT_STORAGE_POSTGRES_CONNECT_TIMEOUT_MS",
                "99",
                "`storage.postgres_connect_timeout_ms`",
            ),
            (
                "GUESTVAULT_STORAGE_POSTGRES_CONNECT_TIMEOUT_MS",
                "-5",
                "`storage.postgres_connect_timeout_ms`",
            ),
        ] {
            let err = load_error(&[url, (var, value)]);
            assert!(err.contains(key), "{var}={value}: {err}");
            assert!(err.contains(var), "{var}={value}: {err}");
        }
        assert_eq!(
            keys("postgres_url = \"postgres://v@localhost/g\"\npostgres_pool_size = 65")
                .unwrap_err()
                .0,
            "storage.postgres_pool_size"
        );
        for writers in ["0", "33"] {
            assert_eq!(
                keys(&format!(
                    "postgres_url = \"postgres://v@localhost/g\"\npostgres_writers = {writers}"
                ))
                .unwrap_err()
                .0,
                "storage.postgres_writers"
            );
        }
    }

    #[test]
    fn the_defaults_and_bounds_hold() {
        let k = keys("postgres_url = \"postgres://v@localhost/g\"").unwrap();
        assert_eq!(k.pool_size, 4);
        assert_eq!(k.writers, 2);
        assert_eq!(k.statement_timeout, Duration::from_secs(30));
        assert_eq!(k.connect_timeout, Duration::from_secs(5));
        assert_eq!(k.tls, PgTls::Off);
        assert_eq!(k.password_file, None);
        let k = keys(
            "postgres_url = \"postgres://v@localhost/g\"\npostgres_pool_size = 64\n\
             postgres_statement_timeout_ms = 100\npostgres_connect_timeout_ms = 300000",
        )
        .unwrap();
        assert_eq!(k.pool_size, 64);
        assert_eq!(k.statement_timeout, Duration::from_millis(100));
        assert_eq!(k.connect_timeout, Duration::from_secs(300));
    }

    #[test]
    fn the_backend_needs_a_url_that_parses_and_names_a_user_and_host() {
        let err = load_error(&[]);
        assert!(err.contains("`storage.postgres_url`"), "{err}");
        assert!(err.contains("must be set"), "{err}");
        for (url, says) in [
            ("mysql://v@localhost/g", "not a PostgreSQL URL"),
            ("postgres://localhost/g", "must name a user"),
            ("user=v dbname=g", "must name a host"),
            (
                "postgres://v@localhost/g?sslmode=require",
                "must not set `sslmode`",
            ),
            (
                "postgres://v@localhost/g?connect_timeout=3",
                "must not set `connect_timeout`",
            ),
        ] {
            let err = load_error(&[("GUESTVAULT_STORAGE_POSTGRES_URL", url)]);
            assert!(err.contains("`storage.postgres_url`"), "{url}: {err}");
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn postgres_keys_are_refused_while_the_backend_is_sqlite() {
        let err = Config::load_with_env(
            None,
            env(&[(
                "GUESTVAULT_STORAGE_POSTGRES_URL",
                "postgres://v@localhost/g",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`storage.postgres_url`"), "{err}");
        assert!(err.contains("not `postgres`"), "{err}");
        let err = Config::load_with_env(
            None,
            env(&[
                ("GUESTVAULT_STORAGE_BACKEND", "sqlite"),
                ("GUESTVAULT_STORAGE_POSTGRES_POOL_SIZE", "4"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`storage.postgres_pool_size`"), "{err}");
        // None set: the SQLite default loads as before.
        Config::load_with_env(None, env(&[])).unwrap();
    }

    #[test]
    fn tls_is_verify_full_with_a_ca_and_plain_only_to_this_machine_or_when_said() {
        let remote = "postgres_url = \"postgres://v@db.example.com/g\"\n";
        let (key, message) = keys(remote).unwrap_err();
        assert_eq!(key, "storage.postgres_ca_file");
        assert!(message.contains("postgres_tls = \"off\""), "{message}");
        let k = keys(&format!("{remote}postgres_ca_file = \"/etc/gv/db-ca.pem\"")).unwrap();
        assert_eq!(
            k.tls,
            PgTls::VerifyFull {
                ca_file: "/etc/gv/db-ca.pem".into()
            }
        );
        let k = keys(&format!(
            "{remote}postgres_ca_file = \"/ca.pem\"\npostgres_tls = \"verify-full\""
        ))
        .unwrap();
        assert_eq!(k.tls.as_str(), "verify-full");
        assert_eq!(
            keys(&format!("{remote}postgres_tls = \"off\""))
                .unwrap()
                .tls,
            PgTls::Off
        );
        for local in [
            "postgres://v@localhost/g",
            "postgres://v@127.0.0.1:5433/g",
            "postgres://v@[::1]/g",
            "host=/var/run/postgresql user=v dbname=g",
        ] {
            let k = keys(&format!("postgres_url = \"{local}\"")).unwrap();
            assert_eq!(k.tls, PgTls::Off, "{local}");
        }
        // A loopback name that connects elsewhere through `hostaddr` is not local.
        let (key, _) =
            keys("postgres_url = \"host=localhost hostaddr=192.0.2.7 user=v\"").unwrap_err();
        assert_eq!(key, "storage.postgres_ca_file");
        for (extra, key, says) in [
            (
                "postgres_tls = \"verify-full\"",
                "storage.postgres_ca_file",
                "must be set",
            ),
            (
                "postgres_tls = \"off\"\npostgres_ca_file = \"/ca.pem\"",
                "storage.postgres_tls",
                "remove one",
            ),
            (
                "postgres_tls = \"require\"",
                "storage.postgres_tls",
                "`verify-full` or `off`",
            ),
        ] {
            let (k, m) = keys(&format!("{remote}{extra}")).unwrap_err();
            assert_eq!(k, key, "{extra}: {m}");
            assert!(m.contains(says), "{extra}: {m}");
        }
        let (k, m) = keys(
            "postgres_url = \"host=/var/run/postgresql user=v\"\npostgres_ca_file = \"/ca.pem\"",
        )
        .unwrap_err();
        assert_eq!(k, "storage.postgres_url");
        assert!(m.contains("unix socket"), "{m}");
        // Through the loader, from the environment: the variable is named.
        let err = load_error(&[
            (
                "GUESTVAULT_STORAGE_POSTGRES_URL",
                "postgres://v@db.example.com/g",
            ),
            ("GUESTVAULT_STORAGE_POSTGRES_TLS", "maybe"),
        ]);
        assert!(err.contains("`storage.postgres_tls`"), "{err}");
        assert!(err.contains("GUESTVAULT_STORAGE_POSTGRES_TLS"), "{err}");
    }
}
