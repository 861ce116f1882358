//! SQL for the deadlines of data-subject requests (REQ-32, REQ-48): extending a request's
//! GDPR clock, and the watch that raises the 80% escalation and the overdue alert once each.
//! Dates, clock names and reason codes only.

use rusqlite::{params, Connection};

use crate::store::rows::DsrWatch;
use crate::store::StoreError;

/// The statuses of a request not yet answered (a correction's only while its guest exists).
const OPEN: &str = "(status = 'received' OR (status = 'pending_verification'
    AND request_id IN (SELECT request_id FROM correction_requests)))";

/// Sets an open request's deadlines and the due date that applies; `false` when the request
/// is unknown or no longer open.
pub fn set_deadlines(
    conn: &Connection,
    request_id: &str,
    due_at: &str,
    deadlines: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(&format!(
            "UPDATE dsr_requests SET due_at = ?2, deadlines = ?3 WHERE request_id = ?1 AND {OPEN}"
        ))?
        .execute(params![request_id, due_at, deadlines])?;
    Ok(n == 1)
}

/// Open requests whose escalation or overdue alert has not fired yet, earliest due first.
pub fn dsr_watch(conn: &Connection, limit: usize) -> Result<Vec<DsrWatch>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(&format!(
            "SELECT request_id, kind, received_at, due_at, deadlines,
                    escalated_at IS NOT NULL, overdue_alerted_at IS NOT NULL
             FROM dsr_requests
             WHERE {OPEN} AND (escalated_at IS NULL OR overdue_alerted_at IS NULL)
             ORDER BY due_at, request_id LIMIT ?1"
        ))?
        .query_map([limit], |r| {
            Ok(DsrWatch {
                request_id: r.get(0)?,
                kind: r.get(1)?,
                received_at: r.get(2)?,
                due_at: r.get(3)?,
                deadlines: r.get(4)?,
                escalated: r.get(5)?,
                overdue_alerted: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Records that the `overdue` alert (or, for any other `alert`, the escalation) fired at
/// `now`; `false` when it had already (another node, an earlier turn).
pub fn mark_dsr_alert(
    conn: &Connection,
    request_id: &str,
    alert: &str,
    now: &str,
) -> Result<bool, StoreError> {
    let sql = if alert == "overdue" {
        "UPDATE dsr_requests SET overdue_alerted_at = ?2 WHERE request_id = ?1 AND overdue_alerted_at IS NULL"
    } else {
        "UPDATE dsr_requests SET escalated_at = ?2 WHERE request_id = ?1 AND escalated_at IS NULL"
    };
    Ok(conn
        .prepare_cached(sql)?
        .execute(params![request_id, now])?
        == 1)
}
