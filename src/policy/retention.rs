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
    /// Steps inside the period, in order (issue 16 §3): see `policy/stages.rs`.
    pub stages: Vec<super::stages::Stage>,
    /// Stays only: what an erasure or the end of the period does to a stay is anonymizing it
    /// (dates, amount and currency kept, linked to nobody) instead of deleting it.
    pub anonymize: bool,
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
    #[serde(default)]
    stages: Vec<super::stages::RawStage>,
    #[serde(default)]
    anonymize: bool,
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
        // A class with a bad value is reported once, not again for every field naming it.
        let declared: std::collections::BTreeSet<String> = raw.classes.keys().cloned().collect();
        // Purposes can only be checked against an access policy that parsed.
        let access_parsed = !access.purposes.is_empty();
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
            for p in c.withdrawal_purposes.iter().filter(|_| access_parsed) {
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
            let stages = super::stages::parse(
                file,
                &name,
                c.stages,
                retain,
                stay_class_of(catalog) == Some(name.as_str()),
                after == Some(Anchor::ConsentWithdrawn),
                catalog,
                errors,
            );
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
                        stages,
                        anonymize: c.anonymize,
                    },
                );
            }
        }
        // Every field category names a class; all stay fields share one (a stay is one record).
        for scope in [FieldScope::Guest, FieldScope::Stay] {
            for f in catalog.fields(scope) {
                if !declared.contains(&f.category) {
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
        for c in schedule.classes.values() {
            if c.anonymize && c.name != schedule.stay_class {
                errors.push(PolicyError::new(
                    file,
                    &format!("classes.{}.anonymize", c.name),
                    "only the class of the stays can anonymize (a guest field is deleted)",
                ));
            }
        }
        schedule
    }
}

/// The class the stay fields name, when they all name one.
fn stay_class_of(catalog: &Catalog) -> Option<&str> {
    let mut classes = catalog
        .fields(FieldScope::Stay)
        .map(|f| f.category.as_str());
    let first = classes.next()?;
    classes.all(|c| c == first).then_some(first)
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

#[cfg(test)]
mod tests {
    use crate::policy::{Policies, Sources};

    fn errors_of(edit: impl FnOnce(&mut Sources)) -> Vec<String> {
        let mut s = Sources::embedded();
        edit(&mut s);
        Policies::from_sources(&s)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_bad_class_is_reported_once_not_for_every_field_that_names_it() {
        let errors = errors_of(|s| {
            s.retention.1 = s.retention.1.replacen(
                "retain = \"3y\"\nafter = \"last_checkout\"",
                "retain = \"3x\"\nafter = \"last_checkout\"",
                1,
            );
        });
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("classes.identity.retain"), "{errors:?}");
    }

    #[test]
    fn a_broken_access_file_does_not_make_retention_purposes_look_unknown() {
        let errors = errors_of(|s| s.access.1.push_str("\n[roles.front_desk]\n"));
        assert!(
            errors.iter().all(|e| !e.contains("retention")),
            "{errors:?}"
        );
        assert!(!errors.is_empty());
    }
}
