//! The console's charts: small, bounded aggregates of the audit trail and of the data-subject
//! requests (counts and dates only; never a value, a subject or a guest id).

use super::{Conn, StoreError};

/// Events in one UTC hour with one outcome. `hour` is the stored timestamp's first 13
/// characters (`2026-11-30T17`): the service turns hours into days in China time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    pub hour: String,
    pub outcome: String,
    pub count: u64,
}

/// `guest.reveal` events of one role with one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCount {
    pub role: String,
    pub outcome: String,
    pub count: u64,
}

/// A data-subject request's kind, status and dates (no subject, no receipt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsrDates {
    pub kind: String,
    pub status: String,
    pub received_at: String,
    pub completed_at: Option<String>,
    pub due_at: String,
}

/// The most requests [`dsr_dates_since`] returns (the charts say when it was reached).
pub const DSR_LIMIT: usize = 20_000;

seam! {
    (super::sqlite::charts), (super::postgres::charts);
    /// Audit events at or after `since` (a stored timestamp), per UTC hour and outcome: at most
    /// 24 × 3 rows a day.
    fn audit_hourly(since: &str) -> Result<Vec<HourCount>, StoreError>;
    /// `guest.reveal` events at or after `since`, per role and outcome.
    fn reveals_by_role(since: &str) -> Result<Vec<RoleCount>, StoreError>;
    /// Data-subject requests received at or after `since`, oldest first, at most [`DSR_LIMIT`].
    fn dsr_dates_since(since: &str) -> Result<Vec<DsrDates>, StoreError>;
}
