//! Catalog-driven validation of a set of submitted fields: the type check for each field, then
//! the cross-field rules (ID number against `id_type`, birth date and gender against the
//! resident ID, check-out after check-in). Errors carry the field name and a code, never the
//! submitted value (REQ-15).

use std::collections::BTreeMap;

use serde_json::Value;

use super::pii::{self, ValidationCode};
use super::Pii;
use crate::policy::{is_identifier, Catalog, FieldScope, FieldSpec, FieldType, RuleMode};

const TEXT_MAX_CHARS: usize = 500;
const JSON_MAX_BYTES: usize = 8 * 1024;

/// One problem with one submitted field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field or parameter name (`(invalid field name)` when it does not look like one).
    pub field: String,
    /// What is wrong, e.g. `required`, `invalid_format`, `unknown_field`.
    pub code: &'static str,
}

impl FieldError {
    pub fn new(field: &str, code: &'static str) -> Self {
        // An unknown key could itself be personal data typed in the wrong place: only names
        // that look like field names are echoed.
        let field = if is_identifier(field) {
            field.to_string()
        } else {
            "(invalid field name)".to_string()
        };
        Self { field, code }
    }
}

/// The data-quality flag of a `gender` that contradicts digit 17 of a resident ID (issue 15,
/// legal analysis §(d.1) step 8), where `[validation] gender_vs_id_number = "warn"`.
pub const GENDER_MISMATCH: &str = "gender_mismatch_id_number";

/// A data-quality flag: a warning about a record that was accepted. It names a code and the
/// fields involved, never a value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DataQualityFlag {
    /// What looks wrong, e.g. `gender_mismatch_id_number`.
    #[schema(example = "gender_mismatch_id_number")]
    pub code: &'static str,
    /// The fields that disagree, e.g. `["gender","id_number"]`.
    pub fields: Vec<&'static str>,
}

/// Whether `gender` contradicts digit 17 of the resident ID `number` (odd = `M`, even = `F`).
/// `U` (unknown) contradicts nothing; a number whose digit 17 cannot be read neither.
fn gender_contradicts(number: &str, gender: &str) -> bool {
    pii::resident_id_gender(number).is_some_and(|id_g| gender != "U" && !gender.starts_with(id_g))
}

/// The data-quality flags of a guest record whose values are `value(field)`.
///
/// No oracle (issue 15): a flag tells something about the values it compares (the gender flag
/// tells the parity of digit 17 of the ID number). `value` must give only values the one who
/// will see the flags already knows in plain: values in its request, stored values its view
/// shows in plain, or values it reveals. A value it sees masked must be `None`, exactly as if
/// it were not stored.
pub fn data_quality<'a>(value: impl Fn(&str) -> Option<&'a str>) -> Vec<DataQualityFlag> {
    let mut flags = Vec::new();
    if value("id_type") == Some("cn_resident_id") {
        if let (Some(number), Some(gender)) = (value("id_number"), value("gender")) {
            if gender_contradicts(number, gender) {
                flags.push(DataQualityFlag {
                    code: GENDER_MISMATCH,
                    fields: vec!["gender", "id_number"],
                });
            }
        }
    }
    flags
}

/// [`data_quality`] of the values after a validated change: `new` where submitted, else
/// `existing` (which must hold only values the caller sees in plain).
pub fn data_quality_after(
    new: &Validated,
    existing: &BTreeMap<String, String>,
) -> Vec<DataQualityFlag> {
    data_quality(|n| after(n, new, existing))
}

/// Normalized values ready to store: `Some` to set, `None` to remove.
pub type Validated = BTreeMap<String, Option<Pii>>;

/// Validates `input` (a JSON object of field → value, `null` meaning "remove" when
/// `allow_null`) against the catalog. `existing` holds the current plaintext of fields that
/// cross-field rules need (`id_type`, `id_number`, `birth_date`, `gender`, `check_in`, ...).
pub fn validate_fields(
    catalog: &Catalog,
    scope: FieldScope,
    input: &serde_json::Map<String, Value>,
    existing: &BTreeMap<String, String>,
    allow_null: bool,
    today: time::Date,
) -> Result<Validated, Vec<FieldError>> {
    let mut out = Validated::new();
    let mut errors = Vec::new();
    for (name, value) in input {
        let Some(spec) = catalog.get(scope, name) else {
            errors.push(FieldError::new(name, "unknown_field"));
            continue;
        };
        if value.is_null() {
            if allow_null {
                out.insert(name.clone(), None);
            } else {
                errors.push(FieldError::new(name, "required"));
            }
            continue;
        }
        let id_type = input
            .get("id_type")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| existing.get("id_type").cloned());
        match validate_one(spec, value, id_type.as_deref(), today) {
            Ok(v) => {
                out.insert(name.clone(), Some(Pii::new(v)));
            }
            Err(code) => errors.push(FieldError::new(name, code)),
        }
    }
    if errors.is_empty() {
        let mode = catalog.validation().gender_vs_id_number;
        cross_check(scope, &out, existing, today, mode, &mut errors);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn validate_one(
    spec: &FieldSpec,
    value: &Value,
    id_type: Option<&str>,
    today: time::Date,
) -> Result<String, &'static str> {
    if spec.field_type == FieldType::Json {
        if !value.is_object() {
            return Err("wrong_type");
        }
        let text = value.to_string();
        if text.len() > JSON_MAX_BYTES {
            return Err("too_long");
        }
        return Ok(text);
    }
    if spec.field_type == FieldType::Jurisdictions {
        return super::deadlines::validate_jurisdictions(value);
    }
    let Some(s) = value.as_str() else {
        return Err("wrong_type");
    };
    let code = |c: ValidationCode| c.as_str();
    match spec.field_type {
        FieldType::Name => pii::normalize_name(s).map_err(code),
        FieldType::Phone => pii::normalize_mobile(s).map_err(code),
        FieldType::Email => pii::normalize_email(s).map_err(code),
        FieldType::IdDocument => match id_type {
            Some(t) => pii::normalize_document(t, s, today).map_err(code),
            None => Err("id_type_required"),
        },
        FieldType::ResidentId => pii::normalize_document("cn_resident_id", s, today).map_err(code),
        FieldType::Passport => pii::normalize_document("passport", s, today).map_err(code),
        FieldType::Date => pii::parse_date(s).map(|d| d.to_string()).map_err(code),
        FieldType::BirthDate => pii::validate_birth_date(s, today)
            .map(|d| d.to_string())
            .map_err(code),
        FieldType::Country => pii::normalize_country(s).map_err(code),
        FieldType::Currency => pii::normalize_currency(s).map_err(code),
        FieldType::Decimal => pii::normalize_amount(s).map_err(code),
        FieldType::Code => pii::normalize_code(s).map_err(code),
        FieldType::Text => pii::normalize_text(s, TEXT_MAX_CHARS).map_err(code),
        FieldType::Enum => {
            if spec.values.iter().any(|v| v == s) {
                Ok(s.to_string())
            } else {
                Err("not_allowed")
            }
        }
        FieldType::Json | FieldType::Jurisdictions => Err("wrong_type"),
        FieldType::GuestRef => crate::domain::GuestId::parse(s.trim())
            .map(|g| g.as_str().to_string())
            .ok_or("invalid_format"),
    }
}

/// Normalizes a search term the way the stored value was normalized, so that any common
/// spelling (`138 1234 5678`, `+86 13812345678`) finds the same blind-index digest.
pub fn normalize_for_search(
    spec: &FieldSpec,
    value: &str,
    today: time::Date,
) -> Result<String, &'static str> {
    match spec.field_type {
        // The id_type is not part of a search: try the resident-ID rules (which also convert
        // legacy 15-digit numbers), else the document-number normalization.
        FieldType::IdDocument => pii::normalize_resident_id(value, today)
            .or_else(|_| pii::normalize_document("passport", value, today))
            .or_else(|_| pii::normalize_document("hk_macau_permit", value, today))
            .or_else(|_| pii::normalize_document("foreign_permanent_resident", value, today))
            .or_else(|_| pii::normalize_document("taiwan_permit", value, today))
            .map_err(|c| c.as_str()),
        _ => validate_one(spec, &Value::String(value.to_string()), None, today),
    }
}

/// The bytes the blind index (REQ-12) keys for a normalized value of `spec`'s field: the
/// normalized value itself, except names, whose Latin diacritics are dropped
/// ([`pii::name_index_form`]) so `Muller` finds `Müller`. Names valid before diacritics were
/// accepted (ASCII, Han) index exactly as before.
pub fn blind_index_form<'a>(spec: &FieldSpec, normalized: &'a str) -> std::borrow::Cow<'a, str> {
    match spec.field_type {
        FieldType::Name => pii::name_index_form(normalized),
        _ => std::borrow::Cow::Borrowed(normalized),
    }
}

/// The value a field will have after the change: the new one if submitted, else the stored one.
fn after<'a>(
    name: &str,
    new: &'a Validated,
    existing: &'a BTreeMap<String, String>,
) -> Option<&'a str> {
    match new.get(name) {
        Some(Some(v)) => Some(v.expose()),
        Some(None) => None,
        None => existing.get(name).map(String::as_str),
    }
}

fn cross_check(
    scope: FieldScope,
    new: &Validated,
    existing: &BTreeMap<String, String>,
    today: time::Date,
    gender_rule: RuleMode,
    errors: &mut Vec<FieldError>,
) {
    match scope {
        FieldScope::Guest => {
            let id_type = after("id_type", new, existing);
            let id_number = after("id_number", new, existing);
            // A changed id_type must still fit the stored number.
            if new.contains_key("id_type") && !new.contains_key("id_number") {
                if let (Some(t), Some(n)) = (id_type, id_number) {
                    if pii::normalize_document(t, n, today).is_err() {
                        errors.push(FieldError::new("id_number", "invalid_format"));
                    }
                }
            }
            if id_type != Some("cn_resident_id") {
                return;
            }
            let Some(number) = id_number else { return };
            // Birth date and gender must agree with the resident ID (DESIGN, §(d.4)).
            if let (Some(dob), Some(id_dob)) = (
                after("birth_date", new, existing),
                pii::resident_id_birth_date(number),
            ) {
                if dob != id_dob.to_string() {
                    errors.push(FieldError::new("birth_date", "mismatch_id_number"));
                }
            }
            // The gender is refused only where the policy says `strict`; by default it is a
            // data-quality flag ([`data_quality`], legal analysis §(d.1) step 8).
            if gender_rule == RuleMode::Strict
                && after("gender", new, existing).is_some_and(|g| gender_contradicts(number, g))
            {
                errors.push(FieldError::new("gender", "mismatch_id_number"));
            }
        }
        FieldScope::Stay => {
            if let (Some(a), Some(b)) = (
                after("check_in", new, existing),
                after("check_out", new, existing),
            ) {
                // ISO dates compare correctly as strings.
                if b <= a {
                    errors.push(FieldError::new("check_out", "not_after_check_in"));
                }
            }
        }
    }
}

/// Whether a free-text note (a reveal's justification, which the audit trail keeps for years
/// and outlives the guest) carries personal data: an e-mail address, nine or more digits in a
/// row however they are spaced or punctuated (phone, ID, passport and card numbers; dates
/// such as `2026-11-30` and times such as `10:45` do not count), or any of `known`, identifying
/// values of the guest that the caller may already see in plain. Full-width characters count
/// as their ASCII forms. Names of other people cannot be recognised; the check stops the
/// common slips.
pub fn carries_personal_data(note: &str, known: &[&str]) -> bool {
    let note = fold_width(note);
    long_digit_run(&note) || has_email(&note) || {
        let compact = alphanumeric(&note);
        known.iter().any(|value| {
            let v = alphanumeric(&fold_width(value));
            // A phone number is also matched without its country code.
            let national = v.strip_prefix("86").filter(|_| value.starts_with('+'));
            v.chars().count() >= 2
                && (compact.contains(&v) || national.is_some_and(|n| compact.contains(n)))
        })
    }
}

/// Full-width forms (U+FF01..U+FF5E, as Chinese input methods type them) as ASCII.
fn fold_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect()
}

/// Letters and digits only, lower-cased: how a value and a note are compared.
fn alphanumeric(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Nine or more digits with only spaces and `-./()+` between them, after dropping tokens that
/// are dates (`2026-11-30`, `2026/11/30`, `2026.11.30`) or times (`10:45`, `10:45:30`).
fn long_digit_run(note: &str) -> bool {
    let is_date = |t: &str| {
        let parts: Vec<&str> = t.split(['-', '/', '.']).collect();
        parts.len() == 3
            && parts[0].len() == 4
            && parts[1..].iter().all(|p| (1..=2).contains(&p.len()))
            && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
    };
    let is_time = |t: &str| {
        let parts: Vec<&str> = t.split(':').collect();
        (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|p| (1..=2).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
    };
    let mut digits = 0usize;
    for token in note.split_whitespace() {
        let trimmed = token.trim_matches(|c: char| matches!(c, ',' | ';' | '(' | ')' | '.'));
        if is_date(trimmed) || is_time(trimmed) {
            digits = 0;
            continue;
        }
        for c in token.chars() {
            if c.is_ascii_digit() {
                digits += 1;
                if digits >= 9 {
                    return true;
                }
            } else if !matches!(c, '-' | '.' | '/' | '(' | ')' | '+') {
                digits = 0;
            }
        }
    }
    false
}

/// Any `@` with a name before it and a dotted domain after it.
fn has_email(note: &str) -> bool {
    note.match_indices('@').any(|(i, _)| {
        let before = note[..i].chars().next_back();
        let after: String = note[i + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '-'))
            .collect();
        before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
            && after.trim_end_matches('.').contains('.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policies;
    use serde_json::json;

    fn today() -> time::Date {
        time::macros::date!(2026 - 11 - 22)
    }

    fn run(scope: FieldScope, v: Value) -> Result<Validated, Vec<FieldError>> {
        let p = Policies::load(None).unwrap();
        let map = v.as_object().unwrap().clone();
        validate_fields(&p.catalog, scope, &map, &BTreeMap::new(), false, today())
    }

    #[test]
    fn a_valid_registration_is_normalized() {
        let v = run(
            FieldScope::Guest,
            json!({"full_name":"张三","id_type":"cn_resident_id","id_number":"11010519491231002x",
                   "birth_date":"1949-12-31","gender":"F","mobile":"138 1234 5678"}),
        )
        .unwrap();
        assert_eq!(
            v["id_number"].as_ref().unwrap().expose(),
            "11010519491231002X"
        );
        assert_eq!(v["mobile"].as_ref().unwrap().expose(), "+8613812345678");
    }

    fn with_gender_rule(mode: &str) -> Catalog {
        let text = include_str!("../../policies/fields.toml").replace(
            "gender_vs_id_number = \"warn\"",
            &format!("gender_vs_id_number = \"{mode}\""),
        );
        let mut errors = Vec::new();
        let catalog = Catalog::parse("fields.toml", &text, &mut errors);
        assert_eq!(errors, vec![]);
        catalog
    }

    fn run_with(catalog: &Catalog, v: Value) -> Result<Validated, Vec<FieldError>> {
        let map = v.as_object().unwrap().clone();
        validate_fields(
            catalog,
            FieldScope::Guest,
            &map,
            &BTreeMap::new(),
            false,
            today(),
        )
    }

    /// The birth date must always agree with digits 7-14 (REQ-44); the gender only where the
    /// policy says `strict` (issue 15, legal analysis §(d.1) step 8).
    #[test]
    fn birth_date_and_gender_must_match_the_resident_id() {
        let strict = with_gender_rule("strict");
        let errs = run_with(
            &strict,
            json!({"id_type":"cn_resident_id","id_number":"11010519491231002X",
                   "birth_date":"1950-01-01","gender":"M"}),
        )
        .unwrap_err();
        assert!(errs.contains(&FieldError::new("birth_date", "mismatch_id_number")));
        assert!(errs.contains(&FieldError::new("gender", "mismatch_id_number")));
        let errs = run_with(
            &strict,
            json!({"id_type":"cn_resident_id","id_number":"11010519491231002X",
                   "birth_date":"1949-12-31","gender":"M"}),
        )
        .unwrap_err();
        assert_eq!(errs, vec![FieldError::new("gender", "mismatch_id_number")]);
        // The shipped policy (`warn`): the birth date is still refused, the gender is not.
        let errs = run(
            FieldScope::Guest,
            json!({"id_type":"cn_resident_id","id_number":"11010519491231002X",
                   "birth_date":"1950-01-01","gender":"M"}),
        )
        .unwrap_err();
        assert_eq!(
            errs,
            vec![FieldError::new("birth_date", "mismatch_id_number")]
        );
    }

    /// REQ-44, issue 15: by default a gender against digit 17 is accepted and flagged; `U`, a
    /// matching gender and a non-resident document are not flagged.
    #[test]
    fn a_gender_against_digit_17_is_a_data_quality_flag_by_default() {
        let flag = DataQualityFlag {
            code: GENDER_MISMATCH,
            fields: vec!["gender", "id_number"],
        };
        // Digit 17 of 11010519491231002X is 2 (even: F); of 110101199003074477 it is 7 (odd: M).
        for (id_type, number, gender, flagged) in [
            ("cn_resident_id", "11010519491231002X", "M", true),
            ("cn_resident_id", "11010519491231002X", "F", false),
            ("cn_resident_id", "11010519491231002X", "U", false),
            ("cn_resident_id", "110101199003074477", "F", true),
            ("cn_resident_id", "110101199003074477", "M", false),
            ("passport", "E12345678", "M", false),
        ] {
            let v = run(
                FieldScope::Guest,
                json!({"id_type":id_type,"id_number":number,"gender":gender}),
            )
            .unwrap();
            let flags = data_quality_after(&v, &BTreeMap::new());
            assert_eq!(flags == vec![flag.clone()], flagged, "{number} {gender}");
            assert_eq!(flags.is_empty(), !flagged, "{number} {gender}");
        }
        // A flag never names a value.
        assert_eq!(
            serde_json::to_string(&flag).unwrap(),
            r#"{"code":"gender_mismatch_id_number","fields":["gender","id_number"]}"#
        );
    }

    /// No oracle (issue 15): the flag is computed only from the values given, so a value the
    /// caller does not see (`None`) can never raise it, and the counterpart of a change is taken
    /// from `existing` (values the caller sees in plain) only.
    #[test]
    fn a_flag_is_computed_only_from_the_values_given() {
        let full = |n: &str| match n {
            "id_type" => Some("cn_resident_id"),
            "id_number" => Some("11010519491231002X"),
            "gender" => Some("M"),
            _ => None,
        };
        assert_eq!(data_quality(full).len(), 1);
        for hidden in ["id_type", "id_number", "gender"] {
            assert!(data_quality(|n| if n == hidden { None } else { full(n) }).is_empty());
        }
        // A change of the gender alone, checked against a plain stored resident ID.
        let v = run(FieldScope::Guest, json!({"gender":"M"})).unwrap();
        let existing: BTreeMap<String, String> = [
            ("id_type".to_string(), "cn_resident_id".to_string()),
            ("id_number".to_string(), "11010519491231002X".to_string()),
        ]
        .into();
        assert_eq!(data_quality_after(&v, &existing).len(), 1);
        assert!(data_quality_after(&v, &BTreeMap::new()).is_empty());
        // Removing the gender clears the flag.
        let mut removed = Validated::new();
        removed.insert("gender".into(), None);
        let mut stored = existing.clone();
        stored.insert("gender".into(), "M".into());
        assert!(data_quality_after(&removed, &stored).is_empty());
        assert_eq!(data_quality_after(&Validated::new(), &stored).len(), 1);
    }

    #[test]
    fn id_number_needs_an_id_type_and_a_valid_checksum() {
        let errs = run(FieldScope::Guest, json!({"id_number":"110101199003074477"})).unwrap_err();
        assert_eq!(errs, vec![FieldError::new("id_number", "id_type_required")]);
        let errs = run(
            FieldScope::Guest,
            json!({"id_type":"cn_resident_id","id_number":"110101199003074478"}),
        )
        .unwrap_err();
        assert_eq!(errs, vec![FieldError::new("id_number", "invalid_checksum")]);
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_named_without_values() {
        let errs = run(
            FieldScope::Guest,
            json!({"religion":"x","mobile":13812345678u64,"13812345678":"y"}),
        )
        .unwrap_err();
        assert!(errs.contains(&FieldError::new("religion", "unknown_field")));
        assert!(errs.contains(&FieldError::new("mobile", "wrong_type")));
        assert!(errs.iter().any(|e| e.field == "(invalid field name)"));
        assert!(!format!("{errs:?}").contains("13812345678"));
    }

    #[test]
    fn check_out_must_follow_check_in() {
        let errs = run(
            FieldScope::Stay,
            json!({"check_in":"2026-11-20","check_out":"2026-11-20"}),
        )
        .unwrap_err();
        assert_eq!(
            errs,
            vec![FieldError::new("check_out", "not_after_check_in")]
        );
        assert!(run(
            FieldScope::Stay,
            json!({"check_in":"2026-11-20","check_out":"2026-11-21","amount":"1280"})
        )
        .is_ok());
    }

    #[test]
    fn design_type_names_cn_resident_id_and_passport_load_and_validate() {
        // DESIGN lists `cn_resident_id` and `passport` as field types: a catalog written to
        // DESIGN loads, and each field checks its one document kind.
        let text = r#"
[guest.resident_id]
type = "cn_resident_id"
category = "identity"
sensitivity = "sensitive"
searchable = true
mask = "id_number"

[guest.passport_no]
type = "passport"
category = "identity"
sensitivity = "personal"
searchable = true
mask = "document"
"#;
        let mut errors = Vec::new();
        let catalog = Catalog::parse("fields.toml", text, &mut errors);
        assert_eq!(errors, vec![]);
        assert_eq!(
            catalog
                .get(FieldScope::Guest, "resident_id")
                .unwrap()
                .field_type,
            FieldType::ResidentId
        );
        assert_eq!(
            catalog
                .get(FieldScope::Guest, "passport_no")
                .unwrap()
                .field_type,
            FieldType::Passport
        );
        let check = |v: Value| {
            validate_fields(
                &catalog,
                FieldScope::Guest,
                v.as_object().unwrap(),
                &BTreeMap::new(),
                false,
                today(),
            )
        };
        let ok =
            check(json!({"resident_id":"11010519491231002x","passport_no":"e1234 5678"})).unwrap();
        assert_eq!(
            ok["resident_id"].as_ref().unwrap().expose(),
            "11010519491231002X"
        );
        assert_eq!(ok["passport_no"].as_ref().unwrap().expose(), "E12345678");
        // No id_type is needed, and a wrong checksum or a passport number is refused.
        let errs = check(json!({"resident_id":"110105194912310021"})).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "resident_id");
        assert!(check(json!({"resident_id":"E12345678"})).is_err());
        assert!(check(json!({"passport_no":"E1"})).is_err());
        // Search normalizes the same way.
        let spec = catalog.get(FieldScope::Guest, "resident_id").unwrap();
        assert_eq!(
            normalize_for_search(spec, "11010519491231002x", today()).unwrap(),
            "11010519491231002X"
        );
        let mut errors = Vec::new();
        Catalog::parse(
            "fields.toml",
            &text.replace("\"passport\"", "\"passportt\""),
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "guest.passport_no.type");
    }

    #[test]
    fn personal_data_in_a_note_is_recognised() {
        let known = ["赵六", "+8613899993333", "zhao@example.com"];
        for note in [
            "guest 赵六 at the desk asked for it",
            "called back on 138 9999 3333",
            "called back on (138) 1234.5678",
            "called back on 138/1234/5678",
            "called back on １３８１２３４５６７８",
            "passport E123456789 checked",
            "mail from zhao@example.com",
            "@desk: contact someone@other.cn about it",
            "resident ID 11010519491231002X verified",
            "police request of 2026-11-30 about 13812345678",
        ] {
            assert!(carries_personal_data(note, &known), "{note}");
        }
        for note in [
            "guest at desk, checking ID for police registration",
            "billing dispute, ticket INC-20261130",
            "police request no. 2026/118 received by fax",
            "police request of 2026-11-30 10:45, room 1208",
            "going old-school: paper form lost, re-checking at the desk",
            "amount 1280.00 disputed @ front desk",
        ] {
            assert!(!carries_personal_data(note, &known), "{note}");
        }
    }

    proptest::proptest! {
        /// Any note that embeds one of the guest's values is caught, however it is spaced.
        #[test]
        fn a_known_value_is_caught_anywhere(pre in "[a-z ]{0,20}", post in "[a-z ]{0,20}", mobile in "1[3-9][0-9]{9}") {
            let stored = format!("+86{mobile}");
            let spaced = format!("{} {} {}", &mobile[..3], &mobile[3..7], &mobile[7..]);
            let note = format!("{pre}{spaced}{post}");
            proptest::prop_assert!(carries_personal_data(&note, &[stored.as_str()]));
        }
    }
}
