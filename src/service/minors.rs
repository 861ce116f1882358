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

use std::collections::BTreeMap;

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

/// The fields that record who answers for a minor: the guardian's name and mobile, or the
/// accompanying adult.
const GUARDIAN_FIELDS: [&str; 3] = ["guardian_name", "guardian_mobile", "accompanied_by"];

/// 未成年人保护法 Art. 57: a guest under 18 has the guardian's name and mobile, or an
/// accompanying adult, recorded.
fn guardian_rule(band: AgeBand, has: impl Fn(&str) -> bool) -> Result<(), &'static str> {
    let recorded = (has("guardian_name") && has("guardian_mobile")) || has("accompanied_by");
    if band.is_minor() && !recorded {
        Err(GUARDIAN_REQUIRED)
    } else {
        Ok(())
    }
}

/// Which age sources `read` shows in plain or through a reveal: (birth date, resident ID).
fn age_sources_seen(read: &Grant<'_>) -> (bool, bool) {
    let seen = |f: &str| read.view(FieldScope::Guest, f).0 >= View::Reveal;
    (seen("birth_date"), seen("id_type") && seen("id_number"))
}

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
        let known = self.known_fields(caller, guest_id, true).await?;
        Ok(band_from(self.china_today(), |n| known.get(n).cloned()))
    }

    /// The read grant that decides what `caller` may know of a guest's age: its role's
    /// `guest.read` under its purpose. None under a consent purpose (the views then also depend
    /// on the consent: treated as unseen) and for a self-only role on another guest.
    fn minors_read_grant(&self, caller: &Caller, guest_id: &GuestId) -> Option<Grant<'_>> {
        let read = self
            .policies
            .access
            .authorize(&caller.role, caller.purpose.as_deref(), Action::GuestRead)
            .ok()?;
        let other = read.role().self_only && guest_id.as_str() != caller.actor;
        (read.purpose().basis != Basis::Consent && !other).then_some(read)
    }

    /// The stored fields the minors rules may use for `caller`, opened: the age sources its
    /// role reads under its purpose in plain or through a reveal (the bar a search sets), and
    /// the guardian fields it sees at all (a masked value shows that one is stored). Loaded
    /// under that read grant (the grant of the request at hand, e.g. `stay.create`, may load
    /// fewer fields). Nothing for a caller without such a grant, and with `ages_only`, nothing
    /// when it sees no age source. Never answered; an answer computed from these tells the
    /// caller nothing it cannot already see.
    pub(super) async fn known_fields(
        &self,
        caller: &Caller,
        guest_id: &GuestId,
        ages_only: bool,
    ) -> Result<BTreeMap<String, String>, VaultError> {
        let Some(read) = self.minors_read_grant(caller, guest_id) else {
            return Ok(BTreeMap::new());
        };
        let (birth, id) = age_sources_seen(&read);
        if ages_only && !birth && !id {
            return Ok(BTreeMap::new());
        }
        let (sealed, _) = self.load(&read, guest_id).await?;
        let Some(sealed) = sealed else {
            return Ok(BTreeMap::new());
        };
        let wanted = |n: &str| match n {
            "birth_date" => birth,
            "id_type" | "id_number" => id,
            g => {
                !ages_only
                    && GUARDIAN_FIELDS.contains(&g)
                    && read.view(FieldScope::Guest, g).0 > View::None
            }
        };
        Ok(self
            .open_fields(guest_id, &sealed, wanted)?
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_string()))
            .collect())
    }

    /// The registration rule at a new stay of a stored guest (未成年人保护法 Art. 57): a
    /// guest under 18 on the stay's check-in date needs a recorded guardian or accompanying
    /// adult. Decided on what `caller` may know only ([`Self::known_fields`]); a caller that
    /// cannot see the age gets the same answer at every age.
    pub(super) async fn stay_registration_rule(
        &self,
        caller: &Caller,
        guest_id: &GuestId,
        check_in: Option<Date>,
    ) -> Result<Result<(), &'static str>, VaultError> {
        let Some(read) = self.minors_read_grant(caller, guest_id) else {
            return Ok(Ok(()));
        };
        if age_sources_seen(&read) == (false, false) {
            // The age is unknown to this caller: the same answer at every age.
            return Ok(Ok(()));
        }
        let known = self.known_fields(caller, guest_id, false).await?;
        let on = check_in.unwrap_or_else(|| self.china_today());
        let band = band_from(on, |n| known.get(n).cloned());
        Ok(guardian_rule(band, |n| known.contains_key(n)))
    }

    /// The registration rule after a correction: a `PATCH` that makes the record one of a
    /// guest under 18, or removes the guardian of one, must leave a guardian or accompanying
    /// adult recorded. Each field counts as the patch sets it (a `null` removes it), or else as
    /// stored and known to `caller`. Only a patch that touches an age source or a guardian
    /// field is checked: one that changes neither leaves the rule's answer as it was.
    ///
    /// A caller that cannot see the age (`Unknown`) may not remove the last recorded guardian
    /// entry at any age (fail closed; the same answer for a child and an adult, so no oracle).
    pub(super) async fn correction_registration_rule(
        &self,
        caller: &Caller,
        guest_id: &GuestId,
        patch: &Validated,
    ) -> Result<Result<(), &'static str>, VaultError> {
        let touched = patch
            .keys()
            .any(|k| AGE_SOURCES.contains(&k.as_str()) || GUARDIAN_FIELDS.contains(&k.as_str()));
        if !touched {
            return Ok(Ok(()));
        }
        let known = self.known_fields(caller, guest_id, false).await?;
        let after = |n: &str| match patch.get(n) {
            Some(v) => v.as_ref().map(|v| v.expose().to_string()),
            None => known.get(n).cloned(),
        };
        let band = band_from(self.china_today(), after);
        let recorded = |n: &str| after(n).is_some();
        let removes = GUARDIAN_FIELDS
            .iter()
            .any(|g| matches!(patch.get(*g), Some(None)) && known.contains_key(*g));
        if band == AgeBand::Unknown && removes {
            return Ok(guardian_rule(AgeBand::Minor, recorded));
        }
        Ok(guardian_rule(band, recorded))
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
        guardian_rule(self.band_of_input(fields), |n| {
            fields.get(n).is_some_and(Option::is_some)
        })
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

    /// `unknown_guest` when the `accompanied_by` of a registration or a correction names a
    /// guest `caller` may not read ([`Self::guest_ref_visible`]).
    pub(super) async fn accompanied_by_errors(
        &self,
        caller: &Caller,
        fields: &Validated,
    ) -> Result<Vec<FieldError>, VaultError> {
        let adult = fields
            .get("accompanied_by")
            .and_then(|v| v.as_ref())
            .map(|v| v.expose().to_string());
        self.check_guest_refs(caller, &[("accompanied_by", adult.as_deref())])
            .await
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
