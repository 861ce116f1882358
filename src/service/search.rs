//! Exact-match search through the keyed blind index (REQ-12): the value is normalized the
//! way stored values were, digested with the field's own HMAC key, and looked up. Each guest
//! found is an audited touch (a search reveals that the guest exists).
//!
//! Search is a disclosure: a hit confirms the value, so 10,000 searches recover a mobile
//! number behind `138****5678`. A role may search a field only where its view of it under the
//! purpose is `plain` or `reveal`; a `masked` or `none` view answers 403 before the value is
//! even read, so the answer cannot depend on it. A field the policy marks
//! `search_requires_justification` needs a reason code, like a reveal (issue 12 point 1).

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::domain::{FieldError, Pii};
use crate::policy::{Action, DenyReason, FieldScope, View};
use crate::store;

impl Vault {
    pub async fn search(
        &self,
        caller: &Caller,
        field: &str,
        value: &str,
        why: crate::policy::JustificationInput<'_>,
    ) -> Result<Vec<String>, VaultError> {
        let action = Action::GuestSearch;
        let grant = self.authorize(caller, action, None).await?;
        let name = if crate::policy::is_identifier(field) {
            vec![field.to_string()]
        } else {
            vec![]
        };
        let spec = match self.policies.catalog.get(FieldScope::Guest, field) {
            Some(spec) if spec.searchable => spec,
            _ => {
                return Err(self
                    .refuse(
                        caller,
                        action,
                        None,
                        name,
                        VaultError::FieldNotSearchable,
                        vec![],
                    )
                    .await)
            }
        };
        let (view, rule) = grant.view(FieldScope::Guest, field);
        let mut rules = grant.rules().to_vec();
        rules.push(rule);
        if view < View::Reveal {
            return Err(self
                .refuse(
                    caller,
                    action,
                    None,
                    name,
                    VaultError::Denied(DenyReason::FieldNotAllowed),
                    rules,
                )
                .await);
        }
        // A reason given where none is needed is checked and recorded all the same.
        let given = why.reason.is_some() || why.ticket.is_some() || why.note.is_some();
        let justification = if grant.search_needs_justification(field) || given {
            match self.check_justification(&why) {
                Ok(j) => Some(j.audit_text()),
                Err(e) => {
                    let e = VaultError::Validation(e);
                    return Err(self.refuse(caller, action, None, name, e, rules).await);
                }
            }
        } else {
            None
        };
        let normalized = match crate::domain::normalize_for_search(spec, value, self.today()) {
            Ok(v) => Pii::new(v),
            Err(code) => {
                let e = VaultError::Validation(vec![FieldError::new("value", code)]);
                return Err(self.refuse(caller, action, None, name, e, rules).await);
            }
        };
        let digest = self.keys().indexer().digest(
            field,
            &crate::domain::blind_index_form(spec, normalized.expose()),
        );
        let permit = grant.permit();
        let field_owned = field.to_string();
        let restricted_ok = grant.purpose().restricted_access;
        // A guest whose class of this field is in its storage-only stage is found only under
        // a purpose with `restricted_access` (issue 16 §3): its stage is read with the hits.
        let staged_class = Some(spec.category.clone()).filter(|class| {
            !restricted_ok
                && self.policies.retention.class(class).is_some_and(|c| {
                    c.stages
                        .iter()
                        .any(|s| s.action == crate::policy::StageAction::Restrict)
                })
        });
        let policies = self.policies.clone();
        let today = self.today();
        let hits = self
            .readers
            .run(move |c| {
                let hits = store::search_index(c, &permit, &field_owned, &digest)?;
                let Some(class) = staged_class else {
                    return Ok(hits);
                };
                let mut kept = Vec::with_capacity(hits.len());
                for (id, status) in hits {
                    let restricted = store::stage_facts(c, &id)?.is_some_and(|sf| {
                        super::stages::class_restricted(&policies, &class, &sf, today)
                    });
                    if !restricted {
                        kept.push((id, status));
                    }
                }
                Ok(kept)
            })
            .await?;
        let ids: Vec<String> = hits
            .into_iter()
            .filter(|(_, s)| match s {
                store::GuestStatus::Active => true,
                store::GuestStatus::Restricted => restricted_ok,
                store::GuestStatus::Erased => false,
            })
            .map(|(id, _)| id)
            .collect();
        // One event per guest found: a search reveals that the guest exists.
        let mut events: Vec<_> = if ids.is_empty() {
            vec![self.event(
                caller,
                action,
                None,
                name.clone(),
                Outcome::Allowed,
                Some("no match"),
                rules.clone(),
            )]
        } else {
            ids.iter()
                .map(|id| {
                    self.event(
                        caller,
                        action,
                        Some(id),
                        name.clone(),
                        Outcome::Allowed,
                        None,
                        rules.clone(),
                    )
                })
                .collect()
        };
        for e in &mut events {
            e.justification = justification.clone();
        }
        self.writer
            .execute(move |c| {
                for e in events {
                    crate::audit::append(c, e)?;
                }
                Ok(())
            })
            .await
            .map_err(VaultError::from_write)?;
        Ok(ids)
    }
}
