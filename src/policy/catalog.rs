//! The field catalog (`fields.toml`): what each guest and stay field is, how it is validated,
//! which retention class it belongs to, whether it is sensitive (PIPL Art. 28) and how it is
//! masked. REQ-01: the vault refuses to start if a field lacks any of these.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::PolicyError;
use crate::domain::mask::MaskKind;

/// The validator a field uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Name,
    Phone,
    Email,
    /// Checked against the guest's `id_type` (resident ID, passport, permits).
    IdDocument,
    /// Always an 18-digit PRC resident ID (DESIGN's `cn_resident_id` type).
    ResidentId,
    /// Always a passport number (DESIGN's `passport` type; generic ICAO document number).
    Passport,
    Date,
    BirthDate,
    Country,
    Text,
    Enum,
    Json,
    Code,
    Decimal,
    Currency,
    /// Another guest's id (a canonical UUID), e.g. `accompanied_by` (REQ-10).
    GuestRef,
    /// The regimes that apply to a guest: a JSON array of `cn` and `eu` that holds `cn`
    /// (REQ-48; see `domain::deadlines`).
    Jurisdictions,
}

impl FieldType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "name" => Self::Name,
            "phone" => Self::Phone,
            "email" => Self::Email,
            "id_document" => Self::IdDocument,
            // The validator names DESIGN lists: a field that holds one kind of document only.
            "cn_resident_id" => Self::ResidentId,
            "passport" => Self::Passport,
            "date" => Self::Date,
            "birth_date" => Self::BirthDate,
            "country" => Self::Country,
            "text" => Self::Text,
            "enum" => Self::Enum,
            "json" => Self::Json,
            "code" => Self::Code,
            "decimal" => Self::Decimal,
            "currency" => Self::Currency,
            "guest_id" => Self::GuestRef,
            "jurisdictions" => Self::Jurisdictions,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    Personal,
    Sensitive,
}

/// Whether a field belongs to the guest profile or to a stay record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldScope {
    Guest,
    Stay,
}

impl FieldScope {
    /// The table prefix in `fields.toml` and the `stay_` key prefix in `access.toml`.
    pub fn table(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::Stay => "stay",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: String,
    pub scope: FieldScope,
    pub field_type: FieldType,
    pub category: String,
    pub sensitivity: Sensitivity,
    pub searchable: bool,
    pub mask: MaskKind,
    /// Allowed values of an `enum` field.
    pub values: Vec<String>,
    /// A self-only role (the guest's own token) may correct it directly; any other field it
    /// asks to correct becomes a correction request a DSR officer verifies (issue 12, REQ-30).
    pub self_service: bool,
}

impl FieldSpec {
    pub fn is_sensitive(&self) -> bool {
        self.sensitivity == Sensitivity::Sensitive
    }
}

/// How a cross-field rule that the policy may soften is enforced (`[validation]` in
/// `fields.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleMode {
    /// The write succeeds and the record carries a data-quality flag.
    #[default]
    Warn,
    /// The write is refused (422).
    Strict,
}

/// The `[validation]` table of `fields.toml`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidationRules {
    /// A `gender` that contradicts digit 17 of a resident ID (legal analysis §(d.1) step 8:
    /// a warning by default).
    pub gender_vs_id_number: RuleMode,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    guest: BTreeMap<String, FieldSpec>,
    stay: BTreeMap<String, FieldSpec>,
    validation: ValidationRules,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    guest: BTreeMap<String, RawField>,
    #[serde(default)]
    stay: BTreeMap<String, RawField>,
    #[serde(default)]
    validation: RawValidation,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawValidation {
    gender_vs_id_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    #[serde(rename = "type")]
    field_type: Option<String>,
    category: Option<String>,
    sensitivity: Option<String>,
    searchable: Option<bool>,
    mask: Option<String>,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    self_service: bool,
    #[serde(default)]
    description: Option<String>,
}

impl Catalog {
    /// Parses and validates `fields.toml`; every problem is reported with its key path.
    pub fn parse(file: &str, text: &str, errors: &mut Vec<PolicyError>) -> Self {
        let raw: RawCatalog = match super::parse_toml(file, text, errors) {
            Some(raw) => raw,
            None => return Self::default(),
        };
        let mut catalog = Self::default();
        if let Some(mode) = raw.validation.gender_vs_id_number {
            match mode.as_str() {
                "warn" => catalog.validation.gender_vs_id_number = RuleMode::Warn,
                "strict" => catalog.validation.gender_vs_id_number = RuleMode::Strict,
                _ => errors.push(PolicyError::new(
                    file,
                    "validation.gender_vs_id_number",
                    "must be `warn` or `strict`",
                )),
            }
        }
        for (scope, table) in [(FieldScope::Guest, raw.guest), (FieldScope::Stay, raw.stay)] {
            for (name, field) in table {
                let key = format!("{}.{name}", scope.table());
                if let Some(spec) = FieldSpec::from_raw(file, &key, &name, scope, field, errors) {
                    match scope {
                        FieldScope::Guest => catalog.guest.insert(name, spec),
                        FieldScope::Stay => catalog.stay.insert(name, spec),
                    };
                }
            }
        }
        if catalog.guest.is_empty() {
            errors.push(PolicyError::new(
                file,
                "guest",
                "no guest fields are defined",
            ));
        }
        catalog
    }

    /// The `[validation]` switches.
    pub fn validation(&self) -> ValidationRules {
        self.validation
    }

    pub fn get(&self, scope: FieldScope, name: &str) -> Option<&FieldSpec> {
        match scope {
            FieldScope::Guest => self.guest.get(name),
            FieldScope::Stay => self.stay.get(name),
        }
    }

    pub fn fields(&self, scope: FieldScope) -> impl Iterator<Item = &FieldSpec> {
        match scope {
            FieldScope::Guest => self.guest.values(),
            FieldScope::Stay => self.stay.values(),
        }
    }
}

impl FieldSpec {
    fn from_raw(
        file: &str,
        key: &str,
        name: &str,
        scope: FieldScope,
        raw: RawField,
        errors: &mut Vec<PolicyError>,
    ) -> Option<Self> {
        let before = errors.len();
        let mut need = |what: &str, v: &Option<String>| -> Option<String> {
            if v.is_none() {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.{what}"),
                    "is required",
                ));
            }
            v.clone()
        };
        let field_type = need("type", &raw.field_type);
        let category = need("category", &raw.category);
        let sensitivity = need("sensitivity", &raw.sensitivity);
        let mask = need("mask", &raw.mask);
        let _ = raw.description;
        if raw.searchable.is_none() {
            errors.push(PolicyError::new(
                file,
                &format!("{key}.searchable"),
                "is required",
            ));
        }
        if !is_identifier(name) {
            errors.push(PolicyError::new(
                file,
                key,
                "field names must be lower-case letters, digits and `_`",
            ));
        }
        let field_type = field_type.and_then(|t| {
            let parsed = FieldType::parse(&t);
            if parsed.is_none() {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.type"),
                    &format!("unknown type `{t}`"),
                ));
            }
            parsed
        });
        let sensitivity = sensitivity.and_then(|s| match s.as_str() {
            "personal" => Some(Sensitivity::Personal),
            "sensitive" => Some(Sensitivity::Sensitive),
            _ => {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.sensitivity"),
                    "must be `personal` or `sensitive`",
                ));
                None
            }
        });
        let mask = mask.and_then(|m| {
            let parsed = m.parse::<MaskKind>().ok();
            if parsed.is_none() {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.mask"),
                    &format!("unknown mask `{m}`"),
                ));
            }
            parsed
        });
        if field_type == Some(FieldType::Enum) && raw.values.is_empty() {
            errors.push(PolicyError::new(
                file,
                &format!("{key}.values"),
                "an enum field needs a non-empty `values` list",
            ));
        }
        if scope == FieldScope::Stay && raw.self_service {
            errors.push(PolicyError::new(
                file,
                &format!("{key}.self_service"),
                "stay fields are not corrected by the guest",
            ));
        }
        if scope == FieldScope::Stay && raw.searchable == Some(true) {
            errors.push(PolicyError::new(
                file,
                &format!("{key}.searchable"),
                "stay fields cannot be searchable",
            ));
        }
        if errors.len() != before {
            return None;
        }
        Some(Self {
            name: name.to_string(),
            scope,
            field_type: field_type?,
            category: category?,
            sensitivity: sensitivity?,
            searchable: raw.searchable?,
            mask: mask?,
            values: raw.values,
            self_service: raw.self_service,
        })
    }
}

/// `[a-z][a-z0-9_]*`, at most 64 characters: safe to echo in errors and audit events.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}
