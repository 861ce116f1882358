//! PostgreSQL: the `audit` operations of the seam (the same names and meanings as
//! `store/sqlite/audit.rs`; see that file's docs). Issue 14: being ported.

#![allow(unused_variables, unused_imports)]

use crate::audit::checkpoint::{Checkpoint, StoreVerification};
use crate::audit::purge::{
    retention_cutoff, PurgeError, PurgePlan, MIN_RETENTION_DAYS, PURGE_THROUGH_KEY,
};
use crate::audit::query::{Filter, Range};
use crate::audit::{ChainedEvent, Event, NewEvent, Outcome, ValueHash, GENESIS_HASH};
use crate::clock::{timestamp, Clock};
use crate::crypto::Keyring;
use crate::store::StoreError;

use super::conn::PgConn;

pub fn head(conn: &PgConn) -> Result<(u64, [u8; 32]), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn count_and_head(conn: &PgConn) -> Result<(u64, Option<u64>), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn append(conn: &PgConn, event: NewEvent) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn read_after(
    conn: &PgConn,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChainedEvent>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn anchor_hash(conn: &PgConn, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn verify_chain(conn: &PgConn) -> Result<Result<u64, u64>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn store_checkpoint(conn: &PgConn, cp: &Checkpoint) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn checkpoint_at(conn: &PgConn, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn latest_checkpoint(conn: &PgConn) -> Result<Option<Checkpoint>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn checkpoints_in_range(
    conn: &PgConn,
    from: u64,
    to: u64,
) -> Result<Vec<Checkpoint>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn checkpoint_head(
    conn: &PgConn,
    keyring: &Keyring,
    signed_at: String,
    min_new_events: u64,
) -> Result<Option<Checkpoint>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn verify_store(conn: &PgConn, public_key: &[u8]) -> Result<StoreVerification, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn purged_through(conn: &PgConn) -> Result<u64, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn plan_purge(conn: &PgConn, cutoff: &str) -> Result<PurgePlan, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn purge_audit_before(
    conn: &PgConn,
    keyring: &Keyring,
    cutoff: &str,
    now: &str,
) -> Result<PurgePlan, PurgeError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn run_purge(
    conn: &PgConn,
    keyring: &Keyring,
    clock: &dyn Clock,
    retention_days: u64,
    dry_run: bool,
) -> Result<PurgePlan, PurgeError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn query_events(
    conn: &PgConn,
    filter: &Filter,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChainedEvent>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn resolve_range(conn: &PgConn, filter: &Filter) -> Result<Range, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn append_alone(conn: &PgConn, event: NewEvent) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

/// What [`flush_pending`] appended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flushed {
    pub events: u64,
    pub last_seq: u64,
    pub lock_wait: std::time::Duration,
}

/// Links the group's queued events into the shared chain under the head's row lock and
/// inserts them.
pub fn flush_pending(conn: &PgConn) -> Result<Flushed, StoreError> {
    todo!("issue 14: PostgreSQL port")
}
