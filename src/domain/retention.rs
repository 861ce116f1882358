//! Pure retention and deadline rules: retention periods, when a class expires for a guest, and
//! data-subject request due dates over the Chinese working-day calendar. No I/O, no clock: the
//! caller passes "now" (the injected clock), so tests travel in time.

use std::collections::BTreeSet;

use time::{Date, Duration, Month};

/// A retention period: days, calendar months or calendar years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    Months(u32),
    Years(u32),
}

impl Period {
    /// Parses `"30d"`, `"6m"`, `"3y"`.
    pub fn parse(s: &str) -> Option<Self> {
        let (last_at, _) = s.char_indices().last()?;
        let (n, unit) = s.split_at(last_at);
        let n: u32 = n.parse().ok()?;
        if n == 0 || n > 100_000 {
            return None;
        }
        match unit {
            "d" => Some(Self::Days(n)),
            "m" => Some(Self::Months(n)),
            "y" => Some(Self::Years(n)),
            _ => None,
        }
    }

    /// `date + self`; a month-end day that does not exist in the target month clamps to the
    /// month's last day (2024-02-29 + 1y = 2025-02-28).
    pub fn add_to(self, date: Date) -> Date {
        match self {
            Self::Days(d) => date.saturating_add(Duration::days(i64::from(d))),
            Self::Months(m) => add_months(date, m),
            Self::Years(y) => add_months(date, y.saturating_mul(12)),
        }
    }
}

fn add_months(date: Date, months: u32) -> Date {
    let total = i64::from(date.year()) * 12 + i64::from(date.month() as u8) - 1 + i64::from(months);
    let year = i32::try_from(total.div_euclid(12))
        .unwrap_or(9999)
        .min(9999);
    let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap_or(12))
        .unwrap_or(Month::December);
    let last = month.length(year);
    Date::from_calendar_date(year, month, date.day().min(last)).unwrap_or(Date::MAX)
}

/// The last day on which data under `period` counted from `anchor` may be kept. Expired means
/// `today > until`: kept on the last day, purged the day after.
pub fn kept_until(anchor: Date, period: Period) -> Date {
    period.add_to(anchor)
}

/// A working-day calendar: weekends off, plus listed holidays, minus listed make-up workdays.
#[derive(Debug, Clone, Default)]
pub struct WorkCalendar {
    pub holidays: BTreeSet<Date>,
    pub workdays: BTreeSet<Date>,
}

impl WorkCalendar {
    pub fn is_working_day(&self, d: Date) -> bool {
        if self.workdays.contains(&d) {
            return true;
        }
        let weekend = matches!(d.weekday(), time::Weekday::Saturday | time::Weekday::Sunday);
        !weekend && !self.holidays.contains(&d)
    }

    /// The `n`th working day after `from` (the day of receipt does not count).
    pub fn add_working_days(&self, from: Date, n: u32) -> Date {
        let mut d = from;
        let mut left = n;
        while left > 0 {
            d = d.next_day().unwrap_or(Date::MAX);
            if d == Date::MAX {
                break;
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// REQ-32: due = the earlier of 15 Chinese working days and 30 calendar days after receipt.
    pub fn dsr_due(&self, received: Date) -> Date {
        let working = self.add_working_days(received, 15);
        let calendar = received.saturating_add(Duration::days(30));
        working.min(calendar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn periods_parse_and_add_calendar_units() {
        assert_eq!(Period::parse("30d"), Some(Period::Days(30)));
        assert_eq!(Period::parse("3y"), Some(Period::Years(3)));
        assert_eq!(Period::parse("0d"), None);
        assert_eq!(Period::parse("3w"), None);
        assert_eq!(Period::parse(""), None);
        assert_eq!(Period::parse("3年"), None);
        assert_eq!(
            Period::Years(1).add_to(date!(2024 - 02 - 29)),
            date!(2025 - 02 - 28)
        );
        assert_eq!(
            Period::Months(1).add_to(date!(2026 - 01 - 31)),
            date!(2026 - 02 - 28)
        );
        assert_eq!(
            Period::Years(3).add_to(date!(2026 - 11 - 23)),
            date!(2029 - 11 - 23)
        );
        assert_eq!(
            Period::Days(30).add_to(date!(2026 - 11 - 23)),
            date!(2026 - 12 - 23)
        );
    }

    fn cn_2026() -> WorkCalendar {
        let p = crate::policy::Policies::load(None).unwrap();
        p.calendar
    }

    #[test]
    fn due_date_crosses_the_national_day_holiday() {
        // Received Friday 2026-09-25 (Mid-Autumn): Sep 28-30 are 3 working days, Oct 1-7 are
        // off, Sat Oct 10 is a make-up working day, so the 15th working day is Thu Oct 22.
        let cal = cn_2026();
        assert_eq!(cal.dsr_due(date!(2026 - 09 - 25)), date!(2026 - 10 - 22));
        // With weekends only it would be Fri Oct 16: the holiday calendar matters.
        assert_eq!(
            WorkCalendar::default().dsr_due(date!(2026 - 09 - 25)),
            date!(2026 - 10 - 16)
        );
    }

    #[test]
    fn due_date_is_capped_at_30_calendar_days() {
        // Spring Festival 2026: 15 working days after 2026-02-10 run past 30 calendar days? No:
        // a calendar with a long break shows the cap.
        let mut cal = WorkCalendar::default();
        let start = date!(2026 - 03 - 01);
        for i in 0..20 {
            cal.holidays.insert(start.saturating_add(Duration::days(i)));
        }
        assert_eq!(cal.dsr_due(start), date!(2026 - 03 - 31));
    }

    #[test]
    fn make_up_workdays_count() {
        let cal = cn_2026();
        assert!(cal.is_working_day(date!(2026 - 10 - 10)));
        assert!(!cal.is_working_day(date!(2026 - 10 - 05)));
        assert!(!cal.is_working_day(date!(2026 - 10 - 11)));
    }
}
