//! SQL for legal holds (REQ-23): place, list, lift, and re-apply after a restore. Holds hold
//! no personal data (a reason code, a ticket id, dates, the officers' token `sub`s).

use rusqlite::{params, Connection, OptionalExtension};

use crate::store::rows::HoldRow;
use crate::store::StoreError;

const COLUMNS: &str =
    "hold_id, guest_id, reason, ticket, until, placed_at, placed_by, lifted_at, lifted_by";

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<HoldRow> {
    Ok(HoldRow {
        hold_id: r.get(0)?,
        guest_id: r.get(1)?,
        reason: r.get(2)?,
        ticket: r.get(3)?,
        until: r.get(4)?,
        placed_at: r.get(5)?,
        placed_by: r.get(6)?,
        lifted_at: r.get(7)?,
        lifted_by: r.get(8)?,
    })
}

/// Records a hold. A hold id already there (a replay) changes nothing; a guest not in the
/// database (erased, or created after the snapshot) gets no hold. Returns whether a row was
/// added.
pub fn place(c: &Connection, hold: &HoldRow) -> Result<bool, StoreError> {
    let n = c
        .prepare_cached(
            "INSERT INTO legal_holds (hold_id, guest_id, reason, ticket, until, placed_at, placed_by, lifted_at, lifted_by)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM guests WHERE guest_id = ?2)
             ON CONFLICT (hold_id) DO NOTHING",
        )?
        .execute(params![
            hold.hold_id,
            hold.guest_id,
            hold.reason,
            hold.ticket,
            hold.until,
            hold.placed_at,
            hold.placed_by,
            hold.lifted_at,
            hold.lifted_by
        ])?;
    Ok(n > 0)
}

/// Every hold of a guest, oldest first (lifted and lapsed ones too).
pub fn list(c: &Connection, guest_id: &str) -> Result<Vec<HoldRow>, StoreError> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM legal_holds WHERE guest_id = ?1 ORDER BY placed_at, hold_id"
        ))?
        .query_map([guest_id], row_from)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The holds that stand on `today`: not lifted, `until` not passed.
pub fn active(c: &Connection, guest_id: &str, today: &str) -> Result<Vec<HoldRow>, StoreError> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM legal_holds WHERE guest_id = ?1 AND lifted_at IS NULL
               AND (until IS NULL OR until >= ?2) ORDER BY placed_at, hold_id"
        ))?
        .query_map(params![guest_id, today], row_from)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Lifts a hold of `guest_id` (once: a lifted hold keeps its first lift). Returns the hold as
/// it now is, `None` if the guest has no such hold.
pub fn lift(
    c: &Connection,
    guest_id: &str,
    hold_id: &str,
    now: &str,
    by: &str,
) -> Result<Option<HoldRow>, StoreError> {
    c.prepare_cached(
        "UPDATE legal_holds SET lifted_at = ?3, lifted_by = ?4
         WHERE guest_id = ?1 AND hold_id = ?2 AND lifted_at IS NULL",
    )?
    .execute(params![guest_id, hold_id, now, by])?;
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM legal_holds WHERE guest_id = ?1 AND hold_id = ?2"
    ))?
    .query_row(params![guest_id, hold_id], row_from)
    .optional()?)
}

/// Re-applies a lift after a restore: `true` if the hold was there and standing.
pub fn replay_lift(c: &Connection, hold_id: &str, at: &str, by: &str) -> Result<bool, StoreError> {
    let n = c
        .prepare_cached(
            "UPDATE legal_holds SET lifted_at = ?2, lifted_by = ?3 WHERE hold_id = ?1 AND lifted_at IS NULL",
        )?
        .execute(params![hold_id, at, by])?;
    Ok(n > 0)
}
