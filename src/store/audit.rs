//! The audit trail through the seam: append (the chain head read and the insert), read back,
//! checkpoints, the officer's query, export ranges, the trail's purge. The chain hashing,
//! checkpoint signing and purge rules are shared and live in [`crate::audit`]; each backend
//! has only the SQL (`store/sqlite/audit.rs`, `store/postgres/audit.rs`).
//!
//! One difference shows here: on PostgreSQL an appended event gets its seq and hashes only
//! when its group commits, under the shared chain head's lock (several nodes append to one
//! chain), so [`append`] returns no seq on either backend.

use super::{Conn, Db, StoreError};
use crate::audit::checkpoint::{ChainTip, Checkpoint, StoreVerification};
use crate::audit::purge::{PurgeError, PurgePlan};
use crate::audit::query::{Filter, Range};
use crate::audit::{ChainedEvent, NewEvent};
use crate::clock::Clock;
use crate::crypto::Keyring;

/// Appends `event` to the chain inside the unit's transaction. A failure is reported as
/// [`StoreError::Audit`], so the request fails with `audit_unavailable`.
pub fn append(conn: &Conn<'_>, event: NewEvent) -> Result<(), StoreError> {
    match conn {
        Conn::Sqlite(c) => super::sqlite::audit::append(c, event).map(|_| ()),
        Conn::Postgres(c) => super::postgres::audit::append(c, event),
    }
}

seam! {
    (super::sqlite::audit), (super::postgres::audit);
    /// The last (seq, hash) of the chain, or the purge anchor, or genesis.
    fn head() -> Result<(u64, [u8; 32]), StoreError>;
    /// How many events are stored and the newest one's seq: the console's chain status.
    fn count_and_head() -> Result<(u64, Option<u64>), StoreError>;
    fn read_after(after_seq: u64, limit: usize) -> Result<Vec<ChainedEvent>, StoreError>;
    fn anchor_hash(seq: u64) -> Result<Option<[u8; 32]>, StoreError>;
    fn verify_chain() -> Result<Result<u64, u64>, StoreError>;
    fn store_checkpoint(cp: &Checkpoint) -> Result<(), StoreError>;
    fn checkpoint_at(seq: u64) -> Result<Option<Checkpoint>, StoreError>;
    fn latest_checkpoint() -> Result<Option<Checkpoint>, StoreError>;
    fn checkpoints_in_range(from: u64, to: u64) -> Result<Vec<Checkpoint>, StoreError>;
    fn checkpoint_head(keyring: &Keyring, signed_at: String, min_new_events: u64) -> Result<Option<Checkpoint>, StoreError>;
    fn verify_store(public_key: &[u8]) -> Result<StoreVerification, StoreError>;
    fn purged_through() -> Result<u64, StoreError>;
    fn plan_purge(cutoff: &str) -> Result<PurgePlan, StoreError>;
    fn purge_audit_before(keyring: &Keyring, cutoff: &str, now: &str) -> Result<PurgePlan, PurgeError>;
    fn query_events(filter: &Filter, after_seq: u64, limit: usize) -> Result<Vec<ChainedEvent>, StoreError>;
    fn resolve_range(filter: &Filter) -> Result<Range, StoreError>;
}

/// The writer's pre-commit hook: a checkpoint whenever the chain has grown `every` events past
/// the newest one (`audit.checkpoint_every`), in the same transaction as those events.
pub fn every_n_events(
    keyring: std::sync::Arc<Keyring>,
    clock: std::sync::Arc<dyn Clock>,
    every: u64,
) -> super::PreCommitHook {
    Box::new(move |conn, tip| {
        let signed_at = || crate::clock::timestamp(clock.now());
        match tip {
            Some(tip) => checkpoint_tip(conn, &keyring, signed_at, every, tip),
            None => checkpoint_head(conn, &keyring, signed_at(), every),
        }
        .map(|_| ())
    })
}

/// [`checkpoint_head`] at a head the caller already knows (the writer's, under the head's
/// lock): no statement at all unless a checkpoint is due.
pub fn checkpoint_tip(
    conn: &Conn<'_>,
    keyring: &Keyring,
    signed_at: impl FnOnce() -> String,
    every: u64,
    tip: &ChainTip,
) -> Result<Option<Checkpoint>, StoreError> {
    if !crate::audit::checkpoint::due(tip.seq, tip.last_checkpoint, every) {
        return Ok(None);
    }
    let cp = Checkpoint::sign(keyring, tip.seq, tip.hash, signed_at());
    store_checkpoint(conn, &cp)?;
    Ok(Some(cp))
}

/// The trail's retention purge on a direct connection (`guestvault audit purge`), in a
/// transaction of its own.
pub fn run_purge(
    db: &mut Db,
    keyring: &Keyring,
    clock: &dyn Clock,
    retention_days: u64,
    dry_run: bool,
) -> Result<PurgePlan, PurgeError> {
    match db {
        Db::Sqlite(c) => {
            super::sqlite::audit::run_purge(c, keyring, clock, retention_days, dry_run)
        }
        Db::Postgres(c) => {
            super::postgres::audit::run_purge(c, keyring, clock, retention_days, dry_run)
        }
    }
}

/// Appends one event on a direct connection (the CLI's own actions), in a transaction of its
/// own.
pub fn append_alone(db: &mut Db, event: NewEvent) -> Result<(), StoreError> {
    match db {
        Db::Sqlite(c) => super::sqlite::audit::append_alone(c, event).map(|_| ()),
        Db::Postgres(c) => super::postgres::audit::append_alone(c, event).map(|_| ()),
    }
}
