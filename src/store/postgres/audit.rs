//! The audit trail in PostgreSQL: the seam's `audit` operations, with the names and meanings of
//! `store/sqlite/audit.rs` (read that file's docs), for **one chain shared by every vault node**
//! on the database. Chain hashing, checkpoint signing, the purge's rules and the query filter
//! are shared with every backend and live in [`crate::audit`]; only the SQL is here.
//!
//! # Appending across nodes (docs/storage.md, "Group commit across nodes")
//! [`append`] does not insert: it queues the event on the connection, because its seq is not
//! known until the group commits. The writer calls [`queue_pending`] inside its group
//! transaction after every unit ran, before the pre-commit hook and `COMMIT`: it locks the one
//! row of `audit_head` (`FOR UPDATE`), links the queued events after it with
//! [`crate::audit::link`], and queues one statement that inserts them and moves the head, sent
//! with the `COMMIT` (or with the checkpoint the hook signs when one is due). The row
//! lock serialises the nodes' appends, so seqs are consecutive across nodes, with no fork and
//! no gap, and it is held only from the flush to the commit, not during the units' work.
//!
//! `audit_head` is the true head of the chain: it stays where it is when a retention purge
//! removes events (SQLite finds the head in the newest event or, with none left, the newest
//! checkpoint; here both agree with the row).

use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::audit::checkpoint::{to_hash, ChainTip, Checkpoint, StoreVerification};
use crate::audit::purge::{
    retention_cutoff, PurgeError, PurgePlan, MIN_RETENTION_DAYS, PURGE_THROUGH_KEY,
};
use crate::audit::query::{Filter, Range};
use crate::audit::{ChainedEvent, Event, NewEvent, Outcome, ValueHash, GENESIS_HASH};
use crate::clock::{timestamp, Clock};
use crate::crypto::Keyring;
use crate::store::StoreError;

use super::conn::{OwnedParam, Param, PgConn};

/// A seq as the database stores it (BIGINT); a seq past `i64::MAX` cannot be stored, so as a
/// bound it means "beyond every event".
fn sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A stored seq (never negative in a trail this code wrote).
fn seq_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A failure while appending: the request fails with `audit_unavailable` (REQ-18).
fn audit_error(e: StoreError) -> StoreError {
    StoreError::Audit(Box::new(e))
}

/// The last (seq, hash) of the chain (genesis before the first event), from `audit_head`.
pub fn head(conn: &PgConn) -> Result<(u64, [u8; 32]), StoreError> {
    let row = conn.query_one("SELECT seq, hash FROM audit_head WHERE id", &[])?;
    Ok((seq_of(row.try_get(0)?), to_hash(row.try_get(1)?)?))
}

/// How many events are stored (after any retention purge) and the newest one's seq (`None` for
/// an empty trail): the console's chain status.
pub fn count_and_head(conn: &PgConn) -> Result<(u64, Option<u64>), StoreError> {
    let row = conn.query_one("SELECT count(*), max(seq) FROM audit_events", &[])?;
    let events: i64 = row.try_get(0)?;
    let head: Option<i64> = row.try_get(1)?;
    Ok((
        u64::try_from(events).unwrap_or(0),
        head.and_then(|h| u64::try_from(h).ok()),
    ))
}

/// Queues `event` for the chain; the writer links and inserts it at its group's commit
/// ([`flush_pending`]), where a failure is reported as [`StoreError::Audit`]. The seq is not
/// known yet, so none is returned.
pub fn append(conn: &PgConn, event: NewEvent) -> Result<(), StoreError> {
    conn.queue_event(event);
    Ok(())
}

/// What [`flush_pending`] appended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flushed {
    /// Events inserted (0: nothing was queued, and the head was not touched).
    pub events: u64,
    /// The seq of the last of them (0 when none).
    pub last_seq: u64,
    /// How long `SELECT … FOR UPDATE` of the head took (the wait for other nodes' commits
    /// plus one round trip).
    pub lock_wait: Duration,
    /// The head's seq when its lock was granted (before this group's events).
    pub head_before: u64,
    /// When the head's row lock was granted (the `SELECT … FOR UPDATE` answered), if it was
    /// taken: the lock is held until the transaction ends, so the writer measures the hold
    /// time of issue 14 as this instant's `elapsed()` after `COMMIT`.
    pub locked_at: Option<Instant>,
    /// Where the head now is (when events were inserted), for the pre-commit hook.
    pub tip: Option<ChainTip>,
}

/// Links every event the connection's units queued into the chain and inserts them, inside the
/// caller's transaction (the writer's group, after its units and before its pre-commit hook
/// and `COMMIT`). Holds the chain head's row lock from here to the end of the transaction.
/// A failure is [`StoreError::Audit`]; the caller must then roll the transaction back (the
/// queued events are gone with it).
pub fn flush_pending(conn: &PgConn) -> Result<Flushed, StoreError> {
    let events = conn.take_pending();
    if events.is_empty() {
        return Ok(Flushed::default());
    }
    link_and_insert(conn, events, false).map_err(audit_error)
}

/// [`flush_pending`], but the insert is only queued on the connection
/// ([`PgConn::pipeline`]): the head is locked and the events linked now, and the caller must
/// flush (and fail the transaction on an error) before it relies on them.
///
/// `late` is asked for more events once the head is locked (the node's pooled events that
/// belong to no unit, [`super::writer`]): they join this insert, so one hold carries every such
/// event that queued while other groups held the head. Without events of its own and with
/// `has_late` false, nothing is locked.
pub fn queue_pending(
    conn: &PgConn,
    has_late: bool,
    late: &mut dyn FnMut() -> Vec<NewEvent>,
) -> Result<Flushed, StoreError> {
    let events = conn.take_pending();
    if events.is_empty() && !has_late {
        return Ok(Flushed::default());
    }
    link_and_insert_with(conn, events, true, late).map_err(audit_error)
}

/// The chain's columns of a batch of linked events, one array per column, for the `UNNEST`
/// insert.
#[derive(Default)]
struct Columns {
    seq: Vec<i64>,
    ts: Vec<String>,
    request_id: Vec<String>,
    actor: Vec<String>,
    role: Vec<String>,
    purpose: Vec<Option<String>>,
    action: Vec<String>,
    guest_id: Vec<Option<String>>,
    fields: Vec<String>,
    outcome: Vec<&'static str>,
    reason: Vec<Option<String>>,
    rules: Vec<String>,
    justification: Vec<Option<String>>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    value_hashes: Vec<Option<String>>,
}

impl Columns {
    fn push(&mut self, event: Event, prev_hash: &[u8; 32], hash: &[u8; 32]) {
        self.seq.push(sql_seq(event.seq));
        self.fields
            .push(serde_json::to_string(&event.fields).unwrap_or_else(|_| "[]".into()));
        self.rules
            .push(serde_json::to_string(&event.rules).unwrap_or_else(|_| "[]".into()));
        // NULL when empty: the column holds the JSON list only for corrections (as SQLite's).
        self.value_hashes.push(
            (!event.value_hashes.is_empty()).then(|| {
                serde_json::to_string(&event.value_hashes).unwrap_or_else(|_| "[]".into())
            }),
        );
        self.ts.push(event.ts);
        self.request_id.push(event.request_id);
        self.actor.push(event.actor);
        self.role.push(event.role);
        self.purpose.push(event.purpose);
        self.action.push(event.action);
        self.guest_id.push(event.guest_id);
        self.outcome.push(event.outcome.as_str());
        self.reason.push(event.reason);
        self.justification.push(event.justification);
        self.prev_hash.push(prev_hash.to_vec());
        self.hash.push(hash.to_vec());
    }
}

/// Locks the head, links `events` after it, inserts them in one statement and moves the head.
fn link_and_insert(
    conn: &PgConn,
    events: Vec<NewEvent>,
    queue: bool,
) -> Result<Flushed, StoreError> {
    link_and_insert_with(conn, events, queue, &mut Vec::new)
}

/// [`link_and_insert`], with `late`'s events appended after the head is locked.
fn link_and_insert_with(
    conn: &PgConn,
    mut events: Vec<NewEvent>,
    queue: bool,
    late: &mut dyn FnMut() -> Vec<NewEvent>,
) -> Result<Flushed, StoreError> {
    let asked = Instant::now();
    // The newest checkpoint's seq comes with the lock, for the hook's "is one due" (a snapshot
    // taken before any wait for the lock: see `ChainTip::last_checkpoint`).
    let row = conn.query_one(
        "SELECT h.seq, h.hash, (SELECT max(seq) FROM audit_checkpoints) FROM audit_head h
         WHERE h.id FOR UPDATE OF h",
        &[],
    )?;
    let locked_at = Instant::now();
    events.extend(late());
    let mut last_seq = seq_of(row.try_get(0)?);
    let head_before = last_seq;
    let mut prev = to_hash(row.try_get(1)?)?;
    let last_checkpoint = row.try_get::<_, Option<i64>>(2)?.map_or(0, seq_of);
    let count = events.len() as u64;
    let mut c = Columns::default();
    for event in events {
        let (event, hash) = crate::audit::link(event, last_seq, &prev);
        last_seq = event.seq;
        c.push(event, &prev, &hash);
        prev = hash;
    }
    // One statement, so one round trip while the head is locked: the events' insert and the
    // head's move (a data-modifying CTE always runs to completion, referenced or not).
    let params: Vec<OwnedParam> = vec![
        Box::new(c.seq),
        Box::new(c.ts),
        Box::new(c.request_id),
        Box::new(c.actor),
        Box::new(c.role),
        Box::new(c.purpose),
        Box::new(c.action),
        Box::new(c.guest_id),
        Box::new(c.fields),
        Box::new(c.outcome),
        Box::new(c.reason),
        Box::new(c.rules),
        Box::new(c.justification),
        Box::new(c.prev_hash),
        Box::new(c.hash),
        Box::new(c.value_hashes),
        Box::new(sql_seq(last_seq)),
        Box::new(prev.to_vec()),
    ];
    const APPEND: &str = "WITH appended AS (
           INSERT INTO audit_events (seq, ts, request_id, actor, role, purpose, action, guest_id,
             fields, outcome, reason, rules, justification, prev_hash, hash, value_hashes)
           SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
             $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[],
             $13::TEXT[], $14::BYTEA[], $15::BYTEA[], $16::TEXT[])
         )
         UPDATE audit_head SET seq = $17, hash = $18 WHERE id";
    if queue {
        conn.pipeline(APPEND, params);
    } else {
        conn.execute_owned(APPEND, params)?;
    }
    Ok(Flushed {
        events: count,
        last_seq,
        lock_wait: locked_at - asked,
        head_before,
        locked_at: Some(locked_at),
        tip: (count > 0).then_some(ChainTip {
            seq: last_seq,
            hash: prev,
            last_checkpoint,
        }),
    })
}

/// The columns [`chained_from_row`] reads, in order (a macro so that statements stay
/// `&'static str` and are cached).
macro_rules! event_columns {
    () => {
        "seq, ts, request_id, actor, role, purpose, action, guest_id, \
         fields, outcome, reason, rules, justification, prev_hash, hash, value_hashes"
    };
}

/// Maps a row selected with `event_columns!()`.
fn chained_from_row(r: &Row) -> Result<ChainedEvent, StoreError> {
    let fields: String = r.try_get(8)?;
    let rules: String = r.try_get(11)?;
    let value_hashes: Option<String> = r.try_get(15)?;
    Ok(ChainedEvent {
        event: Event {
            seq: seq_of(r.try_get(0)?),
            ts: r.try_get(1)?,
            request_id: r.try_get(2)?,
            actor: r.try_get(3)?,
            role: r.try_get(4)?,
            purpose: r.try_get(5)?,
            action: r.try_get(6)?,
            guest_id: r.try_get(7)?,
            fields: serde_json::from_str(&fields).unwrap_or_default(),
            outcome: Outcome::parse(r.try_get(9)?),
            reason: r.try_get(10)?,
            rules: serde_json::from_str(&rules).unwrap_or_default(),
            justification: r.try_get(12)?,
            // A stored list that does not parse recomputes to a different hash: verify
            // reports the event as tampered rather than dropping the member silently.
            value_hashes: match value_hashes {
                None => Vec::new(),
                Some(v) => serde_json::from_str(&v).unwrap_or_else(|_| {
                    vec![ValueHash {
                        field: "(unreadable)".into(),
                        before_hash: None,
                        after_hash: None,
                    }]
                }),
            },
        },
        prev_hash: r.try_get(13)?,
        hash: r.try_get(14)?,
    })
}

fn chained_from_rows(rows: &[Row]) -> Result<Vec<ChainedEvent>, StoreError> {
    rows.iter().map(chained_from_row).collect()
}

/// A `LIMIT` bound.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Reads events with `seq > after_seq`, oldest first.
pub fn read_after(
    conn: &PgConn,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChainedEvent>, StoreError> {
    let rows = conn.query(
        concat!(
            "SELECT ",
            event_columns!(),
            " FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ),
        &[&sql_seq(after_seq), &sql_limit(limit)],
    )?;
    chained_from_rows(&rows)
}

/// The hash the event after `seq` must link to when event `seq` itself is not stored: genesis
/// before the first event, else the signed checkpoint a retention purge left as the anchor.
pub fn anchor_hash(conn: &PgConn, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
    if seq == 0 {
        return Ok(Some(GENESIS_HASH));
    }
    Ok(checkpoint_at(conn, seq)?.map(|c| c.hash))
}

/// Recomputes the whole chain in the database; returns the number of events checked, or the
/// first seq whose link or hash is wrong (see [`crate::audit::check_chain`]).
pub fn verify_chain(conn: &PgConn) -> Result<Result<u64, u64>, StoreError> {
    crate::audit::check_chain(
        |after, n| read_after(conn, after, n),
        |seq| anchor_hash(conn, seq),
    )
}

/// Stored events with `after < seq < before`.
pub(super) fn count_between(conn: &PgConn, after: i64, before: u64) -> Result<u64, StoreError> {
    let n: i64 = conn
        .query_one(
            "SELECT count(*) FROM audit_events WHERE seq > $1 AND seq < $2",
            &[&after, &sql_seq(before)],
        )?
        .try_get(0)?;
    Ok(seq_of(n))
}

macro_rules! checkpoint_columns {
    () => {
        "seq, hash, signed_at, key_id, signature"
    };
}

/// Maps a row whose first columns are `checkpoint_columns!()`.
fn checkpoint_from_row(r: &Row) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        seq: seq_of(r.try_get(0)?),
        hash: to_hash(r.try_get(1)?)?,
        signed_at: r.try_get(2)?,
        key_id: r.try_get(3)?,
        signature: r.try_get(4)?,
    })
}

/// Records `cp`. The table is append-only: if a checkpoint at that seq exists it is kept, and a
/// different hash there is an error (two signed, contradicting histories). Two nodes signing
/// the same head both succeed: the second insert waits for the first to commit, then keeps it.
pub fn store_checkpoint(conn: &PgConn, cp: &Checkpoint) -> Result<(), StoreError> {
    if cp.seq == 0 {
        return Ok(()); // the empty chain needs no record
    }
    conn.execute(
        "INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
        &[
            &sql_seq(cp.seq),
            &cp.hash.as_slice(),
            &cp.signed_at,
            &cp.key_id,
            &cp.signature,
        ],
    )?;
    match checkpoint_at(conn, cp.seq)? {
        Some(stored) if stored.hash == cp.hash => Ok(()),
        _ => Err(StoreError::Other(format!(
            "a different checkpoint is already recorded at audit seq {}",
            cp.seq
        ))),
    }
}

/// The checkpoint at `seq`, if one was recorded.
pub fn checkpoint_at(conn: &PgConn, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
    conn.query_opt(
        concat!(
            "SELECT ",
            checkpoint_columns!(),
            " FROM audit_checkpoints WHERE seq = $1"
        ),
        &[&sql_seq(seq)],
    )?
    .as_ref()
    .map(checkpoint_from_row)
    .transpose()
}

/// The newest checkpoint.
pub fn latest_checkpoint(conn: &PgConn) -> Result<Option<Checkpoint>, StoreError> {
    conn.query_opt(
        concat!(
            "SELECT ",
            checkpoint_columns!(),
            " FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        ),
        &[],
    )?
    .as_ref()
    .map(checkpoint_from_row)
    .transpose()
}

/// The checkpoints with `from <= seq <= to`, oldest first.
pub fn checkpoints_in_range(
    conn: &PgConn,
    from: u64,
    to: u64,
) -> Result<Vec<Checkpoint>, StoreError> {
    conn.query(
        concat!(
            "SELECT ",
            checkpoint_columns!(),
            " FROM audit_checkpoints WHERE seq BETWEEN $1 AND $2 ORDER BY seq"
        ),
        &[&sql_seq(from), &sql_seq(to)],
    )?
    .iter()
    .map(checkpoint_from_row)
    .collect()
}

/// Signs and records the head of the chain if it is at least `min_new_events` past the newest
/// checkpoint; returns the new checkpoint. The writer's pre-commit hook runs it after
/// [`flush_pending`], in the same transaction, so it signs the head this group just moved.
pub fn checkpoint_head(
    conn: &PgConn,
    keyring: &Keyring,
    signed_at: String,
    min_new_events: u64,
) -> Result<Option<Checkpoint>, StoreError> {
    // The head and the newest checkpoint's seq in one round trip: this runs in every group
    // commit, while the head is locked.
    let row = conn.query_one(
        "SELECT h.seq, h.hash, (SELECT max(seq) FROM audit_checkpoints) FROM audit_head h
         WHERE h.id",
        &[],
    )?;
    let (seq, hash) = (seq_of(row.try_get(0)?), to_hash(row.try_get(1)?)?);
    let last = row.try_get::<_, Option<i64>>(2)?.map_or(0, seq_of);
    if !crate::audit::checkpoint::due(seq, last, min_new_events) {
        return Ok(None);
    }
    let cp = Checkpoint::sign(keyring, seq, hash, signed_at);
    store_checkpoint(conn, &cp)?;
    Ok(Some(cp))
}

/// Checkpoints per page of [`verify_store`].
const CHECKPOINT_PAGE: i64 = 1000;

/// Checks the whole trail: every event's hash and link from genesis or the purge anchor
/// ([`verify_chain`]), and every checkpoint's signature under `public_key` and its hash
/// against the stored event at that seq. A checkpoint above `audit_purge_through` must have its
/// event, so deleting the newest events is found, not just a changed one.
pub fn verify_store(conn: &PgConn, public_key: &[u8]) -> Result<StoreVerification, StoreError> {
    let (events, chain_bad) = match verify_chain(conn)? {
        Ok(n) => (n, None),
        Err(seq) => (count_between(conn, i64::MIN, seq)?, Some(seq)),
    };
    let purged = purged_through(conn)?;
    let mut checkpoints = 0u64;
    let mut cp_bad = None;
    let mut after = i64::MIN;
    'pages: loop {
        // Each checkpoint with its event's hash, a page at a time (one round trip per page).
        let rows = conn.query(
            "SELECT c.seq, c.hash, c.signed_at, c.key_id, c.signature, e.hash
             FROM audit_checkpoints c LEFT JOIN audit_events e ON e.seq = c.seq
             WHERE c.seq > $1 ORDER BY c.seq LIMIT $2",
            &[&after, &CHECKPOINT_PAGE],
        )?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let cp = checkpoint_from_row(row)?;
            let stored: Option<Vec<u8>> = row.try_get(5)?;
            // A checkpoint's event may be missing only where a retention purge removed it;
            // above that, a missing event means the trail was cut short (its newest deleted).
            let matches_event = match stored {
                Some(h) => h.as_slice() == cp.hash.as_slice(),
                None => cp.seq <= purged,
            };
            if !cp.is_valid_for(public_key) || !matches_event {
                cp_bad = Some(cp.seq);
                break 'pages;
            }
            checkpoints += 1;
            after = sql_seq(cp.seq);
        }
    }
    let first_bad_seq = match (chain_bad, cp_bad) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(StoreVerification {
        intact: first_bad_seq.is_none(),
        events,
        checkpoints,
        first_bad_seq,
    })
}

/// The last seq a purge removed (0 if none).
pub fn purged_through(conn: &PgConn) -> Result<u64, StoreError> {
    let v: Option<String> = conn
        .query_opt(
            "SELECT value FROM meta WHERE key = $1",
            &[&PURGE_THROUGH_KEY],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Works out what a purge at `cutoff` would remove, without changing anything.
pub fn plan_purge(conn: &PgConn, cutoff: &str) -> Result<PurgePlan, StoreError> {
    let young: Option<i64> = conn
        .query_one(
            "SELECT min(seq) FROM audit_events WHERE ts >= $1",
            &[&cutoff],
        )?
        .try_get(0)?;
    let head: Option<i64> = conn
        .query_one("SELECT max(seq) FROM audit_events", &[])?
        .try_get(0)?;
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
    if through > 0 && seq_of(through) > already {
        let events: i64 = conn
            .query_one(
                "SELECT count(*) FROM audit_events WHERE seq <= $1",
                &[&through],
            )?
            .try_get(0)?;
        plan.through_seq = Some(seq_of(through));
        plan.events = seq_of(events);
    }
    Ok(plan)
}

/// Purges the events older than `cutoff` inside the caller's transaction (the order of steps
/// is [`crate::audit::purge`]'s: check the chain, sign the anchor, set the mark, delete, log
/// the purge). `now` stamps the checkpoint and the purge's own event.
///
/// It first takes the chain head's row lock, which it keeps to the end of the transaction:
/// SQLite's purge relies on the database's one write lock so that nothing is appended while
/// it plans, checks and deletes; here the other nodes' appends wait on the head instead. The
/// purge's own event is linked and inserted at once under that lock, not queued, so the events
/// other units of the caller's transaction queued are left to the caller's flush.
pub fn purge_audit_before(
    conn: &PgConn,
    keyring: &Keyring,
    cutoff: &str,
    now: &str,
) -> Result<PurgePlan, PurgeError> {
    conn.query_one("SELECT seq FROM audit_head WHERE id FOR UPDATE", &[])?;
    let plan = plan_purge(conn, cutoff)?;
    let Some(through) = plan.through_seq else {
        return Ok(plan);
    };
    // Never sign (and so bless) a chain that does not verify.
    if let Err(seq) = verify_chain(conn)? {
        return Err(PurgeError::Broken(seq));
    }
    let hash: Vec<u8> = conn
        .query_one(
            "SELECT hash FROM audit_events WHERE seq = $1",
            &[&sql_seq(through)],
        )?
        .try_get(0)
        .map_err(StoreError::from)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| PurgeError::Broken(through))?;
    store_checkpoint(
        conn,
        &Checkpoint::sign(keyring, through, hash, now.to_string()),
    )?;
    // The guard triggers allow deleting only at or below this mark, read in each statement's
    // snapshot: it must be set before the delete.
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&PURGE_THROUGH_KEY, &through.to_string()],
    )?;
    let removed = conn.execute(
        "DELETE FROM audit_events WHERE seq <= $1",
        &[&sql_seq(through)],
    )?;
    // REQ-19: the purge itself is logged.
    let event = NewEvent {
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
    };
    link_and_insert(conn, vec![event], false).map_err(audit_error)?;
    Ok(plan)
}

/// Runs `f` in a transaction of its own on `conn`: committed if it succeeds, rolled back if not.
fn in_transaction<T, E: From<StoreError>>(
    conn: &PgConn,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    conn.batch("BEGIN")?;
    match f() {
        Ok(v) => {
            conn.batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            // The error that matters is `e`; a failed rollback ends with the session anyway.
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// `guestvault audit purge [--dry-run]`: purges what `retention_days` before the clock's now
/// allows, in one transaction of its own (safe beside running nodes: they wait on the chain
/// head while it runs).
pub fn run_purge(
    conn: &PgConn,
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
    in_transaction(conn, || {
        purge_audit_before(conn, keyring, &cutoff, &timestamp(now))
    })
}

/// Events matching `filter` with `seq > after_seq`, oldest first, at most `limit`.
pub fn query_events(
    conn: &PgConn,
    filter: &Filter,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChainedEvent>, StoreError> {
    let mut sql = concat!(
        "SELECT ",
        event_columns!(),
        " FROM audit_events WHERE seq > $1"
    )
    .to_string();
    let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(sql_seq(after_seq))];
    let mut cond = |column: &str, op: &str, value: Box<dyn ToSql + Sync>| {
        args.push(value);
        sql.push_str(&format!(" AND {column} {op} ${}", args.len()));
    };
    if let Some(s) = &filter.since {
        cond("ts", ">=", Box::new(s.clone()));
    }
    if let Some(u) = &filter.until {
        cond("ts", "<", Box::new(u.clone()));
    }
    if let Some(a) = &filter.actor {
        cond("actor", "=", Box::new(a.clone()));
    }
    if let Some(g) = &filter.guest_id {
        cond("guest_id", "=", Box::new(g.clone()));
    }
    if let Some(a) = &filter.action {
        cond("action", "=", Box::new(a.clone()));
    }
    if let Some(o) = filter.outcome {
        cond("outcome", "=", Box::new(o.as_str()));
    }
    args.push(Box::new(sql_limit(limit)));
    sql.push_str(&format!(" ORDER BY seq LIMIT ${}", args.len()));
    let params: Vec<Param<'_>> = args.iter().map(|a| a.as_ref() as Param<'_>).collect();
    chained_from_rows(&conn.query_dyn(&sql, &params)?)
}

/// One `min(seq)`/`max(seq)` row's value.
fn optional_seq(row: &Row) -> Result<Option<i64>, StoreError> {
    Ok(row.try_get(0)?)
}

/// From the first event at or after `since` to the last event before `until` (by seq: events
/// in between whose time lies outside the window are part of the range, shown as stubs). With
/// no event in the window the range is empty and anchored at the head of the chain.
pub fn resolve_range(conn: &PgConn, filter: &Filter) -> Result<Range, StoreError> {
    let first = optional_seq(&match &filter.since {
        Some(s) => conn.query_one("SELECT min(seq) FROM audit_events WHERE ts >= $1", &[s])?,
        None => conn.query_one("SELECT min(seq) FROM audit_events", &[])?,
    })?;
    let last = optional_seq(&match &filter.until {
        Some(u) => conn.query_one("SELECT max(seq) FROM audit_events WHERE ts < $1", &[u])?,
        None => conn.query_one("SELECT max(seq) FROM audit_events", &[])?,
    })?;
    let (first, last) = match (first, last) {
        (Some(f), Some(l)) if f <= l => (seq_of(f), seq_of(l)),
        _ => {
            let (head, _) = head(conn)?;
            (head + 1, head)
        }
    };
    let anchor_seq = first - 1;
    let stored: Option<Vec<u8>> = conn
        .query_opt(
            "SELECT hash FROM audit_events WHERE seq = $1",
            &[&sql_seq(anchor_seq)],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    let anchor_hash = match stored {
        Some(h) => to_hash(h)?,
        None => anchor_hash(conn, anchor_seq)?.ok_or_else(|| {
            StoreError::Other(format!("audit seq {first} has no anchor to link to"))
        })?,
    };
    Ok(Range {
        first,
        last,
        anchor_hash,
    })
}

/// Appends `event` in a transaction of its own on a direct connection (the command-line
/// operations, beside running nodes: the chain head's row lock serialises them).
pub fn append_alone(conn: &PgConn, event: NewEvent) -> Result<(), StoreError> {
    in_transaction(conn, || {
        append(conn, event)?;
        flush_pending(conn).map(|_| ())
    })
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
