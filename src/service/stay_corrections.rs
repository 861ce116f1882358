//! Plausible stay dates and corrections of stays entered in error (issue 12 point 4).
//!
//! A `check_in` lies at most `stays.max_check_in_ahead_days` after today and a `check_out` at
//! most `stays.max_stay_days` after its `check_in`: a stay dated `9999-12-31` would otherwise
//! hold the guest's registration "until then" against any erasure. A role with `stay.correct`
//! (DSR officer, PMS) corrects or deletes a stay with a reason code; the guest's
//! `last_checkout`, from which retention runs, is recomputed from the stays that remain.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::corrections::reason_text;
use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::crypto::FieldCipher;
use crate::domain::{validate_fields, FieldError};
use crate::policy::{Action, FieldScope};
use crate::store;

impl Vault {
    /// The date-limit errors of a stay document (normalized ISO dates).
    pub(super) fn check_stay_dates(&self, doc: &BTreeMap<&str, &str>) -> Vec<FieldError> {
        let parse = |k: &str| {
            doc.get(k)
                .and_then(|s| crate::domain::pii::parse_date(s).ok())
        };
        let mut errors = Vec::new();
        let limits = &self.stay_limits;
        let check_in = parse("check_in");
        if let Some(ci) = check_in {
            let latest = self.today() + time::Duration::days(limits.max_check_in_ahead_days.into());
            if ci > latest {
                errors.push(FieldError::new("check_in", "too_far_ahead"));
            }
        }
        if let (Some(ci), Some(co)) = (check_in, parse("check_out")) {
            if co > ci + time::Duration::days(limits.max_stay_days.into()) {
                errors.push(FieldError::new("check_out", "stay_too_long"));
            }
        }
        errors
    }

    /// `PATCH` (`Some(fields)`) or `DELETE` (`None`) of `/v1/guests/{id}/stays/{stay_id}`.
    pub async fn correct_stay(
        &self,
        caller: &Caller,
        raw_id: &str,
        stay_id: &str,
        patch: Option<Map<String, Value>>,
        reason: &str,
        ticket: Option<&str>,
    ) -> Result<(), VaultError> {
        let action = Action::StayCorrect;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let names: Vec<String> = patch
            .iter()
            .flat_map(|p| p.keys())
            .filter(|k| crate::policy::is_identifier(k))
            .map(|k| format!("stay.{k}"))
            .collect();
        let refuse = |e: VaultError, names: Vec<String>| {
            self.refuse(
                caller,
                action,
                Some(guest_id.as_str()),
                names,
                e,
                grant.rules().to_vec(),
            )
        };
        let mut errors = self.check_reason(reason, ticket);
        if let Some(p) = &patch {
            if let Err(e) = self.check_writable(&grant, FieldScope::Stay, p) {
                errors.extend(e);
            }
            for required in ["check_in", "check_out"] {
                if p.get(required).is_some_and(Value::is_null) {
                    errors.push(FieldError::new(required, "required"));
                }
            }
            if p.is_empty() {
                errors.push(FieldError::new("fields", "required"));
            }
        }
        if !errors.is_empty() {
            return Err(refuse(VaultError::Validation(errors), names).await);
        }
        let (sealed, _) = self.load_checked(caller, &grant, &guest_id).await?;
        let permit = grant.permit();
        let (read_gid, read_sid) = (gid.clone(), stay_id.to_string());
        let stored = if uuid::Uuid::try_parse(stay_id).is_ok() {
            self.readers
                .run(move |c| store::get_stay(c, &permit, &read_gid, &read_sid))
                .await?
        } else {
            None
        };
        // Another guest's stay answers like an unknown one.
        let Some(stored) = stored else {
            return Err(refuse(VaultError::NotFound, names).await);
        };
        let dek = self.open_dek(&sealed.wrapped_dek, &gid)?;
        let cipher = FieldCipher::new(&dek, &gid);
        let label = format!("stay:{stay_id}");
        let plain = zeroize::Zeroizing::new(
            cipher
                .open(&label, &stored)
                .map_err(|e| VaultError::Internal(e.to_string()))?,
        );
        let before: BTreeMap<String, String> =
            serde_json::from_slice(&plain).map_err(|e| VaultError::Internal(e.to_string()))?;
        let mut after = before.clone();
        let mut fields = names.clone();
        if let Some(p) = &patch {
            let existing: BTreeMap<String, String> = before.clone();
            let validated = match validate_fields(
                &self.policies.catalog,
                FieldScope::Stay,
                p,
                &existing,
                true,
                self.today(),
            ) {
                Ok(v) => v,
                Err(e) => return Err(refuse(VaultError::Validation(e), names).await),
            };
            for (k, v) in &validated {
                match v {
                    Some(v) => after.insert(k.clone(), v.expose().to_string()),
                    None => after.remove(k),
                };
            }
            let doc: BTreeMap<&str, &str> = after
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let errors = self.check_stay_dates(&doc);
            if !errors.is_empty() {
                return Err(refuse(VaultError::Validation(errors), names).await);
            }
        } else {
            fields = before.keys().map(|k| format!("stay.{k}")).collect();
        }
        // Keyed hashes of every changed (or deleted) stay field, before and after (REQ-30).
        let changed: Vec<(String, Option<&str>, Option<&str>)> = before
            .keys()
            .chain(after.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| patch.is_none() || before.get(*k) != after.get(*k))
            .map(|k| {
                let gone = patch.is_none();
                (
                    format!("stay.{k}"),
                    before.get(k).map(String::as_str),
                    if gone {
                        None
                    } else {
                        after.get(k).map(String::as_str)
                    },
                )
            })
            .collect();
        let value_hashes = self.value_hashes(changed.iter().map(|(k, b, a)| (k.as_str(), *b, *a)));
        let replacement = match &patch {
            Some(_) => {
                let bytes = zeroize::Zeroizing::new(
                    serde_json::to_vec(&after).map_err(|e| VaultError::Internal(e.to_string()))?,
                );
                let ct = cipher
                    .seal(&label, &bytes)
                    .map_err(|e| VaultError::Internal(e.to_string()))?;
                let check_out = after.get("check_out").cloned().unwrap_or_default();
                Some((check_out, ct))
            }
            None => None,
        };
        let mut event = self.event(
            caller,
            action,
            Some(&gid),
            fields,
            Outcome::Allowed,
            Some(if patch.is_some() {
                "stay corrected"
            } else {
                "stay deleted"
            }),
            grant.rules().to_vec(),
        );
        event.justification = Some(reason_text(reason, ticket));
        event.value_hashes = value_hashes;
        let now = self.now_ts();
        let permit = grant.permit();
        let sid = stay_id.to_string();
        let write_gid = gid.clone();
        let done = self
            .writer
            .execute(move |c| {
                if store::touch_guest(c, &permit, &write_gid, &now)?
                    != Some(store::GuestStatus::Active)
                {
                    return Ok(false);
                }
                let r = replacement
                    .as_ref()
                    .map(|(co, ct)| (co.as_str(), ct.as_slice()));
                if !store::correct_stay(c, &permit, &write_gid, &sid, r)? {
                    return Ok(false);
                }
                crate::audit::append(c, event)?;
                Ok(true)
            })
            .await
            .map_err(VaultError::from_write)?;
        if !done {
            // Restricted (storage-only) data is not changed either (PIPL Art. 47(2)).
            let status = sealed.status;
            let e = match status {
                store::GuestStatus::Restricted => VaultError::Restricted,
                _ => VaultError::NotFound,
            };
            return Err(refuse(e, vec![]).await);
        }
        // The replaced ciphertext must not linger in the WAL.
        self.writer.note_shredded();
        Ok(())
    }
}
