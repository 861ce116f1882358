//! One rule for where a data-subject request stands against its deadline (REQ-32), used by the
//! API's overdue list (`GET /v1/erasure-requests?status=overdue`), the DSR officer's queue and
//! the compliance officer's deadline tracking (issue 17).
//!
//! "Today" is the date in China (UTC+8): due dates are Chinese working days counted from the
//! China date of receipt, so at 16:30 UTC (00:30 the next day in Beijing) a request due on the
//! UTC date is already overdue. A request is overdue once its due date is before today; on its
//! due date it is due today; before that, the working days left are the Chinese working days
//! after today up to and including the due date (weekends and `holidays.toml` off).

use serde::Serialize;
use time::Date;

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::domain::retention::WorkCalendar;
use crate::policy::Action;
use crate::store;

/// Requests the compliance officer's tracking lists at most (earliest due first, so the
/// overdue ones come first).
pub const TRACKING_LIMIT: usize = 1000;

/// Where a request stands against its due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Deadline {
    /// Before the due date: the Chinese working days left (the due date included).
    Open { working_days_left: u32 },
    /// Today (in China) is the due date.
    DueToday,
    /// Past the due date by this many calendar days.
    Overdue { days: i64 },
}

impl Deadline {
    /// Where a request due on `due` stands on `today` (both China dates).
    pub fn of(calendar: &WorkCalendar, today: Date, due: Date) -> Self {
        if due < today {
            return Self::Overdue {
                days: (today - due).whole_days(),
            };
        }
        if due == today {
            return Self::DueToday;
        }
        let mut left = 0;
        let mut d = today;
        while d < due {
            match d.next_day() {
                Some(next) => d = next,
                None => break,
            }
            if calendar.is_working_day(d) {
                left += 1;
            }
        }
        Self::Open {
            working_days_left: left,
        }
    }

    /// A stable code: `open`, `due_today` or `overdue`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::DueToday => "due_today",
            Self::Overdue { .. } => "overdue",
        }
    }

    pub fn is_overdue(self) -> bool {
        matches!(self, Self::Overdue { .. })
    }
}

/// An ISO date (`due_at`), or `None`.
pub fn parse_due(due: &str) -> Option<Date> {
    Date::parse(
        due,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// An open request as the compliance officer tracks it: no guest (the row holds only a keyed
/// hash of the guest id), no value, no receipt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrackedRequest {
    pub request_id: String,
    /// `erasure`, `access` or `correction`.
    pub kind: String,
    pub status: String,
    pub received_at: String,
    /// ISO date (15 Chinese working days after the China date of receipt).
    pub due_at: String,
    /// Where it stands today (China date); `None` for a due date that does not parse.
    pub deadline: Option<Deadline>,
}

/// The compliance officer's view of the open requests and their deadlines.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DsrTracking {
    /// Today in China, the date the deadlines are measured on.
    pub today: String,
    /// Every request not yet answered, earliest due first.
    pub requests: Vec<TrackedRequest>,
    /// More than [`TRACKING_LIMIT`] requests are open: the list shows the earliest due.
    pub truncated: bool,
}

impl DsrTracking {
    pub fn overdue(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.deadline.is_some_and(Deadline::is_overdue))
            .count()
    }
}

impl Vault {
    /// Today in China (UTC+8), the date deadlines are measured on (REQ-32).
    pub fn dsr_today(&self) -> Date {
        self.clock.now().to_offset(time::macros::offset!(+8)).date()
    }

    /// Where a request due on `due` (ISO date) stands today; `None` for a date that does not
    /// parse.
    pub fn deadline_of(&self, due: &str) -> Option<Deadline> {
        parse_due(due).map(|d| Deadline::of(&self.policies.calendar, self.dsr_today(), d))
    }

    /// The open requests with their deadlines, for the compliance officer (issue 17): the
    /// same rows as the DSR officer's queue, read-only, without any guest. Authorized as
    /// `audit.read` under the caller's purpose (`audit` for the shipped compliance officer;
    /// tracking deadlines is auditing the vault's compliance, REQ-32), refused to a self-only
    /// role, and audited (reason `dsr deadlines read`) before anything is returned.
    pub async fn dsr_tracking(&self, caller: &Caller) -> Result<DsrTracking, VaultError> {
        let action = Action::AuditRead;
        let grant = self.desk_grant(caller, action).await?;
        let rows = self
            .readers
            .run(|c| store::open_dsr(c, TRACKING_LIMIT + 1))
            .await?;
        let event = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some("dsr deadlines read"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        let truncated = rows.len() > TRACKING_LIMIT;
        let today = self.dsr_today();
        let requests = rows
            .into_iter()
            .take(TRACKING_LIMIT)
            .map(|r| TrackedRequest {
                deadline: parse_due(&r.due_at)
                    .map(|d| Deadline::of(&self.policies.calendar, today, d)),
                request_id: r.request_id,
                kind: r.kind,
                status: r.status,
                received_at: r.received_at,
                due_at: r.due_at,
            })
            .collect();
        Ok(DsrTracking {
            today: today.to_string(),
            requests,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn deadlines_count_chinese_working_days_then_overdue_calendar_days() {
        let cal = WorkCalendar::default();
        // Friday 2026-12-04 to Tuesday 2026-12-08: Monday and Tuesday are left.
        assert_eq!(
            Deadline::of(&cal, date!(2026 - 12 - 04), date!(2026 - 12 - 08)),
            Deadline::Open {
                working_days_left: 2
            }
        );
        assert_eq!(
            Deadline::of(&cal, date!(2026 - 12 - 08), date!(2026 - 12 - 08)),
            Deadline::DueToday
        );
        let late = Deadline::of(&cal, date!(2026 - 12 - 10), date!(2026 - 12 - 08));
        assert_eq!(late, Deadline::Overdue { days: 2 });
        assert_eq!(late.code(), "overdue");
        assert!(late.is_overdue());
        assert_eq!(parse_due("2026-13-01"), None);
    }
}
