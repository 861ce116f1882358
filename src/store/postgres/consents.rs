//! PostgreSQL: the `consents` operations of the seam (the same names and meanings as
//! `store/sqlite/consents.rs`; see that file's docs). Issue 14: being ported.

#![allow(unused_variables, unused_imports)]

use crate::policy::ConsentFacts;
use crate::store::rows::{ConsentChange, ConsentEvent, ConsentRecord};
use crate::store::StoreError;

use super::conn::PgConn;

pub fn apply(
    c: &PgConn,
    gid: &str,
    change: &ConsentChange,
    actor: &str,
    now: &str,
) -> Result<(), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn ledger(
    c: &PgConn,
    gid: &str,
) -> Result<(Vec<ConsentRecord>, Vec<ConsentEvent>), StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn current(c: &PgConn, gid: &str) -> Result<Vec<ConsentRecord>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn history(c: &PgConn, gid: &str) -> Result<Vec<ConsentEvent>, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn consent_state(
    conn: &PgConn,
    guest_id: &str,
    purpose: &str,
) -> Result<ConsentFacts, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn replay_withdrawal(
    c: &PgConn,
    gid: &str,
    purpose: &str,
    at: &str,
) -> Result<bool, StoreError> {
    todo!("issue 14: PostgreSQL port")
}
