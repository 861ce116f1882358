//! Guest records: create, read (masked per policy), correct, reveal with justification, and
//! exact-match search through the blind index.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::corrections::UpdateOutcome;
use super::fields::write_sealed;
use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::crypto::Dek;
use crate::domain::cross_field::{cross_field_requirements, CROSS_CHECKED};
use crate::domain::{
    data_quality, data_quality_after, validate_fields, DataQualityFlag, FieldError, GuestId,
};
use crate::policy::{Action, DenyReason, FieldScope, FieldSpec, FieldType, Grant, View};
use crate::store;

#[derive(Debug, Clone, Default)]
pub struct NewGuest {
    pub fields: Map<String, Value>,
    /// Consents given at registration (each needs `purpose`).
    pub consents: Vec<super::ConsentInput>,
}

/// The read shape: visible fields (plain or masked) and the view each was shown in.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct GuestView {
    pub guest_id: String,
    pub fields: BTreeMap<String, Value>,
    pub views: BTreeMap<String, &'static str>,
    /// Data-quality flags (issue 15), absent when there are none. A flag is shown only to a
    /// caller that sees every value it compares in plain (or sent them in this request), so a
    /// caller that sees the ID number masked gets the same answer whether or not it is set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_quality: Vec<DataQualityFlag>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RevealView {
    pub guest_id: String,
    pub fields: BTreeMap<String, Value>,
    /// Data-quality flags over the values revealed and those the caller sees in plain, absent
    /// when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_quality: Vec<DataQualityFlag>,
}

/// A registered guest, and the data-quality flags of the values in the request.
#[derive(Debug, Clone)]
pub struct CreatedGuest {
    pub guest_id: GuestId,
    pub data_quality: Vec<DataQualityFlag>,
}

/// A field's value as the response shows it under `view`.
pub(super) fn present(spec: &FieldSpec, plain: &str, view: View) -> Value {
    match view {
        View::Plain if matches!(spec.field_type, FieldType::Json | FieldType::Jurisdictions) => {
            serde_json::from_str(plain).unwrap_or(Value::Null)
        }
        View::Plain => Value::String(plain.to_string()),
        _ => Value::String(spec.mask.apply(plain)),
    }
}

impl Vault {
    pub async fn create_guest(
        &self,
        caller: &Caller,
        input: NewGuest,
    ) -> Result<CreatedGuest, VaultError> {
        let action = Action::GuestCreate;
        let grant = self.authorize(caller, action, None).await?;
        let names: Vec<String> = input
            .fields
            .keys()
            .filter(|k| crate::policy::is_identifier(k))
            .cloned()
            .collect();
        if let Err(errors) = self.check_writable(&grant, FieldScope::Guest, &input.fields) {
            return Err(self
                .refuse(
                    caller,
                    action,
                    None,
                    names,
                    VaultError::Validation(errors),
                    grant.rules().to_vec(),
                )
                .await);
        }
        if grant.purpose().basis == crate::policy::Basis::Consent {
            // A guest cannot have consented before it exists (consents come with the record).
            return Err(self
                .refuse(
                    caller,
                    action,
                    None,
                    names,
                    VaultError::Denied(DenyReason::ConsentRequired),
                    grant.rules().to_vec(),
                )
                .await);
        }
        let validated = match validate_fields(
            &self.policies.catalog,
            FieldScope::Guest,
            &input.fields,
            &BTreeMap::new(),
            false,
            self.today(),
        ) {
            Ok(v) if !v.is_empty() => Ok(v),
            Ok(_) => Err(vec![FieldError::new("fields", "required")]),
            Err(errors) => Err(errors),
        }
        .map_err(VaultError::Validation);
        let validated = match validated {
            Ok(v) => v,
            Err(e) => {
                return Err(self
                    .refuse(caller, action, None, names, e, grant.rules().to_vec())
                    .await)
            }
        };

        // Minors (REQ-10; 未成年人保护法 Art. 57): an accompanying adult must be a guest the
        // caller may read, and a guest under 18 needs a guardian or that adult. The age comes
        // from the values the caller sends, so the answer tells it nothing it does not know.
        let errors = self.accompanied_by_errors(caller, &validated).await?;
        let refused = if !errors.is_empty() {
            Some(VaultError::Validation(errors))
        } else {
            self.registration_rule(&validated)
                .err()
                .map(VaultError::Unprocessable)
        };
        if let Some(e) = refused {
            return Err(self
                .refuse(caller, action, None, names, e, grant.rules().to_vec())
                .await);
        }
        let band = self.band_of_input(&validated);
        // Computed from the request alone: the caller sent every value it compares.
        let flags = data_quality_after(&validated, &BTreeMap::new());
        let guest_id = GuestId::generate();
        let consents = self
            .creation_consents(caller, &input.consents, &guest_id, band)
            .await?;
        let gid = guest_id.as_str().to_string();
        let dek = Dek::generate().map_err(|e| VaultError::Internal(e.to_string()))?;
        let wrapped = self
            .keys()
            .wrap_dek(&dek, &gid)
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        let sealed = self.seal_fields(&gid, &dek, &validated)?;
        let now = self.now_ts();
        let permit = grant.permit();
        let event = self.event(
            caller,
            action,
            Some(&gid),
            names,
            Outcome::Allowed,
            None,
            grant.rules().to_vec(),
        );
        self.writer
            .execute(move |c| {
                store::insert_guest(c, &permit, &gid, &now, &wrapped)?;
                write_sealed(c, &permit, &gid, &now, sealed)?;
                crate::audit::append(c, event)?;
                for (change, event) in consents {
                    // A new guest has no consent to withdraw and no refusal to re-ask after.
                    if change.refused {
                        crate::store::consents::record_refusal(
                            c,
                            &gid,
                            &change,
                            &event.actor,
                            &now,
                        )?;
                    } else {
                        super::consents::apply(c, &gid, &change, &event.actor, &now)?;
                    }
                    crate::audit::append(c, event)?;
                }
                Ok(())
            })
            .await
            .map_err(VaultError::from_write)?;
        Ok(CreatedGuest {
            guest_id,
            data_quality: flags,
        })
    }

    /// Validates consents submitted with a new guest; the caller needs `consent.write` too.
    async fn creation_consents(
        &self,
        caller: &Caller,
        inputs: &[super::ConsentInput],
        guest_id: &GuestId,
        band: crate::domain::age::AgeBand,
    ) -> Result<Vec<(super::consents::ConsentChange, crate::audit::NewEvent)>, VaultError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let grant = self.authorize(caller, Action::ConsentWrite, None).await?;
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let mut minor_refusal = None;
        for input in inputs {
            let purpose = input.purpose.clone().unwrap_or_default();
            match self.validate_consent(&purpose, input, true, grant.role().self_only) {
                Ok(change) => {
                    let guardian_ref = change
                        .giver
                        .as_ref()
                        .and_then(|g| g.guardian_guest_id.clone());
                    for mut e in self
                        .check_guest_refs(caller, &[("guardian_guest_id", guardian_ref.as_deref())])
                        .await?
                    {
                        e.field = format!("consents.{}", e.field);
                        errors.push(e);
                    }
                    // REQ-10: the caller sent the birth date, so this tells it nothing new.
                    if let Err(code) = self.minor_consent_rule(band, &change) {
                        minor_refusal.get_or_insert(code);
                    }
                    let event =
                        self.consent_event(caller, guest_id, &change, grant.rules().to_vec());
                    out.push((change, event));
                }
                Err(e) => errors.extend(e.into_iter().map(|mut e| {
                    e.field = format!("consents.{}", e.field);
                    e
                })),
            }
        }
        let refused = match (errors.is_empty(), minor_refusal) {
            (true, None) => return Ok(out),
            (true, Some(code)) => VaultError::Unprocessable(code),
            (false, _) => super::consents::consent_error(errors),
        };
        Err(self
            .refuse(
                caller,
                Action::ConsentWrite,
                None,
                vec![],
                refused,
                grant.rules().to_vec(),
            )
            .await)
    }

    pub async fn read_guest(&self, caller: &Caller, raw_id: &str) -> Result<GuestView, VaultError> {
        let grant = self
            .authorize(caller, Action::GuestRead, Some(raw_id))
            .await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        self.read_with(caller, &grant, &guest_id).await
    }

    /// Reads under an existing grant (also used to answer a correction with the read shape).
    async fn read_with(
        &self,
        caller: &Caller,
        grant: &Grant<'_>,
        guest_id: &GuestId,
    ) -> Result<GuestView, VaultError> {
        let (sealed, consent) = self.load_checked(caller, grant, guest_id).await?;
        let mut view = GuestView {
            guest_id: guest_id.to_string(),
            fields: BTreeMap::new(),
            views: BTreeMap::new(),
            data_quality: Vec::new(),
        };
        // The values this caller sees in plain, the only ones a data-quality flag may compare.
        let mut plain_values: BTreeMap<&str, &str> = BTreeMap::new();
        let mut rules = grant.rules().to_vec();
        let mut withheld = Vec::new();
        let plain = self.open_fields(guest_id, &sealed, |name| {
            let (v, _) = grant.view(FieldScope::Guest, name);
            v != View::None
        })?;
        for (name, value) in &plain {
            let Some(spec) = self.policies.catalog.get(FieldScope::Guest, name) else {
                continue;
            };
            // PIPL Art. 29: sensitive data under a consent purpose needs a separate consent.
            let (v, rule) = grant.field_view(FieldScope::Guest, name, spec.is_sensitive(), consent);
            if v == View::None {
                withheld.push(name.clone());
                continue;
            }
            rules.push(rule);
            if v == View::Plain {
                plain_values.insert(name.as_str(), value.expose());
            }
            view.fields
                .insert(name.clone(), present(spec, value.expose(), v));
            view.views.insert(
                name.clone(),
                if v == View::Plain { "plain" } else { "masked" },
            );
        }
        // Derived from the decrypted values at every read: it can never go stale, and it is
        // cleared as soon as a correction makes the values agree.
        view.data_quality = data_quality(|n| plain_values.get(n).copied());
        // Retention stages (issue 16 §3): a stored field in a stage shows its stage, never a
        // value, to a caller whose view of it is not `none`.
        for (name, stage) in &sealed.staging.fields {
            if grant.view(FieldScope::Guest, name).0 != View::None {
                view.views.insert(name.clone(), stage.as_str());
            }
        }
        for (name, value, v) in self
            .registered_view(grant, guest_id, &sealed.wrapped_dek, consent)
            .await?
        {
            let staged = name
                .strip_prefix(super::corrections::REGISTERED_PREFIX)
                .is_some_and(|f| sealed.staging.fields.contains_key(f));
            if staged {
                continue;
            }
            view.fields.insert(name.clone(), value);
            view.views
                .insert(name, if v == View::Plain { "plain" } else { "masked" });
        }
        let reason = (!withheld.is_empty())
            .then(|| format!("withheld without separate consent: {}", withheld.join(",")));
        let event = self.event(
            caller,
            grant.action(),
            Some(guest_id.as_str()),
            view.fields.keys().cloned().collect(),
            Outcome::Allowed,
            reason.as_deref(),
            rules,
        );
        self.record(event).await?;
        Ok(view)
    }

    /// The fields a patch would remove (`null`) that belong to a statutory retention class: a
    /// correction must not bypass the storage-only rule of an erasure (PIPL Art. 47(2)). The
    /// way to end them early is `POST /v1/guests/{id}/erasure`, which restricts them instead,
    /// and the sweeper deletes them when their period ends.
    ///
    /// Decided from the policy alone, never from the stored dates (issue 12, no oracles):
    /// whether a period still runs depends on the creation date, the last activity and every
    /// stay, which a caller does not all see in plain; a 200 or a 422 that followed them would
    /// answer "has this guest checked out within 3 years?". So a statutory field never goes
    /// away by `PATCH`, whatever the dates.
    pub(super) fn statutory_removals(&self, patch: &Map<String, Value>) -> Vec<FieldError> {
        patch
            .iter()
            .filter(|(_, v)| v.is_null())
            .filter(|(name, _)| {
                self.policies
                    .catalog
                    .get(FieldScope::Guest, name)
                    .and_then(|spec| self.policies.retention.class(&spec.category))
                    .is_some_and(|class| class.statutory)
            })
            .map(|(name, _)| FieldError::new(name, "statutory_retention"))
            .collect()
    }

    pub async fn update_guest(
        &self,
        caller: &Caller,
        raw_id: &str,
        patch: Map<String, Value>,
    ) -> Result<UpdateOutcome, VaultError> {
        self.update_guest_as(caller, raw_id, patch, false).await
    }

    /// `update_guest`; with `as_request`, the validated patch is recorded as a correction
    /// request awaiting verification instead of applied (a request taken in at the DSR desk).
    pub(super) async fn update_guest_as(
        &self,
        caller: &Caller,
        raw_id: &str,
        patch: Map<String, Value>,
        as_request: bool,
    ) -> Result<UpdateOutcome, VaultError> {
        let action = Action::GuestUpdate;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let names: Vec<String> = patch
            .keys()
            .filter(|k| crate::policy::is_identifier(k))
            .cloned()
            .collect();
        if let Err(errors) = self.check_writable(&grant, FieldScope::Guest, &patch) {
            return Err(self
                .refuse(
                    caller,
                    action,
                    Some(&gid),
                    names,
                    VaultError::Validation(errors),
                    grant.rules().to_vec(),
                )
                .await);
        }
        let (sealed, consent) = self.load_checked(caller, &grant, &guest_id).await?;
        let kept = self.statutory_removals(&patch);
        if !kept.is_empty() {
            return Err(self
                .refuse(
                    caller,
                    action,
                    Some(&gid),
                    names,
                    VaultError::Validation(kept),
                    grant.rules().to_vec(),
                )
                .await);
        }
        // A class in its storage-only stage is not changed under this purpose (issue 16 §3,
        // PIPL Art. 47(2)). After the statutory check, whose answer follows no stored date.
        if patch
            .keys()
            .any(|k| super::stages::is_restricted(&sealed.staging, &self.policies, k))
            && !grant.purpose().restricted_access
        {
            let rule = format!("purposes.{}.restricted_access", grant.purpose().name);
            return Err(self
                .refuse(
                    caller,
                    action,
                    Some(&gid),
                    names,
                    VaultError::Restricted,
                    vec![rule],
                )
                .await);
        }
        // No validation oracle (issue 12): the cross-field rules see only stored values this
        // caller sees in plain; a hidden counterpart must come with the request.
        let plain = |n: &str| {
            self.policies
                .catalog
                .get(FieldScope::Guest, n)
                .is_some_and(|s| {
                    grant
                        .field_view(FieldScope::Guest, n, s.is_sensitive(), consent)
                        .0
                        == View::Plain
                })
        };
        let existing: BTreeMap<String, String> = self
            .open_fields(&guest_id, &sealed, |n| {
                CROSS_CHECKED.contains(&n) && plain(n)
            })?
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_string()))
            .collect();
        let mut required =
            cross_field_requirements(&patch, plain, existing.get("id_type").map(String::as_str));
        let validated = match validate_fields(
            &self.policies.catalog,
            FieldScope::Guest,
            &patch,
            &existing,
            true,
            self.today(),
        ) {
            Ok(v) if !required.is_empty() => {
                drop(v);
                Err(required)
            }
            Ok(v) if !v.is_empty() => Ok(v),
            Ok(_) => Err(vec![FieldError::new("fields", "required")]),
            Err(e) => {
                let more: Vec<FieldError> =
                    e.into_iter().filter(|e| !required.contains(e)).collect();
                required.extend(more);
                Err(required)
            }
        };
        let validated = match validated {
            Ok(v) => v,
            Err(e) => {
                return Err(self
                    .refuse(
                        caller,
                        action,
                        Some(&gid),
                        names,
                        VaultError::Validation(e),
                        grant.rules().to_vec(),
                    )
                    .await)
            }
        };
        // Minors (REQ-10): an accompanying adult is a guest this caller may read, as at
        // registration, and a correction must not leave a guest under 18 without a guardian or
        // an accompanying adult. Decided on the patch and what this caller may know only.
        let errors = self.accompanied_by_errors(caller, &validated).await?;
        let refused = if !errors.is_empty() {
            Some(VaultError::Validation(errors))
        } else {
            self.correction_registration_rule(caller, &guest_id, &validated)
                .await?
                .err()
                .map(VaultError::Unprocessable)
        };
        if let Some(e) = refused {
            return Err(self
                .refuse(caller, action, Some(&gid), names, e, grant.rules().to_vec())
                .await);
        }
        // The warning in the answer is computed from the request and the stored values this
        // caller sees in plain only (no oracle, issue 15); what a later read shows is derived
        // from the values stored then.
        let request_flags = data_quality_after(&validated, &existing);
        // A guest's own token writes only self-service fields; anything else waits for a DSR
        // officer to check the document (issue 12, REQ-30).
        if as_request || (grant.role().self_only && self.needs_verification(&patch)) {
            return self
                .request_correction(
                    caller,
                    &grant,
                    &guest_id,
                    &sealed.wrapped_dek,
                    &validated,
                    names,
                )
                .await
                .map(UpdateOutcome::Requested);
        }
        let before: BTreeMap<String, crate::domain::Pii> = self
            .open_fields(&guest_id, &sealed, |n| validated.contains_key(n))?
            .into_iter()
            .collect();
        let value_hashes = self.value_hashes(validated.iter().map(|(k, v)| {
            (
                k.as_str(),
                before.get(k).map(|b| b.expose()),
                v.as_ref().map(|v| v.expose()),
            )
        }));
        let registered: Vec<String> = validated
            .keys()
            .filter(|k| before.contains_key(*k) && self.keeps_registered(k))
            .cloned()
            .collect();
        let dek = self.open_dek(&sealed.wrapped_dek, &gid)?;
        let sealed_fields = self.seal_fields(&gid, &dek, &validated)?;
        let now = self.now_ts();
        let permit = grant.permit();
        // A correction the guest asks for (its own token, or a DSR officer acting on its
        // request) is a data-subject request (PIPL Art. 46; REQ-32): recorded with its due
        // date, answered at once. Field names only.
        let is_dsr = grant.purpose().name == "data_subject_request";
        let jurisdictions = if is_dsr {
            self.jurisdictions_of(&grant, &gid).await?
        } else {
            Default::default()
        };
        let dsr = is_dsr.then(|| {
            let receipt = serde_json::json!({ "fields": names }).to_string();
            (
                self.subject(&gid),
                self.answered_dsr("correction", &now, receipt, jurisdictions),
            )
        });
        // The event says which fields changed and carries keyed hashes of the values before
        // and after, never the values (PIPL Art. 46 correction, REQ-30).
        let mut event = self.event(
            caller,
            action,
            Some(&gid),
            names,
            Outcome::Allowed,
            None,
            grant.rules().to_vec(),
        );
        event.value_hashes = value_hashes;
        let write_gid = gid.clone();
        let status = self
            .writer
            .execute(move |c| {
                let status = store::touch_guest(c, &permit, &write_gid, &now)?;
                if status == Some(store::GuestStatus::Active) {
                    for f in &registered {
                        store::keep_registered(c, &permit, &write_gid, f, &now)?;
                    }
                    write_sealed(c, &permit, &write_gid, &now, sealed_fields)?;
                    if let Some((subject, row)) = &dsr {
                        store::insert_dsr(c, subject, row)?;
                    }
                    crate::audit::append(c, event)?;
                }
                Ok(status)
            })
            .await
            .map_err(VaultError::from_write)?;
        if status != Some(store::GuestStatus::Active) {
            // Restricted data is storage only (PIPL Art. 47(2)): even a purpose that may read
            // it may not change it.
            let error = match status {
                Some(store::GuestStatus::Restricted) => VaultError::Restricted,
                _ => VaultError::NotFound,
            };
            return Err(self
                .refuse(caller, action, Some(&gid), vec![], error, vec![])
                .await);
        }
        // The replaced or removed ciphertext must not linger in the WAL either.
        self.writer.note_shredded();
        // The answer is the read shape only for a role that may read; otherwise just the id
        // (an update right must not double as a read right).
        let mut view = match self.policies.access.authorize(
            &caller.role,
            caller.purpose.as_deref(),
            Action::GuestRead,
        ) {
            Ok(read_grant) => self.read_with(caller, &read_grant, &guest_id).await?,
            Err(_) => GuestView {
                guest_id: guest_id.to_string(),
                fields: BTreeMap::new(),
                views: BTreeMap::new(),
                data_quality: Vec::new(),
            },
        };
        for flag in request_flags {
            if !view.data_quality.contains(&flag) {
                view.data_quality.push(flag);
            }
        }
        Ok(UpdateOutcome::Applied(view))
    }

    pub async fn reveal(
        &self,
        caller: &Caller,
        raw_id: &str,
        fields: Vec<String>,
        why: crate::policy::JustificationInput<'_>,
    ) -> Result<RevealView, VaultError> {
        let action = Action::GuestReveal;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let names: Vec<String> = fields
            .iter()
            .filter(|k| crate::policy::is_identifier(k))
            .cloned()
            .collect();
        // A reason code from access.toml (plus a ticket, and free text only where allowed).
        let (justification, mut errors) = match self.check_justification(&why) {
            Ok(j) => (Some(j), Vec::new()),
            Err(e) => (None, e),
        };
        if fields.is_empty() {
            errors.push(FieldError::new("fields", "required"));
        }
        for f in &fields {
            if self.policies.catalog.get(FieldScope::Guest, f).is_none() {
                errors.push(FieldError::new(f, "unknown_field"));
            }
        }
        if !errors.is_empty() {
            return Err(self
                .refuse(
                    caller,
                    action,
                    Some(&gid),
                    names,
                    VaultError::Validation(errors),
                    grant.rules().to_vec(),
                )
                .await);
        }
        // INVARIANT: a failed check left errors, answered above.
        let Some(justification) = justification else {
            return Err(VaultError::Internal("no justification".into()));
        };
        let mut rules = grant.rules().to_vec();
        for f in &fields {
            let (view, rule) = grant.view(FieldScope::Guest, f);
            rules.push(rule);
            if view < View::Reveal {
                return Err(self
                    .refuse(
                        caller,
                        action,
                        Some(&gid),
                        names,
                        VaultError::Denied(DenyReason::FieldNotAllowed),
                        rules,
                    )
                    .await);
            }
        }
        let (sealed, consent) = self.load_checked(caller, &grant, &guest_id).await?;
        // A field of a class in its storage-only stage is not revealed under this purpose
        // (issue 16 §3); a pseudonymized one has no value to reveal (absent from the answer).
        if fields
            .iter()
            .any(|f| sealed.staging.fields.get(f) == Some(&store::FieldStage::Restricted))
        {
            let rule = format!("purposes.{}.restricted_access", grant.purpose().name);
            return Err(self
                .refuse(
                    caller,
                    action,
                    Some(&gid),
                    names,
                    VaultError::Restricted,
                    vec![rule],
                )
                .await);
        }
        // PIPL Art. 29: under a consent purpose a sensitive field needs a separate consent, also
        // to be revealed.
        for f in &fields {
            let sensitive = self
                .policies
                .catalog
                .get(FieldScope::Guest, f)
                .is_some_and(|s| s.is_sensitive());
            if grant.field_view(FieldScope::Guest, f, sensitive, consent).0 < View::Reveal {
                let rule = format!("purposes.{}.basis.separate_consent", grant.purpose().name);
                return Err(self
                    .refuse(
                        caller,
                        action,
                        Some(&gid),
                        vec![],
                        VaultError::Denied(DenyReason::FieldNotAllowed),
                        vec![rule],
                    )
                    .await);
            }
        }
        // A free-text note stays in the audit trail for years, after the guest is erased: it
        // must not itself carry the guest's data. Compared only with identifying values this
        // caller may see in plain or reveal anyway, so a refusal tells it nothing new.
        let note = justification.note().unwrap_or_default();
        let identifying = |n: &str| {
            let Some(spec) = self.policies.catalog.get(FieldScope::Guest, n) else {
                return false;
            };
            let kind = matches!(
                spec.field_type,
                FieldType::Name
                    | FieldType::Phone
                    | FieldType::Email
                    | FieldType::IdDocument
                    | FieldType::ResidentId
                    | FieldType::Passport
            ) || spec.mask == crate::domain::mask::MaskKind::Address;
            kind && grant
                .field_view(FieldScope::Guest, n, spec.is_sensitive(), consent)
                .0
                >= View::Reveal
        };
        let known = if note.is_empty() {
            Vec::new()
        } else {
            self.open_fields(&guest_id, &sealed, identifying)?
        };
        let known: Vec<&str> = known.iter().map(|(_, v)| v.expose()).collect();
        if !note.is_empty() && crate::domain::freetext::carries_personal_data(note, &known) {
            let e = VaultError::Validation(vec![FieldError::new("justification", "personal_data")]);
            return Err(self
                .refuse(caller, action, Some(&gid), names, e, rules)
                .await);
        }
        let plain = self.open_fields(&guest_id, &sealed, |n| fields.iter().any(|f| f == n))?;
        let mut out = RevealView {
            guest_id: gid.clone(),
            fields: BTreeMap::new(),
            data_quality: Vec::new(),
        };
        for (name, value) in &plain {
            if let Some(spec) = self.policies.catalog.get(FieldScope::Guest, name) {
                out.fields
                    .insert(name.clone(), present(spec, value.expose(), View::Plain));
            }
        }
        // A data-quality flag over what the caller now knows in plain: the revealed values and
        // the ones its view shows in plain anyway (no oracle, issue 15).
        let sees_plain = |n: &str| {
            self.policies
                .catalog
                .get(FieldScope::Guest, n)
                .is_some_and(|s| {
                    grant
                        .field_view(FieldScope::Guest, n, s.is_sensitive(), consent)
                        .0
                        == View::Plain
                })
        };
        let compared = ["id_type", "id_number", "gender"];
        if compared.iter().any(|n| fields.iter().any(|f| f == n)) {
            let known = self.open_fields(&guest_id, &sealed, |n| {
                compared.contains(&n) && !fields.iter().any(|f| f == n) && sees_plain(n)
            })?;
            let value = |n: &str| {
                plain
                    .iter()
                    .chain(known.iter())
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.expose())
            };
            out.data_quality = data_quality(value);
        }
        let mut event = self.event(
            caller,
            action,
            Some(&gid),
            out.fields.keys().cloned().collect(),
            Outcome::Allowed,
            None,
            rules,
        );
        event.justification = Some(justification.audit_text());
        self.record(event).await?;
        Ok(out)
    }
}
