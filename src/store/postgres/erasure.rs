//! PostgreSQL: the `erasure` operations of the seam (the same names and meanings as
//! `store/sqlite/erasure.rs`; see that file's docs): retention facts, deletion of fields and
//! stays, crypto-shredding a whole guest, and the data-subject request table.
//!
//! Text is ordered and compared `COLLATE "C"` (byte order), as SQLite's `BINARY` does, so
//! lists come back in the same order whatever collation the database was created with.
//! The plausible check-out bound is computed here rather than in SQL: SQLite's
//! `min(x, date(...))` yields NULL when either side is NULL, PostgreSQL's `LEAST` ignores
//! NULLs, and PostgreSQL's date input and output depend on `DateStyle`.

use tokio_postgres::Row;

use crate::crypto::WrappedDek;
use crate::policy::{Action, Permit};
use crate::store::rows::AnonymizedStay;
use crate::store::{DsrRow, GuestStatus, RetentionFacts, StoreError, PLAUSIBLE_HORIZON_DAYS};

use super::conn::PgConn;

fn ensure(permit: &Permit) -> Result<(), StoreError> {
    match permit.action() {
        Action::GuestErase | Action::AdminRetention => Ok(()),
        other => Err(StoreError::Other(format!(
            "permit for `{}` cannot erase",
            other.as_str()
        ))),
    }
}

/// SQLite's `date(substr(ts, 1, 10), '+<days> days')` for the dates the vault writes
/// (`YYYY-MM-DD`, year 0000–9999, month 01–12, day 01–31, a day past the month's end
/// rolling over into the next month as SQLite's does); `None` (SQLite's NULL) for any other
/// text and for a result after 9999-12-31. SQLite also reads a time of day alone, a Julian
/// day number and `now` there; the vault never stores those in these columns.
pub(super) fn sqlite_date_plus_days(ts: &str, days: u32) -> Option<String> {
    let head: String = ts.chars().take(10).collect();
    let b = head.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r.clone())?.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let first = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, 1).ok()?;
    let date = first.checked_add(time::Duration::days(i64::from(day - 1) + i64::from(days)))?;
    if date.year() > 9999 {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    ))
}

/// SQLite's two-argument `min` on text: NULL if either is NULL, else the lesser in byte order.
pub(super) fn sqlite_min(a: Option<String>, b: Option<String>) -> Option<String> {
    Some(std::cmp::min(a?, b?))
}

pub fn retention_facts(
    conn: &PgConn,
    guest_id: &str,
) -> Result<Option<RetentionFacts>, StoreError> {
    let Some(head) = conn.query_opt(
        "SELECT status, created_at, last_activity_at, last_checkout FROM guests WHERE guest_id = $1",
        &[&guest_id],
    )?
    else {
        return Ok(None);
    };
    let status: String = head.try_get(0)?;
    let created_at: String = head.try_get(1)?;
    let last_activity_at: String = head.try_get(2)?;
    let last_checkout = sqlite_min(
        head.try_get(3)?,
        sqlite_date_plus_days(&last_activity_at, PLAUSIBLE_HORIZON_DAYS),
    );
    let fields = conn
        .query(
            "SELECT field FROM guest_fields WHERE guest_id = $1 ORDER BY field COLLATE \"C\"",
            &[&guest_id],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    // SQLite sorts by check-out and leaves ties in stay_id order (its index order).
    let mut stays = Vec::new();
    for r in conn.query(
        "SELECT stay_id, check_out, created_at FROM stays WHERE guest_id = $1
         ORDER BY check_out COLLATE \"C\", stay_id COLLATE \"C\"",
        &[&guest_id],
    )? {
        let stay_id: String = r.try_get(0)?;
        let created_at: String = r.try_get(2)?;
        let bound = sqlite_date_plus_days(&created_at, PLAUSIBLE_HORIZON_DAYS);
        // SQLite fails reading the NULL its `min` gives for an unreadable `created_at`.
        let check_out = sqlite_min(Some(r.try_get(1)?), bound)
            .ok_or_else(|| StoreError::Other("a stay's `created_at` is not a date".to_string()))?;
        stays.push((stay_id, check_out));
    }
    let consents = conn
        .query(
            "SELECT purpose, status, withdrawn_at FROM consents WHERE guest_id = $1
             ORDER BY purpose COLLATE \"C\"",
            &[&guest_id],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Some(RetentionFacts {
        guest_id: guest_id.to_string(),
        status: GuestStatus::parse(&status),
        created_at,
        last_activity_at,
        last_checkout,
        fields,
        stays,
        consents,
    }))
}

/// Guest ids after `cursor`, in order, for batched sweeps.
pub fn guest_ids_after(
    conn: &PgConn,
    cursor: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    // SQLite reads a limit past i64::MAX (negative once cast) as no limit; so does LIMIT NULL.
    let limit = i64::try_from(limit).ok();
    let ids = conn
        .query(
            "SELECT guest_id FROM guests WHERE guest_id COLLATE \"C\" > $1
             ORDER BY guest_id COLLATE \"C\" LIMIT $2",
            &[&cursor, &limit],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

/// Deletes field values, the registered values corrections replaced, and their blind-index
/// entries. The dead tuples go at the next `VACUUM` (scheduled by the writer after commit).
pub fn erase_fields(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    fields: &[String],
) -> Result<(), StoreError> {
    ensure(permit)?;
    if fields.is_empty() {
        return Ok(());
    }
    conn.execute(
        "DELETE FROM guest_fields WHERE guest_id = $1 AND field = ANY($2)",
        &[&guest_id, &fields],
    )?;
    // The registered value a correction replaced goes with its field (same class).
    conn.execute(
        "DELETE FROM guest_field_history WHERE guest_id = $1 AND field = ANY($2)",
        &[&guest_id, &fields],
    )?;
    conn.execute(
        "DELETE FROM blind_index WHERE guest_id = $1 AND field = ANY($2)",
        &[&guest_id, &fields],
    )?;
    Ok(())
}

pub fn erase_stays(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    stay_ids: &[String],
) -> Result<(), StoreError> {
    ensure(permit)?;
    if stay_ids.is_empty() {
        return Ok(());
    }
    conn.execute(
        "DELETE FROM stays WHERE guest_id = $1 AND stay_id = ANY($2)",
        &[&guest_id, &stay_ids],
    )?;
    Ok(())
}

pub fn set_status(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    status: GuestStatus,
) -> Result<(), StoreError> {
    ensure(permit)?;
    conn.execute(
        "UPDATE guests SET status = $2 WHERE guest_id = $1",
        &[&guest_id, &status.as_str()],
    )?;
    Ok(())
}

/// Every row that names a guest, in SQLite's order: the guest row last.
const SHRED: [&str; 11] = [
    "DELETE FROM legal_holds WHERE guest_id = $1",
    "DELETE FROM guest_field_history WHERE guest_id = $1",
    "DELETE FROM correction_requests WHERE guest_id = $1",
    "DELETE FROM guest_fields WHERE guest_id = $1",
    "DELETE FROM blind_index WHERE guest_id = $1",
    "DELETE FROM stays WHERE guest_id = $1",
    "DELETE FROM consents WHERE guest_id = $1",
    "DELETE FROM consent_events WHERE guest_id = $1",
    "DELETE FROM consent_refusals WHERE guest_id = $1",
    "DELETE FROM guest_keys WHERE guest_id = $1",
    "DELETE FROM guests WHERE guest_id = $1",
];

/// Crypto-shreds a guest: the wrapped DEK, every ciphertext, index entry, stay and consent
/// row, and the guest row itself. Only the audit trail still names the opaque id. The dead
/// tuples go at the next `VACUUM` (scheduled by the writer after commit).
pub fn shred_guest(conn: &PgConn, permit: &Permit, guest_id: &str) -> Result<(), StoreError> {
    ensure(permit)?;
    for sql in SHRED {
        conn.execute(sql, &[&guest_id])?;
    }
    Ok(())
}

pub fn insert_dsr(conn: &PgConn, subject: &[u8], row: &DsrRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO dsr_requests (request_id, subject, kind, status, received_at, completed_at, due_at, receipt, deadlines)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &row.request_id,
            &subject,
            &row.kind,
            &row.status,
            &row.received_at,
            &row.completed_at,
            &row.due_at,
            &row.receipt,
            &row.deadlines,
        ],
    )?;
    Ok(())
}

fn dsr_from(r: &Row) -> Result<DsrRow, tokio_postgres::Error> {
    Ok(DsrRow {
        request_id: r.try_get(0)?,
        kind: r.try_get(1)?,
        status: r.try_get(2)?,
        received_at: r.try_get(3)?,
        completed_at: r.try_get(4)?,
        due_at: r.try_get(5)?,
        receipt: r.try_get(6)?,
        deadlines: r.try_get(7)?,
    })
}

/// A request and its subject digest.
pub fn get_dsr(conn: &PgConn, request_id: &str) -> Result<Option<(DsrRow, Vec<u8>)>, StoreError> {
    let Some(r) = conn.query_opt(
        "SELECT request_id, kind, status, received_at, completed_at, due_at, receipt, deadlines, subject
         FROM dsr_requests WHERE request_id = $1",
        &[&request_id],
    )?
    else {
        return Ok(None);
    };
    Ok(Some((dsr_from(&r)?, r.try_get(8)?)))
}

/// The subject's latest erasure request. Two received in the same microsecond (a frozen
/// clock) come back by request id here; SQLite gives the one inserted last (this table has
/// no insertion order in PostgreSQL).
pub fn latest_erasure(conn: &PgConn, subject: &[u8]) -> Result<Option<DsrRow>, StoreError> {
    let row = conn.query_opt(
        "SELECT request_id, kind, status, received_at, completed_at, due_at, receipt, deadlines
         FROM dsr_requests WHERE subject = $1 AND kind = 'erasure'
         ORDER BY received_at COLLATE \"C\" DESC, request_id COLLATE \"C\" DESC LIMIT 1",
        &[&subject],
    )?;
    Ok(row.as_ref().map(dsr_from).transpose()?)
}

/// Requests not yet answered (`received`, or a correction `pending_verification` whose guest
/// still exists) whose due date is before `today` (ISO dates compare as text). A
/// `partially_completed` erasure was answered: what it keeps, the law requires. Requests due
/// the same day come in request id order.
pub fn overdue_dsr(conn: &PgConn, today: &str) -> Result<Vec<DsrRow>, StoreError> {
    let rows = conn
        .query(
            "SELECT request_id, kind, status, received_at, completed_at, due_at, receipt, deadlines
             FROM dsr_requests WHERE due_at COLLATE \"C\" < $1 AND (status = 'received'
               OR (status = 'pending_verification' AND request_id IN (SELECT request_id FROM correction_requests)))
             ORDER BY due_at COLLATE \"C\", request_id COLLATE \"C\" LIMIT 1000",
            &[&today],
        )?
        .iter()
        .map(dsr_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Requests not yet answered (`received`, or a correction `pending_verification` whose guest
/// still exists), earliest due first (the console's queue, overdue or not).
pub fn open_dsr(conn: &PgConn, limit: usize) -> Result<Vec<DsrRow>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .query(
            "SELECT request_id, kind, status, received_at, completed_at, due_at, receipt, deadlines
             FROM dsr_requests WHERE status = 'received'
               OR (status = 'pending_verification' AND request_id IN (SELECT request_id FROM correction_requests))
             ORDER BY due_at COLLATE \"C\", request_id COLLATE \"C\" LIMIT $1",
            &[&limit],
        )?
        .iter()
        .map(dsr_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The newest requests of `kind`, newest first (the console's erasure receipts).
pub fn recent_dsr(conn: &PgConn, kind: &str, limit: usize) -> Result<Vec<DsrRow>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .query(
            "SELECT request_id, kind, status, received_at, completed_at, due_at, receipt, deadlines
             FROM dsr_requests WHERE kind = $1
             ORDER BY received_at COLLATE \"C\" DESC, request_id COLLATE \"C\" DESC LIMIT $2",
            &[&kind, &limit],
        )?
        .iter()
        .map(dsr_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The subject's requests, newest first.
pub fn dsr_of_subject(conn: &PgConn, subject: &[u8]) -> Result<Vec<DsrRow>, StoreError> {
    let rows = conn
        .query(
            "SELECT request_id, kind, status, received_at, completed_at, due_at, receipt, deadlines
             FROM dsr_requests WHERE subject = $1
             ORDER BY received_at COLLATE \"C\" DESC, request_id COLLATE \"C\" DESC LIMIT 1000",
            &[&subject],
        )?
        .iter()
        .map(dsr_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Marks the subject's `received` requests of `kind` completed at `now` with `receipt` (an
/// access request answered by an export); returns how many.
pub fn complete_received(
    conn: &PgConn,
    subject: &[u8],
    kind: &str,
    now: &str,
    receipt: &str,
) -> Result<usize, StoreError> {
    let n = conn.execute(
        "UPDATE dsr_requests SET status = 'completed', completed_at = $3, receipt = $4
         WHERE subject = $1 AND kind = $2 AND status = 'received'",
        &[&subject, &kind, &now, &receipt],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Marks the subject's partially completed erasure requests completed (the sweeper removed
/// the rest when its retention period ended) and rewrites their receipt.
pub fn complete_erasures(
    conn: &PgConn,
    subject: &[u8],
    now: &str,
    receipt_fn: impl Fn(&str) -> String,
) -> Result<(), StoreError> {
    let rows = conn.query(
        "SELECT request_id, receipt FROM dsr_requests
         WHERE subject = $1 AND status = 'partially_completed' ORDER BY request_id COLLATE \"C\"",
        &[&subject],
    )?;
    for r in rows {
        let id: String = r.try_get(0)?;
        let receipt: String = r.try_get(1)?;
        conn.execute(
            "UPDATE dsr_requests SET status = 'completed', completed_at = $2, receipt = $3
             WHERE request_id = $1",
            &[&id, &now, &receipt_fn(&receipt)],
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "erasure_tests.rs"]
pub(super) mod tests;

pub fn stays_to_anonymize(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    stay_ids: &[String],
) -> Result<Option<crate::store::rows::SealedStays>, StoreError> {
    ensure(permit)?;
    let Some(key) = conn.query_opt(
        "SELECT kek_version, wrapped_dek FROM guest_keys WHERE guest_id = $1",
        &[&guest_id],
    )?
    else {
        return Ok(None);
    };
    let version: i64 = key.try_get(0)?;
    let wrapped: Vec<u8> = key.try_get(1)?;
    let mut out = Vec::new();
    if !stay_ids.is_empty() {
        for r in conn.query(
            "SELECT stay_id, ciphertext FROM stays WHERE guest_id = $1 AND stay_id = ANY($2)
             ORDER BY stay_id COLLATE \"C\"",
            &[&guest_id, &stay_ids],
        )? {
            out.push((r.try_get(0)?, r.try_get(1)?));
        }
    }
    let version =
        u32::try_from(version).map_err(|_| StoreError::Other("bad kek_version".into()))?;
    Ok(Some((
        WrappedDek {
            kek_version: version,
            bytes: wrapped,
        },
        out,
    )))
}

pub fn insert_anonymized_stay(
    conn: &PgConn,
    permit: &Permit,
    stay: &AnonymizedStay,
) -> Result<(), StoreError> {
    ensure(permit)?;
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    conn.execute(
        "INSERT INTO anonymized_stays (id, check_in, check_out, amount, currency) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &stay.check_in, &stay.check_out, &stay.amount, &stay.currency],
    )?;
    Ok(())
}

pub fn rewrite_receipt(
    conn: &PgConn,
    request_id: &str,
    status: &str,
    now: &str,
    receipt: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE dsr_requests SET status = $2, completed_at = $3, receipt = $4 WHERE request_id = $1",
        &[&request_id, &status, &now, &receipt],
    )?;
    Ok(())
}
