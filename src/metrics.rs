//! Prometheus metrics: their names, the process-wide recorder, and what is recorded where.
//!
//! The `metrics` facade records; `metrics-exporter-prometheus` renders the text format inside
//! the `/metrics` route (the exporter's own listener is not built). Labels are fixed sets or
//! route *templates* and policy names (method, `/v1/guests/{id}`, status, retention class):
//! never a raw path, guest id or value. Some values are sampled when scraped (guests stored,
//! audit events, key rotation) because the database and the vault already hold them exactly.
//!
//! Before [`install`] (the offline CLI commands, unit tests) every record is a no-op.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::service::{SweepReport, Vault};

pub const HTTP_REQUESTS: &str = "guestvault_http_requests_total";
pub const HTTP_DURATION: &str = "guestvault_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "guestvault_http_requests_in_flight";
pub const HTTP_CONNECTIONS: &str = "guestvault_http_open_connections";
pub const WRITER_BATCH: &str = "guestvault_writer_batch_size";
pub const WRITER_COMMIT: &str = "guestvault_writer_commit_duration_seconds";
pub const AUDIT_HEAD_HOLD: &str = "guestvault_audit_head_hold_seconds";
pub const AUDIT_HEAD_EVENTS: &str = "guestvault_audit_head_events_total";
pub const AUDIT_EVENTS: &str = "guestvault_audit_events_total";
pub const GUESTS_STORED: &str = "guestvault_guests_stored";
pub const KEK_ACTIVE: &str = "guestvault_kek_active_version";
pub const ROTATION_RUNNING: &str = "guestvault_key_rotation_running";
pub const ROTATION_TARGET: &str = "guestvault_key_rotation_target_version";
pub const ROTATION_DONE: &str = "guestvault_key_rotation_deks_done";
pub const ROTATION_TOTAL: &str = "guestvault_key_rotation_deks_total";
pub const SWEEPS: &str = "guestvault_retention_sweeps_total";
pub const SWEEP_GUESTS_CHECKED: &str = "guestvault_retention_guests_checked_total";
pub const SWEEP_GUESTS_AFFECTED: &str = "guestvault_retention_guests_affected_total";
pub const SWEEP_GUESTS_ERASED: &str = "guestvault_retention_guests_erased_total";
pub const SWEEP_FIELDS: &str = "guestvault_retention_fields_purged_total";
pub const SWEEP_STAYS: &str = "guestvault_retention_stays_purged_total";
pub const BUILD_INFO: &str = "guestvault_build_info";
pub const HTTP_CONNECTIONS_REFUSED: &str = "guestvault_http_connections_refused_total";
pub const RATE_LIMITED: &str = "guestvault_rate_limited_total";
pub const SECURITY_ALERTS: &str = "guestvault_security_alerts_total";
pub const DSR_ALERTS: &str = "guestvault_dsr_deadline_alerts_total";
pub const WAL_BYTES: &str = "guestvault_wal_bytes";
pub const CHECKPOINT_DURATION: &str = "guestvault_checkpoint_duration_seconds";
pub const READY: &str = "guestvault_ready";
pub const ROTATION_FAILURES: &str = "guestvault_key_rotation_failures_total";

/// HTTP latency buckets, in seconds: sub-millisecond reads to multi-second exports.
const LATENCY_BUCKETS_S: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Group-commit latency buckets, in seconds (one fsync is about a millisecond here).
const COMMIT_BUCKETS_S: [f64; 13] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Operations per group commit, up to `storage.max_batch` (default 512).
const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes (the
/// recorder buffers them until then).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls return the same
/// handle). `None` if another recorder was installed first: then `/metrics` renders nothing.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS_S)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(WRITER_COMMIT.into()), &COMMIT_BUCKETS_S)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(WRITER_BATCH.into()), &BATCH_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(AUDIT_HEAD_HOLD.into()),
                        &COMMIT_BUCKETS_S,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(CHECKPOINT_DURATION.into()),
                        &COMMIT_BUCKETS_S,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder);
            match built {
                Ok(handle) => {
                    describe();
                    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by method and route template"
    );
    describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being served");
    describe_gauge!(HTTP_CONNECTIONS, "open client connections");
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "connections closed at once because server.max_connections were open"
    );
    describe_counter!(
        RATE_LIMITED,
        "requests answered 429 rate_limited, by budget class"
    );
    describe_counter!(
        SECURITY_ALERTS,
        "security alerts raised, by kind (see [alerts] in the README)"
    );
    describe_histogram!(
        WRITER_BATCH,
        Unit::Count,
        "operations committed together by the writer"
    );
    describe_histogram!(
        WRITER_COMMIT,
        Unit::Seconds,
        "writer group transaction time, begin to commit"
    );
    describe_histogram!(
        AUDIT_HEAD_HOLD,
        Unit::Seconds,
        "PostgreSQL: how long a group commit held the shared audit chain head's row lock \
         (granted to committed; other nodes' groups wait this long)"
    );
    describe_counter!(
        AUDIT_HEAD_EVENTS,
        "PostgreSQL: audit events this node appended under the chain head's lock \
         (divide by the hold histogram's count for events per commit)"
    );
    describe_counter!(
        AUDIT_EVENTS,
        "audit events appended to the chain (its head seq, sampled at scrape)"
    );
    describe_gauge!(GUESTS_STORED, "guests not erased (sampled at scrape)");
    describe_gauge!(KEK_ACTIVE, "active key-encryption key version");
    describe_gauge!(
        ROTATION_RUNNING,
        "1 while a KEK rotation runs in this server"
    );
    describe_gauge!(
        ROTATION_TARGET,
        "KEK version of the running or last rotation"
    );
    describe_gauge!(
        ROTATION_DONE,
        "DEKs rewrapped by the running or last rotation"
    );
    describe_gauge!(
        ROTATION_TOTAL,
        "DEKs to rewrap in the running or last rotation"
    );
    describe_counter!(
        SWEEPS,
        "retention sweeps run by this server, by trigger and result"
    );
    describe_counter!(SWEEP_GUESTS_CHECKED, "guests checked by retention sweeps");
    describe_counter!(SWEEP_GUESTS_AFFECTED, "guests that had expired data purged");
    describe_counter!(
        SWEEP_GUESTS_ERASED,
        "guests crypto-shredded by retention sweeps"
    );
    describe_counter!(
        SWEEP_FIELDS,
        "field values purged by retention sweeps, by retention class"
    );
    describe_counter!(
        SWEEP_STAYS,
        "stays purged by retention sweeps, by retention class"
    );
    describe_gauge!(BUILD_INFO, "always 1; the version label names the build");
    describe_gauge!(
        WAL_BYTES,
        Unit::Bytes,
        "size of the database's WAL file (kept under storage.wal_max_bytes)"
    );
    describe_histogram!(
        CHECKPOINT_DURATION,
        Unit::Seconds,
        "WAL checkpoints, by mode (passive: every round; truncate: the WAL reset)"
    );
    describe_gauge!(
        READY,
        "reason=\"ok\" is 1 when a write can commit (as /readyz says); else the fault's reason is 1"
    );
    describe_counter!(
        DSR_ALERTS,
        "data-subject requests escalated at 80% of their time or gone overdue, by alert and clock (REQ-32)"
    );
    describe_counter!(
        ROTATION_FAILURES,
        "background KEK rotations that failed (GET /v1/admin/keys shows the error)"
    );
}

/// The WAL file's size, measured by the checkpointer each round.
pub fn record_wal_bytes(bytes: u64) {
    gauge!(WAL_BYTES).set(bytes as f64);
}

/// One checkpoint; `mode` is `passive` or `truncate`.
pub fn record_checkpoint(mode: &'static str, took: Duration) {
    histogram!(CHECKPOINT_DURATION, "mode" => mode).record(took.as_secs_f64());
}

/// Readiness as `/readyz` last evaluated it: `guestvault_ready{reason="ok"}` is 1 when ready;
/// each fault's reason series is 1 while it holds.
pub fn record_readiness(fault: Option<crate::store::Fault>) {
    gauge!(READY, "reason" => "ok").set(if fault.is_none() { 1.0 } else { 0.0 });
    for f in crate::store::FAULTS {
        gauge!(READY, "reason" => f.code()).set(if fault == Some(f) { 1.0 } else { 0.0 });
    }
}

/// A background KEK rotation failed.
/// A data-subject request escalated (`alert="escalated"`) or overdue (`"overdue"`), on the
/// `cn` or `eu` clock (REQ-32).
pub fn record_dsr_alert(alert: &'static str, clock: &str) {
    let clock = if clock == "eu" { "eu" } else { "cn" };
    counter!(DSR_ALERTS, "alert" => alert, "clock" => clock).increment(1);
}

pub fn record_rotation_failure() {
    counter!(ROTATION_FAILURES).increment(1);
}

/// One answered HTTP request. `route` is a template (or `(unmatched)`), never a raw path;
/// `method` comes from a fixed set.
pub fn record_request(method: &'static str, route: String, status: u16, latency: Duration) {
    histogram!(HTTP_DURATION, "method" => method, "route" => route.clone())
        .record(latency.as_secs_f64());
    counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status.to_string())
        .increment(1);
}

/// One group transaction of the writer: how many operations it held and how long it took.
pub fn record_group_commit(operations: u64, elapsed: Duration) {
    histogram!(WRITER_BATCH).record(operations as f64);
    histogram!(WRITER_COMMIT).record(elapsed.as_secs_f64());
}

/// PostgreSQL: one group commit held the chain head's row lock for `held` while appending
/// `events` audit events.
pub fn record_head_hold(events: u64, held: Duration) {
    histogram!(AUDIT_HEAD_HOLD).record(held.as_secs_f64());
    counter!(AUDIT_HEAD_EVENTS).increment(events);
}

/// A retention sweep's outcome (`None`: it failed); `trigger` is `background` or `api`.
pub fn record_sweep(trigger: &'static str, report: Option<&SweepReport>) {
    let Some(r) = report else {
        counter!(SWEEPS, "trigger" => trigger, "result" => "failed").increment(1);
        return;
    };
    counter!(SWEEPS, "trigger" => trigger, "result" => "ok").increment(1);
    counter!(SWEEP_GUESTS_CHECKED).increment(r.guests_checked);
    counter!(SWEEP_GUESTS_AFFECTED).increment(r.guests_affected);
    counter!(SWEEP_GUESTS_ERASED).increment(r.guests_erased);
    for (class, n) in &r.classes {
        counter!(SWEEP_FIELDS, "class" => class.clone()).increment(n.fields);
        counter!(SWEEP_STAYS, "class" => class.clone()).increment(n.stays);
    }
}

/// Samples what the vault and the database already count exactly, just before a render.
pub async fn sample(vault: &Vault) {
    let counts = vault
        .readers()
        .run(|c| Ok((crate::store::count_guests(c)?, crate::audit::head(c)?.0)))
        .await;
    match counts {
        Ok((guests, audit_seq)) => {
            gauge!(GUESTS_STORED).set(guests as f64);
            counter!(AUDIT_EVENTS).absolute(audit_seq);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count guests and audit events"),
    }
    // Cached for a second; otherwise one heartbeat write per scrape.
    vault.readiness().await;
    let r = vault.rotation_progress();
    gauge!(KEK_ACTIVE).set(f64::from(vault.keys().active_kek_version()));
    gauge!(ROTATION_RUNNING).set(if r.running.load(Ordering::SeqCst) {
        1.0
    } else {
        0.0
    });
    gauge!(ROTATION_TARGET).set(f64::from(r.target_version.load(Ordering::SeqCst)));
    gauge!(ROTATION_DONE).set(r.done.load(Ordering::SeqCst) as f64);
    gauge!(ROTATION_TOTAL).set(r.total.load(Ordering::SeqCst) as f64);
}

/// Counts an open client connection for as long as it (or a clone) lives.
#[derive(Debug)]
pub struct ConnectionGuard(());

impl ConnectionGuard {
    pub fn open() -> Arc<Self> {
        gauge!(HTTP_CONNECTIONS).increment(1.0);
        Arc::new(Self(()))
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        gauge!(HTTP_CONNECTIONS).decrement(1.0);
    }
}

/// Counts a request in flight until dropped (also when the client goes away mid-request).
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        gauge!(HTTP_IN_FLIGHT).increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(HTTP_IN_FLIGHT).decrement(1.0);
    }
}
