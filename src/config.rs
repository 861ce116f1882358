//! Typed configuration: `guestvault.toml`, then `GUESTVAULT_<SECTION>_<KEY>` environment
//! overrides, then defaults. Secrets are never inline: they come from files (`*_file` keys).
//! Every error names the key (and the file or environment variable) that caused it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod limits;
mod postgres;
pub use self::postgres::{
    PgTls, PostgresKeys, DEFAULT_PG_CONNECT_TIMEOUT_MS, DEFAULT_PG_POOL_SIZE,
    DEFAULT_PG_STATEMENT_TIMEOUT_MS, MAX_PG_POOL_SIZE,
};
pub use limits::{AlertsConfig, BudgetsConfig, Rate, RoleBudgets, RouteClass};

pub const DEFAULT_CONFIG_FILE: &str = "guestvault.toml";
/// Environment variables of the test suite, never read as config.
const TEST_ENV_PREFIX: &str = "TEST_";
const ENV_PREFIX: &str = "GUESTVAULT_";
/// Largest `auth.leeway_secs`: clock skew beyond five minutes is a broken clock, and a large
/// leeway would keep expired tokens valid.
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Default `auth.max_token_ttl_secs`: a staff token lives one working day at most.
pub const DEFAULT_MAX_TOKEN_TTL_SECS: u64 = 24 * 3600;
/// Largest lifetime any role may be configured with (`auth.max_token_ttl_secs_by_role`).
pub const MAX_TOKEN_TTL_CAP_SECS: u64 = 90 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file `{path}`: {message}")]
    Parse { path: String, message: String },
    #[error("config key `{key}` (from {origin}): {message}")]
    Key {
        key: String,
        origin: String,
        message: String,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub keys: KeysConfig,
    pub policies: PoliciesConfig,
    pub auth: AuthConfig,
    pub access: AccessConfig,
    pub audit: AuditConfig,
    pub retention: RetentionConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub stays: StaysConfig,
    pub budgets: BudgetsConfig,
    pub alerts: AlertsConfig,
    pub console: ConsoleConfig,
    pub consent: ConsentConfig,
}

/// Consent prompts (issue 16 §4): after a guest refuses a purpose, the hotel may not ask again
/// for this many days (Network Data Security Regulation Art. 22(5)).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// Days after a refusal before the hotel may ask again. Default 30; 1 to 3650.
    pub re_ask_after_days: u32,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        Self {
            re_ask_after_days: crate::service::DEFAULT_RE_ASK_AFTER_DAYS,
        }
    }
}

/// The compliance console at `/console/` (issue 17).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console. Default on; `false` answers 404 for every `/console/` path.
    pub enabled: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Plausible stay dates (issue 12 point 4): a stay dated years ahead would hold the guest's
/// identity data "until then" against any erasure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaysConfig {
    /// How far ahead of today a `check_in` may lie. Default and maximum 730 (2 years).
    pub max_check_in_ahead_days: u32,
    /// How long after `check_in` a `check_out` may lie. Default and maximum 365.
    pub max_stay_days: u32,
}

/// The ceilings of [`StaysConfig`]: a deployment may tighten them, never widen them, so the
/// retention planner can bound any stored date by them (`crate::store::PLAUSIBLE_HORIZON_DAYS`).
pub const MAX_CHECK_IN_AHEAD_DAYS: u32 = 730;
pub const MAX_STAY_DAYS: u32 = 365;

impl Default for StaysConfig {
    fn default() -> Self {
        Self {
            max_check_in_ahead_days: MAX_CHECK_IN_AHEAD_DAYS,
            max_stay_days: MAX_STAY_DAYS,
        }
    }
}

/// Who may scrape `GET /metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Client networks (CIDR, or a bare address) that may scrape without a token. Default:
    /// loopback only. Empty: nobody without a token.
    pub allow: Vec<String>,
    /// Roles whose bearer token may scrape from any address (e.g. `["admin"]`). Default: none.
    pub bearer_roles: Vec<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            bearer_roles: Vec::new(),
        }
    }
}

impl MetricsConfig {
    /// The `allow` networks, parsed (validated at load, so a bad entry never gets here).
    pub fn allowed_networks(&self) -> Vec<ipnet::IpNet> {
        self.allow.iter().filter_map(|s| parse_network(s)).collect()
    }
}

/// `10.0.0.0/8`, `::1/128`, or a bare address meaning just that host.
fn parse_network(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Seconds between background retention sweeps; 0 turns the background sweeper off
    /// (run `guestvault retention run` from a scheduler instead).
    pub sweep_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            sweep_interval_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks a free port (tests).
    pub listen: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a connection may take to send a complete request header (also while it waits
    /// for the next request on a kept-alive connection).
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may sit with no traffic and no request in flight.
    pub idle_timeout_secs: u64,
    /// Seconds a request may take from its header to its response header (408 after).
    pub request_timeout_secs: u64,
    /// Open connections at most; over it a new connection is accepted and closed at once.
    pub max_connections: usize,
    /// Extra connection slots only peers in `reserved_networks` may use (health probes).
    pub reserved_connections: usize,
    /// Who may use the reserved slots. Default: loopback.
    pub reserved_networks: Vec<String>,
    /// PEM certificate chain: with `tls_key_file`, the server speaks HTTPS only.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates: when set, every connection must present a client certificate
    /// signed by one of them (system callers only).
    pub tls_client_ca_file: Option<PathBuf>,
}

impl ServerConfig {
    /// The `reserved_networks`, parsed (validated at load).
    pub fn reserved(&self) -> Vec<ipnet::IpNet> {
        self.reserved_networks
            .iter()
            .filter_map(|s| parse_network(s))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite` (default) or `postgres` (issue 14; refused: this build has no PostgreSQL
    /// backend yet). See [`crate::store::Backend`].
    pub backend: String,
    pub data_dir: PathBuf,
    /// `full` (default: an acknowledged write survives power loss) or `normal`.
    pub synchronous: String,
    /// Read-only connections in the reader pool.
    pub readers: usize,
    /// Most operations the writer commits in one transaction.
    pub max_batch: usize,
    /// The WAL file is kept under this size (issue 13): past half of it the checkpointer
    /// resets the WAL between reads. Default 256 MiB; at least 4 MiB.
    pub wal_max_bytes: u64,
    /// PostgreSQL only (the keys below are refused under `sqlite`; see [`PostgresKeys`] for
    /// the checked values and defaults). A `postgres://` URL or `key=value` string with no
    /// password in it.
    pub postgres_url: Option<String>,
    /// File holding the database password (owner-only, like the HS256 secret).
    pub postgres_password_file: Option<PathBuf>,
    /// PEM CA certificates: TLS to the database, verify-full (chain and host name).
    pub postgres_ca_file: Option<PathBuf>,
    /// `verify-full` (the default when `postgres_ca_file` is set) or `off` (the default, and
    /// only allowed implicitly, for a database on this machine).
    pub postgres_tls: Option<String>,
    /// Reader connections per node (default 4, at most 64); the writers have their own.
    pub postgres_pool_size: Option<usize>,
    /// Writer connections per node, each committing its own groups (default 2, at most 32).
    pub postgres_writers: Option<usize>,
    /// The server-side `statement_timeout` of every connection (default 30000).
    pub postgres_statement_timeout_ms: Option<u64>,
    /// How long opening one connection (TCP, TLS, authentication) may take (default 5000).
    pub postgres_connect_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Defaults to `<data_dir>/keyring.json`.
    pub keyring_file: Option<PathBuf>,
    /// File holding the passphrase of a sealed keyring (else it is asked on the terminal).
    pub passphrase_file: Option<PathBuf>,
    /// Rotate the KEK when no rotation finished for this many days (a running server checks
    /// hourly). 0, the default, turns the schedule off. On PostgreSQL an erasure is final
    /// only once the KEK of its time is retired: 30 is a good value there.
    pub rotate_every_days: u32,
    /// With the schedule on: retire a replaced KEK this many days after the rotation that
    /// replaced it (backups older than that can no longer be restored with the keyring).
    /// Default 7.
    pub retire_after_days: u32,
}

/// Largest `keys.rotate_every_days` and `keys.retire_after_days`.
pub const MAX_KEY_SCHEDULE_DAYS: u32 = 3650;

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            keyring_file: None,
            passphrase_file: None,
            rotate_every_days: 0,
            retire_after_days: 7,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// Directory with fields.toml and access.toml; unset means the embedded defaults.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// File holding the HS256 secret; defaults to `<data_dir>/hs256.secret` when it exists.
    pub hs256_secret_file: Option<PathBuf>,
    /// PEM public keys (Ed25519, RSA or P-256); each pins its own algorithm.
    pub public_key_files: Vec<PathBuf>,
    /// Clock skew tolerated on `exp`, in seconds.
    pub leeway_secs: u64,
    /// Longest token lifetime (`exp - iat`) accepted; tokens must carry `iat`.
    pub max_token_ttl_secs: u64,
    /// Longer lifetimes for integration roles only, e.g. `{ pms = 2592000 }` (at most 90 days).
    pub max_token_ttl_secs_by_role: std::collections::BTreeMap<String, u64>,
}

impl AuthConfig {
    /// The longest lifetime a token of `role` may have.
    pub fn max_ttl_for(&self, role: &str) -> u64 {
        self.max_token_ttl_secs_by_role
            .get(role)
            .copied()
            .unwrap_or(self.max_token_ttl_secs)
    }
}

/// How accesses must be justified (issue 12 point 7).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Accept a free-text `justification` note besides the reason code (off: codes only, since
    /// the audit trail outlives the guest and free text can carry personal data).
    pub allow_free_text_justification: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Make a signed checkpoint after this many events.
    pub checkpoint_every: u64,
    /// ... or after this many seconds with new events.
    pub checkpoint_interval_secs: u64,
    /// Days the trail is kept before `guestvault audit purge` may remove it; at least 1095
    /// (3 years, PIPL Art. 56, REQ-19).
    pub retention_days: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `guestvault=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            request_timeout_secs: 60,
            max_connections: 4096,
            reserved_connections: 32,
            reserved_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: crate::store::Backend::Sqlite.as_str().into(),
            data_dir: PathBuf::from("guestvault-data"),
            synchronous: "full".into(),
            readers: 4,
            max_batch: 512,
            wal_max_bytes: crate::store::DEFAULT_WAL_MAX_BYTES,
            postgres_url: None,
            postgres_password_file: None,
            postgres_ca_file: None,
            postgres_tls: None,
            postgres_pool_size: None,
            postgres_writers: None,
            postgres_statement_timeout_ms: None,
            postgres_connect_timeout_ms: None,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "guestvault".into(),
            audience: "guestvault".into(),
            hs256_secret_file: None,
            public_key_files: Vec::new(),
            leeway_secs: 30,
            max_token_ttl_secs: DEFAULT_MAX_TOKEN_TTL_SECS,
            max_token_ttl_secs_by_role: Default::default(),
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: 10_000,
            checkpoint_interval_secs: 60,
            retention_days: crate::audit::purge::DEFAULT_RETENTION_DAYS,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

impl Config {
    /// Loads `path` (or `./guestvault.toml` when present and `path` is `None`) and applies
    /// environment overrides from the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let default_path = Path::new(DEFAULT_CONFIG_FILE);
        let path = path.or_else(|| default_path.exists().then_some(default_path));
        let (mut table, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.display().to_string(),
                    message: e.message().to_string(),
                })?;
                (table, p.display().to_string())
            }
            None => (toml::Table::new(), "defaults".to_string()),
        };
        // (`section.key`, environment variable) of every override, to name the variable in
        // errors.
        let mut env_keys: Vec<(String, String)> = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // `GUESTVAULT_TEST_*` belongs to the test suite (`GUESTVAULT_TEST_POSTGRES_URL`,
            // issue 14), not to any config section.
            if rest.starts_with(TEST_ENV_PREFIX) {
                continue;
            }
            let rest = rest.to_ascii_lowercase();
            let Some((section, key)) = rest.split_once('_') else {
                return Err(ConfigError::Key {
                    key: name.clone(),
                    origin: "environment".into(),
                    message: "expected GUESTVAULT_<SECTION>_<KEY>".into(),
                });
            };
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section_table) = entry.as_table_mut() else {
                return Err(ConfigError::Key {
                    key: section.to_string(),
                    origin: origin.clone(),
                    message: "must be a table".into(),
                });
            };
            section_table.insert(key.to_string(), env_value(section, key, &value));
            env_keys.push((format!("{section}.{key}"), name));
        }
        let origin_of = |key: &str| -> String {
            match env_keys.iter().find(|(k, _)| k == key) {
                Some((_, var)) => format!("environment variable {var}"),
                None => origin.clone(),
            }
        };
        let config: Config = match toml::Value::Table(table.clone()).try_into() {
            Ok(config) => config,
            Err(e) => {
                let e: toml::de::Error = e;
                // The deserializer's message has no key path: find the key by checking each
                // one on its own (every other key then takes its default).
                return Err(match first_bad_key(&table) {
                    Some((key, message)) => ConfigError::Key {
                        origin: origin_of(&key),
                        key,
                        message,
                    },
                    None => ConfigError::Parse {
                        path: origin.clone(),
                        message: e.message().to_string(),
                    },
                });
            }
        };
        config.validate(&origin_of)?;
        Ok(config)
    }

    fn validate(&self, origin_of: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| ConfigError::Key {
            key: key.into(),
            origin: origin_of(key),
            message: message.into(),
        };
        let backend = crate::store::Backend::parse(&self.storage.backend);
        // The PostgreSQL keys first, so a bad one is named even while this build refuses the
        // backend itself.
        let checked = match backend {
            None => return Err(bad("storage.backend", "must be `sqlite` or `postgres`")),
            Some(crate::store::Backend::Postgres) => self.storage.postgres().map(|_| ()),
            Some(crate::store::Backend::Sqlite) => postgres::refuse_when_unused(&self.storage),
        };
        if let Err((key, message)) = checked {
            return Err(bad(&key, &message));
        }
        if !matches!(
            self.storage.synchronous.as_str(),
            "full" | "normal" | "extra"
        ) {
            return Err(bad(
                "storage.synchronous",
                "must be `full`, `extra` or `normal`",
            ));
        }
        if self.storage.readers == 0 || self.storage.readers > 64 {
            return Err(bad("storage.readers", "must be between 1 and 64"));
        }
        if self.storage.max_batch == 0 {
            return Err(bad("storage.max_batch", "must be at least 1"));
        }
        if self.storage.wal_max_bytes < 4 * 1024 * 1024 {
            return Err(bad(
                "storage.wal_max_bytes",
                "must be at least 4194304 (4 MiB)",
            ));
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "server.listen",
                "must be an address such as 127.0.0.1:8080",
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(bad("server.max_body_bytes", "must be at least 1024"));
        }
        if let Some(bad_net) = self
            .metrics
            .allow
            .iter()
            .find(|n| parse_network(n).is_none())
        {
            return Err(bad(
                "metrics.allow",
                &format!("`{bad_net}` is not a network such as 10.0.0.0/8 or an address"),
            ));
        }
        if self
            .metrics
            .bearer_roles
            .iter()
            .any(|r| !crate::policy::is_identifier(r))
        {
            return Err(bad("metrics.bearer_roles", "must be role names"));
        }
        if let Err((key, message)) = limits::validate(&self.server, &self.budgets, &self.alerts) {
            return Err(bad(&key, &message));
        }
        if !(1..=3650).contains(&self.consent.re_ask_after_days) {
            return Err(bad(
                "consent.re_ask_after_days",
                "must be between 1 and 3650",
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(bad("log.format", "must be `text` or `json`"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(bad(
                "log.level",
                &format!("not a log filter such as `info` or `guestvault=debug,info`: {e}"),
            ));
        }
        if self.auth.issuer.is_empty() {
            return Err(bad("auth.issuer", "must not be empty"));
        }
        if self.auth.audience.is_empty() {
            return Err(bad("auth.audience", "must not be empty"));
        }
        if self.auth.leeway_secs > MAX_LEEWAY_SECS {
            return Err(bad(
                "auth.leeway_secs",
                &format!("must be at most {MAX_LEEWAY_SECS} (seconds of clock skew)"),
            ));
        }
        if !(60..=MAX_TOKEN_TTL_CAP_SECS).contains(&self.auth.max_token_ttl_secs) {
            return Err(bad(
                "auth.max_token_ttl_secs",
                &format!("must be between 60 and {MAX_TOKEN_TTL_CAP_SECS} seconds"),
            ));
        }
        for (role, ttl) in &self.auth.max_token_ttl_secs_by_role {
            if !crate::policy::is_identifier(role) {
                return Err(bad(
                    "auth.max_token_ttl_secs_by_role",
                    "keys must be role names",
                ));
            }
            if !(60..=MAX_TOKEN_TTL_CAP_SECS).contains(ttl) {
                return Err(bad(
                    &format!("auth.max_token_ttl_secs_by_role.{role}"),
                    &format!("must be between 60 and {MAX_TOKEN_TTL_CAP_SECS} seconds"),
                ));
            }
        }
        if !(1..=MAX_CHECK_IN_AHEAD_DAYS).contains(&self.stays.max_check_in_ahead_days) {
            return Err(bad(
                "stays.max_check_in_ahead_days",
                "must be between 1 and 730 (days)",
            ));
        }
        if !(1..=MAX_STAY_DAYS).contains(&self.stays.max_stay_days) {
            return Err(bad(
                "stays.max_stay_days",
                "must be between 1 and 365 (days)",
            ));
        }
        for (key, days) in [
            ("keys.rotate_every_days", self.keys.rotate_every_days),
            ("keys.retire_after_days", self.keys.retire_after_days),
        ] {
            if days > MAX_KEY_SCHEDULE_DAYS {
                return Err(bad(key, "must be at most 3650 (days)"));
            }
        }
        if self.audit.checkpoint_every == 0 {
            return Err(bad("audit.checkpoint_every", "must be at least 1"));
        }
        if self.audit.checkpoint_interval_secs == 0 {
            return Err(bad("audit.checkpoint_interval_secs", "must be at least 1"));
        }
        if self.audit.retention_days < crate::audit::purge::MIN_RETENTION_DAYS {
            // PIPL Art. 56: processing records are kept at least three years (REQ-19).
            return Err(bad(
                "audit.retention_days",
                "must be at least 1095 days (3 years, PIPL Art. 56)",
            ));
        }
        Ok(())
    }

    pub fn keyring_file(&self) -> PathBuf {
        self.keys
            .keyring_file
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("keyring.json"))
    }

    pub fn database_file(&self) -> PathBuf {
        self.storage.data_dir.join("guestvault.db")
    }

    /// The HS256 secret file in force: the configured one, else `<data_dir>/hs256.secret`.
    pub fn hs256_secret_file(&self) -> PathBuf {
        self.auth
            .hs256_secret_file
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("hs256.secret"))
    }
}

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 3] = ["allow", "bearer_roles", "reserved_networks"];

/// Environment values are TOML when they parse as a number or boolean and the key takes one;
/// else strings (`GUESTVAULT_AUTH_AUDIENCE=12345` is the string `"12345"`). List keys take
/// comma-separated values.
fn env_value(section: &str, key: &str, raw: &str) -> toml::Value {
    if key.ends_with("files") || LIST_KEYS.contains(&key) {
        let items = raw
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| toml::Value::String(s.trim().to_string()))
            .collect();
        return toml::Value::Array(items);
    }
    let string = toml::Value::String(raw.to_string());
    let coerced = if let Ok(i) = raw.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        return string;
    };
    // Keep the coerced value if the key takes it, or if a string would not fit either (the
    // error then names the type the key wants).
    if check_key(section, key, &coerced).is_ok() || check_key(section, key, &string).is_err() {
        coerced
    } else {
        string
    }
}

/// Deserializes a config holding only `section.key = value` (everything else defaulted).
fn check_key(section: &str, key: &str, value: &toml::Value) -> Result<(), String> {
    let mut inner = toml::Table::new();
    inner.insert(key.to_string(), value.clone());
    check_section(section, toml::Value::Table(inner))
}

fn check_section(section: &str, value: toml::Value) -> Result<(), String> {
    let mut outer = toml::Table::new();
    outer.insert(section.to_string(), value);
    toml::Value::Table(outer)
        .try_into::<Config>()
        .map(|_| ())
        .map_err(|e| e.message().to_string())
}

/// The first key (`section.key`, or `section` when the section itself is wrong) that does not
/// deserialize on its own, with the deserializer's message.
fn first_bad_key(table: &toml::Table) -> Option<(String, String)> {
    for (section, value) in table {
        let Some(keys) = value.as_table() else {
            if let Err(m) = check_section(section, value.clone()) {
                return Some((section.clone(), m));
            }
            continue;
        };
        if let Err(m) = check_section(section, toml::Value::Table(toml::Table::new())) {
            return Some((section.clone(), m));
        }
        for (key, v) in keys {
            if let Err(m) = check_key(section, key, v) {
                return Some((format!("{section}.{key}"), m));
            }
        }
    }
    None
}

/// [`read_secret_file`] for a secret that guards others (the keyring passphrase): refused when
/// group or others can read the file, like the HS256 secret.
pub fn read_private_secret_file(
    key: &str,
    path: &Path,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(ConfigError::Key {
                    key: key.into(),
                    origin: path.display().to_string(),
                    message: "the file is readable by group or others; run `chmod 600` on it"
                        .into(),
                });
            }
        }
    }
    read_secret_file(key, path)
}

/// Reads a secret from a file, trimming one trailing newline. Used for every `*_file` key.
pub fn read_secret_file(
    key: &str,
    path: &Path,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ConfigError> {
    let mut bytes = std::fs::read(path).map_err(|e| ConfigError::Key {
        key: key.into(),
        origin: path.display().to_string(),
        message: format!("cannot read secret file: {e}"),
    })?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(zeroize::Zeroizing::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "[storage]\ndata_dir = \"/a\"\n[server]\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let c = Config::load_with_env(
            Some(&file),
            env(&[
                ("GUESTVAULT_STORAGE_DATA_DIR", "/b"),
                ("GUESTVAULT_STORAGE_READERS", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(c.storage.data_dir, PathBuf::from("/b"));
        assert_eq!(c.storage.readers, 2);
        assert_eq!(c.server.listen, "127.0.0.1:1");
        assert_eq!(c.keyring_file(), PathBuf::from("/b/keyring.json"));
    }

    #[test]
    fn unknown_env_key_is_named() {
        let err = Config::load_with_env(None, env(&[("GUESTVAULT_STORAGE_DATADIR", "/b")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("GUESTVAULT_STORAGE_DATADIR"), "{err}");
    }

    #[test]
    fn unknown_file_key_and_bad_value_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "[storage]\nsynchronus = \"off\"\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("synchronus"), "{err}");
        std::fs::write(&file, "[storage]\nsynchronous = \"off\"\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.synchronous"), "{err}");
    }

    #[test]
    fn the_storage_backend_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        assert_eq!(
            Config::load_with_env(None, env(&[]))
                .unwrap()
                .storage
                .backend,
            "sqlite"
        );
        std::fs::write(&file, "[storage]\nbackend = \"sqlite\"\n").unwrap();
        Config::load_with_env(Some(&file), env(&[])).unwrap();
        // An unknown backend names the key and the file, not the value.
        std::fs::write(&file, "[storage]\nbackend = \"mysql\"\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`storage.backend`"), "{err}");
        assert!(err.contains("g.toml"), "{err}");
        assert!(err.contains("must be `sqlite` or `postgres`"), "{err}");
        assert!(!err.contains("mysql"), "{err}");
        // PostgreSQL needs its URL, and the error names that key and the file.
        std::fs::write(&file, "[storage]\nbackend = \"postgres\"\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`storage.postgres_url`"), "{err}");
        assert!(err.contains("g.toml"), "{err}");
        std::fs::write(
            &file,
            "[storage]\nbackend = \"postgres\"\npostgres_url = \"postgres://v@localhost/g\"\n",
        )
        .unwrap();
        let loaded = Config::load_with_env(Some(&file), env(&[])).unwrap();
        assert_eq!(loaded.storage.backend, "postgres");
        // The test suite's own variable is not a config key.
        Config::load_with_env(
            None,
            env(&[("GUESTVAULT_TEST_POSTGRES_URL", "postgres://x@127.0.0.1/t")]),
        )
        .unwrap();
        let err = Config::load_with_env(None, env(&[("GUESTVAULT_STORAGE_BACKEND", "postgres")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`storage.postgres_url`"), "{err}");
        Config::load_with_env(
            None,
            env(&[
                ("GUESTVAULT_STORAGE_BACKEND", "postgres"),
                (
                    "GUESTVAULT_STORAGE_POSTGRES_URL",
                    "postgres://v@localhost/g",
                ),
            ]),
        )
        .unwrap();
    }

    #[test]
    fn audit_retention_below_three_years_is_refused() {
        // REQ-19: `pi_audit=30d` is a configuration error naming the key.
        let err = Config::load_with_env(None, env(&[("GUESTVAULT_AUDIT_RETENTION_DAYS", "30")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("audit.retention_days"), "{err}");
        assert!(err.contains("PIPL Art. 56"), "{err}");
        let ok = Config::load_with_env(None, env(&[("GUESTVAULT_AUDIT_RETENTION_DAYS", "1095")]))
            .unwrap();
        assert_eq!(ok.audit.retention_days, 1095);
        assert_eq!(Config::default().audit.retention_days, 1096);
    }

    #[test]
    fn metrics_scrapers_default_to_loopback_and_come_from_the_environment() {
        let c = Config::load_with_env(None, env(&[])).unwrap();
        let nets = c.metrics.allowed_networks();
        assert!(nets
            .iter()
            .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())));
        assert!(!nets
            .iter()
            .any(|n| n.contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap())));
        let c = Config::load_with_env(
            None,
            env(&[
                ("GUESTVAULT_METRICS_ALLOW", "10.0.0.0/8, 192.0.2.7"),
                ("GUESTVAULT_METRICS_BEARER_ROLES", "admin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.metrics.allowed_networks().len(), 2);
        assert_eq!(c.metrics.bearer_roles, vec!["admin".to_string()]);
        let err = Config::load_with_env(None, env(&[("GUESTVAULT_METRICS_ALLOW", "10.0.0.0/33")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.allow"), "{err}");
    }

    #[test]
    fn secret_files_lose_their_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "hunter2\n").unwrap();
        assert_eq!(
            read_secret_file("auth.hs256_secret_file", &file)
                .unwrap()
                .as_slice(),
            b"hunter2"
        );
    }

    #[test]
    fn a_wrongly_typed_value_names_its_key_and_where_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "[storage]\nreaders = \"four\"\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`storage.readers`"), "{err}");
        assert!(err.contains("g.toml"), "{err}");
        let err = Config::load_with_env(None, env(&[("GUESTVAULT_STORAGE_READERS", "four")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`storage.readers`"), "{err}");
        assert!(err.contains("GUESTVAULT_STORAGE_READERS"), "{err}");
        assert!(!err.contains("defaults"), "{err}");
        // A wrong section type and an unknown section are named too.
        std::fs::write(&file, "storage = 3\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`storage`"), "{err}");
        std::fs::write(&file, "[storge]\nreaders = 2\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`storge`"), "{err}");
    }

    #[test]
    fn a_too_small_wal_limit_is_refused_with_its_key() {
        let err = Config::load_with_env(None, env(&[("GUESTVAULT_STORAGE_WAL_MAX_BYTES", "1024")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.wal_max_bytes"), "{err}");
        assert!(err.contains("GUESTVAULT_STORAGE_WAL_MAX_BYTES"), "{err}");
        let c = Config::load_with_env(
            None,
            env(&[("GUESTVAULT_STORAGE_WAL_MAX_BYTES", "8388608")]),
        )
        .unwrap();
        assert_eq!(c.storage.wal_max_bytes, 8 * 1024 * 1024);
    }

    #[test]
    fn a_validation_error_on_an_env_value_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "[server]\nmax_body_bytes = 10\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[("GUESTVAULT_STORAGE_READERS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`storage.readers`"), "{err}");
        assert!(err.contains("GUESTVAULT_STORAGE_READERS"), "{err}");
        let err = Config::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`server.max_body_bytes`"), "{err}");
        assert!(err.contains("g.toml"), "{err}");
    }

    #[test]
    fn numeric_looking_env_values_stay_strings_for_string_keys() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("GUESTVAULT_AUTH_AUDIENCE", "12345"),
                ("GUESTVAULT_AUTH_ISSUER", "true"),
                ("GUESTVAULT_STORAGE_DATA_DIR", "2024"),
                ("GUESTVAULT_STORAGE_MAX_BATCH", "64"),
            ]),
        )
        .unwrap();
        assert_eq!(c.auth.audience, "12345");
        assert_eq!(c.auth.issuer, "true");
        assert_eq!(c.storage.data_dir, PathBuf::from("2024"));
        assert_eq!(c.storage.max_batch, 64);
        assert_eq!(c.storage.wal_max_bytes, 256 * 1024 * 1024);
    }

    #[test]
    fn log_level_must_be_a_valid_filter() {
        for ok in ["info", "guestvault=debug,info", "warn"] {
            let c = Config::load_with_env(None, env(&[("GUESTVAULT_LOG_LEVEL", ok)])).unwrap();
            assert_eq!(c.log.level, ok);
        }
        let err = Config::load_with_env(None, env(&[("GUESTVAULT_LOG_LEVEL", "guestvault=loud")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`log.level`"), "{err}");
        assert!(err.contains("GUESTVAULT_LOG_LEVEL"), "{err}");
    }

    #[test]
    fn leeway_has_an_upper_bound() {
        let c =
            Config::load_with_env(None, env(&[("GUESTVAULT_AUTH_LEEWAY_SECS", "300")])).unwrap();
        assert_eq!(c.auth.leeway_secs, 300);
        let err = Config::load_with_env(None, env(&[("GUESTVAULT_AUTH_LEEWAY_SECS", "86400")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`auth.leeway_secs`"), "{err}");
        assert!(err.contains("GUESTVAULT_AUTH_LEEWAY_SECS"), "{err}");
    }

    #[test]
    fn token_lifetime_keys_are_checked_and_named() {
        let c = Config::default();
        assert_eq!(c.auth.max_token_ttl_secs, 86_400);
        assert_eq!(c.auth.max_ttl_for("pms"), 86_400);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "[auth]\nmax_token_ttl_secs_by_role = { pms = 2592000 }\n[access]\nallow_free_text_justification = true\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&file), env(&[])).unwrap();
        assert_eq!(c.auth.max_ttl_for("pms"), 2_592_000);
        assert_eq!(c.auth.max_ttl_for("front_desk"), 86_400);
        assert!(c.access.allow_free_text_justification);
        for (text, key) in [
            (
                "[auth]\nmax_token_ttl_secs_by_role = { pms = 31536000 }\n",
                "`auth.max_token_ttl_secs_by_role.pms`",
            ),
            (
                "[auth]\nmax_token_ttl_secs = 0\n",
                "`auth.max_token_ttl_secs`",
            ),
            (
                "[access]\nallow_free_text = true\n",
                "`access.allow_free_text`",
            ),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Config::load_with_env(Some(&file), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn free_text_justification_is_off_by_default() {
        assert!(!Config::default().access.allow_free_text_justification);
    }

    #[test]
    fn stay_limits_may_be_tightened_never_widened() {
        let c =
            Config::load_with_env(None, env(&[("GUESTVAULT_STAYS_MAX_STAY_DAYS", "30")])).unwrap();
        assert_eq!(c.stays.max_stay_days, 30);
        assert_eq!(c.stays.max_check_in_ahead_days, 730);
        for (var, key) in [
            ("GUESTVAULT_STAYS_MAX_STAY_DAYS", "`stays.max_stay_days`"),
            (
                "GUESTVAULT_STAYS_MAX_CHECK_IN_AHEAD_DAYS",
                "`stays.max_check_in_ahead_days`",
            ),
        ] {
            for bad in ["0", "3651", "800"] {
                if bad == "800" && var.ends_with("AHEAD_DAYS") {
                    continue;
                }
                let err = Config::load_with_env(None, env(&[(var, bad)]))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(key) && err.contains(var), "{err}");
            }
        }
    }

    #[test]
    fn the_key_schedule_is_off_by_default_and_its_keys_are_checked() {
        let c = Config::default();
        assert_eq!((c.keys.rotate_every_days, c.keys.retire_after_days), (0, 7));
        assert!(crate::service::KeySchedule::from_config(&c.keys).is_none());
        let c = Config::load_with_env(
            None,
            env(&[
                ("GUESTVAULT_KEYS_ROTATE_EVERY_DAYS", "30"),
                ("GUESTVAULT_KEYS_RETIRE_AFTER_DAYS", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(
            crate::service::KeySchedule::from_config(&c.keys),
            Some(crate::service::KeySchedule {
                rotate_every_days: 30,
                retire_after_days: 2
            })
        );
        let err =
            Config::load_with_env(None, env(&[("GUESTVAULT_KEYS_ROTATE_EVERY_DAYS", "9999")]))
                .unwrap_err()
                .to_string();
        assert!(err.contains("`keys.rotate_every_days`"), "{err}");
    }
}
