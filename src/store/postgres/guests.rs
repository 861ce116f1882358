//! PostgreSQL: the `guests` operations of the seam: guests, their keys, fields, blind index
//! entries and stays (the same names and meanings as `store/sqlite/guests.rs`). Every function
//! that returns or writes personal data (ciphertext included) takes a [`Permit`].
//!
//! Orderings that SQLite gets from a `WITHOUT ROWID` primary key are spelled out here, and
//! text is compared `COLLATE "C"` (bytewise, SQLite's `BINARY`), so both backends return the
//! same rows in the same order whatever the database's default collation.

use crate::crypto::WrappedDek;
use crate::policy::{Action, Permit};
use crate::store::{GuestStatus, SealedGuest, SealedStay, StoreError};

use super::conn::PgConn;
use super::keys::kek_version_from;

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

const READ_ACTIONS: &[Action] = &[
    Action::GuestRead,
    Action::GuestReveal,
    Action::GuestUpdate,
    Action::GuestExport,
    Action::GuestErase,
    Action::StayRead,
    Action::StayCreate,
    Action::StayCorrect,
    Action::CorrectionDecide,
    Action::AdminKeys,
    Action::AdminRetention,
];
const WRITE_ACTIONS: &[Action] = &[
    Action::GuestCreate,
    Action::ConsentWrite,
    Action::GuestUpdate,
    Action::StayCreate,
    Action::StayCorrect,
    Action::CorrectionDecide,
    Action::GuestErase,
    Action::AdminKeys,
    Action::AdminRetention,
];

pub fn insert_guest(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    now: &str,
    wrapped: &WrappedDek,
) -> Result<(), StoreError> {
    ensure(permit, &[Action::GuestCreate])?;
    conn.execute_deferred(
        "INSERT INTO guests (guest_id, created_at, status, last_activity_at)
         VALUES ($1, $2, 'active', $2)",
        vec![Box::new(guest_id.to_owned()), Box::new(now.to_owned())],
    )?;
    conn.execute_deferred(
        "INSERT INTO guest_keys (guest_id, kek_version, wrapped_dek) VALUES ($1, $2, $3)",
        vec![
            Box::new(guest_id.to_owned()),
            Box::new(i64::from(wrapped.kek_version)),
            Box::new(wrapped.bytes.clone()),
        ],
    )
}

pub fn put_field(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    field: &str,
    ciphertext: &[u8],
    now: &str,
) -> Result<(), StoreError> {
    ensure(permit, WRITE_ACTIONS)?;
    conn.execute_deferred(
        "INSERT INTO guest_fields (guest_id, field, ciphertext, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (guest_id, field)
         DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        vec![
            Box::new(guest_id.to_owned()),
            Box::new(field.to_owned()),
            Box::new(ciphertext.to_vec()),
            Box::new(now.to_owned()),
        ],
    )
}

pub fn delete_field(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    field: &str,
) -> Result<(), StoreError> {
    ensure(permit, WRITE_ACTIONS)?;
    conn.execute(
        "DELETE FROM guest_fields WHERE guest_id = $1 AND field = $2",
        &[&guest_id, &field],
    )?;
    conn.execute(
        "DELETE FROM blind_index WHERE guest_id = $1 AND field = $2",
        &[&guest_id, &field],
    )?;
    Ok(())
}

/// Replaces the guest's blind-index entry for `field`.
pub fn put_index(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    field: &str,
    digest: &[u8],
) -> Result<(), StoreError> {
    ensure(permit, WRITE_ACTIONS)?;
    conn.execute_deferred(
        "DELETE FROM blind_index WHERE guest_id = $1 AND field = $2",
        vec![Box::new(guest_id.to_owned()), Box::new(field.to_owned())],
    )?;
    // INVARIANT: the delete above removed every entry of (guest, field) (queued writes run in
    // order), so this insert cannot hit the primary key (field, digest, guest_id) and abort
    // the transaction.
    conn.execute_deferred(
        "INSERT INTO blind_index (field, digest, guest_id) VALUES ($1, $2, $3)",
        vec![
            Box::new(field.to_owned()),
            Box::new(digest.to_vec()),
            Box::new(guest_id.to_owned()),
        ],
    )
}

/// Marks activity and returns the guest's status, or `None` if there is no such guest.
pub fn touch_guest(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    now: &str,
) -> Result<Option<GuestStatus>, StoreError> {
    ensure(permit, WRITE_ACTIONS)?;
    let status = guest_status(conn, guest_id)?;
    if status.is_some() {
        conn.execute(
            "UPDATE guests SET last_activity_at = $2 WHERE guest_id = $1",
            &[&guest_id, &now],
        )?;
    }
    Ok(status)
}

/// Status only (no personal data): used to answer 404 and `restricted` before decrypting.
pub fn guest_status(conn: &PgConn, guest_id: &str) -> Result<Option<GuestStatus>, StoreError> {
    let row = conn.query_opt(
        "SELECT status FROM guests WHERE guest_id = $1",
        &[&guest_id],
    )?;
    match row {
        Some(r) => Ok(Some(GuestStatus::parse(&r.try_get::<_, String>(0)?))),
        None => Ok(None),
    }
}

/// Loads the sealed record; `None` for an unknown guest. Fields come in name order.
pub fn load_guest(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
) -> Result<Option<SealedGuest>, StoreError> {
    ensure(permit, READ_ACTIONS)?;
    // One statement (one round trip, one snapshot): the key row repeats on each field's row;
    // a guest without fields comes back as one row whose field is NULL.
    let rows = conn.query(
        "SELECT g.status, k.kek_version, k.wrapped_dek, f.field, f.ciphertext FROM guests g
         JOIN guest_keys k ON k.guest_id = g.guest_id
         LEFT JOIN guest_fields f ON f.guest_id = g.guest_id
         WHERE g.guest_id = $1
         ORDER BY f.field COLLATE \"C\"",
        &[&guest_id],
    )?;
    let Some(head) = rows.first() else {
        return Ok(None);
    };
    let status: String = head.try_get(0)?;
    let kek_version = kek_version_from(head.try_get(1)?)?;
    let bytes: Vec<u8> = head.try_get(2)?;
    let mut fields = Vec::with_capacity(rows.len());
    for r in &rows {
        let field: Option<String> = r.try_get(3)?;
        if let Some(field) = field {
            fields.push((field, r.try_get(4)?));
        }
    }
    Ok(Some(SealedGuest {
        status: GuestStatus::parse(&status),
        wrapped_dek: WrappedDek { kek_version, bytes },
        fields,
        staging: Default::default(),
    }))
}

/// Guests whose blind-index entry for `field` equals `digest`, with their status.
pub fn search_index(
    conn: &PgConn,
    permit: &Permit,
    field: &str,
    digest: &[u8],
) -> Result<Vec<(String, GuestStatus)>, StoreError> {
    ensure(permit, &[Action::GuestSearch])?;
    conn.query(
        "SELECT b.guest_id, g.status FROM blind_index b JOIN guests g ON g.guest_id = b.guest_id
         WHERE b.field = $1 AND b.digest = $2 ORDER BY b.guest_id COLLATE \"C\" LIMIT 1000",
        &[&field, &digest],
    )?
    .iter()
    .map(|r| {
        Ok((
            r.try_get::<_, String>(0)?,
            GuestStatus::parse(&r.try_get::<_, String>(1)?),
        ))
    })
    .collect()
}

pub fn insert_stay(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    stay_id: &str,
    check_out: &str,
    now: &str,
    ciphertext: &[u8],
) -> Result<(), StoreError> {
    ensure(permit, &[Action::StayCreate])?;
    conn.execute(
        "INSERT INTO stays (stay_id, guest_id, check_out, created_at, ciphertext)
         VALUES ($1, $2, $3, $4, $5)",
        &[&stay_id, &guest_id, &check_out, &now, &ciphertext],
    )?;
    conn.execute(
        "UPDATE guests SET last_checkout = GREATEST(COALESCE(last_checkout, '') COLLATE \"C\", $2)
         WHERE guest_id = $1",
        &[&guest_id, &check_out],
    )?;
    Ok(())
}

/// The guest's stays, by check-out then stay id.
pub fn list_stays(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
) -> Result<Vec<SealedStay>, StoreError> {
    ensure(permit, READ_ACTIONS)?;
    conn.query(
        "SELECT stay_id, ciphertext FROM stays WHERE guest_id = $1
         ORDER BY check_out COLLATE \"C\", stay_id COLLATE \"C\"",
        &[&guest_id],
    )?
    .iter()
    .map(|r| {
        Ok(SealedStay {
            stay_id: r.try_get(0)?,
            ciphertext: r.try_get(1)?,
        })
    })
    .collect()
}

/// Number of guests not erased (the `guests stored` gauge).
pub fn count_guests(conn: &PgConn) -> Result<u64, StoreError> {
    let n: i64 = conn
        .query_one("SELECT count(*) FROM guests WHERE status <> 'erased'", &[])?
        .try_get(0)?;
    // A count is never negative.
    Ok(n as u64)
}

#[cfg(test)]
#[path = "guests_tests.rs"]
pub(super) mod tests;
