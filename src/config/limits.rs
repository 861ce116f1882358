//! `[budgets]` and `[alerts]`: the per-principal request budgets and the anomaly thresholds
//! (issue 12, REQ-38), and the validation of those and of the edge limits under `server.`.
//! Every key is flat (`reads_per_min`, `reads_burst`, ...) so the environment can set it
//! (`GUESTVAULT_BUDGETS_READS_PER_MIN`); per-role overrides live in `[budgets.roles.<role>]`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One token bucket: `per_min` requests a minute sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_min: u32,
    pub burst: u32,
}

/// Per-principal budgets by route class. A principal is the token's `sub` and `role`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetsConfig {
    /// `false` turns every budget off (alerts still count).
    pub enabled: bool,
    pub reads_per_min: u32,
    pub reads_burst: u32,
    pub searches_per_min: u32,
    pub searches_burst: u32,
    pub reveals_per_min: u32,
    pub reveals_burst: u32,
    pub exports_per_min: u32,
    pub exports_burst: u32,
    pub writes_per_min: u32,
    pub writes_burst: u32,
    /// Refusals (403, 404) a principal may collect; over it, every request of that principal
    /// answers 429 until the bucket refills.
    pub denied_per_min: u32,
    pub denied_burst: u32,
    /// Token failures (401) per peer address; over it, that address answers 429.
    pub auth_failures_per_min: u32,
    pub auth_failures_burst: u32,
    /// Principals (and addresses) tracked at most; idle ones are forgotten first.
    pub max_tracked: usize,
    /// Seconds between `access.throttled` reports (one event per throttled principal).
    pub report_interval_secs: u64,
    /// Overrides per role, with the same keys (e.g. the `pms` integration).
    pub roles: BTreeMap<String, RoleBudgets>,
}

/// The keys a role may override; unset keys take the `[budgets]` value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleBudgets {
    pub reads_per_min: Option<u32>,
    pub reads_burst: Option<u32>,
    pub searches_per_min: Option<u32>,
    pub searches_burst: Option<u32>,
    pub reveals_per_min: Option<u32>,
    pub reveals_burst: Option<u32>,
    pub exports_per_min: Option<u32>,
    pub exports_burst: Option<u32>,
    pub writes_per_min: Option<u32>,
    pub writes_burst: Option<u32>,
    pub denied_per_min: Option<u32>,
    pub denied_burst: Option<u32>,
}

/// The route classes a budget applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteClass {
    Reads,
    Searches,
    Reveals,
    Exports,
    Writes,
    Denied,
}

impl RouteClass {
    pub const ALL: [RouteClass; 6] = [
        Self::Reads,
        Self::Searches,
        Self::Reveals,
        Self::Exports,
        Self::Writes,
        Self::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reads => "reads",
            Self::Searches => "searches",
            Self::Reveals => "reveals",
            Self::Exports => "exports",
            Self::Writes => "writes",
            Self::Denied => "denied",
        }
    }
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        // Well above honest use by one person at a desk; the integration role gets more.
        let mut roles = BTreeMap::new();
        roles.insert(
            "pms".to_string(),
            RoleBudgets {
                reads_per_min: Some(600_000),
                reads_burst: Some(20_000),
                searches_per_min: Some(600_000),
                searches_burst: Some(20_000),
                writes_per_min: Some(600_000),
                writes_burst: Some(20_000),
                denied_per_min: Some(6_000),
                denied_burst: Some(1_000),
                ..RoleBudgets::default()
            },
        );
        Self {
            enabled: true,
            reads_per_min: 30_000,
            reads_burst: 1_000,
            searches_per_min: 600,
            searches_burst: 100,
            reveals_per_min: 60,
            reveals_burst: 20,
            exports_per_min: 30,
            exports_burst: 10,
            writes_per_min: 30_000,
            writes_burst: 1_000,
            denied_per_min: 120,
            denied_burst: 100,
            auth_failures_per_min: 600,
            auth_failures_burst: 100,
            max_tracked: 100_000,
            report_interval_secs: 60,
            roles,
        }
    }
}

impl BudgetsConfig {
    /// The bucket of `class` for `role` (its override, else the default).
    pub fn rate(&self, role: Option<&str>, class: RouteClass) -> Rate {
        let o = role.and_then(|r| self.roles.get(r));
        let pick = |d: u32, f: fn(&RoleBudgets) -> Option<u32>| o.and_then(f).unwrap_or(d);
        let (per_min, burst) = match class {
            RouteClass::Reads => (
                pick(self.reads_per_min, |o| o.reads_per_min),
                pick(self.reads_burst, |o| o.reads_burst),
            ),
            RouteClass::Searches => (
                pick(self.searches_per_min, |o| o.searches_per_min),
                pick(self.searches_burst, |o| o.searches_burst),
            ),
            RouteClass::Reveals => (
                pick(self.reveals_per_min, |o| o.reveals_per_min),
                pick(self.reveals_burst, |o| o.reveals_burst),
            ),
            RouteClass::Exports => (
                pick(self.exports_per_min, |o| o.exports_per_min),
                pick(self.exports_burst, |o| o.exports_burst),
            ),
            RouteClass::Writes => (
                pick(self.writes_per_min, |o| o.writes_per_min),
                pick(self.writes_burst, |o| o.writes_burst),
            ),
            RouteClass::Denied => (
                pick(self.denied_per_min, |o| o.denied_per_min),
                pick(self.denied_burst, |o| o.denied_burst),
            ),
        };
        Rate { per_min, burst }
    }

    fn all_rates(&self) -> Vec<(String, Rate)> {
        let mut out: Vec<(String, Rate)> = RouteClass::ALL
            .iter()
            .map(|c| (format!("budgets.{}", c.as_str()), self.rate(None, *c)))
            .collect();
        out.push((
            "budgets.auth_failures".into(),
            Rate {
                per_min: self.auth_failures_per_min,
                burst: self.auth_failures_burst,
            },
        ));
        for role in self.roles.keys() {
            for c in RouteClass::ALL {
                out.push((
                    format!("budgets.roles.{role}.{}", c.as_str()),
                    self.rate(Some(role), c),
                ));
            }
        }
        out
    }
}

/// Anomaly thresholds: reaching one within `window_secs` raises one `security.alert` (audit
/// event, log line, `guestvault_security_alerts_total{kind}`) per principal and window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub window_secs: u64,
    /// Successful reveals by one principal.
    pub reveals: u32,
    /// Searches by one principal that found nobody.
    pub search_misses: u32,
    /// Guest exports (access requests) by one principal.
    pub exports: u32,
    /// 403/404 answers to a self-only (guest) token on ids other than its own.
    pub guest_probes: u32,
    /// Token signature failures from one peer address.
    pub token_failures: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            reveals: 30,
            search_misses: 50,
            exports: 20,
            guest_probes: 5,
            token_failures: 50,
        }
    }
}

/// Checks `[budgets]`, `[alerts]` and the edge keys of `[server]`; the error is the key and
/// what is wrong with it.
pub(super) fn validate(
    server: &super::ServerConfig,
    budgets: &BudgetsConfig,
    alerts: &AlertsConfig,
) -> Result<(), (String, String)> {
    let bad = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
    for (key, secs) in [
        (
            "server.header_read_timeout_secs",
            server.header_read_timeout_secs,
        ),
        ("server.idle_timeout_secs", server.idle_timeout_secs),
        ("server.request_timeout_secs", server.request_timeout_secs),
    ] {
        if secs == 0 || secs > 3600 {
            return bad(key, "must be between 1 and 3600 seconds");
        }
    }
    if server.max_connections == 0 || server.max_connections > 1_000_000 {
        return bad("server.max_connections", "must be between 1 and 1000000");
    }
    if server.reserved_connections > 1024 {
        return bad("server.reserved_connections", "must be at most 1024");
    }
    if let Some(n) = server
        .reserved_networks
        .iter()
        .find(|n| super::parse_network(n).is_none())
    {
        return bad(
            "server.reserved_networks",
            &format!("`{n}` is not a network such as 127.0.0.0/8 or an address"),
        );
    }
    match (&server.tls_cert_file, &server.tls_key_file) {
        (Some(_), None) => {
            return bad(
                "server.tls_key_file",
                "must be set with server.tls_cert_file",
            )
        }
        (None, Some(_)) => {
            return bad(
                "server.tls_cert_file",
                "must be set with server.tls_key_file",
            )
        }
        _ => {}
    }
    if server.tls_client_ca_file.is_some() && server.tls_cert_file.is_none() {
        return bad(
            "server.tls_client_ca_file",
            "needs server.tls_cert_file and server.tls_key_file",
        );
    }
    for (key, rate) in budgets.all_rates() {
        if rate.per_min == 0 {
            return bad(&format!("{key}_per_min"), "must be at least 1");
        }
        if rate.burst == 0 {
            return bad(&format!("{key}_burst"), "must be at least 1");
        }
    }
    if budgets
        .roles
        .keys()
        .any(|r| !crate::policy::is_identifier(r))
    {
        return bad("budgets.roles", "must be role names");
    }
    if budgets.max_tracked < 16 {
        return bad("budgets.max_tracked", "must be at least 16");
    }
    if budgets.report_interval_secs == 0 || budgets.report_interval_secs > 3600 {
        return bad("budgets.report_interval_secs", "must be between 1 and 3600");
    }
    if alerts.window_secs == 0 || alerts.window_secs > 86_400 {
        return bad("alerts.window_secs", "must be between 1 and 86400");
    }
    for (key, n) in [
        ("alerts.reveals", alerts.reveals),
        ("alerts.search_misses", alerts.search_misses),
        ("alerts.exports", alerts.exports),
        ("alerts.guest_probes", alerts.guest_probes),
        ("alerts.token_failures", alerts.token_failures),
    ] {
        if n == 0 {
            return bad(key, "must be at least 1");
        }
    }
    Ok(())
}
