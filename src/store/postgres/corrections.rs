//! PostgreSQL: the `corrections` operations of the seam (the same names and meanings as
//! `store/sqlite/corrections.rs`; see that file's docs). Issue 14: being ported.

#![allow(unused_variables, unused_imports)]

use crate::policy::{Action, Permit};
use crate::store::{DsrRow, PendingCorrection, StoreError};

use super::conn::PgConn;

pub fn insert_correction(
    conn: &PgConn,
    permit: &Permit,
    subject: &[u8],
    row: &DsrRow,
    guest_id: &str,
    fields: &[String],
    ciphertext: &[u8],
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn pending_corrections(
    conn: &PgConn,
    permit: &Permit,
) -> Result<Vec<PendingCorrection>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn pending_correction(
    conn: &PgConn,
    permit: &Permit,
    request_id: &str,
) -> Result<Option<PendingCorrection>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn decide_correction(
    conn: &PgConn,
    permit: &Permit,
    request_id: &str,
    status: &str,
    now: &str,
    receipt: &str,
) -> Result<bool, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn keep_registered(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    field: &str,
    now: &str,
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn registered_values(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn get_stay(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    stay_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn correct_stay(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    stay_id: &str,
    replacement: Option<(&str, &[u8])>,
) -> Result<bool, StoreError> {
    todo!("issue 14: PostgreSQL port")
}
