//! Data-subject request deadlines under each regime that applies to a guest (REQ-32, REQ-48):
//! the Chinese clock (15 working days on the holiday calendar, at most 30 calendar days) always,
//! and the GDPR clock (one calendar month, GDPR Art. 12(3)) for a guest whose `jurisdictions`
//! include `eu`. The earlier due date wins. Only the GDPR clock can be extended, by up to two
//! further months with a reason; the Chinese one cannot. Pure: the caller passes the dates.
//!
//! Why every guest carries `cn`: the vault serves a hotel in mainland China, and PIPL applies
//! to all processing of personal information inside the PRC whatever the guest's nationality
//! (PIPL Art. 3(1)). A guest may add `eu` (GDPR Art. 3(2): an EU resident to whom the hotel
//! offers its services, or an EU establishment of the operator), never drop `cn`.

use time::Date;

use super::retention::{Period, WorkCalendar};

/// The name of the catalog field that holds a guest's jurisdictions.
pub const JURISDICTIONS_FIELD: &str = "jurisdictions";
/// GDPR Art. 12(3): "may be extended by two further months".
pub const MAX_EXTENSION_MONTHS: u32 = 2;
/// REQ-32: a request is escalated once this share of its time has elapsed.
pub const ESCALATE_AT_PERCENT: i64 = 80;

/// The regimes that apply to a guest. `cn` always does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Jurisdictions {
    pub eu: bool,
}

impl Jurisdictions {
    /// Parses a validated stored value (`["cn"]`, `["cn","eu"]`); anything else is `cn` only.
    pub fn from_stored(stored: Option<&str>) -> Self {
        let eu = stored
            .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
            .is_some_and(|v| v.iter().any(|c| c == "eu"));
        Self { eu }
    }

    /// The stored form of the `dsr_requests.jurisdictions` column: `cn` or `cn,eu`.
    pub fn as_column(self) -> &'static str {
        if self.eu {
            "cn,eu"
        } else {
            "cn"
        }
    }

    pub fn from_column(s: &str) -> Self {
        Self {
            eu: s.split(',').any(|c| c == "eu"),
        }
    }
}

/// Validates a submitted `jurisdictions` value: a non-empty JSON array of distinct codes among
/// `cn` and `eu` that contains `cn`. Stored canonical, `cn` first.
pub fn validate_jurisdictions(value: &serde_json::Value) -> Result<String, &'static str> {
    let Some(items) = value.as_array() else {
        return Err("wrong_type");
    };
    let mut cn = false;
    let mut eu = false;
    for item in items {
        let seen = match item.as_str() {
            Some("cn") => &mut cn,
            Some("eu") => &mut eu,
            Some(_) => return Err("not_allowed"),
            None => return Err("wrong_type"),
        };
        if *seen {
            return Err("duplicate_value");
        }
        *seen = true;
    }
    if !cn {
        // PIPL Art. 3(1): processing in China is under PIPL whatever else applies.
        return Err("cn_required");
    }
    Ok(if eu { r#"["cn","eu"]"# } else { r#"["cn"]"# }.to_string())
}

/// The deadlines of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub received: Date,
    pub jurisdictions: Jurisdictions,
    /// 15 Chinese working days, at most 30 calendar days.
    pub cn_due: Date,
    /// One month, plus any extension; `None` when the GDPR does not apply.
    pub eu_due: Option<Date>,
    /// Months the GDPR clock was extended by (0 to 2).
    pub extended_months: u32,
}

impl Deadlines {
    pub fn compute(cal: &WorkCalendar, received: Date, jurisdictions: Jurisdictions) -> Self {
        Self {
            received,
            jurisdictions,
            cn_due: cal.dsr_due(received),
            eu_due: jurisdictions.eu.then(|| Period::Months(1).add_to(received)),
            extended_months: 0,
        }
    }

    /// The clock that decides: `eu` when the GDPR's due date is strictly earlier, else `cn`.
    pub fn clock(&self) -> &'static str {
        match self.eu_due {
            Some(eu) if eu < self.cn_due => "eu",
            _ => "cn",
        }
    }

    /// The due date that applies: the earlier of the two (the stricter rule wins, REQ-48).
    pub fn due(&self) -> Date {
        self.eu_due.map_or(self.cn_due, |eu| eu.min(self.cn_due))
    }

    /// Extends the GDPR clock by `months` more (GDPR Art. 12(3)). The Chinese clock is not
    /// extendable: neither the 15-working-day rule nor GB/T 35273 §8.7 provides for it.
    pub fn extend(&mut self, months: u32) -> Result<(), ExtendError> {
        if !self.jurisdictions.eu {
            return Err(ExtendError::NotExtendable);
        }
        if months == 0 || self.extended_months + months > MAX_EXTENSION_MONTHS {
            return Err(ExtendError::LimitReached);
        }
        self.extended_months += months;
        self.eu_due = Some(Period::Months(1 + self.extended_months).add_to(self.received));
        Ok(())
    }

    /// Whether at least [`ESCALATE_AT_PERCENT`] of the time from receipt to the due date has
    /// elapsed on `today` (both in whole days).
    pub fn past_escalation(&self, today: Date) -> bool {
        let total = (self.due() - self.received).whole_days().max(1);
        let elapsed = (today - self.received).whole_days();
        elapsed * 100 >= total * ESCALATE_AT_PERCENT
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendError {
    /// Only the CN clock applies.
    NotExtendable,
    /// More than two months in all.
    LimitReached,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    fn cal() -> WorkCalendar {
        crate::policy::Policies::load(None).unwrap().calendar
    }

    #[test]
    fn jurisdictions_must_include_cn_and_name_each_code_once() {
        assert_eq!(
            validate_jurisdictions(&json!(["eu", "cn"])).unwrap(),
            r#"["cn","eu"]"#
        );
        assert_eq!(validate_jurisdictions(&json!(["cn"])).unwrap(), r#"["cn"]"#);
        assert_eq!(validate_jurisdictions(&json!(["eu"])), Err("cn_required"));
        assert_eq!(validate_jurisdictions(&json!([])), Err("cn_required"));
        assert_eq!(
            validate_jurisdictions(&json!(["cn", "us"])),
            Err("not_allowed")
        );
        assert_eq!(
            validate_jurisdictions(&json!(["cn", "cn"])),
            Err("duplicate_value")
        );
        assert_eq!(validate_jurisdictions(&json!("cn")), Err("wrong_type"));
        assert_eq!(validate_jurisdictions(&json!([1])), Err("wrong_type"));
    }

    #[test]
    fn req_48_the_earlier_clock_wins() {
        let both = Jurisdictions { eu: true };
        // Before the National Day holiday: 15 CN working days (Oct 22) beat one month (Oct 25).
        let d = Deadlines::compute(&cal(), date!(2026 - 09 - 25), both);
        assert_eq!(d.cn_due, date!(2026 - 10 - 22));
        assert_eq!(d.eu_due, Some(date!(2026 - 10 - 25)));
        assert_eq!((d.clock(), d.due()), ("cn", date!(2026 - 10 - 22)));
        // With the shipped Spring Festival the Chinese clock still wins in February (Feb 28).
        let d = Deadlines::compute(&cal(), date!(2026 - 02 - 02), both);
        assert_eq!(
            (d.cn_due, d.eu_due),
            (date!(2026 - 02 - 28), Some(date!(2026 - 03 - 02)))
        );
        assert_eq!(d.clock(), "cn");
        // February is short: with a break of two weeks, one month (Mar 2) beats the 30-day cap.
        let mut long = WorkCalendar::default();
        for day in [16, 17, 18, 19, 20, 23, 24, 25, 26, 27] {
            long.holidays
                .insert(Date::from_calendar_date(2026, time::Month::February, day).unwrap());
        }
        let d = Deadlines::compute(&long, date!(2026 - 02 - 02), both);
        assert_eq!(d.cn_due, date!(2026 - 03 - 04));
        assert_eq!((d.clock(), d.due()), ("eu", date!(2026 - 03 - 02)));
        let cn = Deadlines::compute(&long, date!(2026 - 02 - 02), Jurisdictions::default());
        assert_eq!((cn.clock(), cn.eu_due), ("cn", None));
        // A tie (a 30-day month, the 30-day cap reached) goes to the Chinese clock.
        let mut off = WorkCalendar::default();
        for day in 1..=30 {
            off.holidays
                .insert(Date::from_calendar_date(2026, time::Month::November, day).unwrap());
        }
        let d = Deadlines::compute(&off, date!(2026 - 11 - 01), both);
        assert_eq!(
            (d.cn_due, d.eu_due),
            (date!(2026 - 12 - 01), Some(date!(2026 - 12 - 01)))
        );
        assert_eq!(d.clock(), "cn");
    }

    #[test]
    fn only_the_gdpr_clock_extends_and_by_two_months_at_most() {
        let mut cn = Deadlines::compute(&cal(), date!(2026 - 02 - 02), Jurisdictions::default());
        assert_eq!(cn.extend(1), Err(ExtendError::NotExtendable));
        let mut d = Deadlines::compute(&cal(), date!(2026 - 02 - 02), Jurisdictions { eu: true });
        d.extend(1).unwrap();
        assert_eq!(d.eu_due, Some(date!(2026 - 04 - 02)));
        d.extend(1).unwrap();
        assert_eq!(d.eu_due, Some(date!(2026 - 05 - 02)));
        assert_eq!(d.extend(1), Err(ExtendError::LimitReached));
        // The CN clock still applies to the same request: the earlier date still wins.
        assert_eq!(d.clock(), "cn");
        assert_eq!(d.due(), d.cn_due);
    }

    #[test]
    fn escalation_starts_at_80_percent_of_the_time() {
        let d = Deadlines::compute(&cal(), date!(2026 - 09 - 25), Jurisdictions::default());
        // 27 days to Oct 22: 80% is 21.6 days, so day 22 (Oct 17) escalates, day 21 does not.
        assert!(!d.past_escalation(date!(2026 - 10 - 16)));
        assert!(d.past_escalation(date!(2026 - 10 - 17)));
    }
}
