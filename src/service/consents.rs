//! The consent ledger (PIPL Art. 13–16, 29; REQ-05, REQ-09): every grant and withdrawal is
//! appended to `consent_events`, and `consents` holds the current state per guest and purpose.
//! Withdrawal is one call, as easy as granting, and takes effect on the very next request
//! because every consent-based read consults the current state.

use serde::{Deserialize, Serialize};

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::domain::{FieldError, GuestId};
use crate::policy::{Action, Basis};
pub use crate::store::rows::ConsentChange;
pub use crate::store::rows::{ConsentEvent, ConsentRecord};
use crate::store::{self, StoreError};
// The ledger's SQL is the storage seam's; named here for the use cases.
pub(super) use crate::store::consents::{apply, current, history, ledger};

/// Where the guest gave or withdrew consent.
pub const CHANNELS: [&str; 8] = [
    "app",
    "web",
    "front_desk",
    "kiosk",
    "email",
    "phone",
    "paper",
    "other",
];
const NOTICE_VERSION_MAX: usize = 64;

/// A consent as submitted (`PUT .../consents/{purpose}` or `consents` in `POST /v1/guests`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    #[serde(default)]
    pub purpose: Option<String>,
    /// A separate consent (PIPL Art. 29) covers the purpose's sensitive fields.
    #[serde(default)]
    pub separate: bool,
    /// The privacy notice the guest saw: letters, digits, `.`, `-`, `_`.
    #[serde(default)]
    #[schema(required, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub notice_version: String,
    /// Where the consent was given (one of `CHANNELS`).
    #[serde(default)]
    #[schema(required)]
    pub channel: String,
    /// Who gives the consent: `guest` (the default) or `guardian`. A guest under 14 needs a
    /// separate consent given by a guardian (PIPL Art. 31, REQ-10).
    #[serde(default)]
    #[schema(pattern = "^(guest|guardian)$")]
    pub given_by: Option<String>,
    /// With `given_by = "guardian"` (required then): `parent`, `grandparent`, `sibling`,
    /// `other_relative`, `legal_guardian` or `other`.
    #[serde(default)]
    pub guardian_relationship: Option<String>,
    /// With `given_by = "guardian"`: the guardian's guest id, when the guardian is registered
    /// too (an active guest this caller may read). This or `guardian_ticket` is required.
    #[serde(default)]
    pub guardian_guest_id: Option<String>,
    /// With `given_by = "guardian"`: a ticket naming the guardian's consent (e.g. the signed
    /// form's number): letters, digits, `.`, `_`, `-`; never a phone or ID number.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]{0,39}$")]
    pub guardian_ticket: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentsView {
    pub guest_id: String,
    pub consents: Vec<ConsentRecord>,
    pub history: Vec<ConsentEvent>,
}

impl Vault {
    /// Checks that `purpose` exists and is consent-based, and that the notice version and
    /// channel are well formed. Errors name the field, never echo the value.
    pub(super) fn validate_consent(
        &self,
        purpose: &str,
        input: &ConsentInput,
        grant: bool,
    ) -> Result<ConsentChange, Vec<FieldError>> {
        let mut errors = Vec::new();
        match self.policies.access.purposes.get(purpose) {
            None => errors.push(FieldError::new("purpose", "unknown_purpose")),
            Some(p) if p.basis != Basis::Consent => {
                errors.push(FieldError::new("purpose", "not_consent_based"))
            }
            Some(_) => {}
        }
        if grant {
            let nv = &input.notice_version;
            if nv.is_empty() {
                errors.push(FieldError::new("notice_version", "required"));
            } else if nv.len() > NOTICE_VERSION_MAX
                || !nv
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            {
                errors.push(FieldError::new("notice_version", "invalid_format"));
            }
            if input.channel.is_empty() {
                errors.push(FieldError::new("channel", "required"));
            } else if !CHANNELS.contains(&input.channel.as_str()) {
                errors.push(FieldError::new("channel", "not_allowed"));
            }
        }
        let giver = grant.then(|| super::minors::parse_giver(input, &mut errors));
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ConsentChange {
            purpose: purpose.to_string(),
            grant,
            separate: grant && input.separate,
            notice_version: grant.then(|| input.notice_version.clone()),
            channel: grant.then(|| input.channel.clone()),
            giver,
        })
    }

    pub async fn list_consents(
        &self,
        caller: &Caller,
        raw_id: &str,
    ) -> Result<ConsentsView, VaultError> {
        let action = Action::ConsentRead;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let read_gid = gid.clone();
        let (status, consents, history) = self
            .readers
            .run(move |c| {
                Ok((
                    store::guest_status(c, &read_gid)?,
                    current(c, &read_gid)?,
                    history(c, &read_gid)?,
                ))
            })
            .await?;
        self.check_status(caller, &grant, &guest_id, status).await?;
        let mut consents = consents;
        let band = self.visible_band(caller, &guest_id).await?;
        super::minors::mark_confirm_needed(&mut consents, band);
        let event = self.event(
            caller,
            action,
            Some(&gid),
            vec![],
            Outcome::Allowed,
            None,
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        Ok(ConsentsView {
            guest_id: gid,
            consents,
            history,
        })
    }

    /// Grants (`grant = true`) or withdraws consent for `purpose`; returns the current state.
    pub async fn change_consent(
        &self,
        caller: &Caller,
        raw_id: &str,
        purpose: &str,
        input: ConsentInput,
        grant_it: bool,
    ) -> Result<ConsentRecord, VaultError> {
        let action = Action::ConsentWrite;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let change = match self.validate_consent(purpose, &input, grant_it) {
            Ok(c) => c,
            Err(e) => {
                return Err(self
                    .refuse(
                        caller,
                        action,
                        Some(&gid),
                        vec![],
                        VaultError::Validation(e),
                        grant.rules().to_vec(),
                    )
                    .await)
            }
        };
        let read_gid = gid.clone();
        let status = self
            .readers
            .run(move |c| store::guest_status(c, &read_gid))
            .await?;
        self.check_status(caller, &grant, &guest_id, status).await?;
        let band = self
            .minor_checks(caller, &grant, &guest_id, &change)
            .await?;
        let now = self.now_ts();
        let rules = grant.rules().to_vec();
        let events = vec![self.consent_event(caller, &guest_id, &change, rules)];
        let actor = caller.actor.clone();
        let purpose = change.purpose.clone();
        let requested = change.purpose.clone();
        let permit = grant.permit();
        let ledger = self.ledger.clone();
        let withdrawal =
            (!grant_it).then(|| format!("{}{}", crate::ledger::WITHDRAWAL_PREFIX, change.purpose));
        let applied = self
            .writer
            .execute(move |c| {
                match store::touch_guest(c, &permit, &gid, &now)? {
                    Some(store::GuestStatus::Erased) | None => return Ok(None),
                    _ => {}
                }
                apply(c, &gid, &change, &actor, &now)?;
                // A restore of an older backup must not bring the consent back (PIPL Art. 15).
                if let Some(w) = &withdrawal {
                    ledger
                        .append(&gid, w, &now)
                        .map_err(|e| StoreError::Other(e.to_string()))?;
                }
                for e in events {
                    crate::audit::append(c, e)?;
                }
                Ok(Some(
                    current(c, &gid)?.into_iter().find(|r| r.purpose == purpose),
                ))
            })
            .await
            .map_err(VaultError::from_write)?;
        let mut record = match applied {
            None => return Err(VaultError::NotFound),
            Some(Some(record)) => record,
            Some(None) => ConsentRecord::none(requested),
        };
        super::minors::mark_confirm_needed(std::slice::from_mut(&mut record), band);
        Ok(record)
    }

    /// The minors rules of a grant (REQ-10): the guardian reference must name a guest the
    /// caller may read, and a guest under 14, as far as the caller sees its age, needs a
    /// guardian's separate consent. Returns the age band the caller sees.
    async fn minor_checks(
        &self,
        caller: &Caller,
        grant: &crate::policy::Grant<'_>,
        guest_id: &GuestId,
        change: &ConsentChange,
    ) -> Result<crate::domain::age::AgeBand, VaultError> {
        let gid = guest_id.as_str();
        let guardian_ref = change
            .giver
            .as_ref()
            .and_then(|g| g.guardian_guest_id.as_deref());
        let errors = self
            .check_guest_refs(caller, &[("guardian_guest_id", guardian_ref)])
            .await?;
        if !errors.is_empty() {
            return Err(self
                .refuse(
                    caller,
                    Action::ConsentWrite,
                    Some(gid),
                    vec![],
                    VaultError::Validation(errors),
                    grant.rules().to_vec(),
                )
                .await);
        }
        let band = self.visible_band(caller, guest_id).await?;
        if let Err(code) = self.minor_consent_rule(band, change) {
            return Err(self
                .refuse(
                    caller,
                    Action::ConsentWrite,
                    Some(gid),
                    vec![],
                    VaultError::Unprocessable(code),
                    vec![format!("minors.{code}")],
                )
                .await);
        }
        Ok(band)
    }

    /// The audit event of one consent change: the consent purpose goes into the reason.
    pub(super) fn consent_event(
        &self,
        caller: &Caller,
        guest_id: &GuestId,
        change: &ConsentChange,
        rules: Vec<String>,
    ) -> crate::audit::NewEvent {
        let what = if change.grant {
            if change.separate {
                "granted_separate"
            } else {
                "granted"
            }
        } else {
            "withdrawn"
        };
        let reason = format!("consent {what}: {}", change.purpose);
        self.event(
            caller,
            Action::ConsentWrite,
            Some(guest_id.as_str()),
            vec![],
            Outcome::Allowed,
            Some(&reason),
            rules,
        )
    }
}

impl ConsentRecord {
    fn none(purpose: String) -> Self {
        Self {
            purpose,
            status: "none".into(),
            separate: false,
            notice_version: None,
            channel: None,
            granted_at: None,
            withdrawn_at: None,
            given_by: None,
            guardian_relationship: None,
            guardian_guest_id: None,
            guardian_ticket: None,
            confirm_needed: None,
        }
    }
}
