//! Policy as configuration: the field catalog (`fields.toml`) and the access policy
//! (`access.toml`), loaded and validated together. Validation collects every problem with the
//! file and key that caused it; the server refuses to start on any (DESIGN principle 5).
//!
//! This module is also the only place that mints a [`Permit`]: store functions that return or
//! write personal data demand one, so no code path reaches guest data without a decision.

mod access;
mod catalog;
mod minors;
pub mod notices;
mod reasons;
mod retention;
#[cfg(test)]
mod scenarios;
mod stages;

use std::path::{Path, PathBuf};

pub(crate) use access::SystemJob;
pub use access::{
    AccessPolicy, Action, Basis, ConsentFacts, Denial, DenyReason, Grant, Permit, Purpose, Role,
    View,
};
pub use catalog::{
    is_identifier, Catalog, FieldScope, FieldSpec, FieldType, RuleMode, Sensitivity,
    ValidationRules,
};
pub use minors::MinorsPolicy;
pub use reasons::{is_ticket, starts_like_formula, Justification, JustificationInput, Reason};
pub use retention::{Anchor, RetentionClass, Schedule};
pub use stages::{Stage, StageAction};

pub const FIELDS_FILE: &str = "fields.toml";
pub const ACCESS_FILE: &str = "access.toml";
pub const RETENTION_FILE: &str = "retention.toml";
pub const HOLIDAYS_FILE: &str = "holidays.toml";
pub const NOTICES_FILE: &str = "notices.toml";

const EMBEDDED_FIELDS: &str = include_str!("../../policies/fields.toml");
const EMBEDDED_ACCESS: &str = include_str!("../../policies/access.toml");
const EMBEDDED_RETENTION: &str = include_str!("../../policies/retention.toml");
const EMBEDDED_HOLIDAYS: &str = include_str!("../../policies/holidays.toml");
const EMBEDDED_NOTICES: &str = include_str!("../../policies/notices.toml");
/// The notice texts `notices.toml` registers, by their path relative to `policies/`.
const EMBEDDED_NOTICE_TEXTS: [(&str, &str); 4] = [
    (
        "notices/2026-11.zh-CN.md",
        include_str!("../../policies/notices/2026-11.zh-CN.md"),
    ),
    (
        "notices/2026-11.en.md",
        include_str!("../../policies/notices/2026-11.en.md"),
    ),
    (
        "notices/2026-12.zh-CN.md",
        include_str!("../../policies/notices/2026-12.zh-CN.md"),
    ),
    (
        "notices/2026-12.en.md",
        include_str!("../../policies/notices/2026-12.en.md"),
    ),
];

/// One problem in a policy file, named by file and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl PolicyError {
    pub fn new(file: &str, key: &str, message: &str) -> Self {
        Self {
            file: file.to_string(),
            key: key.to_string(),
            message: message.to_string(),
        }
    }
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: `{}` {}", self.file, self.key, self.message)
        }
    }
}

/// Every problem found in a set of policy files.
#[derive(Debug, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl std::fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid policy ({} problem(s)):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// The validated policy set the vault runs under.
#[derive(Debug)]
pub struct Policies {
    pub catalog: Catalog,
    pub access: AccessPolicy,
    pub retention: Schedule,
    /// Working days for data-subject request deadlines.
    pub calendar: crate::domain::retention::WorkCalendar,
    /// The registered privacy notices (`notices.toml`).
    pub notices: notices::Notices,
    /// Where the policies came from: a directory, or `None` for the embedded defaults.
    pub source: Option<PathBuf>,
}

impl Policies {
    /// Loads `fields.toml` and `access.toml` from `dir`, or the embedded defaults (identical to
    /// the shipped `policies/`) when `dir` is `None`.
    pub fn load(dir: Option<&Path>) -> Result<Self, PolicyErrors> {
        let Some(dir) = dir else {
            return Self::from_sources(&Sources::embedded());
        };
        let read = |name: &str| -> Result<(String, String), PolicyErrors> {
            let path = dir.join(name);
            let label = path.display().to_string();
            std::fs::read_to_string(&path)
                .map(|text| (label.clone(), text))
                .map_err(|e| {
                    PolicyErrors(vec![PolicyError::new(
                        &label,
                        "",
                        &format!("cannot read: {e}"),
                    )])
                })
        };
        let notices = read(NOTICES_FILE)?;
        // The notice texts it names, read relative to the directory; an unreadable or unsafe
        // path is reported by the registry's validation under its key.
        let notice_texts = notices::Notices::files_named_in(&notices.1)
            .into_iter()
            .map(|f| {
                let text = if f.contains("..") || std::path::Path::new(&f).is_absolute() {
                    Err("not a path inside the policy directory".to_string())
                } else {
                    std::fs::read(dir.join(&f)).map_err(|e| e.to_string())
                };
                (f, text)
            })
            .collect();
        let sources = Sources {
            fields: read(FIELDS_FILE)?,
            access: read(ACCESS_FILE)?,
            retention: read(RETENTION_FILE)?,
            holidays: read(HOLIDAYS_FILE)?,
            notices,
            notice_texts,
            notice_disclosure: true,
        };
        let mut policies = Self::from_sources(&sources)?;
        policies.source = Some(dir.to_owned());
        Ok(policies)
    }

    /// Parses and cross-validates the policy files given as (label, text).
    pub fn from_sources(s: &Sources) -> Result<Self, PolicyErrors> {
        let mut errors = Vec::new();
        let catalog = Catalog::parse(&s.fields.0, &s.fields.1, &mut errors);
        let access = AccessPolicy::parse(&s.access.0, &s.access.1, &catalog, &mut errors);
        let retention = Schedule::parse(
            &s.retention.0,
            &s.retention.1,
            &catalog,
            &access,
            &mut errors,
        );
        let calendar = retention::parse_calendar(&s.holidays.0, &s.holidays.1, &mut errors);
        // The notices are checked against valid files only: a broken class or purpose is
        // reported once, where it is, not again as a notice that fails to disclose it.
        let notices = if errors.is_empty() {
            notices::parse(
                &s.notices.0,
                &s.notices.1,
                &s.notice_texts,
                s.notice_disclosure,
                &catalog,
                &access,
                &retention,
                &mut errors,
            )
        } else {
            notices::Notices::default()
        };
        if errors.is_empty() {
            Ok(Self {
                catalog,
                access,
                retention,
                calendar,
                notices,
                source: None,
            })
        } else {
            Err(PolicyErrors(errors))
        }
    }
}

/// `guestvault policy check` and the console's policy page: the policy files at `dir` (the
/// embedded defaults for `None`) loaded and cross-validated exactly as the server's start does.
#[derive(Debug)]
pub struct CheckReport {
    /// The directory checked, or `<embedded>`.
    pub source: String,
    /// The counts when every file is valid, else every problem by file and key.
    pub result: Result<CheckCounts, Vec<PolicyError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckCounts {
    pub guest_fields: usize,
    pub stay_fields: usize,
    pub purposes: usize,
    pub roles: usize,
    /// Registered privacy-notice versions (`notices.toml`).
    pub notices: usize,
}

impl CheckReport {
    /// The CLI's one line for a valid set: `policy ok: … (dir)`.
    pub fn summary(&self) -> Option<String> {
        self.result.as_ref().ok().map(|c| {
            format!(
                "policy ok: {} guest fields, {} stay fields, {} purposes, {} roles, {} notice version(s) ({})",
                c.guest_fields, c.stay_fields, c.purposes, c.roles, c.notices, self.source
            )
        })
    }
}

/// Loads and validates the policy files at `dir` (re-read from disk now), or the embedded set.
pub fn check(dir: Option<&Path>) -> CheckReport {
    let source = dir.map_or_else(|| "<embedded>".to_string(), |d| d.display().to_string());
    let result = Policies::load(dir)
        .map(|p| CheckCounts {
            guest_fields: p.catalog.fields(FieldScope::Guest).count(),
            stay_fields: p.catalog.fields(FieldScope::Stay).count(),
            purposes: p.access.purposes.len(),
            roles: p.access.roles.len(),
            notices: p.notices.versions.len(),
        })
        .map_err(|e| e.0);
    CheckReport { source, result }
}

/// The policy files as (label, text) pairs, and the notice texts `notices.toml` names.
#[derive(Debug, Clone)]
pub struct Sources {
    pub fields: (String, String),
    pub access: (String, String),
    pub retention: (String, String),
    pub holidays: (String, String),
    pub notices: (String, String),
    /// Path relative to the policy directory → the file's bytes (or why it was not read).
    pub notice_texts: std::collections::BTreeMap<String, Result<Vec<u8>, String>>,
    /// Whether the latest notice must disclose what the policy enforces (always, except in
    /// unit tests of other rules that edit a policy file without registering a new notice).
    pub notice_disclosure: bool,
}

impl Sources {
    /// The defaults compiled into the binary (identical to the shipped `policies/`).
    pub fn embedded() -> Self {
        let e = |name: &str, text: &str| (format!("<embedded>/{name}"), text.to_string());
        Self {
            fields: e(FIELDS_FILE, EMBEDDED_FIELDS),
            access: e(ACCESS_FILE, EMBEDDED_ACCESS),
            retention: e(RETENTION_FILE, EMBEDDED_RETENTION),
            holidays: e(HOLIDAYS_FILE, EMBEDDED_HOLIDAYS),
            notices: e(NOTICES_FILE, EMBEDDED_NOTICES),
            notice_texts: EMBEDDED_NOTICE_TEXTS
                .iter()
                .map(|(f, t)| (f.to_string(), Ok(t.as_bytes().to_vec())))
                .collect(),
            notice_disclosure: true,
        }
    }
}

/// Deserializes TOML, turning a syntax or shape error into a [`PolicyError`] with a line number.
fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
    errors: &mut Vec<PolicyError>,
) -> Option<T> {
    match toml::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!("line {l}")).unwrap_or_default();
            errors.push(PolicyError::new(
                file,
                &at,
                e.message().trim_end_matches('\n'),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fields: &str, access: &str) -> Vec<String> {
        let sources = Sources {
            fields: ("fields.toml".into(), fields.into()),
            access: ("access.toml".into(), access.into()),
            ..Sources::embedded()
        };
        match Policies::from_sources(&sources) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn check_retention(retention: &str) -> Vec<String> {
        let sources = Sources {
            retention: ("retention.toml".into(), retention.into()),
            ..Sources::embedded()
        };
        match Policies::from_sources(&sources) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Issue 15: `[validation] gender_vs_id_number` is `warn` (default) or `strict`; anything
    /// else stops the start naming the file and key (REQ-44).
    #[test]
    fn the_gender_rule_switch_is_warn_or_strict_and_named_when_invalid() {
        let access = EMBEDDED_ACCESS;
        let shipped = Policies::load(None).unwrap();
        assert_eq!(
            shipped.catalog.validation().gender_vs_id_number,
            RuleMode::Warn
        );
        let without = EMBEDDED_FIELDS.replace("gender_vs_id_number = \"warn\"", "");
        assert_ne!(without, EMBEDDED_FIELDS, "the shipped file sets the switch");
        for (text, mode) in [
            (without.clone(), RuleMode::Warn),
            (
                EMBEDDED_FIELDS.replace("= \"warn\"", "= \"strict\""),
                RuleMode::Strict,
            ),
        ] {
            let sources = Sources {
                fields: ("fields.toml".into(), text),
                ..Sources::embedded()
            };
            let p = Policies::from_sources(&sources).unwrap();
            assert_eq!(p.catalog.validation().gender_vs_id_number, mode);
        }
        let errs = check(
            &EMBEDDED_FIELDS.replace("= \"warn\"", "= \"lenient\""),
            access,
        );
        assert_eq!(
            errs,
            vec!["fields.toml: `validation.gender_vs_id_number` must be `warn` or `strict`"]
        );
        let errs = check(
            &EMBEDDED_FIELDS.replace(
                "gender_vs_id_number = \"warn\"",
                "gender_vs_id_numbr = \"warn\"",
            ),
            access,
        );
        // An unknown key is refused by line (and the catalog with it).
        assert!(
            errs[0].starts_with("fields.toml: `line ") && errs[0].contains("gender_vs_id_numbr"),
            "{errs:?}"
        );
    }

    #[test]
    fn every_field_category_needs_a_retention_class() {
        let errs =
            check_retention(&EMBEDDED_RETENTION.replace("[classes.contact]", "[classes.kontakt]"));
        assert!(
            errs.iter()
                .any(|e| e.contains("no class `contact` for field `guest.mobile`")),
            "{errs:?}"
        );
        let errs =
            check_retention(&EMBEDDED_RETENTION.replace("retain = \"1y\"", "retain = \"1 year\""));
        assert!(
            errs.iter().any(|e| e.contains("`classes.contact.retain`")),
            "{errs:?}"
        );
    }

    #[test]
    fn shipped_policies_are_valid() {
        let p = Policies::load(None).unwrap();
        assert!(
            p.catalog
                .get(FieldScope::Guest, "mobile")
                .unwrap()
                .searchable
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        Policies::load(Some(&dir)).unwrap();
    }

    #[test]
    fn a_field_without_sensitivity_is_named_by_key() {
        let fields = EMBEDDED_FIELDS.replacen("sensitivity = \"personal\"\n", "", 1);
        let errs = check(&fields, EMBEDDED_ACCESS);
        assert!(
            errs.iter()
                .any(|e| e.contains("`guest.full_name.sensitivity` is required")),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_field_in_a_purpose_is_named_by_key() {
        let access = EMBEDDED_ACCESS.replacen(
            "fields = [\"full_name\"",
            "fields = [\"religion\", \"full_name\"",
            1,
        );
        let errs = check(EMBEDDED_FIELDS, &access);
        assert!(
            errs.iter()
                .any(|e| e.contains("`purposes.check_in.fields`") && e.contains("religion")),
            "{errs:?}"
        );
    }

    #[test]
    fn duplicate_keys_are_reported_with_a_line() {
        let access = EMBEDDED_ACCESS.replacen(
            "full_name = \"plain\"\n",
            "full_name = \"plain\"\nfull_name = \"masked\"\n",
            1,
        );
        let errs = check(EMBEDDED_FIELDS, &access);
        assert!(
            errs.iter().any(|e| e.starts_with("access.toml: `line ")),
            "{errs:?}"
        );
    }

    #[test]
    fn sensitive_field_plain_under_a_consent_purpose_is_refused() {
        let access =
            EMBEDDED_ACCESS.replacen("dietary_needs = \"masked\"", "dietary_needs = \"plain\"", 1);
        let errs = check(EMBEDDED_FIELDS, &access);
        assert!(
            errs.iter()
                .any(|e| e.contains("`roles.marketing.views.dietary_needs`")),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_view_action_and_purpose_are_refused() {
        let access = EMBEDDED_ACCESS
            .replacen("gender = \"plain\"", "gender = \"clear\"", 1)
            .replacen("\"guest.create\",", "\"guest.delete_all\",", 1)
            .replacen(
                "purposes = [\"guest_service\"]",
                "purposes = [\"gossip\"]",
                1,
            );
        let errs = check(EMBEDDED_FIELDS, &access).join("\n");
        assert!(
            errs.contains("`roles.front_desk.views.gender` unknown view"),
            "{errs}"
        );
        assert!(
            errs.contains("`roles.front_desk.actions` unknown action"),
            "{errs}"
        );
        assert!(
            errs.contains("`roles.concierge.purposes` unknown purpose"),
            "{errs}"
        );
    }

    #[test]
    fn role_without_purposes_is_refused() {
        let access = format!("{EMBEDDED_ACCESS}\n[roles.idle]\npurposes = []\nactions = []\n");
        let errs = check(EMBEDDED_FIELDS, &access).join("\n");
        assert!(
            errs.contains("`roles.idle.purposes` a role needs at least one purpose"),
            "{errs}"
        );
    }
}
