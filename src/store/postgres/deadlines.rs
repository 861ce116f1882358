//! PostgreSQL: the DSR deadline operations of the seam (the same names and meanings as
//! `store/sqlite/deadlines.rs`; see that file's docs).

use crate::store::rows::DsrWatch;
use crate::store::StoreError;

use super::conn::PgConn;

pub fn set_deadlines(
    conn: &PgConn,
    request_id: &str,
    due_at: &str,
    deadlines: &str,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE dsr_requests SET due_at = $2, deadlines = $3 WHERE request_id = $1
           AND (status = 'received' OR (status = 'pending_verification'
             AND request_id IN (SELECT request_id FROM correction_requests)))",
        &[&request_id, &due_at, &deadlines],
    )?;
    Ok(n == 1)
}

pub fn dsr_watch(conn: &PgConn, limit: usize) -> Result<Vec<DsrWatch>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn.query(
        "SELECT request_id, kind, received_at, due_at, deadlines,
                escalated_at IS NOT NULL, overdue_alerted_at IS NOT NULL
         FROM dsr_requests
         WHERE (status = 'received' OR (status = 'pending_verification'
             AND request_id IN (SELECT request_id FROM correction_requests)))
           AND (escalated_at IS NULL OR overdue_alerted_at IS NULL)
         ORDER BY due_at COLLATE \"C\", request_id COLLATE \"C\" LIMIT $1",
        &[&limit],
    )?;
    rows.iter()
        .map(|r| {
            Ok(DsrWatch {
                request_id: r.try_get(0)?,
                kind: r.try_get(1)?,
                received_at: r.try_get(2)?,
                due_at: r.try_get(3)?,
                deadlines: r.try_get(4)?,
                escalated: r.try_get(5)?,
                overdue_alerted: r.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(StoreError::from)
}

pub fn mark_dsr_alert(
    conn: &PgConn,
    request_id: &str,
    alert: &str,
    now: &str,
) -> Result<bool, StoreError> {
    let n = if alert == "overdue" {
        conn.execute(
            "UPDATE dsr_requests SET overdue_alerted_at = $2 WHERE request_id = $1 AND overdue_alerted_at IS NULL",
            &[&request_id, &now],
        )?
    } else {
        conn.execute(
            "UPDATE dsr_requests SET escalated_at = $2 WHERE request_id = $1 AND escalated_at IS NULL",
            &[&request_id, &now],
        )?
    };
    Ok(n == 1)
}
