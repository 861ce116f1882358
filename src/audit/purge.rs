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

use crate::clock::timestamp;
use crate::store::StoreError;

// The purge itself runs in the storage seam ([`crate::store::audit`]).
pub use crate::store::audit::{plan_purge, purge_audit_before, purged_through, run_purge};

/// Three years of 365 days: the floor of PIPL Art. 56.
pub const MIN_RETENTION_DAYS: u64 = 1095;
/// Three years including a leap day.
pub const DEFAULT_RETENTION_DAYS: u64 = 1096;
pub(crate) const PURGE_THROUGH_KEY: &str = "audit_purge_through";

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit chain is broken at seq {0}; nothing was purged")]
    Broken(u64),
    #[error("audit retention of {0} days is below the 3-year floor (PIPL Art. 56)")]
    BelowFloor(u64),
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
