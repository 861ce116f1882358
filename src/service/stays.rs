//! Stay records: each stay is one encrypted JSON document (AAD names the stay), with its
//! check-out date kept in clear for the retention sweeper.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::guests::present;
use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::crypto::FieldCipher;
use crate::domain::{validate_fields, FieldError};
use crate::policy::{Action, FieldScope, View};
use crate::store;

/// One stay as a reader sees it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct StayView {
    pub stay_id: String,
    pub fields: BTreeMap<String, Value>,
    pub views: BTreeMap<String, &'static str>,
}

fn stay_label(stay_id: &str) -> String {
    format!("stay:{stay_id}")
}

impl Vault {
    pub async fn add_stay(
        &self,
        caller: &Caller,
        raw_id: &str,
        input: Map<String, Value>,
    ) -> Result<String, VaultError> {
        let action = Action::StayCreate;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let names: Vec<String> = input
            .keys()
            .filter(|k| crate::policy::is_identifier(k))
            .cloned()
            .collect();
        let mut errors = match self.check_writable(&grant, FieldScope::Stay, &input) {
            Ok(()) => Vec::new(),
            Err(e) => e,
        };
        let validated = match validate_fields(
            &self.policies.catalog,
            FieldScope::Stay,
            &input,
            &BTreeMap::new(),
            false,
            self.today(),
        ) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        // Retention runs from check-out, so both dates are required.
        for required in ["check_in", "check_out"] {
            if !input.contains_key(required) {
                errors.push(FieldError::new(required, "required"));
            }
        }
        let validated = match (validated, errors.is_empty()) {
            (Some(v), true) => v,
            _ => {
                return Err(self
                    .refuse(
                        caller,
                        action,
                        Some(&gid),
                        names,
                        VaultError::Validation(errors),
                        grant.rules().to_vec(),
                    )
                    .await)
            }
        };
        let doc: BTreeMap<&str, &str> = validated
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.as_str(), v.expose())))
            .collect();
        // Plausible dates only (issue 12): a far-future check-out would hold the guest's data
        // "until then" against any erasure.
        let errors = self.check_stay_dates(&doc);
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
        let (sealed, _consent) = self.load_checked(caller, &grant, &guest_id).await?;
        // Minors (REQ-10; 未成年人保护法 Art. 57): each stay is a registration, and a guest
        // under 18 on its check-in date needs a recorded guardian or accompanying adult.
        let check_in = doc
            .get("check_in")
            .and_then(|s| crate::domain::pii::parse_date(s).ok());
        if let Err(code) = self
            .stay_registration_rule(caller, &guest_id, check_in)
            .await?
        {
            return Err(self
                .refuse(
                    caller,
                    action,
                    Some(&gid),
                    names,
                    VaultError::Unprocessable(code),
                    grant.rules().to_vec(),
                )
                .await);
        }
        let check_out = doc
            .get("check_out")
            .map(|s| s.to_string())
            .unwrap_or_default();
        let plaintext = zeroize::Zeroizing::new(
            serde_json::to_vec(&doc).map_err(|e| VaultError::Internal(e.to_string()))?,
        );
        let stay_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let dek = self.open_dek(&sealed.wrapped_dek, &gid)?;
        let ciphertext = FieldCipher::new(&dek, &gid)
            .seal(&stay_label(&stay_id), &plaintext)
            .map_err(|e| VaultError::Internal(e.to_string()))?;
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
        let sid = stay_id.clone();
        let found = self
            .writer
            .execute(move |c| {
                match store::touch_guest(c, &permit, &gid, &now)? {
                    Some(store::GuestStatus::Active) => {}
                    _ => return Ok(false),
                }
                store::insert_stay(c, &permit, &gid, &sid, &check_out, &now, &ciphertext)?;
                crate::audit::append(c, event)?;
                Ok(true)
            })
            .await
            .map_err(VaultError::from_write)?;
        if !found {
            return Err(self
                .refuse(
                    caller,
                    action,
                    Some(guest_id.as_str()),
                    vec![],
                    VaultError::NotFound,
                    vec![],
                )
                .await);
        }
        Ok(stay_id)
    }

    pub async fn list_stays(
        &self,
        caller: &Caller,
        raw_id: &str,
    ) -> Result<Vec<StayView>, VaultError> {
        let action = Action::StayRead;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let (sealed, consent) = self.load_checked(caller, &grant, &guest_id).await?;
        let gid = guest_id.as_str().to_string();
        let permit = grant.permit();
        let read_gid = gid.clone();
        let stays = self
            .readers
            .run(move |c| store::list_stays(c, &permit, &read_gid))
            .await?;
        let dek = self.open_dek(&sealed.wrapped_dek, &gid)?;
        let cipher = FieldCipher::new(&dek, &gid);
        let mut out = Vec::with_capacity(stays.len());
        let mut shown = std::collections::BTreeSet::new();
        let mut rules = grant.rules().to_vec();
        for stay in stays {
            let plain = zeroize::Zeroizing::new(
                cipher
                    .open(&stay_label(&stay.stay_id), &stay.ciphertext)
                    .map_err(|e| VaultError::Internal(e.to_string()))?,
            );
            let doc: BTreeMap<String, String> =
                serde_json::from_slice(&plain).map_err(|e| VaultError::Internal(e.to_string()))?;
            let mut view = StayView {
                stay_id: stay.stay_id,
                fields: BTreeMap::new(),
                views: BTreeMap::new(),
            };
            for (name, value) in &doc {
                let Some(spec) = self.policies.catalog.get(FieldScope::Stay, name) else {
                    continue;
                };
                let (v, rule) =
                    grant.field_view(FieldScope::Stay, name, spec.is_sensitive(), consent);
                if v == View::None {
                    continue;
                }
                if shown.insert(name.clone()) {
                    rules.push(rule);
                }
                view.fields.insert(name.clone(), present(spec, value, v));
                view.views.insert(
                    name.clone(),
                    if v == View::Plain { "plain" } else { "masked" },
                );
            }
            out.push(view);
        }
        let fields = shown.into_iter().map(|f| format!("stay.{f}")).collect();
        let event = self.event(
            caller,
            action,
            Some(&gid),
            fields,
            Outcome::Allowed,
            None,
            rules,
        );
        self.record(event).await?;
        Ok(out)
    }
}
