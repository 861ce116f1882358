//! PostgreSQL: the `keys` operations of the seam (the same names and meanings as
//! `store/sqlite/keys.rs`; see that file's docs). Issue 14: being ported.

#![allow(unused_variables, unused_imports)]

use crate::crypto::WrappedDek;
use crate::policy::{Action, Permit};
use crate::store::StoreError;

use super::conn::PgConn;

pub fn dek_counts(conn: &PgConn) -> Result<Vec<(u32, u64)>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn deks_not_under(
    conn: &PgConn,
    permit: &Permit,
    active: u32,
    limit: usize,
) -> Result<Vec<(String, WrappedDek)>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn rewrap(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    old_version: u32,
    new: &WrappedDek,
) -> Result<bool, StoreError> {
    todo!("issue 14: PostgreSQL port")
}
