//! PostgreSQL: the `audit_since` operations of the seam (the same names and meanings as
//! `store/sqlite/audit_since.rs`; see that file's docs). Issue 14: being ported.

#![allow(unused_variables, unused_imports)]

use crate::audit::checkpoint::{RangeVerification, StoreVerification};
use crate::store::audit::{latest_checkpoint, purged_through, read_after, verify_store};
use crate::store::StoreError;

use super::conn::PgConn;

pub fn full(conn: &PgConn, public_key: &[u8]) -> Result<RangeVerification, StoreError> {
    todo!("issue 14: PostgreSQL port")
}

pub fn since_checkpoint(conn: &PgConn, public_key: &[u8]) -> Result<RangeVerification, StoreError> {
    todo!("issue 14: PostgreSQL port")
}
