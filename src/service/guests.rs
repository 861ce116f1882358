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
use crate::domain::{validate_fields, FieldError, GuestId};
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
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RevealView {
    pub guest_id: String,
    pub fields: BTreeMap<String, Value>,
}

/// A field's value as the response shows it under `view`.
pub(super) fn present(spec: &FieldSpec, plain: &str, view: View) -> Value {
    match view {
        View::Plain if spec.field_type == FieldType::Json => {
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
    ) -> Result<GuestId, VaultError> {
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

        let guest_id = GuestId::generate();
        let consents = self
            .creation_consents(caller, &input.consents, &guest_id)
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
        Ok(guest_id)
    }

    /// Validates consents submitted with a new guest; the caller needs `consent.write` too.
    async fn creation_consents(
        &self,
        caller: &Caller,
        inputs: &[super::ConsentInput],
        guest_id: &GuestId,
    ) -> Result<Vec<(super::consents::ConsentChange, crate::audit::NewEvent)>, VaultError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let grant = self.authorize(caller, Action::ConsentWrite, None).await?;
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for input in inputs {
            let purpose = input.purpose.clone().unwrap_or_default();
            match self.validate_consent(&purpose, input, true, grant.role().self_only) {
                Ok(change) => {
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
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(self
                .refuse(
                    caller,
                    Action::ConsentWrite,
                    None,
                    vec![],
                    super::consents::consent_error(errors),
                    grant.rules().to_vec(),
                )
                .await)
        }
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
        };
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
            view.fields
                .insert(name.clone(), present(spec, value.expose(), v));
            view.views.insert(
                name.clone(),
                if v == View::Plain { "plain" } else { "masked" },
            );
        }
        for (name, value, v) in self
            .registered_view(grant, guest_id, &sealed.wrapped_dek, consent)
            .await?
        {
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
        // A guest's own token writes only self-service fields; anything else waits for a DSR
        // officer to check the document (issue 12, REQ-30).
        if grant.role().self_only && self.needs_verification(&patch) {
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
        let dsr = (grant.purpose().name == "data_subject_request").then(|| {
            let receipt = serde_json::json!({ "fields": names }).to_string();
            (
                self.subject(&gid),
                self.answered_dsr("correction", &now, receipt),
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
        match self.policies.access.authorize(
            &caller.role,
            caller.purpose.as_deref(),
            Action::GuestRead,
        ) {
            Ok(read_grant) => self
                .read_with(caller, &read_grant, &guest_id)
                .await
                .map(UpdateOutcome::Applied),
            Err(_) => Ok(UpdateOutcome::Applied(GuestView {
                guest_id: guest_id.to_string(),
                fields: BTreeMap::new(),
                views: BTreeMap::new(),
            })),
        }
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
        };
        for (name, value) in &plain {
            if let Some(spec) = self.policies.catalog.get(FieldScope::Guest, name) {
                out.fields
                    .insert(name.clone(), present(spec, value.expose(), View::Plain));
            }
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
