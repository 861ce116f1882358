//! Opening connections to the database: [`PgSettings`] is the checked `storage.postgres_*`
//! keys (docs/storage.md, "Configuration") turned into a `tokio-postgres` config and a TLS
//! choice, and [`PgSettings::open`] makes one [`PgConn`] from it.
//!
//! Every connection carries `application_name`, `statement_timeout` and
//! `synchronous_commit=on` in its startup packet (an acknowledged write is durable on the
//! server before the vault answers, issue 14 requirement 4), appended after any `options` of
//! the URL so they win over it. TLS is rustls on `ring` with the CA of
//! `storage.postgres_ca_file` only (no system roots): verify-full, and `sslmode=require` so a
//! server that declines TLS is refused rather than spoken to in plain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgConn;
use crate::config::{Config, PgTls};
use crate::store::StoreError;

/// The `application_name` of the vault's sessions, unless the URL names another (a node name,
/// for `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "guestvault";
/// Keepalive probes so a database host that vanished without a reset (power loss, a network
/// partition) is noticed in about half a minute, not after the kernel's two hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// Data sent but not acknowledged this long ends the connection (Linux `TCP_USER_TIMEOUT`).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// `tokio-postgres`'s default keepalive idle time, to tell whether the URL set its own.
const DRIVER_DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// What the configuration check needs to know about a connection URL, without the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlFacts {
    /// Every host (and `hostaddr`) is on this machine: loopback, `localhost`, a unix socket.
    pub local: bool,
    /// Some host is a unix socket (which has no TLS).
    pub unix_socket: bool,
    /// Every host is a TCP host name or address a certificate can be checked against (not
    /// only a `hostaddr`).
    pub tls_names: bool,
}

/// Checks `storage.postgres_url` (a `postgres://` URL or a `key=value` string): it parses,
/// names a user and a host, and holds nothing that another key owns (the password, `sslmode`,
/// `connect_timeout`). The message never quotes the URL.
pub fn inspect_url(url: &str) -> Result<UrlFacts, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| {
        format!(
            "not a PostgreSQL URL (`postgres://user@host:port/dbname`) or `key=value` string: {e}"
        )
    })?;
    if config.get_password().is_some() {
        return Err("must not hold a password: put it in a file named by \
             `storage.postgres_password_file` (mode 0600)"
            .into());
    }
    if config.get_ssl_mode() != SslMode::Prefer {
        return Err(
            "must not set `sslmode`: TLS is set by `storage.postgres_ca_file` \
                    (verify-full) and `storage.postgres_tls`"
                .into(),
        );
    }
    if config.get_connect_timeout().is_some() {
        return Err(
            "must not set `connect_timeout`: use `storage.postgres_connect_timeout_ms`".into(),
        );
    }
    if config.get_user().is_none_or(str::is_empty) {
        return Err("must name a user (`postgres://USER@host/dbname`)".into());
    }
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    if hosts.is_empty() && addrs.is_empty() {
        return Err("must name a host (`postgres://user@HOST/dbname`)".into());
    }
    let host_is_local = |h: &Host| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    Ok(UrlFacts {
        local: hosts.iter().all(host_is_local) && addrs.iter().all(|a| a.is_loopback()),
        unix_socket: hosts.iter().any(|h| matches!(h, Host::Unix(_))),
        tls_names: !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Tcp(_))),
    })
}

/// How connections are secured.
#[derive(Clone)]
enum Tls {
    Off,
    VerifyFull(MakeRustlsConnect),
}

/// Everything needed to open connections to the database, built once at start from the
/// config. The password is kept apart from the driver's config, in memory that is wiped when
/// the settings are dropped; each [`open`](Self::open) hands a short-lived copy to the driver.
pub struct PgSettings {
    /// The driver's config, without the password.
    config: tokio_postgres::Config,
    password: Option<zeroize::Zeroizing<Vec<u8>>>,
    tls: Tls,
    tls_name: &'static str,
    pool_size: usize,
    writers: usize,
    statement_timeout: Duration,
    connect_timeout: Duration,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("database", &self.describe())
            .field(
                "password",
                &if self.password.is_some() {
                    "<from file>"
                } else {
                    "<none>"
                },
            )
            .field("pool_size", &self.pool_size)
            .field("writers", &self.writers)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl PgSettings {
    /// Checks the `storage.postgres_*` keys, reads the password file (owner-only) and the CA
    /// file. Every error names its key.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let keys = config
            .storage
            .postgres()
            .map_err(|(key, message)| anyhow::anyhow!("config key `{key}`: {message}"))?;
        let mut pg: tokio_postgres::Config = keys
            .url
            .parse()
            .context("config key `storage.postgres_url`: not a PostgreSQL URL")?;
        let password = match &keys.password_file {
            None => None,
            Some(path) => {
                let secret = crate::config::read_private_secret_file(
                    "storage.postgres_password_file",
                    path,
                )?;
                if secret.is_empty() {
                    anyhow::bail!(
                        "config key `storage.postgres_password_file` (from {}): the file is empty",
                        path.display()
                    );
                }
                Some(secret)
            }
        };
        let statement_ms = keys.statement_timeout.as_millis();
        let options = format!("-c statement_timeout={statement_ms} -c synchronous_commit=on");
        let options = match pg.get_options() {
            Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {options}"),
            _ => options,
        };
        pg.options(options);
        if pg.get_application_name().is_none() {
            pg.application_name(APPLICATION_NAME);
        }
        pg.connect_timeout(keys.connect_timeout);
        if pg.get_keepalives_idle() == DRIVER_DEFAULT_KEEPALIVE_IDLE {
            pg.keepalives_idle(KEEPALIVE_IDLE);
        }
        if pg.get_keepalives_interval().is_none() {
            pg.keepalives_interval(KEEPALIVE_INTERVAL);
        }
        if pg.get_keepalives_retries().is_none() {
            pg.keepalives_retries(KEEPALIVE_RETRIES);
        }
        if pg.get_tcp_user_timeout().is_none() {
            pg.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        let tls = match &keys.tls {
            PgTls::Off => {
                pg.ssl_mode(SslMode::Disable);
                Tls::Off
            }
            PgTls::VerifyFull { ca_file } => {
                pg.ssl_mode(SslMode::Require);
                Tls::VerifyFull(verify_full(ca_file)?)
            }
        };
        Ok(Self {
            config: pg,
            password,
            tls,
            tls_name: keys.tls.as_str(),
            pool_size: keys.pool_size,
            writers: keys.writers,
            statement_timeout: keys.statement_timeout,
            connect_timeout: keys.connect_timeout,
        })
    }

    /// Writer connections per node (`storage.postgres_writers`).
    pub fn writers(&self) -> usize {
        self.writers
    }

    /// Reader connections per node (`storage.postgres_pool_size`).
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// The server-side statement timeout every connection sets.
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// How long [`open`](Self::open) may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// `host=… port=… dbname=… user=… tls=…`, for messages (never the password).
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let addrs: Vec<String> = self
            .config
            .get_hostaddrs()
            .iter()
            .map(|a| a.to_string())
            .collect();
        let addrs = if addrs.is_empty() {
            String::new()
        } else {
            format!(" hostaddr={}", addrs.join(","))
        };
        let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
        let ports = if ports.is_empty() {
            "5432".to_string()
        } else {
            ports.join(",")
        };
        let user = self.config.get_user().unwrap_or("");
        let dbname = self.config.get_dbname().unwrap_or(user);
        format!(
            "host={}{addrs} port={ports} dbname={dbname} user={user} tls={}",
            hosts.join(","),
            self.tls_name
        )
    }

    /// Opens one connection on a runtime of its own (see [`PgConn`]), within
    /// `storage.postgres_connect_timeout_ms` for all of it (TCP, TLS, authentication).
    pub fn open(&self) -> Result<PgConn, StoreError> {
        let rt = PgConn::runtime()?;
        let client = super::conn::drive(&rt, async {
            let mut config = self.config.clone();
            if let Some(password) = &self.password {
                config.password(password.as_slice());
            }
            let connecting = async {
                match &self.tls {
                    Tls::Off => {
                        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                        tokio::spawn(drive(connection));
                        Ok::<_, StoreError>(client)
                    }
                    Tls::VerifyFull(tls) => {
                        let (client, connection) = config.connect(tls.clone()).await?;
                        tokio::spawn(drive(connection));
                        Ok(client)
                    }
                }
            };
            match tokio::time::timeout(self.connect_timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no connection to the database within {} ms",
                        self.connect_timeout.as_millis()
                    ),
                ))),
            }
        })?;
        // A statement may run for the server's statement_timeout; past that plus a margin,
        // the host has stopped answering.
        Ok(PgConn::from_parts(rt, client)
            .with_call_timeout(self.statement_timeout + std::time::Duration::from_secs(2)))
    }

    /// [`open`](Self::open) at start: the error says which database and names the key most
    /// likely wrong (the password file for a refused password, the CA file for a failed TLS
    /// handshake, else the URL).
    pub fn open_at_start(&self) -> anyhow::Result<PgConn> {
        self.open().map_err(|e| {
            // The driver shows a server's refusal as just "db error": say what the server said
            // (about the connection: no personal data is in play yet).
            let why = match &e {
                StoreError::Postgres(pg) => match pg.as_db_error() {
                    Some(db) => format!(
                        "the server refused: {} ({})",
                        db.message(),
                        db.code().code()
                    ),
                    // The driver's own text has no cause ("error performing TLS handshake"):
                    // add the chain (the certificate error, the refused TCP connect).
                    None => {
                        let mut text = pg.to_string();
                        let mut source = std::error::Error::source(pg);
                        while let Some(s) = source {
                            let more = s.to_string();
                            if !text.contains(&more) {
                                text = format!("{text}: {more}");
                            }
                            source = s.source();
                        }
                        text
                    }
                },
                _ => e.to_string(),
            };
            anyhow::anyhow!(
                "cannot connect to the database ({}): {why}; check config key `{}`",
                self.describe(),
                suspect_key(&e)
            )
        })
    }
}

/// Drives a connection until it ends; an error ends it too (the client then reports closed,
/// and its owner opens a new one).
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "database connection ended");
    }
}

/// A rustls client that trusts only the CAs in `ca_file` and checks the host name.
fn verify_full(ca_file: &std::path::Path) -> anyhow::Result<MakeRustlsConnect> {
    let cas = CertificateDer::pem_file_iter(ca_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "config key `storage.postgres_ca_file` (from {}): not PEM certificates: {e}",
                ca_file.display()
            )
        })?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(cas);
    if added == 0 {
        anyhow::bail!(
            "config key `storage.postgres_ca_file` (from {}): holds no usable CA certificate",
            ca_file.display()
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(client))
}

/// The key an operator should look at first for a failed connect.
fn suspect_key(e: &StoreError) -> &'static str {
    match e {
        StoreError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            "storage.postgres_url` (is the database reachable?) or `storage.postgres_connect_timeout_ms"
        }
        StoreError::Postgres(pg) => {
            if pg.code() == Some(&SqlState::INVALID_PASSWORD) {
                return "storage.postgres_password_file";
            }
            let text = pg.to_string();
            if text.contains("password missing") {
                return "storage.postgres_password_file";
            }
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(pg);
            while let Some(s) = source {
                if s.downcast_ref::<rustls::Error>().is_some() {
                    return "storage.postgres_ca_file";
                }
                source = s.source();
            }
            if text.starts_with("error performing TLS handshake") {
                return "storage.postgres_ca_file";
            }
            "storage.postgres_url"
        }
        _ => "storage.postgres_url",
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
