//! PostgreSQL: the `holds` operations of the seam (the same names and meanings as
//! `store/sqlite/holds.rs`; see that file's docs).

use tokio_postgres::Row;

use crate::store::rows::HoldRow;
use crate::store::StoreError;

use super::conn::PgConn;

fn row_from(r: &Row) -> Result<HoldRow, tokio_postgres::Error> {
    Ok(HoldRow {
        hold_id: r.try_get(0)?,
        guest_id: r.try_get(1)?,
        reason: r.try_get(2)?,
        ticket: r.try_get(3)?,
        until: r.try_get(4)?,
        placed_at: r.try_get(5)?,
        placed_by: r.try_get(6)?,
        lifted_at: r.try_get(7)?,
        lifted_by: r.try_get(8)?,
    })
}

fn rows(rows: Vec<Row>) -> Result<Vec<HoldRow>, StoreError> {
    Ok(rows
        .iter()
        .map(row_from)
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?)
}

pub fn place(c: &PgConn, hold: &HoldRow) -> Result<bool, StoreError> {
    let n = c.execute(
        "INSERT INTO legal_holds (hold_id, guest_id, reason, ticket, until, placed_at, placed_by, lifted_at, lifted_by)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM guests WHERE guest_id = $2)
         ON CONFLICT (hold_id) DO NOTHING",
        &[
            &hold.hold_id,
            &hold.guest_id,
            &hold.reason,
            &hold.ticket,
            &hold.until,
            &hold.placed_at,
            &hold.placed_by,
            &hold.lifted_at,
            &hold.lifted_by,
        ],
    )?;
    Ok(n > 0)
}

pub fn list(c: &PgConn, guest_id: &str) -> Result<Vec<HoldRow>, StoreError> {
    rows(c.query(
        "SELECT hold_id, guest_id, reason, ticket, until, placed_at, placed_by, lifted_at, lifted_by
         FROM legal_holds WHERE guest_id = $1 ORDER BY placed_at COLLATE \"C\", hold_id COLLATE \"C\"",
        &[&guest_id],
    )?)
}

pub fn active(c: &PgConn, guest_id: &str, today: &str) -> Result<Vec<HoldRow>, StoreError> {
    rows(c.query(
        "SELECT hold_id, guest_id, reason, ticket, until, placed_at, placed_by, lifted_at, lifted_by
         FROM legal_holds WHERE guest_id = $1 AND lifted_at IS NULL
           AND (until IS NULL OR until >= $2)
         ORDER BY placed_at COLLATE \"C\", hold_id COLLATE \"C\"",
        &[&guest_id, &today],
    )?)
}

pub fn lift(
    c: &PgConn,
    guest_id: &str,
    hold_id: &str,
    now: &str,
    by: &str,
) -> Result<Option<HoldRow>, StoreError> {
    c.execute(
        "UPDATE legal_holds SET lifted_at = $3, lifted_by = $4
         WHERE guest_id = $1 AND hold_id = $2 AND lifted_at IS NULL",
        &[&guest_id, &hold_id, &now, &by],
    )?;
    let row = c.query_opt(
        "SELECT hold_id, guest_id, reason, ticket, until, placed_at, placed_by, lifted_at, lifted_by
         FROM legal_holds WHERE guest_id = $1 AND hold_id = $2",
        &[&guest_id, &hold_id],
    )?;
    Ok(row.as_ref().map(row_from).transpose()?)
}

pub fn replay_lift(c: &PgConn, hold_id: &str, at: &str, by: &str) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE legal_holds SET lifted_at = $2, lifted_by = $3 WHERE hold_id = $1 AND lifted_at IS NULL",
        &[&hold_id, &at, &by],
    )?;
    Ok(n > 0)
}
