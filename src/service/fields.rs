//! Field-level plumbing shared by the guest, stay and export use cases: which submitted
//! fields a grant may write, loading a sealed guest with its consent, decrypting selected
//! fields, and sealing validated values (with blind-index digests) for storage.

use serde_json::{Map, Value};

use super::{consent_state, Vault, VaultError};
use crate::crypto::{Dek, FieldCipher};
use crate::domain::{FieldError, GuestId, Pii};
use crate::policy::{ConsentFacts, FieldScope, Grant, View};
use crate::store::{self, SealedGuest};

impl Vault {
    /// Every submitted field must be one the purpose may touch and the role may see
    /// (REQ-03 minimum collection); unknown names are left to validation.
    pub(super) fn check_writable(
        &self,
        grant: &Grant<'_>,
        scope: FieldScope,
        input: &Map<String, Value>,
    ) -> Result<(), Vec<FieldError>> {
        let errors: Vec<FieldError> = input
            .keys()
            .filter(|k| self.policies.catalog.get(scope, k).is_some())
            .filter(|k| grant.view(scope, k).0 == View::None)
            .map(|k| FieldError::new(k, "field_not_permitted_for_purpose"))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Loads the guest and applies the status and consent checks (audited when they refuse):
    /// the record for a guest the caller may process under this grant, and its consent.
    pub(super) async fn load_checked(
        &self,
        caller: &super::Caller,
        grant: &Grant<'_>,
        guest_id: &GuestId,
    ) -> Result<(SealedGuest, ConsentFacts), VaultError> {
        let (sealed, consent) = self.load(grant, guest_id).await?;
        // A guest under 14 counts as consenting only with a guardian's separate consent
        // (PIPL Art. 29, 31; REQ-10), answered like no consent.
        let consent = match &sealed {
            Some(s) if s.status != crate::store::GuestStatus::Erased => {
                self.minors_consent(grant, guest_id, s, consent).await?
            }
            _ => consent,
        };
        let consent = self
            .check_guest(
                caller,
                grant,
                guest_id,
                sealed.as_ref().map(|s| s.status),
                consent,
            )
            .await?;
        sealed.map(|s| (s, consent)).ok_or(VaultError::NotFound)
    }

    /// Loads the sealed guest and the caller's purpose consent in one reader round trip.
    pub(super) async fn load(
        &self,
        grant: &Grant<'_>,
        guest_id: &GuestId,
    ) -> Result<(Option<SealedGuest>, ConsentFacts), VaultError> {
        let permit = grant.permit();
        let gid = guest_id.as_str().to_string();
        let purpose = grant.purpose().name.clone();
        let staged = self
            .policies
            .retention
            .classes
            .values()
            .any(|c| !c.stages.is_empty());
        let consent_based = grant.purpose().basis == crate::policy::Basis::Consent;
        let (sealed, consent, stage_facts, notice) = self
            .readers
            .run(move |c| {
                let consent = consent_state(c, &gid, &purpose)?;
                // The notice a consent names decides whether it still covers the purpose.
                let notice = if consent_based && matches!(consent, ConsentFacts::Granted { .. }) {
                    crate::store::consents::consent_notice(c, &gid, &purpose)?
                } else {
                    None
                };
                Ok((
                    store::load_guest(c, &permit, &gid)?,
                    consent,
                    if staged {
                        store::stage_facts(c, &gid)?
                    } else {
                        None
                    },
                    notice,
                ))
            })
            .await?;
        // Retention stages (issue 16 §3): a storage-only class is withheld from a purpose
        // without `restricted_access`, a pseudonymized field from every purpose.
        let sealed = match (sealed, stage_facts) {
            (Some(mut sealed), Some(sf)) => {
                let staging = super::stages::staging(
                    &self.policies,
                    &sf,
                    sealed.fields.iter().map(|(n, _)| n.as_str()),
                    self.today(),
                    grant.purpose().restricted_access,
                );
                sealed
                    .fields
                    .retain(|(name, _)| !staging.fields.contains_key(name));
                sealed.staging = staging;
                Some(sealed)
            }
            (sealed, _) => sealed,
        };
        // A stale consent (its notice does not disclose the purpose's current fields or
        // recipients, PIPL Art. 14(2), REQ-06) counts as absent.
        let consent = match consent {
            ConsentFacts::Granted { .. }
                if consent_based
                    && !self
                        .policies
                        .notices
                        .consent_covers(&grant.purpose().name, notice.as_deref()) =>
            {
                ConsentFacts::None
            }
            c => c,
        };
        Ok((sealed, consent))
    }

    /// Decrypts the fields `want` selects. Decryption failure is an internal error, never data.
    pub(super) fn open_fields(
        &self,
        guest_id: &GuestId,
        sealed: &SealedGuest,
        want: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, Pii)>, VaultError> {
        let gid = guest_id.as_str();
        let dek = self.open_dek(&sealed.wrapped_dek, gid)?;
        let cipher = FieldCipher::new(&dek, gid);
        let mut out = Vec::new();
        for (name, ct) in &sealed.fields {
            if !want(name) {
                continue;
            }
            let bytes = cipher
                .open(name, ct)
                .map_err(|e| VaultError::Internal(e.to_string()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| VaultError::Internal("field is not UTF-8".into()))?;
            out.push((name.clone(), Pii::new(text)));
        }
        Ok(out)
    }

    pub(super) fn seal_fields(
        &self,
        gid: &str,
        dek: &Dek,
        validated: &crate::domain::Validated,
    ) -> Result<Vec<SealedField>, VaultError> {
        let cipher = FieldCipher::new(dek, gid);
        let mut out = Vec::with_capacity(validated.len());
        for (name, value) in validated {
            let spec = self
                .policies
                .catalog
                .get(FieldScope::Guest, name)
                .filter(|s| s.searchable);
            out.push(match value {
                Some(v) => SealedField {
                    name: name.clone(),
                    ciphertext: Some(
                        cipher
                            .seal(name, v.expose().as_bytes())
                            .map_err(|e| VaultError::Internal(e.to_string()))?,
                    ),
                    digest: spec.map(|spec| {
                        let form = crate::domain::blind_index_form(spec, v.expose());
                        self.keys().indexer().digest(name, &form)
                    }),
                },
                None => SealedField {
                    name: name.clone(),
                    ciphertext: None,
                    digest: None,
                },
            });
        }
        Ok(out)
    }
}

/// A field ready for storage: `None` ciphertext removes it.
#[derive(Debug)]
pub(super) struct SealedField {
    name: String,
    ciphertext: Option<Vec<u8>>,
    digest: Option<Vec<u8>>,
}

pub(super) fn write_sealed(
    c: &store::Conn,
    permit: &crate::policy::Permit,
    gid: &str,
    now: &str,
    fields: Vec<SealedField>,
) -> Result<(), store::StoreError> {
    for f in fields {
        match f.ciphertext {
            Some(ct) => {
                store::put_field(c, permit, gid, &f.name, &ct, now)?;
                // A new value ends a pseudonymization (issue 16 §3).
                store::clear_pseudonymized(c, gid, std::slice::from_ref(&f.name))?;
                if let Some(d) = f.digest {
                    store::put_index(c, permit, gid, &f.name, &d)?;
                }
            }
            None => store::delete_field(c, permit, gid, &f.name)?,
        }
    }
    Ok(())
}
