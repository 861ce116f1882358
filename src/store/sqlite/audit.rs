//! The audit trail in SQLite: appending events to the hash chain, reading them back, signed
//! checkpoints, the officer's query, export ranges and the trail's own retention purge. The
//! chain hashing, checkpoint signing and the purge's rules are shared with every backend and
//! live in [`crate::audit`]; only the SQL is here.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::audit::checkpoint::{Checkpoint, StoreVerification};
use crate::audit::purge::{
    retention_cutoff, PurgeError, PurgePlan, MIN_RETENTION_DAYS, PURGE_THROUGH_KEY,
};
use crate::audit::query::{Filter, Range};
use crate::audit::{ChainedEvent, Event, NewEvent, Outcome, ValueHash, GENESIS_HASH};
use crate::clock::{timestamp, Clock};
use crate::crypto::Keyring;
use crate::store::StoreError;

impl From<rusqlite::Error> for PurgeError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The last (seq, hash) of the chain, or the purge anchor, or genesis.
pub fn head(conn: &Connection) -> Result<(u64, [u8; 32]), StoreError> {
    let last = conn
        .prepare_cached("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
        })
        .optional()?;
    let (seq, hash) = match last {
        Some(v) => v,
        None => {
            // After a purge removed every event, the newest checkpoint is the anchor.
            match conn
                .prepare_cached(
                    "SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
                )?
                .query_row([], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
                })
                .optional()?
            {
                Some(v) => v,
                None => return Ok((0, GENESIS_HASH)),
            }
        }
    };
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| StoreError::Other("corrupt audit hash".into()))?;
    Ok((seq, hash))
}

/// Appends `event` to the chain inside the caller's transaction; returns its seq. A failure is
/// reported as [`StoreError::Audit`] so the request fails with `audit_unavailable`.
/// How many events are stored (after any retention purge) and the newest one's seq (`None` for
/// an empty trail): the console's chain status.
pub fn count_and_head(conn: &Connection) -> Result<(u64, Option<u64>), StoreError> {
    let (events, head): (i64, Option<i64>) =
        conn.query_row("SELECT count(*), max(seq) FROM audit_events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok((
        u64::try_from(events).unwrap_or(0),
        head.and_then(|h| u64::try_from(h).ok()),
    ))
}

pub fn append(conn: &Connection, event: NewEvent) -> Result<u64, StoreError> {
    append_inner(conn, event).map_err(|e| StoreError::Audit(Box::new(e)))
}

fn append_inner(conn: &Connection, event: NewEvent) -> Result<u64, StoreError> {
    let (last_seq, prev_hash) = head(conn)?;
    let (event, hash) = crate::audit::link(event, last_seq, &prev_hash);
    let fields = serde_json::to_string(&event.fields).unwrap_or_else(|_| "[]".into());
    let rules = serde_json::to_string(&event.rules).unwrap_or_else(|_| "[]".into());
    // NULL when empty: the column (migration 0005) holds the JSON list only for corrections.
    let value_hashes = (!event.value_hashes.is_empty())
        .then(|| serde_json::to_string(&event.value_hashes).unwrap_or_else(|_| "[]".into()));
    conn.prepare_cached(
        "INSERT INTO audit_events (seq, ts, request_id, actor, role, purpose, action, guest_id, fields,
           outcome, reason, rules, justification, prev_hash, hash, value_hashes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        event.seq as i64,
        event.ts,
        event.request_id,
        event.actor,
        event.role,
        event.purpose,
        event.action,
        event.guest_id,
        fields,
        event.outcome.as_str(),
        event.reason,
        rules,
        event.justification,
        prev_hash.as_slice(),
        hash.as_slice(),
        value_hashes,
    ])?;
    Ok(event.seq)
}

/// The columns [`chained_from_row`] reads, in order.
pub(crate) const EVENT_COLUMNS: &str =
    "seq, ts, request_id, actor, role, purpose, action, guest_id, \
     fields, outcome, reason, rules, justification, prev_hash, hash, value_hashes";

/// Maps a row selected with [`EVENT_COLUMNS`].
pub(crate) fn chained_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChainedEvent> {
    let fields: String = r.get(8)?;
    let rules: String = r.get(11)?;
    let value_hashes: Option<String> = r.get(15)?;
    Ok(ChainedEvent {
        event: Event {
            seq: r.get::<_, i64>(0)? as u64,
            ts: r.get(1)?,
            request_id: r.get(2)?,
            actor: r.get(3)?,
            role: r.get(4)?,
            purpose: r.get(5)?,
            action: r.get(6)?,
            guest_id: r.get(7)?,
            fields: serde_json::from_str(&fields).unwrap_or_default(),
            outcome: Outcome::parse(&r.get::<_, String>(9)?),
            reason: r.get(10)?,
            rules: serde_json::from_str(&rules).unwrap_or_default(),
            justification: r.get(12)?,
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
        prev_hash: r.get(13)?,
        hash: r.get(14)?,
    })
}

/// Reads events with `seq > after_seq`, oldest first.
pub fn read_after(
    conn: &Connection,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChainedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![after_seq as i64, limit as i64], chained_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The hash the event after `seq` must link to when event `seq` itself is not stored: genesis
/// before the first event, else the signed checkpoint a retention purge left as the anchor.
pub fn anchor_hash(conn: &Connection, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
    if seq == 0 {
        return Ok(Some(GENESIS_HASH));
    }
    Ok(checkpoint_at(conn, seq)?.map(|c| c.hash))
}

/// Recomputes the whole chain in the database; returns the number of events checked, or the
/// first seq whose link or hash is wrong. The oldest stored event must link to genesis or to
/// the purge anchor (a signed checkpoint), so history cannot be cut off silently.
pub fn verify_chain(conn: &Connection) -> Result<Result<u64, u64>, StoreError> {
    crate::audit::check_chain(
        |after, n| read_after(conn, after, n),
        |seq| anchor_hash(conn, seq),
    )
}

/// A checkpoint row as read, before its hash length is checked.
struct CheckpointRow {
    seq: u64,
    hash: Vec<u8>,
    signed_at: String,
    key_id: String,
    signature: Vec<u8>,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointRow> {
    Ok(CheckpointRow {
        seq: r.get::<_, i64>(0)? as u64,
        hash: r.get(1)?,
        signed_at: r.get(2)?,
        key_id: r.get(3)?,
        signature: r.get(4)?,
    })
}

fn assemble(row: CheckpointRow) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        seq: row.seq,
        hash: crate::audit::checkpoint::to_hash(row.hash)?,
        signed_at: row.signed_at,
        key_id: row.key_id,
        signature: row.signature,
    })
}

const COLUMNS: &str = "seq, hash, signed_at, key_id, signature";

/// Records `cp`. The table is append-only: if a checkpoint at that seq exists it is kept, and a
/// different hash there is an error (two signed, contradicting histories).
pub fn store_checkpoint(conn: &Connection, cp: &Checkpoint) -> Result<(), StoreError> {
    if cp.seq == 0 {
        return Ok(()); // the empty chain needs no record
    }
    conn.prepare_cached(
        "INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (seq) DO NOTHING",
    )?
    .execute(params![
        cp.seq as i64,
        cp.hash.as_slice(),
        cp.signed_at,
        cp.key_id,
        cp.signature
    ])?;
    match checkpoint_at(conn, cp.seq)? {
        Some(stored) if stored.hash == cp.hash => Ok(()),
        _ => Err(StoreError::Other(format!(
            "a different checkpoint is already recorded at audit seq {}",
            cp.seq
        ))),
    }
}

/// The checkpoint at `seq`, if one was recorded.
pub fn checkpoint_at(conn: &Connection, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_checkpoints WHERE seq = ?1"
    ))?
    .query_row([seq as i64], read_row)
    .optional()?
    .map(assemble)
    .transpose()
}

/// The newest checkpoint.
pub fn latest_checkpoint(conn: &Connection) -> Result<Option<Checkpoint>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
    ))?
    .query_row([], read_row)
    .optional()?
    .map(assemble)
    .transpose()
}

/// The checkpoints with `from <= seq <= to`, oldest first.
pub fn checkpoints_in_range(
    conn: &Connection,
    from: u64,
    to: u64,
) -> Result<Vec<Checkpoint>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_checkpoints WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq"
    ))?
    .query_map([from as i64, to as i64], read_row)?
    .map(|r| assemble(r?))
    .collect()
}

/// Signs and records the head of the chain if it is at least `min_new_events` past the newest
/// checkpoint; returns the new checkpoint. Runs inside the caller's (write) transaction.
pub fn checkpoint_head(
    conn: &Connection,
    keyring: &Keyring,
    signed_at: String,
    min_new_events: u64,
) -> Result<Option<Checkpoint>, StoreError> {
    let (seq, hash) = head(conn)?;
    let last = latest_checkpoint(conn)?.map_or(0, |c| c.seq);
    if !crate::audit::checkpoint::due(seq, last, min_new_events) {
        return Ok(None);
    }
    let cp = Checkpoint::sign(keyring, seq, hash, signed_at);
    store_checkpoint(conn, &cp)?;
    Ok(Some(cp))
}

/// Checks the whole trail: every event's hash and link from genesis or the purge anchor
/// ([`verify_chain`]), and every checkpoint's signature under `public_key` and its hash
/// against the stored event at that seq. A checkpoint above `audit_purge_through` must have its
/// event, so deleting the newest events is found, not just a changed one.
pub fn verify_store(conn: &Connection, public_key: &[u8]) -> Result<StoreVerification, StoreError> {
    let (events, chain_bad) = match verify_chain(conn)? {
        Ok(n) => (n, None),
        Err(seq) => {
            let before: i64 = conn.query_row(
                "SELECT count(*) FROM audit_events WHERE seq < ?1",
                [seq as i64],
                |r| r.get(0),
            )?;
            (before as u64, Some(seq))
        }
    };
    let purged = purged_through(conn)?;
    let mut checkpoints = 0u64;
    let mut cp_bad = None;
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_checkpoints ORDER BY seq"
    ))?;
    let mut rows = stmt.query([])?;
    let mut event_hash = conn.prepare_cached("SELECT hash FROM audit_events WHERE seq = ?1")?;
    while let Some(row) = rows.next()? {
        let cp = assemble(read_row(row)?)?;
        let stored: Option<Vec<u8>> = event_hash
            .query_row([cp.seq as i64], |r| r.get(0))
            .optional()?;
        // A checkpoint's event may be missing only where a retention purge removed it; above
        // that, a missing event means the trail was cut short (its newest events deleted).
        let matches_event = match stored {
            Some(h) => h.as_slice() == cp.hash.as_slice(),
            None => cp.seq <= purged,
        };
        if !cp.is_valid_for(public_key) || !matches_event {
            cp_bad = Some(cp.seq);
            break;
        }
        checkpoints += 1;
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
    if let Err(seq) = verify_chain(conn)? {
        return Err(PurgeError::Broken(seq));
    }
    let hash: Vec<u8> = conn.query_row(
        "SELECT hash FROM audit_events WHERE seq = ?1",
        [through as i64],
        |r| r.get(0),
    )?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| PurgeError::Broken(through))?;
    store_checkpoint(
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

/// Events matching `filter` with `seq > after_seq`, oldest first, at most `limit`.
pub fn query_events(
    conn: &Connection,
    filter: &Filter,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChainedEvent>, StoreError> {
    let mut sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > ?1");
    let mut args: Vec<SqlValue> = vec![SqlValue::Integer(after_seq as i64)];
    let mut cond = |column: &str, op: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(&format!(" AND {column} {op} ?{}", args.len()));
    };
    if let Some(s) = &filter.since {
        cond("ts", ">=", SqlValue::Text(s.clone()));
    }
    if let Some(u) = &filter.until {
        cond("ts", "<", SqlValue::Text(u.clone()));
    }
    if let Some(a) = &filter.actor {
        cond("actor", "=", SqlValue::Text(a.clone()));
    }
    if let Some(g) = &filter.guest_id {
        cond("guest_id", "=", SqlValue::Text(g.clone()));
    }
    if let Some(a) = &filter.action {
        cond("action", "=", SqlValue::Text(a.clone()));
    }
    if let Some(o) = filter.outcome {
        cond("outcome", "=", SqlValue::Text(o.as_str().to_string()));
    }
    args.push(SqlValue::Integer(limit as i64));
    sql.push_str(&format!(" ORDER BY seq LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), chained_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// From the first event at or after `since` to the last event before `until` (by seq: events
/// in between whose time lies outside the window are part of the range, shown as stubs). With
/// no event in the window the range is empty and anchored at the head of the chain.
pub fn resolve_range(conn: &Connection, filter: &Filter) -> Result<Range, StoreError> {
    let first: Option<i64> = match &filter.since {
        Some(s) => conn.query_row(
            "SELECT min(seq) FROM audit_events WHERE ts >= ?1",
            [s],
            |r| r.get(0),
        )?,
        None => conn.query_row("SELECT min(seq) FROM audit_events", [], |r| r.get(0))?,
    };
    let last: Option<i64> = match &filter.until {
        Some(u) => conn.query_row(
            "SELECT max(seq) FROM audit_events WHERE ts < ?1",
            [u],
            |r| r.get(0),
        )?,
        None => conn.query_row("SELECT max(seq) FROM audit_events", [], |r| r.get(0))?,
    };
    let (first, last) = match (first, last) {
        (Some(f), Some(l)) if f <= l => (f as u64, l as u64),
        _ => {
            let (head, _) = head(conn)?;
            (head + 1, head)
        }
    };
    let anchor_seq = first - 1;
    let stored: Option<Vec<u8>> = {
        use rusqlite::OptionalExtension;
        conn.prepare_cached("SELECT hash FROM audit_events WHERE seq = ?1")?
            .query_row([anchor_seq as i64], |r| r.get(0))
            .optional()?
    };
    let anchor_hash = match stored {
        Some(h) => h
            .try_into()
            .map_err(|_| StoreError::Other("corrupt audit hash".into()))?,
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
/// operations, beside a running server: WAL serializes the writers).
pub fn append_alone(conn: &mut Connection, event: NewEvent) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let seq = append(&tx, event)?;
    tx.commit()?;
    Ok(seq)
}
