//! Access and portability (PIPL Art. 45; REQ-28, REQ-29): the complete package of a guest's
//! data in plain — every field, stays, consents — with a processing explanation (purposes and
//! legal bases, retention per class, which roles see what; PIPL Art. 48). Its shape is
//! published as a JSON Schema in `docs/export.schema.json`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::crypto::FieldCipher;
use crate::policy::{Action, FieldScope, View};
use crate::store;

pub const EXPORT_FORMAT: &str = "guestvault-export/v1";

impl Vault {
    /// `why` is needed from staff (a DSR officer sees every field in plain): a reason code and
    /// an optional ticket, audited. The guest's own export needs none.
    pub async fn export_guest(
        &self,
        caller: &Caller,
        raw_id: &str,
        why: crate::policy::JustificationInput<'_>,
    ) -> Result<Value, VaultError> {
        let action = Action::GuestExport;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let justification = if grant.role().self_only {
            None
        } else {
            match self.check_justification(&why) {
                Ok(j) => Some(j.audit_text()),
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
            }
        };
        let (sealed, _consent) = self.load_checked(caller, &grant, &guest_id).await?;

        let plain = self.open_fields(&guest_id, &sealed, |n| {
            grant.view(FieldScope::Guest, n).0 != View::None
        })?;
        let mut fields = BTreeMap::new();
        for (name, value) in &plain {
            if let Some(spec) = self.policies.catalog.get(FieldScope::Guest, name) {
                fields.insert(
                    name.clone(),
                    super::guests::present(spec, value.expose(), View::Plain),
                );
            }
        }
        let permit = grant.permit();
        let read_gid = gid.clone();
        let (stays, mut consents, stage_facts, holds) = self
            .readers
            .run(move |c| {
                Ok((
                    store::list_stays(c, &permit, &read_gid)?,
                    super::consents::ledger(c, &read_gid)?,
                    store::stage_facts(c, &read_gid)?,
                    store::holds::list(c, &read_gid)?,
                ))
            })
            .await?;
        // Each held field of a class with retention stages: its stage today and the dates of
        // the next ones, and the last day it is kept (issue 16 §3).
        let mut retention_stages = Vec::new();
        if let Some(sf) = &stage_facts {
            let mut names: Vec<&str> = sealed.fields.iter().map(|(n, _)| n.as_str()).collect();
            names.extend(sealed.staging.fields.keys().map(String::as_str));
            names.sort_unstable();
            names.dedup();
            let today = self.today();
            for name in names {
                let Some((stage, next)) = super::stages::timeline(
                    &self.policies,
                    name,
                    &sf.created_at,
                    &sf.last_activity_at,
                    sf.last_checkout.as_deref(),
                    sf.pseudonymized.iter().any(|f| f == name),
                    today,
                ) else {
                    continue;
                };
                let class = self
                    .policies
                    .catalog
                    .get(FieldScope::Guest, name)
                    .map(|s| s.category.clone())
                    .unwrap_or_default();
                let until = super::stages::kept_until_of(&self.policies, &class, sf);
                retention_stages.push(json!({
                    "field": name,
                    "class": class,
                    "stage": stage,
                    "next_stages": next,
                    "until": until,
                }));
            }
        }
        // The legal holds on the guest's data (REQ-23): reason, ticket, dates and status, not
        // the officers' ids.
        let today = self.today().to_string();
        let holds: Vec<super::HoldView> = holds
            .into_iter()
            .map(|h| super::HoldView::of(h, &today, false))
            .collect();
        let dek = self.open_dek(&sealed.wrapped_dek, &gid)?;
        let cipher = FieldCipher::new(&dek, &gid);
        let mut stay_list = Vec::new();
        for stay in stays {
            let bytes = zeroize::Zeroizing::new(
                cipher
                    .open(&format!("stay:{}", stay.stay_id), &stay.ciphertext)
                    .map_err(|e| VaultError::Internal(e.to_string()))?,
            );
            let doc: BTreeMap<String, String> =
                serde_json::from_slice(&bytes).map_err(|e| VaultError::Internal(e.to_string()))?;
            stay_list.push(json!({ "stay_id": stay.stay_id, "fields": doc }));
        }
        // A consent its notice no longer covers shows as it counts: stale (REQ-06).
        self.mark_stale(&mut consents.0);
        let now = self.now_ts();
        let package = json!({
            "format": EXPORT_FORMAT,
            "guest_id": gid,
            "generated_at": now,
            "fields": fields,
            "stays": stay_list,
            "consents": { "current": consents.0, "history": consents.1 },
            "retention_stages": retention_stages,
            "holds": holds,
            "processing": self.processing_explanation(),
        });
        // Recorded as an access request (REQ-32) and audited.
        let subject = self.subject(&gid);
        let receipt =
            json!({ "fields": fields.keys().collect::<Vec<_>>(), "stays": stay_list.len() })
                .to_string();
        let jurisdictions = self.jurisdictions_of(&grant, &gid).await?;
        let row = self.answered_dsr("access", &now, receipt.clone(), jurisdictions);
        let mut names: Vec<String> = fields.keys().cloned().collect();
        if !stay_list.is_empty() {
            names.push("stays".into());
        }
        let mut event = self.event(
            caller,
            action,
            Some(&gid),
            names,
            Outcome::Allowed,
            Some("access and portability export"),
            grant.rules().to_vec(),
        );
        event.justification = justification;
        self.writer
            .execute(move |c| {
                store::insert_dsr(c, &subject, &row)?;
                // The package also answers any access request taken in earlier at the desk.
                store::complete_received(c, &subject, "access", &row.received_at, &receipt)?;
                crate::audit::append(c, event)?;
                Ok(())
            })
            .await
            .map_err(VaultError::from_write)?;
        Ok(package)
    }

    /// Purposes with their legal basis, retention per class, and which roles see what.
    fn processing_explanation(&self) -> Value {
        let p = &self.policies;
        let purposes: Vec<Value> = p
            .access
            .purposes
            .values()
            .map(|pu| json!({ "purpose": pu.name, "basis": pu.basis.as_str(), "fields": pu.fields, "stay_fields": pu.stay_fields }))
            .collect();
        let retention: Vec<Value> = p
            .retention
            .classes
            .values()
            .map(|c| {
                let mut fields: Vec<&str> = p
                    .catalog
                    .fields(FieldScope::Guest)
                    .filter(|f| f.category == c.name)
                    .map(|f| f.name.as_str())
                    .collect();
                if p.retention.stay_class == c.name {
                    fields.push("stays");
                }
                json!({
                    "class": c.name,
                    "retain": c.retain_text,
                    "after": c.after.as_str(),
                    "statutory": c.statutory,
                    "basis": c.basis,
                    "fields": fields,
                    "stages": c.stages.iter().map(|st| json!({
                        "after": st.after_text,
                        "stage": match st.action {
                            crate::policy::StageAction::Restrict => "restricted",
                            crate::policy::StageAction::Pseudonymize => "pseudonymized",
                        },
                        "fields": st.fields,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let roles: Vec<Value> = p
            .access
            .roles
            .values()
            .filter(|r| !r.self_only)
            .map(|r| {
                let views: BTreeMap<&str, &str> = r
                    .views
                    .iter()
                    .filter(|(_, v)| **v != View::None)
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                json!({ "role": r.name, "purposes": r.purposes, "views": views })
            })
            .collect();
        json!({ "purposes": purposes, "retention": retention, "roles": roles })
    }
}
