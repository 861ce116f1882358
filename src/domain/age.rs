//! A guest's age in completed years (周岁) on a given day, from a date of birth or the birth
//! date in a PRC resident ID (REQ-10; PIPL Art. 28, 31; 未成年人保护法 Art. 57). The day is the
//! date in China, passed in: a guest born on 25 November turns 14 at 00:00 Beijing time on
//! its 14th birthday, while the UTC date is still the 24th.

use time::{Date, Month};

/// Under this age every field of the guest is sensitive and consent needs a guardian
/// (PIPL Art. 28, 31).
pub const SENSITIVE_UNDER: u8 = 14;
/// Under this age a registration needs a guardian's contact or an accompanying adult
/// (未成年人保护法 Art. 57).
pub const MINOR_UNDER: u8 = 18;

/// How the vault treats a guest by age, or `Unknown` when no birth date is known (or visible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeBand {
    /// Under 14: every field sensitive, consent by a guardian.
    Child,
    /// 14 to 17: a minor whose registration needs a guardian or an accompanying adult.
    Minor,
    Adult,
    Unknown,
}

impl AgeBand {
    pub fn of(birth: Option<Date>, today: Date) -> Self {
        match birth.map(|b| age_on(b, today)) {
            None => Self::Unknown,
            Some(a) if a < u32::from(SENSITIVE_UNDER) => Self::Child,
            Some(a) if a < u32::from(MINOR_UNDER) => Self::Minor,
            Some(_) => Self::Adult,
        }
    }

    /// Under 14 (PIPL Art. 28, 31).
    pub fn is_child(self) -> bool {
        self == Self::Child
    }

    /// Under 18.
    pub fn is_minor(self) -> bool {
        matches!(self, Self::Child | Self::Minor)
    }
}

/// Completed years on `today`. A birthday on 29 February is reached on 1 March in a common
/// year (the later day: the protection of a minor never ends early). A birth date after
/// `today` counts as age 0.
pub fn age_on(birth: Date, today: Date) -> u32 {
    if today <= birth {
        return 0;
    }
    let years = today.year() - birth.year();
    let before_birthday = (today.month() as u8, today.day()) < (birth.month() as u8, birth.day());
    u32::try_from(years - i32::from(before_birthday)).unwrap_or(0)
}

/// The date of birth from a stored `birth_date` (`YYYY-MM-DD`) or, failing that, from a PRC
/// resident ID (`id_type` `cn_resident_id`), as normalized at write.
pub fn birth_date_from(
    birth_date: Option<&str>,
    id_type: Option<&str>,
    id_number: Option<&str>,
) -> Option<Date> {
    if let Some(d) = birth_date.and_then(parse_iso) {
        return Some(d);
    }
    match (id_type, id_number) {
        (Some("cn_resident_id"), Some(n)) => super::pii::resident_id_birth_date(n),
        _ => None,
    }
}

fn parse_iso(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i32 = s.get(0..4)?.parse().ok()?;
    let month: u8 = s.get(5..7)?.parse().ok()?;
    let day: u8 = s.get(8..10)?.parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn age_counts_completed_years_and_turns_on_the_birthday_req_10() {
        let birth = date!(2012 - 11 - 25);
        assert_eq!(age_on(birth, date!(2026 - 11 - 24)), 13);
        assert_eq!(age_on(birth, date!(2026 - 11 - 25)), 14);
        assert_eq!(age_on(birth, date!(2027 - 01 - 01)), 14);
        assert_eq!(age_on(birth, date!(2012 - 11 - 25)), 0);
        assert_eq!(age_on(birth, date!(2000 - 01 - 01)), 0);
    }

    #[test]
    fn a_leap_day_birthday_is_reached_on_the_first_of_march_in_a_common_year() {
        let birth = date!(2012 - 02 - 29);
        assert_eq!(age_on(birth, date!(2026 - 02 - 28)), 13);
        assert_eq!(age_on(birth, date!(2026 - 03 - 01)), 14);
        assert_eq!(age_on(birth, date!(2028 - 02 - 29)), 16);
    }

    #[test]
    fn bands_split_at_14_and_18() {
        let today = date!(2026 - 06 - 01);
        assert_eq!(
            AgeBand::of(Some(date!(2016 - 06 - 01)), today),
            AgeBand::Child
        );
        assert_eq!(
            AgeBand::of(Some(date!(2012 - 06 - 01)), today),
            AgeBand::Minor
        );
        assert_eq!(
            AgeBand::of(Some(date!(2008 - 06 - 02)), today),
            AgeBand::Minor
        );
        assert_eq!(
            AgeBand::of(Some(date!(2008 - 06 - 01)), today),
            AgeBand::Adult
        );
        assert_eq!(AgeBand::of(None, today), AgeBand::Unknown);
        assert!(AgeBand::Child.is_minor() && AgeBand::Child.is_child());
        assert!(AgeBand::Minor.is_minor() && !AgeBand::Minor.is_child());
        assert!(!AgeBand::Adult.is_minor() && !AgeBand::Unknown.is_minor());
    }

    #[test]
    fn the_birth_date_comes_from_birth_date_first_then_a_resident_id() {
        let id = "11010520160315002X";
        assert_eq!(
            birth_date_from(Some("2016-03-15"), None, None),
            Some(date!(2016 - 03 - 15))
        );
        assert_eq!(
            birth_date_from(None, Some("cn_resident_id"), Some(id)),
            Some(date!(2016 - 03 - 15))
        );
        // A passport number says nothing about the age, nor does an ID of unknown type.
        assert_eq!(birth_date_from(None, Some("passport"), Some(id)), None);
        assert_eq!(birth_date_from(None, None, Some(id)), None);
        assert_eq!(birth_date_from(Some("2016/03/15"), None, None), None);
    }
}
