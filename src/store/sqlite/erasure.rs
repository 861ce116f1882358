//! SQL for retention and erasure: the facts a retention decision needs (names and dates, no
//! ciphertext), deletion of fields and stays, crypto-shredding a whole guest, and the
//! data-subject request table.

use rusqlite::{params, Connection, OptionalExtension};

use super::{DsrRow, GuestStatus, RetentionFacts, StoreError, PLAUSIBLE_HORIZON_DAYS};
use crate::crypto::WrappedDek;
use crate::policy::{Action, Permit};
use crate::store::rows::AnonymizedStay;

fn ensure(permit: &Permit) -> Result<(), StoreError> {
    match permit.action() {
        Action::GuestErase | Action::AdminRetention => Ok(()),
        other => Err(StoreError::Other(format!(
            "permit for `{}` cannot erase",
            other.as_str()
        ))),
    }
}

pub fn retention_facts(
    conn: &Connection,
    guest_id: &str,
) -> Result<Option<RetentionFacts>, StoreError> {
    let head = conn
        .prepare_cached(&format!(
            "SELECT status, created_at, last_activity_at, \
             min(last_checkout, date(substr(last_activity_at, 1, 10), '+{PLAUSIBLE_HORIZON_DAYS} days')) \
             FROM guests WHERE guest_id = ?1"
        ))?
        .query_row([guest_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?))
        })
        .optional()?;
    let Some((status, created_at, last_activity_at, last_checkout)) = head else {
        return Ok(None);
    };
    let fields = conn
        .prepare_cached("SELECT field FROM guest_fields WHERE guest_id = ?1 ORDER BY field")?
        .query_map([guest_id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let stays = conn
        .prepare_cached(
            &format!("SELECT stay_id, min(check_out, date(substr(created_at, 1, 10), '+{PLAUSIBLE_HORIZON_DAYS} days')) \
             FROM stays WHERE guest_id = ?1 ORDER BY check_out"),
        )?
        .query_map([guest_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let consents = conn
        .prepare_cached("SELECT purpose, status, withdrawn_at FROM consents WHERE guest_id = ?1")?
        .query_map([guest_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let status = match status.as_str() {
        "active" => GuestStatus::Active,
        "restricted" => GuestStatus::Restricted,
        _ => GuestStatus::Erased,
    };
    Ok(Some(RetentionFacts {
        guest_id: guest_id.to_string(),
        status,
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
    conn: &Connection,
    cursor: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let ids = conn
        .prepare_cached(
            "SELECT guest_id FROM guests WHERE guest_id > ?1 ORDER BY guest_id LIMIT ?2",
        )?
        .query_map(params![cursor, limit as i64], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

/// Deletes field values and their blind-index entries (`secure_delete` overwrites them).
pub fn erase_fields(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    fields: &[String],
) -> Result<(), StoreError> {
    ensure(permit)?;
    for f in fields {
        conn.prepare_cached("DELETE FROM guest_fields WHERE guest_id = ?1 AND field = ?2")?
            .execute(params![guest_id, f])?;
        // The registered value a correction replaced goes with its field (same class).
        conn.prepare_cached("DELETE FROM guest_field_history WHERE guest_id = ?1 AND field = ?2")?
            .execute(params![guest_id, f])?;
        conn.prepare_cached("DELETE FROM blind_index WHERE guest_id = ?1 AND field = ?2")?
            .execute(params![guest_id, f])?;
    }
    Ok(())
}

pub fn erase_stays(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    stay_ids: &[String],
) -> Result<(), StoreError> {
    ensure(permit)?;
    for id in stay_ids {
        conn.prepare_cached("DELETE FROM stays WHERE guest_id = ?1 AND stay_id = ?2")?
            .execute(params![guest_id, id])?;
    }
    Ok(())
}

pub fn set_status(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    status: GuestStatus,
) -> Result<(), StoreError> {
    ensure(permit)?;
    conn.prepare_cached("UPDATE guests SET status = ?2 WHERE guest_id = ?1")?
        .execute(params![guest_id, status.as_str()])?;
    Ok(())
}

/// Crypto-shreds a guest: the wrapped DEK, every ciphertext, index entry, stay and consent
/// row, and the guest row itself. Only the audit trail still names the opaque id.
///
/// Every table that holds a guest's rows references `guests` with `ON DELETE CASCADE`
/// (`consent_events`, which has no foreign key, aside), so deleting the guest row takes them
/// all, in one statement rather than one per table: each SQLite DELETE on a table with a
/// foreign key builds and drops a temporary table, and the per-table deletes on top of the
/// cascade cost a quarter of the writer's time per erasure (issue 14). A connection without
/// `foreign_keys` (none of the vault's own) gets the explicit deletes instead.
pub fn shred_guest(conn: &Connection, permit: &Permit, guest_id: &str) -> Result<(), StoreError> {
    ensure(permit)?;
    conn.prepare_cached("DELETE FROM consent_events WHERE guest_id = ?1")?
        .execute([guest_id])?;
    let cascades: bool = conn
        .prepare_cached("PRAGMA foreign_keys")?
        .query_row([], |r| r.get(0))?;
    if !cascades {
        for table in GUEST_TABLES {
            conn.prepare_cached(&format!("DELETE FROM {table} WHERE guest_id = ?1"))?
                .execute([guest_id])?;
        }
    }
    conn.prepare_cached("DELETE FROM guests WHERE guest_id = ?1")?
        .execute([guest_id])?;
    Ok(())
}

/// The tables whose rows reference `guests (guest_id) ON DELETE CASCADE` (a test checks the
/// list against the schema).
const GUEST_TABLES: [&str; 11] = [
    "legal_holds",
    "guest_field_history",
    "correction_requests",
    "guest_fields",
    "blind_index",
    "stays",
    "consents",
    "consent_refusals",
    "guest_keys",
    "retention_stages",
    "pseudonymized_fields",
];

pub fn insert_dsr(conn: &Connection, subject: &[u8], row: &DsrRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO dsr_requests (request_id, subject, kind, status, received_at, completed_at, due_at, receipt, deadlines)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![row.request_id, subject, row.kind, row.status, row.received_at, row.completed_at, row.due_at, row.receipt, row.deadlines])?;
    Ok(())
}

fn dsr_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<DsrRow> {
    Ok(DsrRow {
        request_id: r.get(0)?,
        kind: r.get(1)?,
        status: r.get(2)?,
        received_at: r.get(3)?,
        completed_at: r.get(4)?,
        due_at: r.get(5)?,
        receipt: r.get(6)?,
        deadlines: r.get(7)?,
    })
}

const DSR_COLUMNS: &str =
    "request_id, kind, status, received_at, completed_at, due_at, receipt, deadlines";

/// A request and its subject digest.
pub fn get_dsr(
    conn: &Connection,
    request_id: &str,
) -> Result<Option<(DsrRow, Vec<u8>)>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DSR_COLUMNS}, subject FROM dsr_requests WHERE request_id = ?1"
        ))?
        .query_row([request_id], |r| Ok((dsr_from(r)?, r.get(8)?)))
        .optional()?)
}

/// The subject's latest erasure request.
pub fn latest_erasure(conn: &Connection, subject: &[u8]) -> Result<Option<DsrRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DSR_COLUMNS} FROM dsr_requests WHERE subject = ?1 AND kind = 'erasure' ORDER BY received_at DESC LIMIT 1"
        ))?
        .query_row([subject], dsr_from)
        .optional()?)
}

/// Requests not yet answered (`received`, or a correction `pending_verification` whose guest
/// still exists) whose due date is before `today` (ISO dates compare
/// as text). A `partially_completed` erasure was answered: what it keeps, the law requires.
pub fn overdue_dsr(conn: &Connection, today: &str) -> Result<Vec<DsrRow>, StoreError> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {DSR_COLUMNS} FROM dsr_requests WHERE due_at < ?1 AND (status = 'received'
               OR (status = 'pending_verification' AND request_id IN (SELECT request_id FROM correction_requests)))
             ORDER BY due_at LIMIT 1000"
        ))?
        .query_map([today], dsr_from)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Requests not yet answered (`received`, or a correction `pending_verification` whose guest
/// still exists), earliest due first (the console's queue, overdue or not).
pub fn open_dsr(conn: &Connection, limit: usize) -> Result<Vec<DsrRow>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {DSR_COLUMNS} FROM dsr_requests WHERE status = 'received'
               OR (status = 'pending_verification' AND request_id IN (SELECT request_id FROM correction_requests))
             ORDER BY due_at, request_id LIMIT ?1"
        ))?
        .query_map([limit], dsr_from)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The newest requests of `kind`, newest first (the console's erasure receipts).
pub fn recent_dsr(conn: &Connection, kind: &str, limit: usize) -> Result<Vec<DsrRow>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {DSR_COLUMNS} FROM dsr_requests WHERE kind = ?1
             ORDER BY received_at DESC, request_id DESC LIMIT ?2"
        ))?
        .query_map(params![kind, limit], dsr_from)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The subject's requests, newest first.
pub fn dsr_of_subject(conn: &Connection, subject: &[u8]) -> Result<Vec<DsrRow>, StoreError> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {DSR_COLUMNS} FROM dsr_requests WHERE subject = ?1
             ORDER BY received_at DESC, request_id DESC LIMIT 1000"
        ))?
        .query_map([subject], dsr_from)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Marks the subject's `received` requests of `kind` completed at `now` with `receipt` (an
/// access request answered by an export); returns how many.
pub fn complete_received(
    conn: &Connection,
    subject: &[u8],
    kind: &str,
    now: &str,
    receipt: &str,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE dsr_requests SET status = 'completed', completed_at = ?3, receipt = ?4
             WHERE subject = ?1 AND kind = ?2 AND status = 'received'",
        )?
        .execute(params![subject, kind, now, receipt])?)
}

/// Marks the subject's partially completed erasure requests completed (the sweeper removed
/// the rest when its retention period ended) and rewrites their receipt.
pub fn complete_erasures(
    conn: &Connection,
    subject: &[u8],
    now: &str,
    receipt_fn: impl Fn(&str) -> String,
) -> Result<(), StoreError> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached("SELECT request_id, receipt FROM dsr_requests WHERE subject = ?1 AND status = 'partially_completed'")?
        .query_map([subject], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, receipt) in rows {
        conn.prepare_cached("UPDATE dsr_requests SET status = 'completed', completed_at = ?2, receipt = ?3 WHERE request_id = ?1")?
            .execute(params![id, now, receipt_fn(&receipt)])?;
    }
    Ok(())
}

/// The guest's data key and the ciphertext of `stay_ids`, for anonymizing them (the retention
/// sweeper and erasure only). `None` if the guest has no key (already shredded).
pub fn stays_to_anonymize(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    stay_ids: &[String],
) -> Result<Option<crate::store::rows::SealedStays>, StoreError> {
    ensure(permit)?;
    let key = conn
        .prepare_cached("SELECT kek_version, wrapped_dek FROM guest_keys WHERE guest_id = ?1")?
        .query_row([guest_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .optional()?;
    let Some((version, wrapped)) = key else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for id in stay_ids {
        let ct: Option<Vec<u8>> = conn
            .prepare_cached("SELECT ciphertext FROM stays WHERE guest_id = ?1 AND stay_id = ?2")?
            .query_row(params![guest_id, id], |r| r.get(0))
            .optional()?;
        if let Some(ct) = ct {
            out.push((id.clone(), ct));
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

/// Stores an anonymized stay under a random id, linked to nobody.
pub fn insert_anonymized_stay(
    conn: &Connection,
    permit: &Permit,
    stay: &AnonymizedStay,
) -> Result<(), StoreError> {
    ensure(permit)?;
    conn.prepare_cached(
        "INSERT INTO anonymized_stays (id, check_in, check_out, amount, currency) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        uuid::Uuid::new_v4().hyphenated().to_string(),
        stay.check_in,
        stay.check_out,
        stay.amount,
        stay.currency
    ])?;
    Ok(())
}

/// Rewrites the receipt (and status) of an erasure request the sweeper finished.
pub fn rewrite_receipt(
    conn: &Connection,
    request_id: &str,
    status: &str,
    now: &str,
    receipt: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE dsr_requests SET status = ?2, completed_at = ?3, receipt = ?4 WHERE request_id = ?1",
    )?
    .execute(params![request_id, status, now, receipt])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(&dir.path().join("e.db"), "full", "fp").unwrap();
        (dir, conn)
    }

    /// Every table holding a guest's rows, other than the audit trail and `consent_events`.
    fn tables_with_guest_id(c: &Connection) -> Vec<String> {
        let names: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        names
            .into_iter()
            .filter(|t| {
                let has: i64 = c
                    .query_row(
                        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = 'guest_id'",
                        [t],
                        |r| r.get(0),
                    )
                    .unwrap();
                has == 1 && !["guests", "audit_events", "consent_events"].contains(&t.as_str())
            })
            .collect()
    }

    /// The one-statement shred relies on the schema: every such table cascades from `guests`,
    /// and the fallback list names exactly those tables (REQ-24, crypto-shredding).
    #[test]
    fn every_table_with_guest_rows_cascades_from_guests_and_is_in_the_fallback_list() {
        let (_d, c) = db();
        let tables = tables_with_guest_id(&c);
        for t in &tables {
            let cascade: i64 = c
                .query_row(
                    "SELECT count(*) FROM pragma_foreign_key_list(?1)
                     WHERE \"table\" = 'guests' AND \"from\" = 'guest_id' AND on_delete = 'CASCADE'",
                    [t],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(cascade, 1, "{t} must reference guests ON DELETE CASCADE");
        }
        let mut listed: Vec<String> = GUEST_TABLES.iter().map(|t| t.to_string()).collect();
        listed.sort();
        assert_eq!(listed, tables);
    }

    fn seed(c: &Connection, gid: &str) {
        c.execute(
            "INSERT INTO guests (guest_id, created_at, status, last_activity_at)
             VALUES (?1, '2026-01-01T00:00:00Z', 'active', '2026-01-01T00:00:00Z')",
            [gid],
        )
        .unwrap();
        c.execute(
            "INSERT INTO guest_keys (guest_id, kek_version, wrapped_dek) VALUES (?1, 1, x'0102')",
            [gid],
        )
        .unwrap();
        for f in ["full_name", "mobile"] {
            c.execute(
                "INSERT INTO guest_fields (guest_id, field, ciphertext, updated_at)
                 VALUES (?1, ?2, x'0a0b', 'now')",
                params![gid, f],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO blind_index (field, digest, guest_id) VALUES ('mobile', x'ff', ?1)",
            [gid],
        )
        .unwrap();
        c.execute(
            "INSERT INTO consent_events (guest_id, purpose, status, separate, actor, at)
             VALUES (?1, 'marketing', 'granted', 0, 'pms', 'now')",
            [gid],
        )
        .unwrap();
    }

    fn rows_of(c: &Connection, gid: &str) -> i64 {
        let mut tables = tables_with_guest_id(c);
        tables.extend(["guests".to_string(), "consent_events".to_string()]);
        tables
            .iter()
            .map(|t| {
                c.query_row(
                    &format!("SELECT count(*) FROM {t} WHERE guest_id = ?1"),
                    [gid],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
            })
            .sum()
    }

    #[test]
    fn a_shred_leaves_no_row_of_the_guest_with_or_without_foreign_keys() {
        let (_d, c) = db();
        let permit = Permit::for_tests(Action::GuestErase, "erasure");
        for (gid, fk) in [("g-on", "ON"), ("g-off", "OFF")] {
            c.pragma_update(None, "foreign_keys", fk).unwrap();
            seed(&c, gid);
            seed(&c, &format!("{gid}-other"));
            assert_eq!(rows_of(&c, gid), 6);
            shred_guest(&c, &permit, gid).unwrap();
            assert_eq!(rows_of(&c, gid), 0, "foreign_keys={fk}");
            assert_eq!(
                rows_of(&c, &format!("{gid}-other")),
                6,
                "only the guest goes"
            );
        }
        let read = Permit::for_tests(Action::GuestRead, "erasure");
        shred_guest(&c, &read, "g-on-other").unwrap_err();
    }
}
