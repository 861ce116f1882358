//! Corrections (PIPL Art. 46; REQ-30, REQ-32; issue 12 point 3).
//!
//! - A guest's own token corrects `self_service` fields (contact, preferences) directly.
//!   Anything else it asks to correct (identity: the registration record; business fields such
//!   as `membership_level`) becomes a **correction request**: a data-subject request of kind
//!   `correction`, status `pending_verification`, with its due date (REQ-32). The proposed
//!   values are kept only as ciphertext under the guest's DEK; the audit event names fields.
//! - A DSR officer lists pending requests, reads one (the proposed values, audited), and
//!   applies or rejects it with a reason code after checking the guest's document.
//! - Every applied correction's audit event carries keyed hashes of the values before and after
//!   ([`crate::audit::ValueHash`]), never the values.
//! - A correction of a field the `police_report` purpose reads and whose retention class is
//!   statutory keeps the replaced ciphertext (`guest_field_history`): the value registered at
//!   check-in stays readable under `police_report` (and data-subject requests) as
//!   `registered_<field>` until the field itself is erased or swept.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Caller, Vault, VaultError};
use crate::audit::{Outcome, ValueHash};
use crate::crypto::{hex, FieldCipher};
use crate::domain::{FieldError, GuestId, Validated};
use crate::policy::{Action, FieldScope};
use crate::store;

/// The purpose that reads the registration record; its statutory fields keep their registered
/// value when corrected.
pub(crate) const REGISTRATION_PURPOSE: &str = "police_report";
/// Prefix of a registered (pre-correction) value in a read under `police_report` or DSR.
pub const REGISTERED_PREFIX: &str = "registered_";

/// A guest's correction request, as the 202 answer shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CorrectionReceipt {
    pub request_id: String,
    /// Always `pending_verification`.
    pub status: &'static str,
    /// The fields asked to be corrected (names only).
    pub fields: Vec<String>,
    pub received_at: String,
    /// The statutory deadline (15 Chinese working days, REQ-32; one month at most for a
    /// guest under the GDPR too, REQ-48).
    #[schema(format = "date")]
    pub due_at: String,
    /// Which clock set `due_at`, each regime's due date, and any extension.
    #[serde(flatten)]
    pub deadlines: super::DsrClock,
}

/// A pending correction request in a DSR officer's queue.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CorrectionSummary {
    pub request_id: String,
    pub kind: &'static str,
    pub status: &'static str,
    #[schema(format = "uuid")]
    pub guest_id: String,
    pub fields: Vec<String>,
    pub received_at: String,
    #[schema(format = "date")]
    pub due_at: String,
    /// Which clock set `due_at`, each regime's due date, and any extension (REQ-32).
    #[serde(flatten)]
    pub deadlines: super::DsrClock,
}

/// One pending request with the proposed values in plain (audited: `correction.decide`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CorrectionDetail {
    #[serde(flatten)]
    pub summary: CorrectionSummary,
    /// Field → proposed value (`null`: remove the field).
    #[schema(value_type = Object)]
    pub proposed: BTreeMap<String, Value>,
}

/// The outcome of applying or rejecting a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CorrectionDecision {
    pub request_id: String,
    /// `completed` or `rejected`.
    pub status: &'static str,
    pub completed_at: String,
}

/// What a PATCH did: applied at once, or recorded as a request awaiting verification.
#[derive(Debug, Clone)]
pub enum UpdateOutcome {
    Applied(super::GuestView),
    Requested(CorrectionReceipt),
}

/// A decision's reason is a code from `[reasons]` in `access.toml` and an optional ticket
/// (`[A-Za-z0-9._-]{1,40}`): never free text, which could carry personal data into the
/// permanent trail. Checked like a reveal's reason ([`Vault::check_justification`]), but a
/// decision never takes a free-text note.
impl Vault {
    pub(super) fn check_reason(&self, reason: &str, ticket: Option<&str>) -> Vec<FieldError> {
        let input = crate::policy::JustificationInput {
            reason: Some(reason).filter(|r| !r.is_empty()),
            ticket,
            note: None,
        };
        self.check_justification(&input).err().unwrap_or_default()
    }
}

/// How a decision's reason and ticket are recorded in the event's `justification`, in the
/// same form as a reveal's (`reason=<code>[ ticket=<id>]`).
pub(super) fn reason_text(reason: &str, ticket: Option<&str>) -> String {
    match ticket {
        Some(t) => format!("reason={reason} ticket={t}"),
        None => format!("reason={reason}"),
    }
}

impl Vault {
    /// Keyed hashes of each `(field, before, after)` (REQ-30): HMAC-SHA256 under a per-field key
    /// derived by HKDF from the index root key with the info label `audit-value-hash/<field>`
    /// (the `/` keeps it apart from every blind-index field name).
    pub(super) fn value_hashes<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a str, Option<&'a str>, Option<&'a str>)>,
    ) -> Vec<ValueHash> {
        let keys = self.keys();
        let hash = |field: &str, v: &str| {
            hex(&keys
                .indexer()
                .digest(&format!("audit-value-hash/{field}"), v))
        };
        changes
            .into_iter()
            .map(|(field, before, after)| ValueHash {
                field: field.to_string(),
                before_hash: before.map(|v| hash(field, v)),
                after_hash: after.map(|v| hash(field, v)),
            })
            .collect()
    }

    /// Whether a correction of `field` keeps the replaced value as the registered one.
    pub(super) fn keeps_registered(&self, field: &str) -> bool {
        let read_by_police = self
            .policies
            .access
            .purposes
            .get(REGISTRATION_PURPOSE)
            .is_some_and(|p| p.fields.contains(field));
        read_by_police
            && self
                .policies
                .catalog
                .get(FieldScope::Guest, field)
                .and_then(|s| self.policies.retention.class(&s.category))
                .is_some_and(|c| c.statutory)
    }

    /// Whether a self-only role must file a request instead of writing `patch` directly.
    pub(super) fn needs_verification(&self, patch: &Map<String, Value>) -> bool {
        patch.keys().any(|k| {
            !self
                .policies
                .catalog
                .get(FieldScope::Guest, k)
                .is_some_and(|s| s.self_service)
        })
    }

    /// The registered values a correction replaced, as `(registered_<field>, value, view)`,
    /// for a read under `police_report` or a data-subject request only, each in the view of
    /// its field (none: left out).
    pub(super) async fn registered_view(
        &self,
        grant: &crate::policy::Grant<'_>,
        guest_id: &GuestId,
        wrapped_dek: &crate::crypto::WrappedDek,
        consent: crate::policy::ConsentFacts,
    ) -> Result<Vec<(String, Value, crate::policy::View)>, VaultError> {
        let purpose = grant.purpose().name.as_str();
        if purpose != REGISTRATION_PURPOSE && purpose != "data_subject_request" {
            return Ok(vec![]);
        }
        let permit = grant.permit();
        let gid = guest_id.as_str().to_string();
        let rows = self
            .readers
            .run(move |c| store::registered_values(c, &permit, &gid))
            .await?;
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let dek = self.open_dek(wrapped_dek, guest_id.as_str())?;
        let cipher = FieldCipher::new(&dek, guest_id.as_str());
        let mut out = Vec::new();
        for (field, ct) in rows {
            let Some(spec) = self.policies.catalog.get(FieldScope::Guest, &field) else {
                continue;
            };
            let (view, _) =
                grant.field_view(FieldScope::Guest, &field, spec.is_sensitive(), consent);
            if view == crate::policy::View::None {
                continue;
            }
            // The stored ciphertext is the field's own (its AAD names the field).
            let bytes = zeroize::Zeroizing::new(
                cipher
                    .open(&field, &ct)
                    .map_err(|e| VaultError::Internal(e.to_string()))?,
            );
            let text = crate::domain::Pii::new(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| VaultError::Internal("field is not UTF-8".into()))?,
            );
            out.push((
                format!("{REGISTERED_PREFIX}{field}"),
                super::guests::present(spec, text.expose(), view),
                view,
            ));
        }
        Ok(out)
    }

    /// Records a guest's correction request: the validated proposal sealed under its DEK.
    pub(super) async fn request_correction(
        &self,
        caller: &Caller,
        grant: &crate::policy::Grant<'_>,
        guest_id: &GuestId,
        wrapped_dek: &crate::crypto::WrappedDek,
        validated: &Validated,
        names: Vec<String>,
    ) -> Result<CorrectionReceipt, VaultError> {
        let gid = guest_id.as_str().to_string();
        let now = self.now_ts();
        let receipt_json = serde_json::json!({ "fields": names }).to_string();
        let jurisdictions = self.jurisdictions_of(grant, &gid).await?;
        let mut row = self.answered_dsr("correction", &now, receipt_json, jurisdictions);
        row.status = "pending_verification".into();
        row.completed_at = None;
        let proposal: BTreeMap<&str, Option<&str>> = validated
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref().map(|v| v.expose())))
            .collect();
        let plaintext = zeroize::Zeroizing::new(
            serde_json::to_vec(&proposal).map_err(|e| VaultError::Internal(e.to_string()))?,
        );
        let dek = self.open_dek(wrapped_dek, &gid)?;
        let ciphertext = FieldCipher::new(&dek, &gid)
            .seal(&format!("correction:{}", row.request_id), &plaintext)
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        let event = self.event(
            caller,
            Action::GuestUpdate,
            Some(&gid),
            names.clone(),
            Outcome::Allowed,
            Some("correction_requested"),
            grant.rules().to_vec(),
        );
        let permit = grant.permit();
        let subject = self.subject(&gid);
        let receipt = CorrectionReceipt {
            request_id: row.request_id.clone(),
            status: "pending_verification",
            fields: names.clone(),
            received_at: now.clone(),
            due_at: row.due_at.clone(),
            deadlines: super::DsrClock::of_row(row.deadlines.as_deref(), &row.due_at),
        };
        let status = self
            .writer
            .execute(move |c| {
                let status = store::touch_guest(c, &permit, &gid, &now)?;
                if status == Some(store::GuestStatus::Active) {
                    store::insert_correction(
                        c,
                        &permit,
                        &subject,
                        &row,
                        &gid,
                        &names,
                        &ciphertext,
                    )?;
                    crate::audit::append(c, event)?;
                }
                Ok(status)
            })
            .await
            .map_err(VaultError::from_write)?;
        match status {
            Some(store::GuestStatus::Active) => Ok(receipt),
            Some(store::GuestStatus::Restricted) => Err(self
                .refuse(
                    caller,
                    Action::GuestUpdate,
                    Some(guest_id.as_str()),
                    vec![],
                    VaultError::Restricted,
                    vec![],
                )
                .await),
            _ => Err(self
                .refuse(
                    caller,
                    Action::GuestUpdate,
                    Some(guest_id.as_str()),
                    vec![],
                    VaultError::NotFound,
                    vec![],
                )
                .await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_text_keeps_code_and_ticket_only() {
        assert_eq!(
            reason_text("document_checked", None),
            "reason=document_checked"
        );
        assert_eq!(
            reason_text("document_checked", Some("T-1")),
            "reason=document_checked ticket=T-1"
        );
    }
}
