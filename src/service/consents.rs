//! The consent ledger (PIPL Art. 13–16, 29; REQ-05, REQ-09): every grant and withdrawal is
//! appended to `consent_events`, and `consents` holds the current state per guest and purpose.
//! Withdrawal is one call, as easy as granting, and takes effect on the very next request
//! because every consent-based read consults the current state.
//!
//! Issue 16 §4 (REQ-05, REQ-06): a grant or refusal names a version registered in
//! `notices.toml` (else 422 `unknown_notice_version`) and the ledger stores the SHA-256 of the
//! text shown. A refusal is recorded (`"decision":"refused"`). Asking again is a grant or a
//! refusal the hotel prompted (`initiated_by = "hotel"`, the default for staff); within
//! `consent.re_ask_after_days` of the guest's latest refusal of the purpose it answers 409
//! `re_ask_too_soon` (Network Data Security Regulation Art. 22(5)). What the guest does on its
//! own (its own token, or `initiated_by = "guest"` recorded by staff) is never re-asking. A
//! consent to a notice that does not disclose the purpose's current fields or recipients is
//! `stale` and counts as absent.

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
use crate::store::consents::{consent_state, latest_refusal, record_refusal};

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
/// Who prompted a grant or refusal.
pub const INITIATORS: [&str; 2] = ["hotel", "guest"];
/// What the guest answered.
pub const DECISIONS: [&str; 2] = ["granted", "refused"];
/// `consent.re_ask_after_days` unless configured (Network Data Security Regulation Art. 22(5)).
pub const DEFAULT_RE_ASK_AFTER_DAYS: u32 = 30;

/// A consent as submitted (`PUT .../consents/{purpose}` or `consents` in `POST /v1/guests`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    #[serde(default)]
    pub purpose: Option<String>,
    /// A separate consent (PIPL Art. 29) covers the purpose's sensitive fields.
    #[serde(default)]
    pub separate: bool,
    /// The privacy notice the guest saw: a version registered in `notices.toml` (else 422
    /// `unknown_notice_version`).
    #[serde(default)]
    #[schema(required, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub notice_version: String,
    /// The language of the notice text shown: `zh-CN` (default) or `en`, as registered for the
    /// version. The ledger stores that text's SHA-256.
    #[serde(default)]
    #[schema(pattern = "^(zh-CN|en)$")]
    pub notice_language: Option<String>,
    /// Where the consent was given (one of `CHANNELS`).
    #[serde(default)]
    #[schema(required)]
    pub channel: String,
    /// `granted` (default) or `refused`: a refusal is recorded, and withdraws a standing
    /// consent.
    #[serde(default)]
    #[schema(pattern = "^(granted|refused)$")]
    pub decision: Option<String>,
    /// Who prompted this answer: `hotel` (default for staff: the hotel asked) or `guest` (the
    /// guest acted on its own; always so for the guest's own token). A `hotel` answer within
    /// `consent.re_ask_after_days` of the guest's latest refusal is 409 `re_ask_too_soon`.
    #[serde(default)]
    #[schema(pattern = "^(hotel|guest)$")]
    pub initiated_by: Option<String>,
    /// Who gives the consent: `guest` (the default) or `guardian`. A guest under 14 needs a
    /// separate consent given by a guardian (PIPL Art. 31, REQ-10). A refusal records no
    /// giver (refusing needs no guardian: nothing is processed on it).
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

impl ConsentInput {
    /// The body of a withdrawal (`DELETE`), which carries none.
    pub fn withdrawal() -> Self {
        Self {
            purpose: None,
            separate: false,
            notice_version: String::new(),
            notice_language: None,
            channel: String::new(),
            decision: None,
            initiated_by: None,
            given_by: None,
            guardian_relationship: None,
            guardian_guest_id: None,
            guardian_ticket: None,
        }
    }
}

/// The code of the field error that stands for an unregistered notice version (or language);
/// [`consent_error`] turns it into 422 `unknown_notice_version`.
const UNKNOWN_NOTICE: &str = "unknown_notice_version";

/// Field errors of a consent as the error to answer: `validation_failed` for malformed input,
/// `unknown_notice_version` when the only problem is an unregistered notice.
pub(super) fn consent_error(errors: Vec<FieldError>) -> VaultError {
    if errors.iter().all(|e| e.code == UNKNOWN_NOTICE) {
        VaultError::UnknownNoticeVersion
    } else {
        VaultError::Validation(
            errors
                .into_iter()
                .filter(|e| e.code != UNKNOWN_NOTICE)
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentsView {
    pub guest_id: String,
    pub consents: Vec<ConsentRecord>,
    pub history: Vec<ConsentEvent>,
}

impl Vault {
    /// Checks that `purpose` exists and is consent-based, and that the notice version and
    /// channel are well formed, then that the notice is registered. Errors name the field,
    /// never echo the value. `guest_self`: the guest's own token is acting (its answers are
    /// its own initiative).
    pub(super) fn validate_consent(
        &self,
        purpose: &str,
        input: &ConsentInput,
        grant_it: bool,
        guest_self: bool,
    ) -> Result<ConsentChange, Vec<FieldError>> {
        let refused = grant_it && input.decision.as_deref() == Some("refused");
        let grant = grant_it && !refused;
        let mut errors = Vec::new();
        match self.policies.access.purposes.get(purpose) {
            None => errors.push(FieldError::new("purpose", "unknown_purpose")),
            Some(p) if p.basis != Basis::Consent => {
                errors.push(FieldError::new("purpose", "not_consent_based"))
            }
            Some(_) => {}
        }
        if grant_it {
            if input
                .decision
                .as_deref()
                .is_some_and(|d| !DECISIONS.contains(&d))
            {
                errors.push(FieldError::new("decision", "not_allowed"));
            }
            if input
                .initiated_by
                .as_deref()
                .is_some_and(|d| !INITIATORS.contains(&d))
            {
                errors.push(FieldError::new("initiated_by", "not_allowed"));
            }
            if input
                .notice_language
                .as_deref()
                .is_some_and(|l| !crate::policy::notices::LANGUAGES.contains(&l))
            {
                errors.push(FieldError::new("notice_language", "not_allowed"));
            }
            let nv = &input.notice_version;
            if nv.is_empty() {
                errors.push(FieldError::new("notice_version", "required"));
            } else if !crate::policy::notices::is_version_id(nv) {
                errors.push(FieldError::new("notice_version", "invalid_format"));
            }
            if input.channel.is_empty() {
                errors.push(FieldError::new("channel", "required"));
            } else if !CHANNELS.contains(&input.channel.as_str()) {
                errors.push(FieldError::new("channel", "not_allowed"));
            }
        }
        // The giver members are validated on a refusal too, but only a grant records them.
        let giver = grant_it.then(|| super::minors::parse_giver(input, &mut errors));
        let giver = giver.filter(|_| grant);
        if !errors.is_empty() {
            return Err(errors);
        }
        let answered = grant || refused;
        let notice_sha256 = if answered {
            let lang = input
                .notice_language
                .as_deref()
                .unwrap_or(crate::policy::notices::DEFAULT_LANGUAGE);
            match self.policies.notices.text_hash(&input.notice_version, lang) {
                Some(h) => Some(h.to_string()),
                None => return Err(vec![FieldError::new("notice_version", UNKNOWN_NOTICE)]),
            }
        } else {
            None
        };
        let initiated_by = answered.then(|| {
            if guest_self {
                "guest".to_string()
            } else {
                input.initiated_by.clone().unwrap_or_else(|| "hotel".into())
            }
        });
        Ok(ConsentChange {
            purpose: purpose.to_string(),
            grant,
            separate: grant && input.separate,
            notice_version: answered.then(|| input.notice_version.clone()),
            channel: answered.then(|| input.channel.clone()),
            giver,
            notice_sha256,
            initiated_by,
            refused,
        })
    }

    /// Shows a granted consent whose notice no longer covers the purpose as `stale`.
    pub(super) fn mark_stale(&self, records: &mut [ConsentRecord]) {
        for r in records.iter_mut().filter(|r| r.status == "granted") {
            if !self
                .policies
                .notices
                .consent_covers(&r.purpose, r.notice_version.as_deref())
            {
                r.status = "stale".into();
            }
        }
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
        let event = self.event(
            caller,
            action,
            Some(&gid),
            vec![],
            Outcome::Allowed,
            None,
            grant.rules().to_vec(),
        );
        let mut consents = consents;
        let band = self.visible_band(caller, &guest_id).await?;
        super::minors::mark_confirm_needed(&mut consents, band);
        self.record(event).await?;
        self.mark_stale(&mut consents);
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
        let guest_self = grant.role().self_only;
        let change = match self.validate_consent(purpose, &input, grant_it, guest_self) {
            Ok(c) => c,
            Err(e) => {
                return Err(self
                    .refuse(
                        caller,
                        action,
                        Some(&gid),
                        vec![],
                        consent_error(e),
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
        let clock_now = self.clock.now();
        let now = crate::clock::timestamp(clock_now);
        // Asking again: an answer the hotel prompted, after a refusal recorded since this
        // instant (timestamps are fixed-width UTC, so they compare as text).
        let re_ask_since = (change.initiated_by.as_deref() == Some("hotel")).then(|| {
            crate::clock::timestamp(
                clock_now - time::Duration::days(i64::from(self.re_ask_after_days)),
            )
        });
        let rules = grant.rules().to_vec();
        let events = vec![self.consent_event(caller, &guest_id, &change, rules)];
        let actor = caller.actor.clone();
        let purpose = change.purpose.clone();
        let requested = change.purpose.clone();
        let permit = grant.permit();
        let ledger = self.ledger.clone();
        let withdrawal_line = format!("{}{}", crate::ledger::WITHDRAWAL_PREFIX, change.purpose);
        let applied = self
            .writer
            .execute(move |c| {
                match store::touch_guest(c, &permit, &gid, &now)? {
                    Some(store::GuestStatus::Erased) | None => return Ok(Applied::NotFound),
                    _ => {}
                }
                if let Some(since) = &re_ask_since {
                    if latest_refusal(c, &gid, &change.purpose)?.is_some_and(|at| at > *since) {
                        return Ok(Applied::TooSoon);
                    }
                }
                // A withdrawal, or a refusal of a standing consent, ends it.
                let ends = !change.grant
                    && (!change.refused
                        || matches!(
                            consent_state(c, &gid, &change.purpose)?,
                            crate::policy::ConsentFacts::Granted { .. }
                        ));
                if change.refused {
                    if ends {
                        let withdraw = ConsentChange {
                            refused: false,
                            giver: None,
                            notice_version: None,
                            notice_sha256: None,
                            channel: None,
                            initiated_by: None,
                            ..change.clone()
                        };
                        apply(c, &gid, &withdraw, &actor, &now)?;
                    }
                    record_refusal(c, &gid, &change, &actor, &now)?;
                } else {
                    apply(c, &gid, &change, &actor, &now)?;
                }
                // A restore of an older backup must not bring the consent back (PIPL Art. 15).
                if ends {
                    ledger
                        .append(&gid, &withdrawal_line, &now)
                        .map_err(|e| StoreError::Other(e.to_string()))?;
                }
                for e in events {
                    crate::audit::append(c, e)?;
                }
                Ok(Applied::Done(
                    current(c, &gid)?.into_iter().find(|r| r.purpose == purpose),
                ))
            })
            .await
            .map_err(VaultError::from_write)?;
        match applied {
            Applied::NotFound => Err(VaultError::NotFound),
            Applied::TooSoon => Err(self
                .refuse(
                    caller,
                    action,
                    Some(guest_id.as_str()),
                    vec![],
                    VaultError::ReAskTooSoon,
                    vec!["consent.re_ask_after_days".into()],
                )
                .await),
            Applied::Done(Some(mut record)) => {
                super::minors::mark_confirm_needed(std::slice::from_mut(&mut record), band);
                self.mark_stale(std::slice::from_mut(&mut record));
                Ok(record)
            }
            Applied::Done(None) => Ok(ConsentRecord::none(requested)),
        }
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
        } else if change.refused {
            "refused"
        } else {
            "withdrawn"
        };
        // Who prompted it, for grants and refusals (no personal data: a fixed word).
        let by = match change.initiated_by.as_deref() {
            Some("guest") => " (guest-initiated)",
            _ => "",
        };
        let reason = format!("consent {what}: {}{by}", change.purpose);
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

/// What the consent write did.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per request, returned at once"
)]
enum Applied {
    NotFound,
    /// Asked again within `consent.re_ask_after_days` of a refusal: nothing written.
    TooSoon,
    Done(Option<ConsentRecord>),
}

impl ConsentRecord {
    fn none(purpose: String) -> Self {
        Self {
            purpose,
            status: "none".into(),
            separate: false,
            notice_version: None,
            notice_sha256: None,
            channel: None,
            granted_at: None,
            withdrawn_at: None,
            refused_at: None,
            given_by: None,
            guardian_relationship: None,
            guardian_guest_id: None,
            guardian_ticket: None,
            confirm_needed: None,
        }
    }
}
