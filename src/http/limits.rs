//! Request budgets and security alerts (issue 12, REQ-38).
//!
//! Every authenticated request draws on its principal's token bucket (GCRA, the `governor`
//! crate) for its route class: reads, searches, reveals, exports or writes. A principal is the
//! token's `sub` with its `role`; `[budgets.roles.<role>]` gives a role other buckets (the
//! `pms` integration needs thousands a second). Refusals (403, 404) also draw on a smaller
//! `denied` bucket; once it is empty, every request of that principal answers 429 until it
//! refills, so a client probing ids cannot fill the permanent trail. Token failures draw on a
//! bucket per peer address.
//!
//! A 429 is not audited one by one: each principal's refusals are counted and written as one
//! `access.throttled` event per report interval (`budgets.report_interval_secs`, a minute by
//! default) and once more at shutdown, with the count and the classes, never a guest id.
//!
//! Alerts count, per principal and `alerts.window_secs`: successful reveals, searches that
//! found nobody, exports, a guest token's refusals on ids other than its own, and token
//! signature failures per peer network. Reaching a threshold raises one `security.alert`:
//! an audit event, a log line (no personal data) and `guestvault_security_alerts_total{kind}`.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::{ApiError, AppState, Peer};
use crate::config::{AlertsConfig, BudgetsConfig, Rate, RouteClass};
use crate::service::{SecurityEvent, Vault};

/// Marks a search response that found nobody (for the search-miss alert).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchMiss;

/// How long after a refusal a principal pays its `denied` cell up front.
const SUSPECT_FOR: Duration = Duration::from_secs(60);

/// `sub` and role of a verified token.
type Principal = (String, String);

type Limiter<K> = DefaultKeyedRateLimiter<K>;

/// A keyed limiter that can be replaced whole when it tracks too many keys.
#[derive(Debug)]
struct Bucket<K: std::hash::Hash + Eq + Clone> {
    quota: Quota,
    limiter: RwLock<Arc<Limiter<K>>>,
}

impl<K: std::hash::Hash + Eq + Clone> Bucket<K> {
    fn new(rate: Rate) -> Self {
        let per_min = NonZeroU32::new(rate.per_min).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_min).allow_burst(burst);
        Self {
            quota,
            limiter: RwLock::new(Arc::new(Limiter::dashmap(quota))),
        }
    }

    fn current(&self) -> Arc<Limiter<K>> {
        match self.limiter.read() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// `Err(wait)` when the bucket of `key` is empty.
    fn take(&self, key: &K) -> Result<(), Duration> {
        let limiter = self.current();
        limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// Forgets keys whose bucket is full again; starts over if still more than `max` remain
    /// (memory stays bounded whatever the number of principals or addresses).
    fn prune(&self, max: usize) {
        let limiter = self.current();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() > max {
            let fresh = Arc::new(Limiter::dashmap(self.quota));
            match self.limiter.write() {
                Ok(mut l) => *l = fresh,
                Err(p) => *p.into_inner() = fresh,
            }
        }
    }
}

/// Counts within a window, for alerts.
#[derive(Debug)]
struct Window {
    started: Instant,
    count: u32,
    raised: bool,
}

/// What one principal was refused since the last report.
#[derive(Debug, Default)]
struct Throttled {
    count: u64,
    classes: BTreeSet<&'static str>,
}

/// The buckets of one route class.
#[derive(Debug)]
struct ClassBuckets {
    default: Bucket<Principal>,
    by_role: HashMap<String, Bucket<Principal>>,
}

fn class_index(class: RouteClass) -> usize {
    match class {
        RouteClass::Reads => 0,
        RouteClass::Searches => 1,
        RouteClass::Reveals => 2,
        RouteClass::Exports => 3,
        RouteClass::Writes => 4,
        RouteClass::Denied => 5,
    }
}

/// Keys with a deadline (blocked principals, suspects, blocked addresses). Almost always
/// empty: a request then checks one atomic instead of taking the lock.
#[derive(Debug)]
struct Tracked<K> {
    map: Mutex<HashMap<K, Instant>>,
    /// `map.len()`, kept under the lock, read without it.
    len: std::sync::atomic::AtomicUsize,
}

impl<K> Default for Tracked<K> {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
            len: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl<K: std::hash::Hash + Eq> Tracked<K> {
    fn is_empty(&self) -> bool {
        // Acquire pairs with the Release below: a key inserted before a request arrives is seen.
        self.len.load(std::sync::atomic::Ordering::Acquire) == 0
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<K, Instant>) -> T) -> T {
        let mut map = lock(&self.map);
        let out = f(&mut map);
        self.len
            .store(map.len(), std::sync::atomic::Ordering::Release);
        out
    }

    /// The key's deadline if it has not passed.
    fn until(&self, key: &K) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        lock(&self.map).get(key).copied()
    }
}

/// The budgets and alert counters of one server.
#[derive(Debug)]
pub struct Limits {
    enabled: bool,
    /// Per class (indexed by [`class_index`]), the default bucket and one per role with
    /// overrides: looked up by `&str`, with no allocation per request.
    buckets: Vec<ClassBuckets>,
    auth_failures: Bucket<IpAddr>,
    /// Principals whose `denied` bucket ran dry, until when.
    blocked: Tracked<Principal>,
    /// Principals refused within the last minute: each of their requests takes its `denied`
    /// cell up front, so many requests in flight at once cannot overrun the bucket.
    suspects: Tracked<Principal>,
    ip_blocked: Tracked<IpAddr>,
    throttled: Mutex<HashMap<Principal, Throttled>>,
    windows: Mutex<HashMap<(String, &'static str), Window>>,
    alerts: AlertsConfig,
    max_tracked: usize,
    pub(crate) report_interval: Duration,
    pub(crate) request_timeout: Duration,
}

impl Limits {
    pub fn from_config(config: &crate::config::Config) -> Self {
        let b: &BudgetsConfig = &config.budgets;
        // In `RouteClass::ALL` order, which is `class_index` order (a test checks it).
        let buckets: Vec<ClassBuckets> = RouteClass::ALL
            .iter()
            .map(|&class| ClassBuckets {
                default: Bucket::new(b.rate(None, class)),
                by_role: b
                    .roles
                    .keys()
                    .map(|role| (role.clone(), Bucket::new(b.rate(Some(role), class))))
                    .collect(),
            })
            .collect();
        Self {
            enabled: b.enabled,
            buckets,
            auth_failures: Bucket::new(Rate {
                per_min: b.auth_failures_per_min,
                burst: b.auth_failures_burst,
            }),
            blocked: Tracked::default(),
            suspects: Tracked::default(),
            ip_blocked: Tracked::default(),
            throttled: Mutex::default(),
            windows: Mutex::default(),
            alerts: config.alerts.clone(),
            max_tracked: b.max_tracked,
            report_interval: Duration::from_secs(b.report_interval_secs),
            request_timeout: Duration::from_secs(config.server.request_timeout_secs),
        }
    }

    fn bucket(&self, class: RouteClass, role: &str) -> Option<&Bucket<Principal>> {
        self.buckets
            .get(class_index(class))
            .map(|c| c.by_role.get(role).unwrap_or(&c.default))
    }

    /// `Err(wait)` if `who` may not make a request of `class` now; `Ok(true)` when the
    /// request already paid its `denied` cell.
    fn admit(&self, who: &Principal, class: RouteClass) -> Result<bool, (Duration, RouteClass)> {
        if !self.enabled {
            return Ok(false);
        }
        if let Some(wait) = still_blocked(&self.blocked, who) {
            return Err((wait, RouteClass::Denied));
        }
        let suspect = self
            .suspects
            .until(who)
            .is_some_and(|t| t.elapsed() < SUSPECT_FOR);
        if suspect {
            if let Err(wait) = self.take_denied(who) {
                return Err((wait, RouteClass::Denied));
            }
        }
        match self.bucket(class, &who.1) {
            Some(b) => b.take(who).map(|()| suspect).map_err(|wait| (wait, class)),
            None => Ok(suspect),
        }
    }

    /// Takes a `denied` cell; an empty bucket blocks the principal until it refills.
    fn take_denied(&self, who: &Principal) -> Result<(), Duration> {
        match self.bucket(RouteClass::Denied, &who.1).map(|b| b.take(who)) {
            Some(Err(wait)) => {
                self.blocked
                    .with(|m| m.insert(who.clone(), Instant::now() + wait));
                Err(wait)
            }
            _ => Ok(()),
        }
    }

    /// A refusal (403/404) answered to `who`: draws on its `denied` bucket unless the
    /// request paid up front.
    fn refused(&self, who: &Principal, prepaid: bool) {
        if !self.enabled {
            return;
        }
        self.suspects.with(|suspects| {
            if suspects.len() < self.max_tracked || suspects.contains_key(who) {
                suspects.insert(who.clone(), Instant::now());
            }
        });
        if !prepaid {
            let _ = self.take_denied(who);
        }
    }

    fn count_throttled(&self, who: &Principal, class: RouteClass) {
        metrics::counter!(crate::metrics::RATE_LIMITED, "class" => class.as_str()).increment(1);
        let mut t = lock(&self.throttled);
        if t.len() >= self.max_tracked && !t.contains_key(who) {
            // Still counted, under one catch-all principal, rather than lost.
            let e = t.entry(("(many)".into(), "(many)".into())).or_default();
            e.count += 1;
            e.classes.insert(class.as_str());
            return;
        }
        let e = t.entry(who.clone()).or_default();
        e.count += 1;
        e.classes.insert(class.as_str());
    }

    /// Counts one occurrence of `kind` for `subject`; `Some(count)` the first time the
    /// threshold is reached in the current window.
    fn bump(&self, subject: &str, kind: &'static str, threshold: u32) -> Option<u32> {
        let window = Duration::from_secs(self.alerts.window_secs);
        let mut w = lock(&self.windows);
        if w.len() >= self.max_tracked {
            let now = Instant::now();
            w.retain(|_, v| now.duration_since(v.started) < window);
        }
        let now = Instant::now();
        let e = w.entry((subject.to_string(), kind)).or_insert(Window {
            started: now,
            count: 0,
            raised: false,
        });
        if now.duration_since(e.started) >= window {
            *e = Window {
                started: now,
                count: 0,
                raised: false,
            };
        }
        e.count = e.count.saturating_add(1);
        if e.count >= threshold && !e.raised {
            e.raised = true;
            return Some(e.count);
        }
        None
    }

    /// Takes what was throttled since the last report.
    fn take_throttled(&self) -> Vec<(Principal, Throttled)> {
        std::mem::take(&mut *lock(&self.throttled))
            .into_iter()
            .collect()
    }

    /// Forgets idle keys (every report interval).
    fn prune(&self) {
        for c in &self.buckets {
            c.default.prune(self.max_tracked);
            for b in c.by_role.values() {
                b.prune(self.max_tracked);
            }
        }
        self.auth_failures.prune(self.max_tracked);
        let now = Instant::now();
        self.blocked.with(|m| m.retain(|_, until| *until > now));
        self.suspects
            .with(|m| m.retain(|_, t| now.duration_since(*t) < SUSPECT_FOR));
        self.ip_blocked.with(|m| m.retain(|_, until| *until > now));
        let window = Duration::from_secs(self.alerts.window_secs);
        lock(&self.windows).retain(|_, v| now.duration_since(v.started) < window);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn still_blocked<K: std::hash::Hash + Eq>(map: &Tracked<K>, key: &K) -> Option<Duration> {
    map.until(key)
        .and_then(|until| until.checked_duration_since(Instant::now()))
        .filter(|d| !d.is_zero())
}

/// The budget class of a route, by method and template; `None` for routes without a budget
/// (health, metrics, the OpenAPI document).
fn classify(method: &Method, route: &str) -> Option<RouteClass> {
    if !route.starts_with("/v1/") {
        return None;
    }
    Some(match (method, route) {
        (&Method::POST, "/v1/guests/search") => RouteClass::Searches,
        (&Method::POST, "/v1/guests/{id}/reveal") => RouteClass::Reveals,
        (&Method::GET, "/v1/guests/{id}/export" | "/v1/audit/export") => RouteClass::Exports,
        (&Method::GET | &Method::HEAD, _) => RouteClass::Reads,
        _ => RouteClass::Writes,
    })
}

/// The network a peer address is reported by in alerts: a /24 (IPv4) or /48 (IPv6), which
/// names a network to act on rather than one person's address.
fn peer_network(ip: IpAddr) -> String {
    let net = match ip.to_canonical() {
        IpAddr::V4(v4) => ipnet::IpNet::V4(ipnet::Ipv4Net::new(v4, 24).unwrap_or_default().trunc()),
        IpAddr::V6(v6) => ipnet::IpNet::V6(ipnet::Ipv6Net::new(v6, 48).unwrap_or_default().trunc()),
    };
    net.to_string()
}

fn rate_limited(wait: Duration) -> Response {
    ApiError::RateLimited {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
    .into_response()
}

/// The budget middleware (a route layer, so the route template is known).
pub(crate) async fn budgets(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let class = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| classify(req.method(), m.as_str()));
    let Some(class) = class else {
        return next.run(req).await;
    };
    let Some(token) = super::extract::bearer_token(req.headers()) else {
        return next.run(req).await; // 401 without any work
    };
    let limits = &state.limits;
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(p)| p.addr.ip().to_canonical());
    if let Some(ip) = peer {
        if let Some(wait) = limits
            .enabled
            .then(|| still_blocked(&limits.ip_blocked, &ip))
            .flatten()
        {
            metrics::counter!(crate::metrics::RATE_LIMITED, "class" => "auth_failures")
                .increment(1);
            return rate_limited(wait);
        }
    }
    let principal = match state.auth.verify(token) {
        Ok(p) => p,
        Err(e) => {
            if let Some(ip) = peer {
                token_failed(&state, ip, e.kind());
            }
            return next.run(req).await; // the extractor answers 401
        }
    };
    let who: Principal = (principal.sub.clone(), principal.role.clone());
    let prepaid = match limits.admit(&who, class) {
        Ok(prepaid) => prepaid,
        Err((wait, why)) => {
            limits.count_throttled(&who, why);
            return rate_limited(wait);
        }
    };
    let self_only = state
        .vault
        .policies()
        .access
        .roles
        .get(&who.1)
        .is_some_and(|r| r.self_only);
    let (mut parts, body) = req.into_parts();
    // The token is verified once per request: the `Auth` extractor takes this one.
    parts
        .extensions
        .insert(super::extract::VerifiedToken(principal));
    let target = if self_only {
        axum::extract::RawPathParams::from_request_parts(&mut parts, &state)
            .await
            .ok()
            .and_then(|p| {
                p.iter()
                    .find(|(n, _)| *n == "id")
                    .map(|(_, v)| v.to_string())
            })
    } else {
        None
    };
    let guest_export = class == RouteClass::Exports
        && parts
            .extensions
            .get::<MatchedPath>()
            .is_some_and(|m| m.as_str() == "/v1/guests/{id}/export");
    let resp = next.run(Request::from_parts(parts, body)).await;
    let status = resp.status().as_u16();
    let alert = |kind: &'static str, threshold: u32| {
        let subject = format!("{}\u{0}{}", who.0, who.1);
        if let Some(count) = limits.bump(&subject, kind, threshold) {
            raise(&state.vault, &who, kind, count, limits.alerts.window_secs);
        }
    };
    match status {
        403 | 404 => {
            limits.refused(&who, prepaid);
            if self_only && target.as_deref().is_some_and(|t| t != who.0) {
                alert("guest_probing", limits.alerts.guest_probes);
            }
        }
        200 => match class {
            RouteClass::Reveals => alert("reveal_burst", limits.alerts.reveals),
            RouteClass::Exports if guest_export => alert("export_burst", limits.alerts.exports),
            RouteClass::Searches if resp.extensions().get::<SearchMiss>().is_some() => {
                alert("search_miss_burst", limits.alerts.search_misses)
            }
            _ => {}
        },
        _ => {}
    }
    resp
}

/// A token that did not verify, from `ip`: draws on the address's bucket, and a signature
/// failure counts toward the storm alert of its network.
fn token_failed(state: &AppState, ip: IpAddr, kind: &'static str) {
    let limits = &state.limits;
    if limits.enabled {
        if let Err(wait) = limits.auth_failures.take(&ip) {
            limits
                .ip_blocked
                .with(|m| m.insert(ip, Instant::now() + wait));
        }
    }
    if kind == "bad_signature" {
        let net = peer_network(ip);
        if let Some(count) = limits.bump(&net, "token_failure_storm", limits.alerts.token_failures)
        {
            let who = (format!("peer:{net}"), "(none)".to_string());
            raise(
                &state.vault,
                &who,
                "token_failure_storm",
                count,
                limits.alerts.window_secs,
            );
        }
    }
}

/// Raises one alert: the counter and log line now, the audit event in the background.
fn raise(vault: &Vault, who: &Principal, kind: &'static str, count: u32, window_secs: u64) {
    metrics::counter!(crate::metrics::SECURITY_ALERTS, "kind" => kind).increment(1);
    // The role is a policy name; the actor (a staff id, a guest id, a network) stays in the
    // audit trail, out of the log.
    let role = if crate::policy::is_identifier(&who.1) {
        who.1.as_str()
    } else {
        "-"
    };
    tracing::warn!(kind, role, count, window_secs, "security alert");
    let event = SecurityEvent::alert(&who.0, &who.1, kind, count, window_secs);
    let vault = vault.clone();
    tokio::spawn(async move {
        if let Err(e) = vault.record_security_event(event).await {
            tracing::error!(error = %e, kind, "could not audit a security alert");
        }
    });
}

/// Writes the `access.throttled` events of everything refused since the last report.
pub async fn report_throttled(state: &AppState) {
    for ((sub, role), t) in state.limits.take_throttled() {
        let event = SecurityEvent::throttled(&sub, &role, t.count, &t.classes);
        if let Err(e) = state.vault.record_security_event(event).await {
            tracing::error!(error = %e, count = t.count, "could not audit throttled requests");
        }
    }
}

/// Every report interval: the throttled report, then forget idle keys.
pub async fn report_forever(state: AppState) {
    let mut tick = tokio::time::interval(state.limits.report_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        report_throttled(&state).await;
        state.limits.prune();
    }
}

/// Answers 408 when a request takes longer than `server.request_timeout_secs` to produce its
/// response header. (A write it started still completes, audited: the writer does not drop
/// operations it accepted.)
pub(crate) async fn request_timeout(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(state.limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_classes() {
        assert_eq!(
            classify(&Method::POST, "/v1/guests/search"),
            Some(RouteClass::Searches)
        );
        assert_eq!(
            classify(&Method::POST, "/v1/guests/{id}/reveal"),
            Some(RouteClass::Reveals)
        );
        assert_eq!(
            classify(&Method::GET, "/v1/guests/{id}/export"),
            Some(RouteClass::Exports)
        );
        assert_eq!(
            classify(&Method::GET, "/v1/audit/export"),
            Some(RouteClass::Exports)
        );
        assert_eq!(
            classify(&Method::GET, "/v1/guests/{id}"),
            Some(RouteClass::Reads)
        );
        assert_eq!(
            classify(&Method::PATCH, "/v1/guests/{id}"),
            Some(RouteClass::Writes)
        );
        assert_eq!(
            classify(&Method::POST, "/v1/guests"),
            Some(RouteClass::Writes)
        );
        assert_eq!(classify(&Method::GET, "/healthz"), None);
        assert_eq!(classify(&Method::GET, "/metrics"), None);
    }

    #[test]
    fn buckets_are_indexed_in_class_order() {
        for (i, class) in RouteClass::ALL.iter().enumerate() {
            assert_eq!(class_index(*class), i, "{class:?}");
        }
    }

    #[test]
    fn peers_are_reported_by_network() {
        assert_eq!(
            peer_network("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            peer_network("2001:db8:1:2::9".parse().unwrap()),
            "2001:db8:1::/48"
        );
    }

    #[test]
    fn an_empty_denied_bucket_blocks_the_principal_and_only_it() {
        let mut config = crate::config::Config::default();
        config.budgets.denied_burst = 3;
        config.budgets.denied_per_min = 1;
        let limits = Limits::from_config(&config);
        let a: Principal = ("a".into(), "front_desk".into());
        let b: Principal = ("b".into(), "front_desk".into());
        limits.refused(&a, false);
        // A refused principal pays up front from now on.
        assert_eq!(limits.admit(&a, RouteClass::Reads), Ok(true));
        assert_eq!(limits.admit(&a, RouteClass::Reads), Ok(true));
        assert_eq!(limits.admit(&b, RouteClass::Reads), Ok(false));
        let (wait, class) = limits.admit(&a, RouteClass::Reads).unwrap_err();
        assert_eq!(class, RouteClass::Denied);
        assert!(wait > Duration::from_secs(30), "{wait:?}");
        assert!(limits.admit(&b, RouteClass::Reads).is_ok());
    }

    #[test]
    fn alerts_fire_once_per_window() {
        let limits = Limits::from_config(&crate::config::Config::default());
        assert_eq!(limits.bump("x", "reveal_burst", 3), None);
        assert_eq!(limits.bump("x", "reveal_burst", 3), None);
        assert_eq!(limits.bump("x", "reveal_burst", 3), Some(3));
        assert_eq!(limits.bump("x", "reveal_burst", 3), None);
        assert_eq!(limits.bump("y", "reveal_burst", 1), Some(1));
    }
}

/// The console's sign-in and pages (`src/console`) draw on the same budgets as the API: a
/// peer whose tokens keep failing is blocked, a token that fails draws on its peer's bucket,
/// and each page or action of a signed-in principal takes a cell of its `class`.
pub(crate) mod console {
    use super::*;

    /// `Some(response)` (429) when `ip` is blocked for failed tokens.
    pub(crate) fn peer_blocked(limits: &Limits, ip: IpAddr) -> Option<Response> {
        let wait = limits
            .enabled
            .then(|| still_blocked(&limits.ip_blocked, &ip))
            .flatten()?;
        metrics::counter!(crate::metrics::RATE_LIMITED, "class" => "auth_failures").increment(1);
        Some(rate_limited(wait))
    }

    /// A pasted token that did not verify.
    pub(crate) fn token_failed(state: &AppState, ip: IpAddr, kind: &'static str) {
        super::token_failed(state, ip, kind);
    }

    /// `Err(retry_after_secs)` when the principal's bucket for `class` is empty.
    pub(crate) fn admit(
        limits: &Limits,
        sub: &str,
        role: &str,
        class: RouteClass,
    ) -> Result<(), u64> {
        let who: Principal = (sub.to_string(), role.to_string());
        match limits.admit(&who, class) {
            Ok(_) => Ok(()),
            Err((wait, why)) => {
                limits.count_throttled(&who, why);
                Err(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
        }
    }

    /// A console request of the principal was refused (403): draws on its `denied` bucket.
    pub(crate) fn refused(limits: &Limits, sub: &str, role: &str) {
        limits.refused(&(sub.to_string(), role.to_string()), false);
    }
}
