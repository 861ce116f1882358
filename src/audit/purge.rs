//! Retention of the audit trail itself. PIPL Art. 56 (and Network Data Regulation Art. 12)
//! require processing records to be kept at least three years (REQ-19), so
//! `audit.retention_days` cannot be set below [`MIN_RETENTION_DAYS`].
//!
//! A purge removes only a *prefix* of the chain: every event before the first one that is
//! younger than the cutoff, so no event younger than the cutoff is ever removed, even where
//! timestamps are out of seq order. Before deleting, it checks the chain and signs a checkpoint
//! at the last seq it removes; the remaining chain then verifies from that anchor, in the
//! database ([`super::verify_chain`]) and in exports. It then records `audit_purge_through` in
//! `meta` (the only condition under which the schema's trigger lets rows be deleted), deletes,
//! and appends an event that records the purge.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::checkpoint::{self, Checkpoint};
use super::{append, NewEvent, Outcome};
use crate::clock::{timestamp, Clock};
use crate::crypto::Keyring;
use crate::store::StoreError;

/// Three years of 365 days: the floor of PIPL Art. 56.
pub const MIN_RETENTION_DAYS: u64 = 1095;
/// Three years including a leap day.
pub const DEFAULT_RETENTION_DAYS: u64 = 1096;
const PURGE_THROUGH_KEY: &str = "audit_purge_through";

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit chain is broken at seq {0}; nothing was purged")]
    Broken(u64),
    #[error("audit retention of {0} days is below the 3-year floor (PIPL Art. 56)")]
    BelowFloor(u64),
}

impl From<rusqlite::Error> for PurgeError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// What a purge removes (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgePlan {
    /// Events with `ts` before this (stored timestamp format) are due.
    pub cutoff: String,
    /// The last seq removed; `None` when nothing is due.
    pub through_seq: Option<u64>,
    pub events: u64,
}

/// The cutoff for `retention_days` before `now`.
pub fn retention_cutoff(now: time::OffsetDateTime, retention_days: u64) -> String {
    let days = i64::try_from(retention_days).unwrap_or(i64::MAX / 86_400);
    timestamp(now - time::Duration::days(days))
}

/// The last seq a purge removed (0 if none).
pub fn purged_through(conn: &Connection) -> Result<u64, StoreError> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [PURGE_THROUGH_KEY],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Works out what a purge at `cutoff` would remove, without changing anything.
pub fn plan_purge(conn: &Connection, cutoff: &str) -> Result<PurgePlan, StoreError> {
    let young: Option<i64> = conn.query_row(
        "SELECT min(seq) FROM audit_events WHERE ts >= ?1",
        [cutoff],
        |r| r.get(0),
    )?;
    let head: Option<i64> =
        conn.query_row("SELECT max(seq) FROM audit_events", [], |r| r.get(0))?;
    let through = match (young, head) {
        (Some(y), _) => y - 1,
        (None, Some(h)) => h,
        (None, None) => 0,
    };
    let already = purged_through(conn)?;
    let mut plan = PurgePlan {
        cutoff: cutoff.to_string(),
        through_seq: None,
        events: 0,
    };
    if through > 0 && through as u64 > already {
        let events: i64 = conn.query_row(
            "SELECT count(*) FROM audit_events WHERE seq <= ?1",
            [through],
            |r| r.get(0),
        )?;
        plan.through_seq = Some(through as u64);
        plan.events = events as u64;
    }
    Ok(plan)
}

/// Purges the events older than `cutoff` inside the caller's write transaction (see the module
/// comment for the order of steps). `now` stamps the checkpoint and the purge's own event.
pub fn purge_audit_before(
    conn: &Connection,
    keyring: &Keyring,
    cutoff: &str,
    now: &str,
) -> Result<PurgePlan, PurgeError> {
    let plan = plan_purge(conn, cutoff)?;
    let Some(through) = plan.through_seq else {
        return Ok(plan);
    };
    // Never sign (and so bless) a chain that does not verify.
    if let Err(seq) = super::verify_chain(conn)? {
        return Err(PurgeError::Broken(seq));
    }
    let hash: Vec<u8> = conn.query_row(
        "SELECT hash FROM audit_events WHERE seq = ?1",
        [through as i64],
        |r| r.get(0),
    )?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| PurgeError::Broken(through))?;
    checkpoint::store(
        conn,
        &Checkpoint::sign(keyring, through, hash, now.to_string()),
    )?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [PURGE_THROUGH_KEY, &through.to_string()],
    )?;
    let removed = conn.execute("DELETE FROM audit_events WHERE seq <= ?1", [through as i64])?;
    // REQ-19: the purge itself is logged.
    append(
        conn,
        NewEvent {
            ts: now.to_string(),
            request_id: uuid::Uuid::new_v4().to_string(),
            actor: "system".into(),
            role: "system".into(),
            purpose: Some("administration".into()),
            action: crate::policy::Action::AdminRetention.as_str().into(),
            guest_id: None,
            fields: vec![],
            outcome: Outcome::Allowed,
            reason: Some(format!(
                "audit_purge through_seq={through} removed={removed}"
            )),
            rules: vec!["audit.retention_days".into()],
            justification: None,
            value_hashes: Vec::new(),
        },
    )?;
    Ok(plan)
}

/// `guestvault audit purge [--dry-run]`: purges what `retention_days` before the clock's now
/// allows, in one immediate transaction (safe beside a running server: WAL serializes writers).
pub fn run_purge(
    conn: &mut Connection,
    keyring: &Keyring,
    clock: &dyn Clock,
    retention_days: u64,
    dry_run: bool,
) -> Result<PurgePlan, PurgeError> {
    if retention_days < MIN_RETENTION_DAYS {
        return Err(PurgeError::BelowFloor(retention_days));
    }
    let now = clock.now();
    let cutoff = retention_cutoff(now, retention_days);
    if dry_run {
        return Ok(plan_purge(conn, &cutoff)?);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let plan = purge_audit_before(&tx, keyring, &cutoff, &timestamp(now))?;
    tx.commit()?;
    Ok(plan)
}
