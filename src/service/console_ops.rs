//! The console's policy, operations and overview pages (issue 17): what they read, through the
//! same choke point as the REST API. Each read is authorized under the caller's role and
//! purpose and audited before anything is returned:
//!
//! - the policy page as `policy.read` (reason `console policy read`),
//! - the operations page as `admin.keys` (reason `key status read`), the same key status as
//!   `GET /v1/admin/keys`, plus readiness (as `/readyz`) and a few of the metrics' numbers,
//! - the charts as `audit.read` (reason `charts read`): per-day outcome counts, reveals per
//!   role and data-subject requests per week, aggregated in the database (bounded: hours ×
//!   outcomes, roles × outcomes, at most [`store::charts::DSR_LIMIT`] requests).

use std::collections::BTreeMap;

use serde::Serialize;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::{Caller, KeyStatus, Vault, VaultError};
use crate::audit::Outcome;
use crate::clock::timestamp;
use crate::policy::Action;
use crate::store;

const CHINA: UtcOffset = time::macros::offset!(+8);

/// Days the outcome chart covers (today included) and weeks the request chart covers.
pub const CHART_DAYS: u32 = 30;
pub const CHART_WEEKS: u32 = 12;

/// Audit events of one day (China time) by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayOutcomes {
    /// `YYYY-MM-DD`, China time.
    pub day: String,
    pub allowed: u64,
    pub denied: u64,
    pub error: u64,
}

/// `guest.reveal` events of one role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoleReveals {
    pub role: String,
    pub allowed: u64,
    pub denied: u64,
}

/// Data-subject requests received in one week (Monday to Sunday, China time), by where they
/// stand against their deadline (`due_at`, a China date).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WeekRequests {
    /// The week's Monday, `YYYY-MM-DD`.
    pub week: String,
    pub received: u64,
    /// Answered on or before the due date.
    pub on_time: u64,
    /// Answered after it.
    pub late: u64,
    /// Not answered, due date not passed.
    pub open: u64,
    /// Not answered, due date passed.
    pub overdue: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChartData {
    /// Today, China time.
    pub today: String,
    /// One entry per day, oldest first, [`CHART_DAYS`] of them.
    pub days: Vec<DayOutcomes>,
    /// Roles with at least one reveal in the same days.
    pub reveals: Vec<RoleReveals>,
    /// One entry per week, oldest first, [`CHART_WEEKS`] of them.
    pub weeks: Vec<WeekRequests>,
    /// The request query hit its limit: older weeks may be incomplete.
    pub requests_truncated: bool,
}

/// What the operations page shows.
#[derive(Debug, Clone)]
pub struct OperationsView {
    pub keys: KeyStatus,
    /// `None` when ready, else the reason `/readyz` gives.
    pub not_ready: Option<&'static str>,
    pub guests_stored: u64,
    pub audit_events: u64,
}

fn china_date(ts: &str) -> Option<Date> {
    OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.to_offset(CHINA).date())
}

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// The China day of a UTC hour prefix (`2026-11-30T17`).
fn day_of_hour(hour: &str) -> Option<Date> {
    let date = parse_date(hour.get(..10)?)?;
    let h: u8 = hour.get(11..13)?.parse().ok()?;
    let t = Time::from_hms(h, 0, 0).ok()?;
    Some(
        PrimitiveDateTime::new(date, t)
            .assume_utc()
            .to_offset(CHINA)
            .date(),
    )
}

fn monday(d: Date) -> Date {
    d - Duration::days(i64::from(d.weekday().number_days_from_monday()))
}

/// Midnight of `day` in China, as a stored (UTC) timestamp.
fn china_midnight(day: Date) -> String {
    timestamp(PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_offset(CHINA))
}

/// Folds the store's aggregates into the charts' series (pure: unit-tested below).
pub(crate) fn fold_charts(
    today: Date,
    hours: &[store::charts::HourCount],
    reveals: &[store::charts::RoleCount],
    requests: &[store::charts::DsrDates],
    truncated: bool,
) -> ChartData {
    let first_day = today - Duration::days(i64::from(CHART_DAYS - 1));
    let mut days: BTreeMap<Date, DayOutcomes> = (0..CHART_DAYS)
        .map(|i| {
            let d = first_day + Duration::days(i64::from(i));
            (
                d,
                DayOutcomes {
                    day: d.to_string(),
                    ..Default::default()
                },
            )
        })
        .collect();
    for h in hours {
        let Some(slot) = day_of_hour(&h.hour).and_then(|d| days.get_mut(&d)) else {
            continue;
        };
        match Outcome::parse(&h.outcome) {
            Outcome::Allowed => slot.allowed += h.count,
            Outcome::Denied => slot.denied += h.count,
            Outcome::Error => slot.error += h.count,
        }
    }
    let mut by_role: BTreeMap<&str, RoleReveals> = BTreeMap::new();
    for r in reveals {
        let e = by_role.entry(&r.role).or_insert_with(|| RoleReveals {
            role: r.role.clone(),
            ..Default::default()
        });
        match Outcome::parse(&r.outcome) {
            Outcome::Allowed => e.allowed += r.count,
            Outcome::Denied | Outcome::Error => e.denied += r.count,
        }
    }
    let this_week = monday(today);
    let first_week = this_week - Duration::weeks(i64::from(CHART_WEEKS - 1));
    let mut weeks: BTreeMap<Date, WeekRequests> = (0..CHART_WEEKS)
        .map(|i| {
            let w = first_week + Duration::weeks(i64::from(i));
            (
                w,
                WeekRequests {
                    week: w.to_string(),
                    ..Default::default()
                },
            )
        })
        .collect();
    for r in requests {
        let Some(slot) = china_date(&r.received_at).and_then(|d| weeks.get_mut(&monday(d))) else {
            continue;
        };
        let Some(due) = parse_date(&r.due_at) else {
            continue;
        };
        slot.received += 1;
        match r.completed_at.as_deref().and_then(china_date) {
            Some(done) if done <= due => slot.on_time += 1,
            Some(_) => slot.late += 1,
            None if today > due => slot.overdue += 1,
            None => slot.open += 1,
        }
    }
    ChartData {
        today: today.to_string(),
        days: days.into_values().collect(),
        reveals: by_role.into_values().collect(),
        weeks: weeks.into_values().collect(),
        requests_truncated: truncated,
    }
}

impl Vault {
    /// An audited read of a page that shows no personal data: authorized as `action`, then
    /// recorded as allowed with `reason` before the page is built.
    async fn audited_page_read(
        &self,
        caller: &Caller,
        action: Action,
        reason: &str,
    ) -> Result<(), VaultError> {
        let grant = self.authorize(caller, action, None).await?;
        let event = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some(reason),
            grant.rules().to_vec(),
        );
        self.record(event).await
    }

    /// The policy page: `policy.read`, audited (the page then shows [`Vault::policies`]).
    pub async fn console_policy_read(&self, caller: &Caller) -> Result<(), VaultError> {
        self.audited_page_read(caller, Action::PolicyRead, "console policy read")
            .await
    }

    /// The operations page: the key status of `GET /v1/admin/keys` (`admin.keys`), audited,
    /// with readiness and a few counts.
    pub async fn console_operations(&self, caller: &Caller) -> Result<OperationsView, VaultError> {
        let keys = self.key_status(caller).await?;
        self.audited_page_read(caller, Action::AdminKeys, "key status read")
            .await?;
        let not_ready = self.readiness().await.map(|f| f.code());
        let (guests_stored, audit_events) = self
            .readers
            .run(|c| Ok((store::count_guests(c)?, store::audit::count_and_head(c)?.0)))
            .await?;
        Ok(OperationsView {
            keys,
            not_ready,
            guests_stored,
            audit_events,
        })
    }

    /// The overview's charts: `audit.read`, audited, over the last [`CHART_DAYS`] days and
    /// [`CHART_WEEKS`] weeks (China time).
    pub async fn console_charts(&self, caller: &Caller) -> Result<ChartData, VaultError> {
        self.audited_page_read(caller, Action::AuditRead, "charts read")
            .await?;
        let today = self.now().to_offset(CHINA).date();
        let since_day = china_midnight(today - Duration::days(i64::from(CHART_DAYS - 1)));
        let since_week =
            china_midnight(monday(today) - Duration::weeks(i64::from(CHART_WEEKS - 1)));
        let (hours, reveals, requests) = self
            .readers
            .run(move |c| {
                Ok((
                    store::charts::audit_hourly(c, &since_day)?,
                    store::charts::reveals_by_role(c, &since_day)?,
                    store::charts::dsr_dates_since(c, &since_week)?,
                ))
            })
            .await?;
        let truncated = requests.len() >= store::charts::DSR_LIMIT;
        Ok(fold_charts(today, &hours, &reveals, &requests, truncated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::charts::{DsrDates, HourCount, RoleCount};

    fn d(s: &str) -> Date {
        parse_date(s).unwrap()
    }

    #[test]
    fn hours_fold_into_china_days_and_requests_into_weeks_against_their_deadlines() {
        let today = d("2026-12-02"); // a Wednesday
        let hours = [
            // 2026-11-30T17 UTC is 2026-12-01 01:00 in Beijing.
            HourCount {
                hour: "2026-11-30T17".into(),
                outcome: "denied".into(),
                count: 5,
            },
            HourCount {
                hour: "2026-11-30T15".into(),
                outcome: "denied".into(),
                count: 2,
            },
            HourCount {
                hour: "2026-12-01T03".into(),
                outcome: "allowed".into(),
                count: 7,
            },
            HourCount {
                hour: "2026-12-01T03".into(),
                outcome: "error".into(),
                count: 1,
            },
            // Before the first day: dropped.
            HourCount {
                hour: "2026-10-01T00".into(),
                outcome: "allowed".into(),
                count: 99,
            },
        ];
        let reveals = [
            RoleCount {
                role: "front_desk".into(),
                outcome: "allowed".into(),
                count: 3,
            },
            RoleCount {
                role: "front_desk".into(),
                outcome: "denied".into(),
                count: 1,
            },
            RoleCount {
                role: "dsr_officer".into(),
                outcome: "allowed".into(),
                count: 2,
            },
        ];
        let req = |received: &str, done: Option<&str>, due: &str| DsrDates {
            kind: "erasure".into(),
            status: if done.is_some() {
                "completed"
            } else {
                "received"
            }
            .into(),
            received_at: received.into(),
            completed_at: done.map(Into::into),
            due_at: due.into(),
        };
        let requests = [
            req(
                "2026-11-30T01:00:00.000000Z",
                Some("2026-12-01T01:00:00.000000Z"),
                "2026-12-14",
            ),
            req(
                "2026-11-30T02:00:00.000000Z",
                Some("2026-12-20T01:00:00.000000Z"),
                "2026-12-14",
            ),
            req("2026-11-30T03:00:00.000000Z", None, "2026-12-14"),
            req("2026-11-10T03:00:00.000000Z", None, "2026-11-24"),
        ];
        let c = fold_charts(today, &hours, &reveals, &requests, false);
        assert_eq!(c.days.len(), CHART_DAYS as usize);
        assert_eq!(c.days.last().unwrap().day, "2026-12-02");
        let day = |s: &str| c.days.iter().find(|x| x.day == s).unwrap().clone();
        assert_eq!(
            (day("2026-12-01").denied, day("2026-12-01").allowed),
            (5, 7)
        );
        assert_eq!(day("2026-12-01").error, 1);
        assert_eq!(day("2026-11-30").denied, 2);
        assert_eq!(c.days.iter().map(|x| x.allowed).sum::<u64>(), 7);
        assert_eq!(c.reveals.len(), 2);
        assert_eq!(
            c.reveals.iter().find(|r| r.role == "front_desk").unwrap(),
            &RoleReveals {
                role: "front_desk".into(),
                allowed: 3,
                denied: 1
            }
        );
        assert_eq!(c.weeks.len(), CHART_WEEKS as usize);
        let week = |s: &str| c.weeks.iter().find(|x| x.week == s).unwrap().clone();
        let w = week("2026-11-30");
        assert_eq!(
            (w.received, w.on_time, w.late, w.open, w.overdue),
            (3, 1, 1, 1, 0)
        );
        let w = week("2026-11-09");
        assert_eq!((w.received, w.overdue), (1, 1));
    }
}
