//! `[minors]` in `access.toml` (REQ-10; PIPL Art. 28, 31): which consent-based purposes count
//! as marketing, and whether marketing to a guest under 14 is allowed at all (default: no,
//! even with a guardian's consent).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::access::{Basis, Purpose};
use super::PolicyError;

#[derive(Debug, Clone)]
pub struct MinorsPolicy {
    /// Consent-based purposes that are marketing (PIPL Art. 31; Minors Protection Law).
    pub marketing_purposes: BTreeSet<String>,
    /// `allow_marketing_under_14`: false refuses marketing to a guest under 14 even with a
    /// guardian's consent.
    pub allow_marketing_under_14: bool,
}

impl Default for MinorsPolicy {
    /// Without a `[minors]` table: a purpose named `marketing` is marketing, and refused.
    fn default() -> Self {
        Self {
            marketing_purposes: BTreeSet::from(["marketing".to_string()]),
            allow_marketing_under_14: false,
        }
    }
}

impl MinorsPolicy {
    pub fn is_marketing(&self, purpose: &str) -> bool {
        self.marketing_purposes.contains(purpose)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMinors {
    marketing_purposes: Vec<String>,
    #[serde(default)]
    allow_marketing_under_14: bool,
}

pub(super) fn parse(
    file: &str,
    raw: Option<RawMinors>,
    purposes: &BTreeMap<String, Purpose>,
    errors: &mut Vec<PolicyError>,
) -> MinorsPolicy {
    let Some(raw) = raw else {
        return MinorsPolicy::default();
    };
    for p in &raw.marketing_purposes {
        match purposes.get(p) {
            None => errors.push(PolicyError::new(
                file,
                "minors.marketing_purposes",
                &format!("unknown purpose `{p}`"),
            )),
            Some(purpose) if purpose.basis != Basis::Consent => errors.push(PolicyError::new(
                file,
                "minors.marketing_purposes",
                &format!("`{p}` is not consent-based"),
            )),
            Some(_) => {}
        }
    }
    MinorsPolicy {
        marketing_purposes: raw.marketing_purposes.into_iter().collect(),
        allow_marketing_under_14: raw.allow_marketing_under_14,
    }
}
