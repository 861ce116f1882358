//! SQL for key rotation: DEK counts per KEK version, DEKs still wrapped under an old version,
//! and the rewrap itself (optimistic: only if the row still has the version it was read with).

use rusqlite::{params, Connection};

use super::StoreError;
use crate::crypto::WrappedDek;
use crate::policy::{Action, Permit};

/// (kek_version, number of DEKs wrapped under it).
pub fn dek_counts(conn: &Connection) -> Result<Vec<(u32, u64)>, StoreError> {
    let rows = conn
        .prepare_cached("SELECT kek_version, count(*) FROM guest_keys GROUP BY kek_version ORDER BY kek_version")?
        .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Up to `limit` (guest_id, wrapped DEK) not under `active`.
pub fn deks_not_under(
    conn: &Connection,
    permit: &Permit,
    active: u32,
    limit: usize,
) -> Result<Vec<(String, WrappedDek)>, StoreError> {
    ensure(permit)?;
    let rows = conn
        .prepare_cached("SELECT guest_id, kek_version, wrapped_dek FROM guest_keys WHERE kek_version != ?1 LIMIT ?2")?
        .query_map(params![active, limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, WrappedDek { kek_version: r.get(1)?, bytes: r.get(2)? }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Replaces a wrapped DEK if it is still the one that was read; returns whether it did.
pub fn rewrap(
    conn: &Connection,
    permit: &Permit,
    guest_id: &str,
    old_version: u32,
    new: &WrappedDek,
) -> Result<bool, StoreError> {
    ensure(permit)?;
    let n = conn
        .prepare_cached("UPDATE guest_keys SET kek_version = ?3, wrapped_dek = ?4 WHERE guest_id = ?1 AND kek_version = ?2")?
        .execute(params![guest_id, old_version, new.kek_version, new.bytes])?;
    Ok(n == 1)
}

fn ensure(permit: &Permit) -> Result<(), StoreError> {
    if permit.action() == Action::AdminKeys {
        Ok(())
    } else {
        Err(StoreError::Other(
            "key rotation needs an admin.keys permit".into(),
        ))
    }
}
