//! The retention schedule (`retention.toml`) and the holiday calendar (`holidays.toml`),
//! parsed and validated: every field category maps to a class, stays to one class, periods
//! parse. (The audit trail's retention is the config key `audit.retention_days`.)

use std::collections::BTreeMap;

use serde::Deserialize;

use super::catalog::{Catalog, FieldScope};
use super::{AccessPolicy, Basis, PolicyError};
use crate::domain::retention::{Period, WorkCalendar};

/// What a class's period runs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Created,
    LastCheckout,
    LastActivity,
    /// The guest's withdrawal of consent for one of the class's `withdrawal_purposes`; while
    /// no such consent is withdrawn the period has not begun.
    ConsentWithdrawn,
}

impl Anchor {
    /// The name `retention.toml` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::LastCheckout => "last_checkout",
            Self::LastActivity => "last_activity",
            Self::ConsentWithdrawn => "consent_withdrawn",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RetentionClass {
    pub name: String,
    pub retain: Period,
    pub retain_text: String,
    pub after: Anchor,
    pub statutory: bool,
    pub basis: String,
    pub withdrawal_purposes: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub classes: BTreeMap<String, RetentionClass>,
    /// The class that stays belong to.
    pub stay_class: String,
}

impl Schedule {
    pub fn class(&self, name: &str) -> Option<&RetentionClass> {
        self.classes.get(name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    classes: BTreeMap<String, RawClass>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    retain: String,
    after: String,
    statutory: bool,
    basis: String,
    #[serde(default)]
    withdrawal_purposes: Vec<String>,
}

impl Schedule {
    pub fn parse(
        file: &str,
        text: &str,
        catalog: &Catalog,
        access: &AccessPolicy,
        errors: &mut Vec<PolicyError>,
    ) -> Self {
        let Some(raw) = super::parse_toml::<RawSchedule>(file, text, errors) else {
            return Self::default();
        };
        let mut schedule = Self::default();
        for (name, c) in raw.classes {
            let key = format!("classes.{name}");
            let retain = Period::parse(&c.retain);
            if retain.is_none() {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.retain"),
                    "must look like 30d, 6m or 3y",
                ));
            }
            let after = match c.after.as_str() {
                "created" => Some(Anchor::Created),
                "last_checkout" => Some(Anchor::LastCheckout),
                "last_activity" => Some(Anchor::LastActivity),
                "consent_withdrawn" => Some(Anchor::ConsentWithdrawn),
                _ => {
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.after"),
                        "must be created, last_checkout, last_activity or consent_withdrawn",
                    ));
                    None
                }
            };
            if after == Some(Anchor::ConsentWithdrawn) {
                if c.withdrawal_purposes.is_empty() {
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.withdrawal_purposes"),
                        "must name the consent-based purposes whose withdrawal starts the period \
                         (after = \"consent_withdrawn\")",
                    ));
                }
                if c.statutory {
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.statutory"),
                        "a class kept by law cannot run from a consent withdrawal",
                    ));
                }
            }
            if c.basis.trim().is_empty() {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.basis"),
                    "must not be empty",
                ));
            }
            if c.statutory && !c.withdrawal_purposes.is_empty() {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.withdrawal_purposes"),
                    "a class kept by law cannot end on a consent withdrawal",
                ));
            }
            for p in &c.withdrawal_purposes {
                match access.purposes.get(p) {
                    Some(purpose) if purpose.basis == Basis::Consent => {}
                    Some(_) => errors.push(PolicyError::new(
                        file,
                        &format!("{key}.withdrawal_purposes"),
                        &format!("purpose `{p}` is not consent-based"),
                    )),
                    None => errors.push(PolicyError::new(
                        file,
                        &format!("{key}.withdrawal_purposes"),
                        &format!("unknown purpose `{p}`"),
                    )),
                }
            }
            if let (Some(retain), Some(after)) = (retain, after) {
                schedule.classes.insert(
                    name.clone(),
                    RetentionClass {
                        name,
                        retain,
                        retain_text: c.retain,
                        after,
                        statutory: c.statutory,
                        basis: c.basis,
                        withdrawal_purposes: c.withdrawal_purposes,
                    },
                );
            }
        }
        // Every field category names a class; all stay fields share one (a stay is one record).
        for scope in [FieldScope::Guest, FieldScope::Stay] {
            for f in catalog.fields(scope) {
                if !schedule.classes.contains_key(&f.category) {
                    errors.push(PolicyError::new(
                        file,
                        "classes",
                        &format!(
                            "no class `{}` for field `{}.{}`",
                            f.category,
                            scope.table(),
                            f.name
                        ),
                    ));
                }
            }
        }
        let mut stay_classes: Vec<&str> = catalog
            .fields(FieldScope::Stay)
            .map(|f| f.category.as_str())
            .collect();
        stay_classes.sort_unstable();
        stay_classes.dedup();
        match stay_classes.as_slice() {
            [one] => schedule.stay_class = (*one).to_string(),
            [] => {}
            _ => errors.push(PolicyError::new(
                file,
                "classes",
                "all stay fields must share one retention class",
            )),
        }
        schedule
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHolidays {
    cn: BTreeMap<String, RawYear>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    holidays: Vec<String>,
    workdays: Vec<String>,
}

/// Parses `holidays.toml` into a working-day calendar.
pub fn parse_calendar(file: &str, text: &str, errors: &mut Vec<PolicyError>) -> WorkCalendar {
    let Some(raw) = super::parse_toml::<RawHolidays>(file, text, errors) else {
        return WorkCalendar::default();
    };
    let mut cal = WorkCalendar::default();
    for (year, y) in raw.cn {
        for (list, what, target) in [
            (&y.holidays, "holidays", &mut cal.holidays),
            (&y.workdays, "workdays", &mut cal.workdays),
        ] {
            for d in list {
                match crate::domain::pii::parse_date(d) {
                    Ok(date) if date.year().to_string() == year => {
                        target.insert(date);
                    }
                    _ => errors.push(PolicyError::new(
                        file,
                        &format!("cn.{year}.{what}"),
                        &format!("`{d}` is not a date in {year}"),
                    )),
                }
            }
        }
    }
    cal
}
