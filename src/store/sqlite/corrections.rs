//! SQL for corrections (issue 12, REQ-30): pending correction requests (proposed values as
//! ciphertext only), the registered values a correction replaced, and stay corrections.

use rusqlite::{params, Connection, OptionalExtension};

use super::{DsrRow, PendingCorrection, StoreError};
use crate::policy::{Action, Permit};

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
    conn: &Connection,
    permit: &Permit,
    subject: &[u8],
    row: &DsrRow,
    guest_id: &str,
    fields: &[String],
    ciphertext: &[u8],
) -> Result<(), StoreError> {
    ensure(permit, &[Action::GuestUpdate])?;
    super::insert_dsr(conn, subject, row)?;
    let names = serde_json::to_string(fields).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO correction_requests (request_id, guest_id, fields, ciphertext) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![row.request_id, guest_id, names, ciphertext])?;
    Ok(())
}

const PENDING_SQL: &str = "SELECT d.request_id, d.kind, d.status, d.received_at, d.completed_at, \
     d.due_at, d.receipt, d.deadlines, c.guest_id, c.fields, c.ciphertext \
     FROM dsr_requests d JOIN correction_requests c ON c.request_id = d.request_id \
     WHERE d.status = 'pending_verification'";

fn pending_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingCorrection> {
    let fields: String = r.get(9)?;
    Ok(PendingCorrection {
        row: DsrRow {
            request_id: r.get(0)?,
            kind: r.get(1)?,
            status: r.get(2)?,
            received_at: r.get(3)?,
            completed_at: r.get(4)?,
            due_at: r.get(5)?,
            receipt: r.get(6)?,
            deadlines: r.get(7)?,
        },
        guest_id: r.get(8)?,
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        ciphertext: r.get(10)?,
    })
}

/// Pending correction requests, the earliest due first (at most 1000).
pub fn pending_corrections(
    conn: &Connection,
    permit: &Permit,
) -> Result<Vec<PendingCorrection>, StoreError> {
    ensure(permit, &[Action::CorrectionDecide])?;
    let rows = conn
        .prepare_cached(&format!(
            "{PENDING_SQL} ORDER BY d.due_at, d.received_at LIMIT 1000"
        ))?
        .query_map([], pending_from)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn pending_correction(
    conn: &Connection,
    permit: &Permit,
    request_id: &str,
) -> Result<Option<PendingCorrection>, StoreError> {
    ensure(permit, &[Action::CorrectionDecide])?;
    Ok(conn
        .prepare_cached(&format!("{PENDING_SQL} AND d.request_id = ?1"))?
        .query_row([request_id], pending_from)
        .optional()?)
}

/// Closes a pending request (`completed` or `rejected`) and deletes its proposal. Returns
/// false if it was no longer pending (decided by someone else meanwhile).
pub fn decide_correction(
    conn: &Connection,
    permit: &Permit,
    request_id: &str,
    status: &str,
    now: &str,
    receipt: &str,
) -> Result<bool, StoreError> {
    ensure(permit, &[Action::CorrectionDecide])?;
    let changed = conn
        .prepare_cached(
            "UPDATE dsr_requests SET status = ?2, completed_at = ?3, receipt = ?4
             WHERE request_id = ?1 AND status = 'pending_verification'
               AND request_id IN (SELECT request_id FROM correction_requests)",
        )?
        .execute(params![request_id, status, now, receipt])?;
    conn.prepare_cached("DELETE FROM correction_requests WHERE request_id = ?1")?
        .execute([request_id])?;
    Ok(changed == 1)
}

/// Keeps the ciphertext a correction is about to replace as the registered value of `field`
/// (the first one only: the value registered at check-in).
pub fn keep_registered(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    field: &str,
    now: &str,
) -> Result<(), StoreError> {
    ensure(permit, &[Action::GuestUpdate, Action::CorrectionDecide])?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO guest_field_history (guest_id, field, ciphertext, replaced_at)
         SELECT guest_id, field, ciphertext, ?3 FROM guest_fields WHERE guest_id = ?1 AND field = ?2",
    )?
    .execute(params![guest_id, field, now])?;
    Ok(())
}

/// The registered values (field, ciphertext) a correction replaced.
pub fn registered_values(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    ensure(
        permit,
        &[Action::GuestRead, Action::GuestExport, Action::GuestReveal],
    )?;
    let rows = conn
        .prepare_cached(
            "SELECT field, ciphertext FROM guest_field_history WHERE guest_id = ?1 ORDER BY field",
        )?
        .query_map([guest_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// One stay's sealed document and its stored check-out.
pub fn get_stay(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    stay_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    ensure(permit, &[Action::StayCorrect])?;
    Ok(conn
        .prepare_cached("SELECT ciphertext FROM stays WHERE guest_id = ?1 AND stay_id = ?2")?
        .query_row([guest_id, stay_id], |r| r.get(0))
        .optional()?)
}

/// Replaces (`Some`) or deletes (`None`) a stay, then recomputes the guest's `last_checkout`
/// from the stays that remain: a check-out entered in error must stop anchoring retention.
/// Returns false if the stay is not the guest's.
pub fn correct_stay(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    stay_id: &str,
    replacement: Option<(&str, &[u8])>,
) -> Result<bool, StoreError> {
    ensure(permit, &[Action::StayCorrect])?;
    let changed = match replacement {
        Some((check_out, ciphertext)) => conn
            .prepare_cached(
                "UPDATE stays SET check_out = ?3, ciphertext = ?4 WHERE guest_id = ?1 AND stay_id = ?2",
            )?
            .execute(params![guest_id, stay_id, check_out, ciphertext])?,
        None => conn
            .prepare_cached("DELETE FROM stays WHERE guest_id = ?1 AND stay_id = ?2")?
            .execute(params![guest_id, stay_id])?,
    };
    conn.prepare_cached(
        "UPDATE guests SET last_checkout = (SELECT max(check_out) FROM stays WHERE guest_id = ?1)
         WHERE guest_id = ?1",
    )?
    .execute([guest_id])?;
    Ok(changed == 1)
}
