//! Minors (REQ-10; PIPL Art. 28, 31; 未成年人保护法 Art. 57): a guest's age on the date in
//! China decides three rules.
//! - Registering a guest under 18 needs the guardian's name and mobile, or the guest id of an
//!   accompanying adult (`guardian_required`).
//! - A consent for a guest under 14 must be a *separate* consent given by a guardian
//!   (`guardian_consent_required`): every field of such a guest is sensitive (Art. 28), and
//!   sensitive data under a consent purpose needs a separate consent (Art. 29). Marketing to
//!   them is refused unless `[minors] allow_marketing_under_14` (`minor_marketing_refused`).
//! - At use, a consent of a guest under 14 that is not such a consent counts as absent.
//!
//! No oracles (README, "Minors"): the age comes from `birth_date` and the resident ID, which
//! some roles see masked (a masked birth date hides the year, a masked ID hides digits 7-14).
//! A refusal that depends on the age is given only to a caller who may see one of those in
//! plain or through a reveal (the bar a search already sets); for any other caller the answer
//! is the same at every age, and the rule is applied at use, where the answer
//! (`consent_required`) is the one a guest without consent gets.

use time::Date;

use super::{Caller, Vault, VaultError};
use crate::domain::age::{birth_date_from, AgeBand};
use crate::domain::{FieldError, GuestId, Validated};
use crate::policy::{Action, Basis, ConsentFacts, FieldScope, Grant, View};
use crate::store::rows::{ConsentChange, ConsentGiver, ConsentRecord, SealedGuest};
use crate::store::{self, GuestStatus};

/// `given_by` of a consent grant.
pub const GIVEN_BY: [&str; 2] = ["guest", "guardian"];
/// A guardian's relationship to the guest (the `guardian_relationship` field's values).
pub const GUARDIAN_RELATIONSHIPS: [&str; 6] = [
    "parent",
    "grandparent",
    "sibling",
    "other_relative",
    "legal_guardian",
    "other",
];
/// The fields the age is derived from.
const AGE_SOURCES: [&str; 3] = ["birth_date", "id_type", "id_number"];

/// Problem codes of the minors rules (422).
pub const GUARDIAN_REQUIRED: &str = "guardian_required";
pub const GUARDIAN_CONSENT_REQUIRED: &str = "guardian_consent_required";
pub const MINOR_MARKETING_REFUSED: &str = "minor_marketing_refused";

fn band_from(today: Date, get: impl Fn(&str) -> Option<String>) -> AgeBand {
    let (b, t, n) = (get("birth_date"), get("id_type"), get("id_number"));
    AgeBand::of(
        birth_date_from(b.as_deref(), t.as_deref(), n.as_deref()),
        today,
    )
}

impl Vault {
    /// Today in China (Asia/Shanghai, UTC+8, no daylight saving): a guest turns 14 at 00:00
    /// Beijing time on the birthday.
    pub(super) fn china_today(&self) -> Date {
        self.dsr_received_on()
    }

    /// The age band of a guest whose validated fields are at hand (a registration: the caller
    /// sent them, so the answer tells it nothing it does not know).
    pub(super) fn band_of_input(&self, fields: &Validated) -> AgeBand {
        band_from(self.china_today(), |n| {
            fields
                .get(n)
                .and_then(|v| v.as_ref())
                .map(|v| v.expose().to_string())
        })
    }

    /// The guest's age band from everything stored (for the rule at use; never answered).
    pub(super) fn stored_band(
        &self,
        guest_id: &GuestId,
        sealed: &SealedGuest,
    ) -> Result<AgeBand, VaultError> {
        let plain = self.open_fields(guest_id, sealed, |n| AGE_SOURCES.contains(&n))?;
        Ok(band_from(self.china_today(), |n| {
            plain
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.expose().to_string())
        }))
    }

    /// The age band as `caller` may know it: from the sources its role reads, under its
    /// purpose, in plain or through a reveal. `Unknown` for a caller that sees none of them
    /// (its answers then do not depend on the age).
    pub(super) async fn visible_band(
        &self,
        caller: &Caller,
        guest_id: &GuestId,
    ) -> Result<AgeBand, VaultError> {
        let Ok(read) = self.policies.access.authorize(
            &caller.role,
            caller.purpose.as_deref(),
            Action::GuestRead,
        ) else {
            return Ok(AgeBand::Unknown);
        };
        // Under a consent purpose the views also depend on the consent: treated as unseen.
        if read.purpose().basis == Basis::Consent
            || (read.role().self_only && guest_id.as_str() != caller.actor)
        {
            return Ok(AgeBand::Unknown);
        }
        let seen = |f: &str| read.view(FieldScope::Guest, f).0 >= View::Reveal;
        let birth = seen("birth_date");
        let id = seen("id_type") && seen("id_number");
        if !birth && !id {
            return Ok(AgeBand::Unknown);
        }
        let (sealed, _) = self.load(&read, guest_id).await?;
        let Some(sealed) = sealed else {
            return Ok(AgeBand::Unknown);
        };
        let wanted = |n: &str| (birth && n == "birth_date") || (id && n != "birth_date");
        let plain =
            self.open_fields(guest_id, &sealed, |n| AGE_SOURCES.contains(&n) && wanted(n))?;
        Ok(band_from(self.china_today(), |n| {
            plain
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.expose().to_string())
        }))
    }

    /// The rule at use (PIPL Art. 29, 31): under a consent purpose, a guest under 14 counts as
    /// consenting only with a separate consent given by a guardian, and never for marketing
    /// unless the policy allows it. Anything else counts as no consent, answered like one.
    pub(super) async fn minors_consent(
        &self,
        grant: &Grant<'_>,
        guest_id: &GuestId,
        sealed: &SealedGuest,
        consent: ConsentFacts,
    ) -> Result<ConsentFacts, VaultError> {
        if grant.purpose().basis != Basis::Consent
            || !matches!(consent, ConsentFacts::Granted { .. })
            || !self.stored_band(guest_id, sealed)?.is_child()
        {
            return Ok(consent);
        }
        let gid = guest_id.as_str().to_string();
        let purpose = grant.purpose().name.clone();
        let giver = self
            .readers
            .run(move |c| store::consents::consent_giver(c, &gid, &purpose))
            .await?;
        let by_guardian = giver.as_ref().is_some_and(ConsentGiver::is_guardian);
        let separate = matches!(consent, ConsentFacts::Granted { separate: true });
        let minors = &self.policies.access.minors;
        let marketing_ok =
            !minors.is_marketing(&grant.purpose().name) || minors.allow_marketing_under_14;
        Ok(if by_guardian && separate && marketing_ok {
            consent
        } else {
            ConsentFacts::None
        })
    }

    /// The rule at grant for a guest whose age `band` the caller knows: `Err(code)` refuses.
    pub(super) fn minor_consent_rule(
        &self,
        band: AgeBand,
        change: &ConsentChange,
    ) -> Result<(), &'static str> {
        if !change.grant || !band.is_child() {
            return Ok(());
        }
        let by_guardian = change.giver.as_ref().is_some_and(ConsentGiver::is_guardian);
        if !by_guardian || !change.separate {
            return Err(GUARDIAN_CONSENT_REQUIRED);
        }
        let minors = &self.policies.access.minors;
        if minors.is_marketing(&change.purpose) && !minors.allow_marketing_under_14 {
            return Err(MINOR_MARKETING_REFUSED);
        }
        Ok(())
    }

    /// Registration of a guest under 18 (未成年人保护法 Art. 57): the guardian's name and
    /// mobile, or an accompanying adult's guest id.
    pub(super) fn registration_rule(&self, fields: &Validated) -> Result<(), &'static str> {
        if !self.band_of_input(fields).is_minor() {
            return Ok(());
        }
        let has = |n: &str| fields.get(n).is_some_and(Option::is_some);
        if (has("guardian_name") && has("guardian_mobile")) || has("accompanied_by") {
            Ok(())
        } else {
            Err(GUARDIAN_REQUIRED)
        }
    }

    /// Whether `raw` names a guest `caller` may already know to exist: one its role may read
    /// under its purpose and a read would answer (active, or restricted under a purpose that
    /// reads restricted data). Anything else, a self-only role's reference included, is
    /// refused alike, so the answer tells no more than `GET /v1/guests/{id}` would.
    pub(super) async fn guest_ref_visible(
        &self,
        caller: &Caller,
        raw: &str,
    ) -> Result<bool, VaultError> {
        let Some(id) = GuestId::parse(raw) else {
            return Ok(false);
        };
        let Ok(read) = self.policies.access.authorize(
            &caller.role,
            caller.purpose.as_deref(),
            Action::GuestRead,
        ) else {
            return Ok(false);
        };
        if read.role().self_only {
            return Ok(false);
        }
        let gid = id.as_str().to_string();
        let status = self
            .readers
            .run(move |c| store::guest_status(c, &gid))
            .await?;
        Ok(match status {
            Some(GuestStatus::Active) => true,
            Some(GuestStatus::Restricted) => read.purpose().restricted_access,
            _ => false,
        })
    }

    /// Field errors for the guest references of a registration or a consent.
    pub(super) async fn check_guest_refs(
        &self,
        caller: &Caller,
        refs: &[(&str, Option<&str>)],
    ) -> Result<Vec<FieldError>, VaultError> {
        let mut errors = Vec::new();
        for (field, value) in refs {
            if let Some(v) = value {
                if !self.guest_ref_visible(caller, v).await? {
                    errors.push(FieldError::new(field, "unknown_guest"));
                }
            }
        }
        Ok(errors)
    }
}

/// Validates the giver members of a grant (`given_by`, `guardian_relationship`,
/// `guardian_guest_id`, `guardian_ticket`); names the member, never echoes the value.
pub(super) fn parse_giver(
    input: &super::ConsentInput,
    errors: &mut Vec<FieldError>,
) -> ConsentGiver {
    let given_by = input.given_by.as_deref().unwrap_or("guest");
    if !GIVEN_BY.contains(&given_by) {
        errors.push(FieldError::new("given_by", "not_allowed"));
    }
    let guardian = given_by == "guardian";
    let relationship = input.guardian_relationship.as_deref();
    let guest_ref = input.guardian_guest_id.as_deref();
    let ticket = input.guardian_ticket.as_deref();
    if !guardian {
        for (name, v) in [
            ("guardian_relationship", relationship),
            ("guardian_guest_id", guest_ref),
            ("guardian_ticket", ticket),
        ] {
            if v.is_some() {
                errors.push(FieldError::new(name, "not_allowed"));
            }
        }
    } else {
        match relationship {
            None => errors.push(FieldError::new("guardian_relationship", "required")),
            Some(r) if !GUARDIAN_RELATIONSHIPS.contains(&r) => {
                errors.push(FieldError::new("guardian_relationship", "not_allowed"))
            }
            Some(_) => {}
        }
        if guest_ref.is_none() && ticket.is_none() {
            errors.push(FieldError::new("guardian_ticket", "required"));
        }
        if guest_ref.is_some_and(|g| GuestId::parse(g).is_none()) {
            errors.push(FieldError::new("guardian_guest_id", "invalid_format"));
        }
        // A reference, never the guardian's own data: a ticket that looks like a phone or ID
        // number, or an e-mail address, is refused.
        if let Some(t) = ticket {
            if !crate::policy::is_ticket(t) {
                errors.push(FieldError::new("guardian_ticket", "invalid_format"));
            } else if crate::domain::carries_personal_data(t, &[]) {
                errors.push(FieldError::new("guardian_ticket", "personal_data"));
            }
        }
    }
    ConsentGiver {
        given_by: given_by.to_string(),
        relationship: guardian.then(|| relationship.map(str::to_string)).flatten(),
        guardian_guest_id: guardian.then(|| guest_ref.map(str::to_string)).flatten(),
        guardian_ticket: guardian.then(|| ticket.map(str::to_string)).flatten(),
    }
}

/// Marks guardian consents of a guest the caller knows to be 14 or older as needing the
/// guest's confirmation; `null` where the caller does not know the age (REQ-10).
pub(super) fn mark_confirm_needed(records: &mut [ConsentRecord], band: AgeBand) {
    for r in records {
        r.confirm_needed = match band {
            AgeBand::Unknown => None,
            b => Some(
                !b.is_child() && r.status == "granted" && r.given_by.as_deref() == Some("guardian"),
            ),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relationships_are_the_fields_toml_enum() {
        let p = crate::policy::Policies::load(None).unwrap();
        let spec = p
            .catalog
            .get(FieldScope::Guest, "guardian_relationship")
            .unwrap();
        assert_eq!(spec.values, GUARDIAN_RELATIONSHIPS);
    }
}
