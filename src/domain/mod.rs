//! Pure domain logic: identifiers, personal-data wrappers, validation and masking. Nothing
//! here does I/O, reads a clock or knows about HTTP; time is passed in.

pub mod age;
pub mod cross_field;
pub mod deadlines;
pub mod freetext;
pub mod mask;
pub mod pii;
pub mod retention;
mod validate;

pub use validate::{
    blind_index_form, carries_personal_data, data_quality, data_quality_after,
    normalize_for_search, validate_fields, DataQualityFlag, FieldError, Validated, GENDER_MISMATCH,
};

use zeroize::Zeroize;

/// The opaque identifier other systems keep instead of personal data. A UUIDv7: random enough
/// to be unguessable (74 random bits) and time-ordered so index inserts stay local.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GuestId(String);

impl GuestId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// Accepts only a canonical lower-case hyphenated UUID, so nothing else reaches SQL, logs or
    /// audit events through an id.
    pub fn parse(s: &str) -> Option<Self> {
        let u = uuid::Uuid::try_parse(s).ok()?;
        let canonical = u.hyphenated().to_string();
        (canonical == s).then_some(Self(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GuestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A personal-data value in plaintext. No `Display`, a redacting `Debug`, zeroized on drop:
/// it cannot end up in a log line or a panic message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Pii(String);

impl Pii {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The plaintext, for encryption, masking and responses the policy allowed.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pii(<redacted>)")
    }
}

impl Drop for Pii {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_ids_are_canonical_uuids() {
        let id = GuestId::generate();
        assert_eq!(GuestId::parse(id.as_str()), Some(id.clone()));
        assert!(GuestId::parse(&id.as_str().to_uppercase()).is_none());
        assert!(GuestId::parse("13812345678").is_none());
        assert!(GuestId::parse("../etc/passwd").is_none());
    }

    #[test]
    fn pii_debug_is_redacted() {
        let p = Pii::new("13812345678".into());
        assert_eq!(format!("{p:?}"), "Pii(<redacted>)");
    }
}
