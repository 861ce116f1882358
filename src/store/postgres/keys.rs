//! PostgreSQL: the `keys` operations of the seam (the same names and meanings as
//! `store/sqlite/keys.rs`): DEK counts per KEK version, DEKs still wrapped under an old
//! version, and the rewrap itself (optimistic: only if the row still has the version it was
//! read with).

use crate::crypto::WrappedDek;
use crate::policy::{Action, Permit};
use crate::store::StoreError;

use super::conn::PgConn;

/// A stored `kek_version` (BIGINT) as the `u32` the keyring uses. A value out of range is an
/// error, as in SQLite (where reading it as `u32` fails).
pub(super) fn kek_version_from(stored: i64) -> Result<u32, StoreError> {
    u32::try_from(stored)
        .map_err(|_| StoreError::Other("a stored `kek_version` is out of range".into()))
}

/// (kek_version, number of DEKs wrapped under it), by version.
pub fn dek_counts(conn: &PgConn) -> Result<Vec<(u32, u64)>, StoreError> {
    conn.query(
        "SELECT kek_version, count(*) FROM guest_keys GROUP BY kek_version ORDER BY kek_version",
        &[],
    )?
    .iter()
    .map(|r| {
        let n: i64 = r.try_get(1)?;
        // A count is never negative.
        Ok((kek_version_from(r.try_get(0)?)?, n as u64))
    })
    .collect()
}

/// Up to `limit` (guest_id, wrapped DEK) not under `active`, by guest id (the order SQLite's
/// scan of its `WITHOUT ROWID` table gives).
pub fn deks_not_under(
    conn: &PgConn,
    permit: &Permit,
    active: u32,
    limit: usize,
) -> Result<Vec<(String, WrappedDek)>, StoreError> {
    ensure(permit)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.query(
        "SELECT guest_id, kek_version, wrapped_dek FROM guest_keys WHERE kek_version <> $1
         ORDER BY guest_id COLLATE \"C\" LIMIT $2",
        &[&i64::from(active), &limit],
    )?
    .iter()
    .map(|r| {
        Ok((
            r.try_get(0)?,
            WrappedDek {
                kek_version: kek_version_from(r.try_get(1)?)?,
                bytes: r.try_get(2)?,
            },
        ))
    })
    .collect()
}

/// Replaces a wrapped DEK if it is still the one that was read; returns whether it did.
pub fn rewrap(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    old_version: u32,
    new: &WrappedDek,
) -> Result<bool, StoreError> {
    ensure(permit)?;
    let n = conn.execute(
        "UPDATE guest_keys SET kek_version = $3, wrapped_dek = $4
         WHERE guest_id = $1 AND kek_version = $2",
        &[
            &guest_id,
            &i64::from(old_version),
            &i64::from(new.kek_version),
            &new.bytes,
        ],
    )?;
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

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
