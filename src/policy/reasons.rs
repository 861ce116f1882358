//! Reason codes (`[reasons.<code>]` in `access.toml`): why a reveal, a searched field that
//! needs a justification, or a DSR officer's export was made. The audit trail keeps the reason
//! for years after the guest is erased, so it is a code from a closed list (plus an optional
//! ticket id), never free text that could carry the guest's data (issue 12 point 7, REQ-13).
//!
//! [`Justification::parse`] is the one validator every caller of a justified action uses.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::PolicyError;
use crate::domain::FieldError;

/// Longest ticket id; tickets match `[A-Za-z0-9._-]{1,40}` and do not start with `-` or `.`.
pub const TICKET_MAX_CHARS: usize = 40;
pub const NOTE_MIN_CHARS: usize = 10;
pub const NOTE_MAX_CHARS: usize = 500;

/// One reason code and what it means (shown in the policy and the OpenAPI document).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReason {
    description: String,
}

/// Validates `[reasons.*]`: codes are identifiers, each has a description, and there is at
/// least one (without a reason, nothing could ever be revealed).
pub(super) fn parse(
    file: &str,
    raw: BTreeMap<String, RawReason>,
    errors: &mut Vec<PolicyError>,
) -> BTreeMap<String, Reason> {
    parse_table(file, "reasons", raw, true, errors)
}

/// Validates a table of reason codes (`[reasons.*]`, `[hold_reasons.*]`) the same way;
/// `required`: at least one must be defined.
pub(super) fn parse_table(
    file: &str,
    table: &str,
    raw: BTreeMap<String, RawReason>,
    required: bool,
    errors: &mut Vec<PolicyError>,
) -> BTreeMap<String, Reason> {
    if raw.is_empty() && required {
        errors.push(PolicyError::new(
            file,
            table,
            &format!(
                "no reason codes are defined (add `[{table}.<code>]` tables with a `description`)"
            ),
        ));
    }
    let mut out = BTreeMap::new();
    for (code, r) in raw {
        let key = format!("{table}.{code}");
        if !super::is_identifier(&code) {
            errors.push(PolicyError::new(
                file,
                &key,
                "a reason code must be lower-case letters, digits and `_`, starting with a letter",
            ));
            continue;
        }
        if r.description.trim().is_empty() {
            errors.push(PolicyError::new(
                file,
                &format!("{key}.description"),
                "must not be empty",
            ));
        }
        out.insert(
            code.clone(),
            Reason {
                code,
                description: r.description.trim().to_string(),
            },
        );
    }
    out
}

/// What a request says about why: a reason code, an optional ticket, optional free text.
#[derive(Debug, Clone, Copy, Default)]
pub struct JustificationInput<'a> {
    pub reason: Option<&'a str>,
    pub ticket: Option<&'a str>,
    /// Free text (`justification`): refused unless the deployment allows it.
    pub note: Option<&'a str>,
}

/// A checked justification, ready for the audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Justification {
    reason: String,
    ticket: Option<String>,
    note: Option<String>,
}

impl Justification {
    /// Checks `input` against the policy's reason codes. Errors name the field (`reason`,
    /// `ticket`, `justification`) with a stable code and never echo the value:
    /// `reason`: `required`, `unknown_reason`; `ticket`: `invalid_format`;
    /// `justification`: `free_text_disabled`, `required` (too short), `too_long`,
    /// `formula_prefix` (starts with `= + - @`, tab or CR) or `personal_data`.
    /// The guest-specific check (the guest's own values in the note) is the caller's.
    pub fn parse(
        reasons: &BTreeMap<String, Reason>,
        input: &JustificationInput<'_>,
        allow_free_text: bool,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let reason = input.reason.map(str::trim).unwrap_or_default();
        if reason.is_empty() {
            errors.push(FieldError::new("reason", "required"));
        } else if !reasons.contains_key(reason) {
            errors.push(FieldError::new("reason", "unknown_reason"));
        }
        let ticket = input.ticket.filter(|t| !t.is_empty());
        if ticket.is_some_and(|t| !is_ticket(t)) {
            errors.push(FieldError::new("ticket", "invalid_format"));
        }
        let note = input.note.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = note {
            if !allow_free_text {
                errors.push(FieldError::new("justification", "free_text_disabled"));
            } else if let Err(code) = check_note(n) {
                errors.push(FieldError::new("justification", code));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            reason: reason.to_string(),
            ticket: ticket.map(str::to_string),
            note: note.map(str::to_string),
        })
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn ticket(&self) -> Option<&str> {
        self.ticket.as_deref()
    }

    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The audit event's `justification`: `reason=<code>`, then ` ticket=<id>`, then
    /// ` note=<text>` when free text is allowed and given.
    pub fn audit_text(&self) -> String {
        let mut s = format!("reason={}", self.reason);
        if let Some(t) = &self.ticket {
            s.push_str(" ticket=");
            s.push_str(t);
        }
        if let Some(n) = &self.note {
            s.push_str(" note=");
            s.push_str(n);
        }
        s
    }
}

/// `[A-Za-z0-9._-]{1,40}`, not starting with `-` or `.` (a leading `-` is a spreadsheet
/// formula when the audit trail is opened as CSV).
pub fn is_ticket(t: &str) -> bool {
    (1..=TICKET_MAX_CHARS).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !t.starts_with(['-', '.'])
}

/// Whether free text starts like a spreadsheet formula (CSV injection): `= + - @`, a tab or a
/// carriage return. Notes are checked after trimming, and stored trimmed.
pub fn starts_like_formula(s: &str) -> bool {
    s.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

fn check_note(n: &str) -> Result<(), &'static str> {
    let chars = n.chars().count();
    if chars < NOTE_MIN_CHARS {
        return Err("required");
    }
    if chars > NOTE_MAX_CHARS {
        return Err("too_long");
    }
    if starts_like_formula(n) {
        return Err("formula_prefix");
    }
    if crate::domain::freetext::carries_personal_data(n, &[]) {
        return Err("personal_data");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reasons() -> BTreeMap<String, Reason> {
        crate::policy::Policies::load(None).unwrap().access.reasons
    }

    fn parse(
        reason: Option<&str>,
        ticket: Option<&str>,
        note: Option<&str>,
        free: bool,
    ) -> Result<Justification, Vec<FieldError>> {
        let input = JustificationInput {
            reason,
            ticket,
            note,
        };
        Justification::parse(&reasons(), &input, free)
    }

    fn codes(r: Result<Justification, Vec<FieldError>>) -> Vec<(String, &'static str)> {
        r.unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn a_known_reason_and_ticket_are_accepted_and_audited_as_codes() {
        let j = parse(Some("police_request"), Some("PSB-2026.11_7"), None, false).unwrap();
        assert_eq!(j.audit_text(), "reason=police_request ticket=PSB-2026.11_7");
        let j = parse(Some("guest_request"), None, None, false).unwrap();
        assert_eq!(j.audit_text(), "reason=guest_request");
    }

    #[test]
    fn missing_and_unknown_reasons_are_refused_by_field() {
        assert_eq!(
            codes(parse(None, None, None, false)),
            vec![("reason".to_string(), "required")]
        );
        assert_eq!(
            codes(parse(Some("curiosity"), None, None, false)),
            vec![("reason".to_string(), "unknown_reason")]
        );
    }

    #[test]
    fn tickets_must_be_short_safe_ids() {
        for bad in ["-INC1", ".x", "a b", "张三", "=1+1", &"a".repeat(41), "x@y"] {
            assert_eq!(
                codes(parse(Some("police_request"), Some(bad), None, false)),
                vec![("ticket".to_string(), "invalid_format")],
                "{bad}"
            );
        }
    }

    #[test]
    fn free_text_is_refused_unless_allowed_and_then_checked() {
        let note = "checking the document at the desk";
        assert_eq!(
            codes(parse(Some("police_request"), None, Some(note), false)),
            vec![("justification".to_string(), "free_text_disabled")]
        );
        let j = parse(Some("police_request"), None, Some(note), true).unwrap();
        assert_eq!(j.audit_text(), format!("reason=police_request note={note}"));
        for (bad, code) in [
            ("=HYPERLINK(\"http://x\")", "formula_prefix"),
            ("@SUM(A1:A9) for the record", "formula_prefix"),
            ("guest born 1949-12-31, checking", "personal_data"),
            ("guest lives at 北京市海淀区中关村", "personal_data"),
            ("guest has peanut allergy", "personal_data"),
            ("short", "required"),
        ] {
            assert_eq!(
                codes(parse(Some("police_request"), None, Some(bad), true)),
                vec![("justification".to_string(), code)],
                "{bad}"
            );
        }
    }

    #[test]
    fn the_shipped_policy_defines_the_documented_reasons() {
        let r = reasons();
        for code in [
            "identity_check_at_desk",
            "police_request",
            "guest_request",
            "data_subject_request",
            "correction_request",
        ] {
            assert!(r.contains_key(code), "{code}");
        }
    }

    fn load_errors(access: &str) -> String {
        let sources = crate::policy::Sources {
            access: ("access.toml".into(), access.into()),
            ..crate::policy::Sources::embedded()
        };
        match crate::policy::Policies::from_sources(&sources) {
            Ok(_) => String::new(),
            Err(e) => {
                e.0.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }

    fn shipped_access() -> String {
        crate::policy::Sources::embedded().access.1
    }

    #[test]
    fn bad_reason_tables_are_named_by_file_and_key() {
        let access = shipped_access()
            .replace("[reasons.police_request]", "[reasons.Police-Request]")
            .replace(
                "description = \"Investigating a suspected fraud or a chargeback\"",
                "description = \" \"",
            );
        let errs = load_errors(&access);
        assert!(
            errs.contains("access.toml: `reasons.Police-Request` a reason code must be"),
            "{errs}"
        );
        assert!(
            errs.contains("`reasons.fraud_investigation.description` must not be empty"),
            "{errs}"
        );
        let none: String = shipped_access()
            .lines()
            .filter(|l| {
                !l.starts_with("[reasons.")
                    && !l.starts_with("[hold_reasons.")
                    && !l.starts_with("[extension_reasons.")
                    && !l.starts_with("description = ")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let errs = load_errors(&none);
        assert!(
            errs.contains("`reasons` no reason codes are defined"),
            "{errs}"
        );
    }

    #[test]
    fn search_requires_justification_names_searchable_fields_only() {
        let access = shipped_access().replacen(
            "search_requires_justification = [\"id_number\"]",
            "search_requires_justification = [\"full_name\", \"religion\"]",
            1,
        );
        let errs = load_errors(&access);
        for f in ["full_name", "religion"] {
            assert!(
                errs.contains(&format!(
                    "`roles.front_desk.search_requires_justification` `{f}` is not a searchable"
                )),
                "{errs}"
            );
        }
        let p = crate::policy::Policies::load(None).unwrap();
        let desk = &p.access.roles["front_desk"];
        assert!(desk.search_requires_justification.contains("id_number"));
        assert!(!desk.search_requires_justification.contains("mobile"));
    }

    proptest! {
        #[test]
        fn no_accepted_ticket_or_note_starts_like_a_formula(
            t in "[=+@\\t\\r\\-A-Za-z0-9._ ]{0,45}",
            n in "[=+@\\t\\r\\-a-z ]{0,30}",
        ) {
            if let Ok(j) = parse(Some("guest_request"), Some(&t), Some(&n), true) {
                prop_assert!(!j.ticket().is_some_and(starts_like_formula));
                prop_assert!(!j.note().is_some_and(starts_like_formula));
                prop_assert!(j.ticket().is_none_or(is_ticket));
            }
        }
    }
}
