//! SQLite half of [`crate::store::charts`].

use rusqlite::Connection;

use crate::store::charts::{DsrDates, HourCount, RoleCount, DSR_LIMIT};
use crate::store::StoreError;

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub fn audit_hourly(conn: &Connection, since: &str) -> Result<Vec<HourCount>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT substr(ts, 1, 13), outcome, count(*) FROM audit_events
         WHERE ts >= ?1 GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([since], |r| {
        Ok(HourCount {
            hour: r.get(0)?,
            outcome: r.get(1)?,
            count: count(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn reveals_by_role(conn: &Connection, since: &str) -> Result<Vec<RoleCount>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT role, outcome, count(*) FROM audit_events
         WHERE ts >= ?1 AND action = 'guest.reveal' GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([since], |r| {
        Ok(RoleCount {
            role: r.get(0)?,
            outcome: r.get(1)?,
            count: count(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn dsr_dates_since(conn: &Connection, since: &str) -> Result<Vec<DsrDates>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, status, received_at, completed_at, due_at FROM dsr_requests
         WHERE received_at >= ?1 ORDER BY received_at, request_id LIMIT ?2",
    )?;
    let limit = i64::try_from(DSR_LIMIT).unwrap_or(i64::MAX);
    let rows = stmt.query_map(rusqlite::params![since, limit], |r| {
        Ok(DsrDates {
            kind: r.get(0)?,
            status: r.get(1)?,
            received_at: r.get(2)?,
            completed_at: r.get(3)?,
            due_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
