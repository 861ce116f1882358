//! SQL for guests, their keys, fields, blind index entries and stays. Every function that
//! returns or writes personal data (ciphertext included) takes a [`Permit`].

use rusqlite::{params, Connection, OptionalExtension};

use super::{GuestStatus, SealedGuest, SealedStay, StoreError};
use crate::crypto::WrappedDek;
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
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    now: &str,
    wrapped: &WrappedDek,
) -> Result<(), StoreError> {
    ensure(permit, &[Action::GuestCreate])?;
    conn.prepare_cached(
        "INSERT INTO guests (guest_id, created_at, status, last_activity_at) VALUES (?1, ?2, 'active', ?2)",
    )?
    .execute(params![guest_id, now])?;
    conn.prepare_cached(
        "INSERT INTO guest_keys (guest_id, kek_version, wrapped_dek) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![guest_id, wrapped.kek_version, wrapped.bytes])?;
    Ok(())
}

pub fn put_field(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    field: &str,
    ciphertext: &[u8],
    now: &str,
) -> Result<(), StoreError> {
    ensure(permit, WRITE_ACTIONS)?;
    conn.prepare_cached(
        "INSERT INTO guest_fields (guest_id, field, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (guest_id, field) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
    )?
    .execute(params![guest_id, field, ciphertext, now])?;
    Ok(())
}

pub fn delete_field(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    field: &str,
) -> Result<(), StoreError> {
    ensure(permit, WRITE_ACTIONS)?;
    conn.prepare_cached("DELETE FROM guest_fields WHERE guest_id = ?1 AND field = ?2")?
        .execute(params![guest_id, field])?;
    conn.prepare_cached("DELETE FROM blind_index WHERE guest_id = ?1 AND field = ?2")?
        .execute(params![guest_id, field])?;
    Ok(())
}

/// Replaces the guest's blind-index entry for `field`.
pub fn put_index(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    field: &str,
    digest: &[u8],
) -> Result<(), StoreError> {
    ensure(permit, WRITE_ACTIONS)?;
    conn.prepare_cached("DELETE FROM blind_index WHERE guest_id = ?1 AND field = ?2")?
        .execute(params![guest_id, field])?;
    conn.prepare_cached("INSERT INTO blind_index (field, digest, guest_id) VALUES (?1, ?2, ?3)")?
        .execute(params![field, digest, guest_id])?;
    Ok(())
}

/// Marks activity and returns the guest's status, or `None` if there is no such guest.
pub fn touch_guest(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    now: &str,
) -> Result<Option<GuestStatus>, StoreError> {
    ensure(permit, WRITE_ACTIONS)?;
    let status = guest_status(conn, guest_id)?;
    if status.is_some() {
        conn.prepare_cached("UPDATE guests SET last_activity_at = ?2 WHERE guest_id = ?1")?
            .execute(params![guest_id, now])?;
    }
    Ok(status)
}

/// Status only (no personal data): used to answer 404 and `restricted` before decrypting.
pub fn guest_status(conn: &Connection, guest_id: &str) -> Result<Option<GuestStatus>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT status FROM guests WHERE guest_id = ?1")?
        .query_row([guest_id], |r| r.get::<_, String>(0))
        .optional()?
        .map(|s| GuestStatus::parse(&s)))
}

/// Loads the sealed record; `None` for an unknown guest.
pub fn load_guest(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
) -> Result<Option<SealedGuest>, StoreError> {
    ensure(permit, READ_ACTIONS)?;
    let head = conn
        .prepare_cached(
            "SELECT g.status, k.kek_version, k.wrapped_dek FROM guests g
             JOIN guest_keys k ON k.guest_id = g.guest_id WHERE g.guest_id = ?1",
        )?
        .query_row([guest_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()?;
    let Some((status, kek_version, bytes)) = head else {
        return Ok(None);
    };
    let mut stmt =
        conn.prepare_cached("SELECT field, ciphertext FROM guest_fields WHERE guest_id = ?1")?;
    let fields = stmt
        .query_map([guest_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(SealedGuest {
        status: GuestStatus::parse(&status),
        wrapped_dek: WrappedDek { kek_version, bytes },
        fields,
        staging: Default::default(),
    }))
}

/// Guests whose blind-index entry for `field` equals `digest`, with their status.
pub fn search_index(
    conn: &Connection,
    permit: &Permit,
    field: &str,
    digest: &[u8],
) -> Result<Vec<(String, GuestStatus)>, StoreError> {
    ensure(permit, &[Action::GuestSearch])?;
    let mut stmt = conn.prepare_cached(
        "SELECT b.guest_id, g.status FROM blind_index b JOIN guests g ON g.guest_id = b.guest_id
         WHERE b.field = ?1 AND b.digest = ?2 ORDER BY b.guest_id LIMIT 1000",
    )?;
    let rows = stmt
        .query_map(params![field, digest], |r| {
            Ok((
                r.get::<_, String>(0)?,
                GuestStatus::parse(&r.get::<_, String>(1)?),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn insert_stay(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    stay_id: &str,
    check_out: &str,
    now: &str,
    ciphertext: &[u8],
) -> Result<(), StoreError> {
    ensure(permit, &[Action::StayCreate])?;
    conn.prepare_cached(
        "INSERT INTO stays (stay_id, guest_id, check_out, created_at, ciphertext) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![stay_id, guest_id, check_out, now, ciphertext])?;
    conn.prepare_cached(
        "UPDATE guests SET last_checkout = max(COALESCE(last_checkout, ''), ?2) WHERE guest_id = ?1",
    )?
    .execute(params![guest_id, check_out])?;
    Ok(())
}

pub fn list_stays(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
) -> Result<Vec<SealedStay>, StoreError> {
    ensure(permit, READ_ACTIONS)?;
    let mut stmt = conn.prepare_cached(
        "SELECT stay_id, ciphertext FROM stays WHERE guest_id = ?1 ORDER BY check_out, stay_id",
    )?;
    let rows = stmt
        .query_map([guest_id], |r| {
            Ok(SealedStay {
                stay_id: r.get(0)?,
                ciphertext: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Number of guests not erased (the `guests stored` gauge).
pub fn count_guests(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM guests WHERE status != 'erased'")?
        .query_row([], |r| r.get::<_, i64>(0))? as u64)
}
