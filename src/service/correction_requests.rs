//! The DSR officer's side of correction requests (see [`super::corrections`]): the queue, one
//! request's proposed values, and the decision (apply or reject, with a reason code). Every
//! step is audited under `correction.decide`; an applied correction's event carries the keyed
//! hashes of the values before and after (REQ-30).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::corrections::{reason_text, CorrectionDecision, CorrectionDetail, CorrectionSummary};
use super::fields::write_sealed;
use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::crypto::FieldCipher;
use crate::domain::cross_field::CROSS_CHECKED;
use crate::domain::{validate_fields, GuestId};
use crate::policy::{Action, FieldScope, Grant};
use crate::store::{self, PendingCorrection};

/// Apply or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Apply,
    Reject,
}

fn summary(p: &PendingCorrection) -> CorrectionSummary {
    CorrectionSummary {
        request_id: p.row.request_id.clone(),
        kind: "correction",
        status: "pending_verification",
        guest_id: p.guest_id.clone(),
        fields: p.fields.clone(),
        received_at: p.row.received_at.clone(),
        due_at: p.row.due_at.clone(),
        deadlines: super::DsrClock::of_row(p.row.deadlines.as_deref(), &p.row.due_at),
    }
}

impl Vault {
    /// `GET /v1/dsr-requests?kind=correction&status=pending_verification`.
    pub async fn pending_corrections(
        &self,
        caller: &Caller,
    ) -> Result<Vec<CorrectionSummary>, VaultError> {
        let action = Action::CorrectionDecide;
        let grant = self.authorize(caller, action, None).await?;
        let permit = grant.permit();
        let rows = self
            .readers
            .run(move |c| store::pending_corrections(c, &permit))
            .await?;
        let event = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some("correction requests listed"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        Ok(rows.iter().map(summary).collect())
    }

    /// The pending request `raw_id`, or an audited 404 (an unknown, malformed or decided id
    /// all answer alike).
    async fn pending(
        &self,
        caller: &Caller,
        grant: &Grant<'_>,
        raw_id: &str,
        names: Vec<String>,
    ) -> Result<PendingCorrection, VaultError> {
        let found = if uuid::Uuid::try_parse(raw_id).is_ok() {
            let permit = grant.permit();
            let id = raw_id.to_string();
            self.readers
                .run(move |c| store::pending_correction(c, &permit, &id))
                .await?
        } else {
            None
        };
        match found {
            Some(p) => Ok(p),
            None => Err(self
                .refuse(
                    caller,
                    grant.action(),
                    None,
                    names,
                    VaultError::NotFound,
                    grant.rules().to_vec(),
                )
                .await),
        }
    }

    /// Loads the request, its guest, and the decrypted proposal.
    async fn open_request(
        &self,
        caller: &Caller,
        grant: &Grant<'_>,
        raw_id: &str,
    ) -> Result<
        (
            PendingCorrection,
            GuestId,
            store::SealedGuest,
            Map<String, Value>,
        ),
        VaultError,
    > {
        let pending = self.pending(caller, grant, raw_id, vec![]).await?;
        let guest_id = GuestId::parse(&pending.guest_id)
            .ok_or_else(|| VaultError::Internal("stored guest id is malformed".into()))?;
        let (sealed, _) = self.load_checked(caller, grant, &guest_id).await?;
        let dek = self.open_dek(&sealed.wrapped_dek, guest_id.as_str())?;
        let plain = zeroize::Zeroizing::new(
            FieldCipher::new(&dek, guest_id.as_str())
                .open(
                    &format!("correction:{}", pending.row.request_id),
                    &pending.ciphertext,
                )
                .map_err(|e| VaultError::Internal(e.to_string()))?,
        );
        let proposal: Map<String, Value> =
            serde_json::from_slice(&plain).map_err(|e| VaultError::Internal(e.to_string()))?;
        Ok((pending, guest_id, sealed, proposal))
    }

    /// `GET /v1/dsr-requests/{id}`: the proposed values in plain, so the officer can compare
    /// them with the guest's document. Audited with the field names.
    pub async fn correction_detail(
        &self,
        caller: &Caller,
        raw_id: &str,
    ) -> Result<CorrectionDetail, VaultError> {
        let grant = self
            .authorize(caller, Action::CorrectionDecide, None)
            .await?;
        let (pending, guest_id, _, proposal) = self.open_request(caller, &grant, raw_id).await?;
        let event = self.event(
            caller,
            grant.action(),
            Some(guest_id.as_str()),
            pending.fields.clone(),
            Outcome::Allowed,
            Some("correction request read"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        Ok(CorrectionDetail {
            summary: summary(&pending),
            proposed: proposal.into_iter().collect(),
        })
    }

    /// `POST /v1/dsr-requests/{id}/apply` or `/reject`.
    pub async fn decide_correction(
        &self,
        caller: &Caller,
        raw_id: &str,
        decision: Decision,
        reason: &str,
        ticket: Option<&str>,
    ) -> Result<CorrectionDecision, VaultError> {
        let action = Action::CorrectionDecide;
        let grant = self.authorize(caller, action, None).await?;
        let errors = self.check_reason(reason, ticket);
        if !errors.is_empty() {
            return Err(self
                .refuse(
                    caller,
                    action,
                    None,
                    vec![],
                    VaultError::Validation(errors),
                    grant.rules().to_vec(),
                )
                .await);
        }
        let (pending, guest_id, sealed, proposal) =
            self.open_request(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let names = pending.fields.clone();
        let now = self.now_ts();
        let refuse = |e: VaultError| {
            self.refuse(
                caller,
                action,
                Some(guest_id.as_str()),
                names.clone(),
                e,
                grant.rules().to_vec(),
            )
        };
        let (status, label) = match decision {
            Decision::Apply => ("completed", "correction applied"),
            Decision::Reject => ("rejected", "correction rejected"),
        };
        let receipt = serde_json::json!({
            "fields": names,
            "decision": status,
            "reason": reason,
        })
        .to_string();
        let mut event = self.event(
            caller,
            action,
            Some(&gid),
            names.clone(),
            Outcome::Allowed,
            Some(label),
            grant.rules().to_vec(),
        );
        event.justification = Some(reason_text(reason, ticket));
        let mut sealed_fields = Vec::new();
        let mut registered = Vec::new();
        if decision == Decision::Apply {
            // Checked again against the record as it is now: it may have changed since.
            let existing: BTreeMap<String, String> = self
                .open_fields(&guest_id, &sealed, |n| CROSS_CHECKED.contains(&n))?
                .into_iter()
                .map(|(k, v)| (k, v.expose().to_string()))
                .collect();
            let mut errors = self.statutory_removals(&proposal);
            let validated = match validate_fields(
                &self.policies.catalog,
                FieldScope::Guest,
                &proposal,
                &existing,
                true,
                self.today(),
            ) {
                Ok(v) if errors.is_empty() => v,
                Ok(_) => return Err(refuse(VaultError::Validation(errors)).await),
                Err(e) => {
                    errors.extend(e);
                    return Err(refuse(VaultError::Validation(errors)).await);
                }
            };
            // Minors (REQ-10): applying it must not leave a guest under 18 without a guardian.
            if let Err(code) = self
                .correction_registration_rule(caller, &guest_id, &validated)
                .await?
            {
                return Err(refuse(VaultError::Unprocessable(code)).await);
            }
            let before: BTreeMap<String, crate::domain::Pii> = self
                .open_fields(&guest_id, &sealed, |n| validated.contains_key(n))?
                .into_iter()
                .collect();
            event.value_hashes = self.value_hashes(validated.iter().map(|(k, v)| {
                (
                    k.as_str(),
                    before.get(k).map(|b| b.expose()),
                    v.as_ref().map(|v| v.expose()),
                )
            }));
            registered = validated
                .keys()
                .filter(|k| before.contains_key(*k) && self.keeps_registered(k))
                .cloned()
                .collect();
            let dek = self.open_dek(&sealed.wrapped_dek, &gid)?;
            sealed_fields = self.seal_fields(&gid, &dek, &validated)?;
        }
        let permit = grant.permit();
        let request_id = pending.row.request_id.clone();
        let write_gid = gid.clone();
        let write_now = now.clone();
        let outcome = self
            .writer
            .execute(move |c| {
                let guest = store::touch_guest(c, &permit, &write_gid, &write_now)?;
                if decision == Decision::Apply && guest != Some(store::GuestStatus::Active) {
                    return Ok(Err(guest));
                }
                if !store::decide_correction(c, &permit, &request_id, status, &write_now, &receipt)?
                {
                    return Ok(Err(None));
                }
                for f in &registered {
                    store::keep_registered(c, &permit, &write_gid, f, &write_now)?;
                }
                write_sealed(c, &permit, &write_gid, &write_now, sealed_fields)?;
                crate::audit::append(c, event)?;
                Ok(Ok(()))
            })
            .await
            .map_err(VaultError::from_write)?;
        match outcome {
            Ok(()) => {}
            // Restricted data is storage only (PIPL Art. 47(2)): the request stays pending.
            Err(Some(store::GuestStatus::Restricted)) => {
                return Err(refuse(VaultError::Restricted).await)
            }
            Err(_) => return Err(refuse(VaultError::NotFound).await),
        }
        if decision == Decision::Apply {
            self.writer.note_shredded();
        }
        Ok(CorrectionDecision {
            request_id: pending.row.request_id,
            status,
            completed_at: now,
        })
    }
}
