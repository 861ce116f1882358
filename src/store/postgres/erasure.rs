//! PostgreSQL: the `erasure` operations of the seam (the same names and meanings as
//! `store/sqlite/erasure.rs`; see that file's docs). Issue 14: being ported.

#![allow(unused_variables, unused_imports)]

use crate::policy::{Action, Permit};
use crate::store::{DsrRow, GuestStatus, RetentionFacts, StoreError, PLAUSIBLE_HORIZON_DAYS};

use super::conn::PgConn;

pub fn retention_facts(
    conn: &PgConn,
    guest_id: &str,
) -> Result<Option<RetentionFacts>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn guest_ids_after(
    conn: &PgConn,
    cursor: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn erase_fields(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    fields: &[String],
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn erase_stays(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    stay_ids: &[String],
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn set_status(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    status: GuestStatus,
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn shred_guest(conn: &PgConn, permit: &Permit, guest_id: &str) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn insert_dsr(conn: &PgConn, subject: &[u8], row: &DsrRow) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn get_dsr(conn: &PgConn, request_id: &str) -> Result<Option<(DsrRow, Vec<u8>)>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn latest_erasure(conn: &PgConn, subject: &[u8]) -> Result<Option<DsrRow>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn overdue_dsr(conn: &PgConn, today: &str) -> Result<Vec<DsrRow>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn complete_erasures(
    conn: &PgConn,
    subject: &[u8],
    now: &str,
    receipt_fn: impl Fn(&str) -> String,
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}
