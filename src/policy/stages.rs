//! Retention stages (issue 16 §3; REQ-23, REQ-24): steps a class takes inside its period, each
//! from the class's own anchor (for `identity`, the last check-out). `restrict` makes the
//! class storage-only (readable only under purposes flagged `restricted_access`);
//! `pseudonymize` deletes the listed fields' ciphertext and keeps their keyed blind-index
//! entries, so an exact-match search still finds the guest while no value can be read. The
//! class's `retain` ends it all, as before.
//!
//! A stage begins the day after `anchor + after`, the way a period ends: `after = "30d"`
//! keeps the class in full use through check-out + 30 days, storage-only from day 31.

use serde::Deserialize;

use super::catalog::{Catalog, FieldScope};
use super::PolicyError;
use crate::domain::retention::{kept_until, Period};

/// What a stage does to its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StageAction {
    /// Storage only: readable only under purposes flagged `restricted_access`.
    Restrict,
    /// The listed fields' values are deleted; their blind-index entries are kept.
    Pseudonymize,
}

impl StageAction {
    /// The name `retention.toml`, receipts and audit events use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restrict => "restrict",
            Self::Pseudonymize => "pseudonymize",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Stage {
    /// Its position in the class's list (the key is `classes.<class>.stages[<index>]`).
    pub index: usize,
    pub after: Period,
    pub after_text: String,
    pub action: StageAction,
    /// The fields a `pseudonymize` stage pseudonymizes (empty for `restrict`, which takes
    /// the whole class).
    pub fields: Vec<String>,
}

impl Stage {
    /// The first day the stage is in force for data anchored on `anchor`.
    pub fn from(&self, anchor: time::Date) -> time::Date {
        kept_until(anchor, self.after)
            .next_day()
            .unwrap_or(time::Date::MAX)
    }

    /// Whether the stage concerns `field` (of its class).
    pub fn covers(&self, field: &str) -> bool {
        self.action == StageAction::Restrict || self.fields.iter().any(|f| f == field)
    }

    /// The rule id audit events name.
    pub fn rule(&self, class: &str) -> String {
        format!("classes.{class}.stages[{}]", self.index)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStage {
    after: String,
    action: String,
    #[serde(default)]
    fields: Option<Vec<String>>,
}

/// Whether `a` always ends before `b`, whatever the anchor: checked over every anchor of four
/// years (leap years and month lengths included), since `30d` and `1m` compare differently
/// from month to month.
fn always_before(a: Period, b: Period) -> bool {
    let start = time::macros::date!(2024 - 01 - 01);
    (0..1461).all(|i| {
        let d = start.saturating_add(time::Duration::days(i));
        kept_until(d, a) < kept_until(d, b)
    })
}

/// Validates a class's stages, naming `classes.<class>.stages[<i>]` keys. `retain` is the
/// class period (`None` when it did not parse: the order within it is then not checked).
#[allow(clippy::too_many_arguments)]
pub(super) fn parse(
    file: &str,
    class: &str,
    raw: Vec<RawStage>,
    retain: Option<Period>,
    is_stay_class: bool,
    consent_anchored: bool,
    catalog: &Catalog,
    errors: &mut Vec<PolicyError>,
) -> Vec<Stage> {
    if raw.is_empty() {
        return Vec::new();
    }
    let base = format!("classes.{class}.stages");
    if is_stay_class {
        errors.push(PolicyError::new(
            file,
            &base,
            "stages apply to guest fields; the class of stays cannot have stages",
        ));
        return Vec::new();
    }
    if consent_anchored {
        errors.push(PolicyError::new(
            file,
            &base,
            "a class that runs from a consent withdrawal cannot have stages",
        ));
        return Vec::new();
    }
    let mut out: Vec<Stage> = Vec::new();
    let mut ok = true;
    let mut restricts = 0;
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("{base}[{i}]");
        let after = Period::parse(&s.after);
        if after.is_none() {
            ok = false;
            errors.push(PolicyError::new(
                file,
                &format!("{key}.after"),
                "must look like 30d, 6m or 1y",
            ));
        }
        let action = match s.action.as_str() {
            "restrict" => Some(StageAction::Restrict),
            "pseudonymize" => Some(StageAction::Pseudonymize),
            _ => {
                ok = false;
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.action"),
                    "must be restrict or pseudonymize",
                ));
                None
            }
        };
        let fields = s.fields.unwrap_or_default();
        match action {
            Some(StageAction::Restrict) => {
                restricts += 1;
                if restricts > 1 {
                    ok = false;
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.action"),
                        "a class has at most one restrict stage (it lasts to the end of the period)",
                    ));
                }
                if !fields.is_empty() {
                    ok = false;
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.fields"),
                        "a restrict stage takes the whole class and lists no fields",
                    ));
                }
            }
            Some(StageAction::Pseudonymize) => {
                if fields.is_empty() {
                    ok = false;
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.fields"),
                        "a pseudonymize stage must name the fields it pseudonymizes",
                    ));
                }
                for f in &fields {
                    match catalog.get(FieldScope::Guest, f) {
                        None => {
                            ok = false;
                            errors.push(PolicyError::new(
                                file,
                                &format!("{key}.fields"),
                                &format!("unknown guest field `{f}`"),
                            ));
                        }
                        Some(spec) if spec.category != class => {
                            ok = false;
                            errors.push(PolicyError::new(
                                file,
                                &format!("{key}.fields"),
                                &format!(
                                    "field `{f}` belongs to class `{}`, not `{class}`",
                                    spec.category
                                ),
                            ));
                        }
                        Some(spec) if !spec.searchable => {
                            ok = false;
                            errors.push(PolicyError::new(
                                file,
                                &format!("{key}.fields"),
                                &format!(
                                    "field `{f}` is not searchable: pseudonymizing it would keep \
                                     nothing (only a blind-index entry is kept)"
                                ),
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
            None => {}
        }
        if let (Some(after), Some(action)) = (after, action) {
            if let Some(prev) = out.last() {
                if !always_before(prev.after, after) {
                    ok = false;
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.after"),
                        &format!(
                            "stages must be in order: `{}` does not always come after the \
                             previous stage's `{}`",
                            s.after, prev.after_text
                        ),
                    ));
                }
            }
            if let Some(retain) = retain {
                if !always_before(after, retain) {
                    ok = false;
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.after"),
                        &format!("`{}` is not within the class period", s.after),
                    ));
                }
            }
            out.push(Stage {
                index: i,
                after,
                after_text: s.after,
                action,
                fields,
            });
        }
    }
    if ok {
        out
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::StageAction;
    use crate::policy::{Policies, Sources};

    const PSEUDO: &str = "after = \"1y\"\naction = \"pseudonymize\"\nfields = [\"id_number\"]";

    fn errors_with(from: &str, to: &str) -> Vec<String> {
        let mut s = Sources::embedded();
        assert!(
            s.retention.1.contains(from),
            "{from:?} not in retention.toml"
        );
        s.retention.1 = s.retention.1.replacen(from, to, 1);
        Policies::from_sources(&s)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn one_error(from: &str, to: &str, key: &str) -> String {
        let errors = errors_with(from, to);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("retention.toml: `") && errors[0].contains(key),
            "{errors:?} should name {key}"
        );
        errors[0].clone()
    }

    /// REQ-23: the shipped identity schedule (legal analysis §(b) #1).
    #[test]
    fn the_shipped_identity_class_restricts_at_30_days_and_pseudonymizes_the_id_at_1_year() {
        let p = Policies::load(None).unwrap();
        let identity = p.retention.class("identity").unwrap();
        let stages: Vec<(StageAction, &str, Vec<&str>)> = identity
            .stages
            .iter()
            .map(|s| {
                (
                    s.action,
                    s.after_text.as_str(),
                    s.fields.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            stages,
            vec![
                (StageAction::Restrict, "30d", vec![]),
                (StageAction::Pseudonymize, "1y", vec!["id_number"]),
            ]
        );
        // Each begins the day after anchor + after, as a period ends.
        let checkout = date!(2026 - 11 - 23);
        assert_eq!(identity.stages[0].from(checkout), date!(2026 - 12 - 24));
        assert_eq!(identity.stages[1].from(checkout), date!(2027 - 11 - 24));
        assert!(identity.stages[0].covers("full_name") && identity.stages[0].covers("id_number"));
        assert!(identity.stages[1].covers("id_number") && !identity.stages[1].covers("full_name"));
        assert_eq!(
            identity.stages[1].rule("identity"),
            "classes.identity.stages[1]"
        );
        // Other classes have none.
        assert!(p
            .retention
            .classes
            .values()
            .filter(|c| c.name != "identity")
            .all(|c| c.stages.is_empty()));
    }

    #[test]
    fn stages_out_of_order_or_past_the_period_are_refused_naming_the_key() {
        one_error(
            PSEUDO,
            &PSEUDO.replace("1y", "20d"),
            "classes.identity.stages[1].after",
        );
        // 1m is not always after 30d (February).
        one_error(
            PSEUDO,
            &PSEUDO.replace("1y", "1m"),
            "classes.identity.stages[1].after",
        );
        let e = one_error(
            PSEUDO,
            &PSEUDO.replace("1y", "3y"),
            "classes.identity.stages[1].after",
        );
        assert!(e.contains("within the class period"), "{e}");
        one_error(
            PSEUDO,
            &PSEUDO.replace("1y", "1w"),
            "classes.identity.stages[1].after",
        );
    }

    #[test]
    fn a_pseudonymized_field_must_be_a_searchable_field_of_the_class() {
        let e = one_error(
            PSEUDO,
            &PSEUDO.replace("id_number", "mobile"),
            "classes.identity.stages[1].fields",
        );
        assert!(e.contains("belongs to class `contact`"), "{e}");
        let e = one_error(
            PSEUDO,
            &PSEUDO.replace("id_number", "full_name"),
            "classes.identity.stages[1].fields",
        );
        assert!(e.contains("not searchable"), "{e}");
        one_error(
            PSEUDO,
            &PSEUDO.replace("id_number", "shoe_size"),
            "classes.identity.stages[1].fields",
        );
        one_error(
            PSEUDO,
            &PSEUDO.replace("\nfields = [\"id_number\"]", ""),
            "classes.identity.stages[1].fields",
        );
    }

    #[test]
    fn unknown_actions_keys_and_misplaced_stages_are_refused() {
        one_error(
            "action = \"restrict\"",
            "action = \"hide\"",
            "classes.identity.stages[0].action",
        );
        one_error(
            "action = \"restrict\"",
            "action = \"restrict\"\nfields = [\"id_number\"]",
            "classes.identity.stages[0].fields",
        );
        one_error(
            PSEUDO,
            "after = \"1y\"\naction = \"restrict\"",
            "classes.identity.stages[1].action",
        );
        // An unknown key in a stage is a parse error of the file.
        let errors = errors_with(
            "action = \"restrict\"",
            "action = \"restrict\"\nuntil = \"1y\"",
        );
        assert!(
            errors.iter().any(|e| e.contains("retention.toml")),
            "{errors:?}"
        );
        // Stays are records, not fields: their class takes no stages.
        let stays = "basis = \"Stay history: 3 years";
        let e = one_error(
            stays,
            &format!("stages = [{{ after = \"30d\", action = \"restrict\" }}]\n{stays}"),
            "classes.stays.stages",
        );
        assert!(e.contains("cannot have stages"), "{e}");
    }
}
