//! PostgreSQL: the `corrections` operations of the seam (issue 12, REQ-30; the same names and
//! meanings as `store/sqlite/corrections.rs`): pending correction requests (proposed values as
//! ciphertext only), the registered values a correction replaced, and stay corrections.

use tokio_postgres::Row;

use crate::policy::{Action, Permit};
use crate::store::{DsrRow, PendingCorrection, StoreError};

use super::conn::PgConn;

fn ensure(permit: &Permit, allowed: &[Action]) -> Result<(), StoreError> {
    if allowed.contains(&permit.action()) {
        Ok(())
    } else {
        Err(StoreError::Other(format!(
            "permit for `{}` cannot be used here",
            permit.action().as_str()
        )))
    }
}

/// Records a correction request: its DSR row and its sealed proposal, in one transaction.
pub fn insert_correction(
    conn: &PgConn,
    permit: &Permit,
    subject: &[u8],
    row: &DsrRow,
    guest_id: &str,
    fields: &[String],
    ciphertext: &[u8],
) -> Result<(), StoreError> {
    ensure(permit, &[Action::GuestUpdate])?;
    super::erasure::insert_dsr(conn, subject, row)?;
    let names = serde_json::to_string(fields).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "INSERT INTO correction_requests (request_id, guest_id, fields, ciphertext)
         VALUES ($1, $2, $3, $4)",
        &[&row.request_id, &guest_id, &names, &ciphertext],
    )?;
    Ok(())
}

/// The pending corrections' query, followed by `$tail` (a literal: statements are cached by
/// their `&'static str`).
macro_rules! pending_sql {
    ($tail:literal) => {
        concat!(
            "SELECT d.request_id, d.kind, d.status, d.received_at, d.completed_at, ",
            "d.due_at, d.receipt, d.deadlines, c.guest_id, c.fields, c.ciphertext ",
            "FROM dsr_requests d JOIN correction_requests c ON c.request_id = d.request_id ",
            "WHERE d.status = 'pending_verification'",
            $tail
        )
    };
}

fn pending_from(r: &Row) -> Result<PendingCorrection, StoreError> {
    let fields: String = r.try_get(9)?;
    Ok(PendingCorrection {
        row: DsrRow {
            request_id: r.try_get(0)?,
            kind: r.try_get(1)?,
            status: r.try_get(2)?,
            received_at: r.try_get(3)?,
            completed_at: r.try_get(4)?,
            due_at: r.try_get(5)?,
            receipt: r.try_get(6)?,
            deadlines: r.try_get(7)?,
        },
        guest_id: r.try_get(8)?,
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        ciphertext: r.try_get(10)?,
    })
}

/// Pending correction requests, the earliest due first (at most 1000).
pub fn pending_corrections(
    conn: &PgConn,
    permit: &Permit,
) -> Result<Vec<PendingCorrection>, StoreError> {
    ensure(permit, &[Action::CorrectionDecide])?;
    conn.query(
        pending_sql!(
            " ORDER BY d.due_at COLLATE \"C\", d.received_at COLLATE \"C\", \
             d.request_id COLLATE \"C\" LIMIT 1000"
        ),
        &[],
    )?
    .iter()
    .map(pending_from)
    .collect()
}

pub fn pending_correction(
    conn: &PgConn,
    permit: &Permit,
    request_id: &str,
) -> Result<Option<PendingCorrection>, StoreError> {
    ensure(permit, &[Action::CorrectionDecide])?;
    conn.query_opt(pending_sql!(" AND d.request_id = $1"), &[&request_id])?
        .as_ref()
        .map(pending_from)
        .transpose()
}

/// Closes a pending request (`completed` or `rejected`) and deletes its proposal. Returns
/// false if it was no longer pending (decided by someone else meanwhile).
pub fn decide_correction(
    conn: &PgConn,
    permit: &Permit,
    request_id: &str,
    status: &str,
    now: &str,
    receipt: &str,
) -> Result<bool, StoreError> {
    ensure(permit, &[Action::CorrectionDecide])?;
    let changed = conn.execute(
        "UPDATE dsr_requests SET status = $2, completed_at = $3, receipt = $4
         WHERE request_id = $1 AND status = 'pending_verification'
           AND request_id IN (SELECT request_id FROM correction_requests)",
        &[&request_id, &status, &now, &receipt],
    )?;
    conn.execute(
        "DELETE FROM correction_requests WHERE request_id = $1",
        &[&request_id],
    )?;
    Ok(changed == 1)
}

/// Keeps the ciphertext a correction is about to replace as the registered value of `field`
/// (the first one only: the value registered at check-in).
pub fn keep_registered(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    field: &str,
    now: &str,
) -> Result<(), StoreError> {
    ensure(permit, &[Action::GuestUpdate, Action::CorrectionDecide])?;
    // SQLite's INSERT OR IGNORE: a value already kept wins. Only the primary key can conflict
    // (the row comes from `guest_fields`, so the guest exists and nothing is NULL).
    conn.execute(
        "INSERT INTO guest_field_history (guest_id, field, ciphertext, replaced_at)
         SELECT guest_id, field, ciphertext, $3 FROM guest_fields WHERE guest_id = $1 AND field = $2
         ON CONFLICT (guest_id, field) DO NOTHING",
        &[&guest_id, &field, &now],
    )?;
    Ok(())
}

/// The registered values (field, ciphertext) a correction replaced, by field name.
pub fn registered_values(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    ensure(
        permit,
        &[Action::GuestRead, Action::GuestExport, Action::GuestReveal],
    )?;
    conn.query(
        "SELECT field, ciphertext FROM guest_field_history WHERE guest_id = $1
         ORDER BY field COLLATE \"C\"",
        &[&guest_id],
    )?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

/// One stay's sealed document.
pub fn get_stay(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    stay_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    ensure(permit, &[Action::StayCorrect])?;
    conn.query_opt(
        "SELECT ciphertext FROM stays WHERE guest_id = $1 AND stay_id = $2",
        &[&guest_id, &stay_id],
    )?
    .map(|r| r.try_get(0))
    .transpose()
    .map_err(StoreError::from)
}

/// Replaces (`Some`) or deletes (`None`) a stay, then recomputes the guest's `last_checkout`
/// from the stays that remain: a check-out entered in error must stop anchoring retention.
/// Returns false if the stay is not the guest's.
pub fn correct_stay(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    stay_id: &str,
    replacement: Option<(&str, &[u8])>,
) -> Result<bool, StoreError> {
    ensure(permit, &[Action::StayCorrect])?;
    let changed = match replacement {
        Some((check_out, ciphertext)) => conn.execute(
            "UPDATE stays SET check_out = $3, ciphertext = $4 WHERE guest_id = $1 AND stay_id = $2",
            &[&guest_id, &stay_id, &check_out, &ciphertext],
        )?,
        None => conn.execute(
            "DELETE FROM stays WHERE guest_id = $1 AND stay_id = $2",
            &[&guest_id, &stay_id],
        )?,
    };
    conn.execute(
        "UPDATE guests
         SET last_checkout = (SELECT max(check_out COLLATE \"C\") FROM stays WHERE guest_id = $1)
         WHERE guest_id = $1",
        &[&guest_id],
    )?;
    Ok(changed == 1)
}

#[cfg(test)]
#[path = "corrections_tests.rs"]
mod tests;
