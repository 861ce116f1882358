//! PostgreSQL half of [`crate::store::charts`].

use super::conn::PgConn;
use crate::store::charts::{DsrDates, HourCount, RoleCount, DSR_LIMIT};
use crate::store::StoreError;

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub fn audit_hourly(conn: &PgConn, since: &str) -> Result<Vec<HourCount>, StoreError> {
    conn.query(
        "SELECT substr(ts, 1, 13) AS hour, outcome, count(*) FROM audit_events
         WHERE ts >= $1 GROUP BY 1, 2 ORDER BY 1, 2",
        &[&since],
    )?
    .iter()
    .map(|r| {
        Ok(HourCount {
            hour: r.try_get(0)?,
            outcome: r.try_get(1)?,
            count: count(r.try_get(2)?),
        })
    })
    .collect()
}

pub fn reveals_by_role(conn: &PgConn, since: &str) -> Result<Vec<RoleCount>, StoreError> {
    conn.query(
        "SELECT role, outcome, count(*) FROM audit_events
         WHERE ts >= $1 AND action = 'guest.reveal' GROUP BY 1, 2 ORDER BY 1, 2",
        &[&since],
    )?
    .iter()
    .map(|r| {
        Ok(RoleCount {
            role: r.try_get(0)?,
            outcome: r.try_get(1)?,
            count: count(r.try_get(2)?),
        })
    })
    .collect()
}

pub fn dsr_dates_since(conn: &PgConn, since: &str) -> Result<Vec<DsrDates>, StoreError> {
    let limit = i64::try_from(DSR_LIMIT).unwrap_or(i64::MAX);
    conn.query(
        "SELECT kind, status, received_at, completed_at, due_at FROM dsr_requests
         WHERE received_at >= $1 ORDER BY received_at COLLATE \"C\", request_id COLLATE \"C\" LIMIT $2",
        &[&since, &limit],
    )?
    .iter()
    .map(|r| {
        Ok(DsrDates {
            kind: r.try_get(0)?,
            status: r.try_get(1)?,
            received_at: r.try_get(2)?,
            completed_at: r.try_get(3)?,
            due_at: r.try_get(4)?,
        })
    })
    .collect()
}
