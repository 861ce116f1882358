//! PostgreSQL: the `guests` operations of the seam (the same names and meanings as
//! `store/sqlite/guests.rs`; see that file's docs). Issue 14: being ported.

#![allow(unused_variables, unused_imports)]

use crate::crypto::WrappedDek;
use crate::policy::{Action, Permit};
use crate::store::{GuestStatus, SealedGuest, SealedStay, StoreError};

use super::conn::PgConn;

pub fn insert_guest(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    now: &str,
    wrapped: &WrappedDek,
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn put_field(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    field: &str,
    ciphertext: &[u8],
    now: &str,
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn delete_field(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    field: &str,
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn put_index(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    field: &str,
    digest: &[u8],
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn touch_guest(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
    now: &str,
) -> Result<Option<GuestStatus>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn guest_status(conn: &PgConn, guest_id: &str) -> Result<Option<GuestStatus>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn load_guest(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
) -> Result<Option<SealedGuest>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn search_index(
    conn: &PgConn,
    permit: &Permit,
    field: &str,
    digest: &[u8],
) -> Result<Vec<(String, GuestStatus)>, StoreError> {
    todo!("issue 14: PostgreSQL port")
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
    todo!("issue 14: PostgreSQL port")
}

pub fn list_stays(
    conn: &PgConn,
    permit: &Permit,
    guest_id: &str,
) -> Result<Vec<SealedStay>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn count_guests(conn: &PgConn) -> Result<u64, StoreError> {
    todo!("issue 14: PostgreSQL port")
}
