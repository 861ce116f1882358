//! Erasure (PIPL Art. 47; REQ-24): each field and stay is either deleted now or, when a law
//! requires keeping it and its period has not ended, restricted to storage (Art. 47(2)) until
//! the sweeper deletes it. The reply is a receipt naming what was erased and what was kept,
//! with the legal basis and end date. Receipts are found later by request id, and a repeated
//! request returns the latest receipt.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::Date;

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::domain::retention::kept_until;
use crate::policy::{Action, Anchor, FieldScope, Policies};
use crate::store::{self, DsrRow, GuestStatus, RetentionFacts};

/// What an erasure request or a retention sweep does to one guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Delete all but statutory data inside its period.
    Erasure,
    /// Delete only what has expired (or whose consent was withdrawn).
    Sweep,
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub delete_fields: Vec<String>,
    pub delete_stays: Vec<String>,
    /// (field, class, until)
    pub kept_fields: Vec<(String, String, Date)>,
    /// (stay_id, until)
    pub kept_stays: Vec<(String, Date)>,
    /// Deleted per class: (fields, stays).
    pub by_class: BTreeMap<String, (u64, u64)>,
}

impl Plan {
    /// Nothing would remain: the whole guest is crypto-shredded.
    pub fn shreds_guest(&self) -> bool {
        self.kept_fields.is_empty() && self.kept_stays.is_empty()
    }
}

pub(crate) fn date_of(ts: &str) -> Option<Date> {
    crate::domain::pii::parse_date(ts.get(..10)?).ok()
}

/// Decides, field by field and stay by stay, what to delete and what to keep until when.
pub(crate) fn plan(p: &Policies, f: &RetentionFacts, today: Date, mode: Mode) -> Plan {
    let created = date_of(&f.created_at).unwrap_or(today);
    let last_activity = date_of(&f.last_activity_at).unwrap_or(created);
    let last_checkout = f
        .last_checkout
        .as_deref()
        .and_then(date_of)
        .unwrap_or(created);
    let withdrawn: Vec<&str> = f
        .consents
        .iter()
        .filter(|(_, status, _)| status == "withdrawn")
        .map(|(p, _, _)| p.as_str())
        .collect();
    let mut out = Plan::default();
    for field in &f.fields {
        let class = p
            .catalog
            .get(FieldScope::Guest, field)
            .and_then(|spec| p.retention.class(&spec.category));
        let Some(class) = class else {
            // A field no longer in the catalog has no retention rule: erasure deletes it, the
            // sweeper leaves it for an operator (a policy edit must not silently delete data).
            if mode == Mode::Erasure {
                out.delete_fields.push(field.clone());
            }
            continue;
        };
        let anchor = match class.after {
            Anchor::Created => created,
            Anchor::LastCheckout => last_checkout,
            Anchor::LastActivity => last_activity,
        };
        let until = kept_until(anchor, class.retain);
        let keep = match mode {
            Mode::Erasure => class.statutory && today <= until,
            Mode::Sweep => {
                let withdrawal = class
                    .withdrawal_purposes
                    .iter()
                    .any(|w| withdrawn.contains(&w.as_str()));
                today <= until && !withdrawal
            }
        };
        if keep {
            out.kept_fields
                .push((field.clone(), class.name.clone(), until));
        } else {
            out.delete_fields.push(field.clone());
            out.by_class.entry(class.name.clone()).or_default().0 += 1;
        }
    }
    if let Some(class) = p.retention.class(&p.retention.stay_class) {
        for (stay_id, check_out) in &f.stays {
            let until = kept_until(date_of(check_out).unwrap_or(created), class.retain);
            let keep = today <= until && (mode == Mode::Sweep || class.statutory);
            if keep {
                out.kept_stays.push((stay_id.clone(), until));
            } else {
                out.delete_stays.push(stay_id.clone());
                out.by_class.entry(class.name.clone()).or_default().1 += 1;
            }
        }
    }
    out
}

/// The erasure receipt (part of the public contract).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    pub request_id: String,
    /// `completed` or `partially_completed` (something is kept, storage only).
    pub status: String,
    pub erased: Vec<String>,
    pub retained: Vec<Retained>,
    pub received_at: String,
    pub completed_at: String,
    pub due_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Retained {
    /// A field name, or `stays`.
    pub field: String,
    pub class: String,
    pub basis: String,
    /// The last day it is kept; the sweeper deletes it after.
    pub until: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

/// A data-subject request past its due date (`GET /v1/erasure-requests?status=overdue`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OverdueRequest {
    pub request_id: String,
    pub kind: String,
    pub status: String,
    pub received_at: String,
    pub due_at: String,
}

fn receipt_for(
    p: &Policies,
    plan: &Plan,
    request_id: &str,
    received_at: &str,
    now: &str,
    due: Date,
) -> Receipt {
    let mut erased = plan.delete_fields.clone();
    if !plan.delete_stays.is_empty() {
        erased.push("stays".into());
    }
    let basis = |class: &str| {
        p.retention
            .class(class)
            .map(|c| c.basis.clone())
            .unwrap_or_default()
    };
    let mut retained: Vec<Retained> = plan
        .kept_fields
        .iter()
        .map(|(field, class, until)| Retained {
            field: field.clone(),
            class: class.clone(),
            basis: basis(class),
            until: until.to_string(),
            count: None,
        })
        .collect();
    if let Some(last) = plan.kept_stays.iter().map(|(_, u)| *u).max() {
        let class = p.retention.stay_class.clone();
        retained.push(Retained {
            field: "stays".into(),
            basis: basis(&class),
            class,
            until: last.to_string(),
            count: Some(plan.kept_stays.len()),
        });
    }
    Receipt {
        request_id: request_id.to_string(),
        status: if retained.is_empty() {
            "completed"
        } else {
            "partially_completed"
        }
        .into(),
        erased,
        retained,
        received_at: received_at.to_string(),
        completed_at: now.to_string(),
        due_at: due.to_string(),
    }
}

/// Applies a plan inside the writer transaction: delete, then shred or restrict.
pub(crate) fn apply_plan(
    c: &rusqlite::Connection,
    permit: &crate::policy::Permit,
    gid: &str,
    plan: &Plan,
) -> Result<(), store::StoreError> {
    store::erase_fields(c, permit, gid, &plan.delete_fields)?;
    store::erase_stays(c, permit, gid, &plan.delete_stays)?;
    Ok(())
}

/// Reason codes recorded as given; any other (free-text) reason is accepted but recorded only
/// as `other`, since it could hold personal data.
pub const ERASURE_REASONS: [&str; 5] = [
    "guest_request",
    "consent_withdrawn",
    "purpose_fulfilled",
    "unlawful_processing",
    "service_stopped",
];

impl Vault {
    /// The pseudonymous key of a guest's data-subject requests.
    pub(crate) fn subject(&self, guest_id: &str) -> Vec<u8> {
        self.keys().indexer().digest("dsr_subject", guest_id)
    }

    pub async fn erase_guest(
        &self,
        caller: &Caller,
        raw_id: &str,
        reason: Option<&str>,
    ) -> Result<Receipt, VaultError> {
        let action = Action::GuestErase;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        if reason.is_some_and(|r| r.chars().count() > 500) {
            let e =
                VaultError::Validation(vec![crate::domain::FieldError::new("reason", "too_long")]);
            return Err(self
                .refuse(
                    caller,
                    action,
                    Some(guest_id.as_str()),
                    vec![],
                    e,
                    grant.rules().to_vec(),
                )
                .await);
        }
        let gid = guest_id.as_str().to_string();
        let subject = self.subject(&gid);
        let now_dt = self.now();
        let now = crate::clock::timestamp(now_dt);
        let today = now_dt.date();
        let due = self.policies.calendar.dsr_due(today);
        let request_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let policies: Arc<Policies> = self.policies.clone();
        let permit = grant.permit();
        let mut event = self.event(
            caller,
            action,
            Some(&gid),
            vec![],
            Outcome::Allowed,
            None,
            grant.rules().to_vec(),
        );
        let restricted_ok = grant.purpose().restricted_access;
        // A known reason code is recorded; free text is accepted but never stored (it could hold
        // personal data, and the audit trail outlives the erasure).
        let reason = match reason {
            None => "guest_request".to_string(),
            Some(r) if ERASURE_REASONS.contains(&r) => r.to_string(),
            Some(_) => "other (free text not stored)".to_string(),
        };
        let job_subject = subject.clone();
        let ledger = self.ledger.clone();
        let outcome = self
            .writer
            .execute(move |c| {
                let Some(facts) = store::retention_facts(c, &gid)? else {
                    // Already erased (or never existed): a repeated request returns the receipt.
                    return Ok(match store::latest_erasure(c, &job_subject)? {
                        Some(row) => Erased::Repeat(row),
                        None => Erased::Missing,
                    });
                };
                if facts.status == GuestStatus::Restricted && !restricted_ok {
                    return Ok(Erased::Restricted);
                }
                let plan = plan(&policies, &facts, today, Mode::Erasure);
                apply_plan(c, &permit, &gid, &plan)?;
                // Before the commit, so a restore can never forget this erasure (REQ-27).
                ledger
                    .append(&gid, crate::ledger::ERASURE_EVENT, &now)
                    .map_err(|e| store::StoreError::Other(e.to_string()))?;
                if plan.shreds_guest() {
                    store::shred_guest(c, &permit, &gid)?;
                } else {
                    store::set_status(c, &permit, &gid, GuestStatus::Restricted)?;
                }
                let receipt = receipt_for(&policies, &plan, &request_id, &now, &now, due);
                let json = serde_json::to_string(&receipt)
                    .map_err(|e| store::StoreError::Other(e.to_string()))?;
                store::insert_dsr(
                    c,
                    &job_subject,
                    &DsrRow {
                        request_id: request_id.clone(),
                        kind: "erasure".into(),
                        status: receipt.status.clone(),
                        received_at: now.clone(),
                        completed_at: Some(now.clone()),
                        due_at: due.to_string(),
                        receipt: json,
                    },
                )?;
                event.fields = receipt.erased.clone();
                let kept: Vec<&str> = receipt.retained.iter().map(|r| r.field.as_str()).collect();
                event.reason = Some(format!(
                    "erasure {} ({reason}); restricted: [{}]",
                    receipt.status,
                    kept.join(",")
                ));
                crate::audit::append(c, event)?;
                Ok(Erased::Done(Box::new(receipt)))
            })
            .await
            .map_err(VaultError::from_write)?;
        match outcome {
            Erased::Done(r) => Ok(*r),
            Erased::Repeat(row) => {
                let receipt: Receipt = serde_json::from_str(&row.receipt)
                    .map_err(|e| VaultError::Internal(e.to_string()))?;
                let event = self.event(
                    caller,
                    action,
                    Some(guest_id.as_str()),
                    vec![],
                    Outcome::Allowed,
                    Some("repeated request: receipt returned"),
                    grant.rules().to_vec(),
                );
                self.record(event).await?;
                Ok(receipt)
            }
            Erased::Missing => Err(self
                .refuse(
                    caller,
                    action,
                    Some(guest_id.as_str()),
                    vec![],
                    VaultError::NotFound,
                    vec![],
                )
                .await),
            Erased::Restricted => Err(self
                .refuse(
                    caller,
                    action,
                    Some(guest_id.as_str()),
                    vec![],
                    VaultError::Restricted,
                    vec![],
                )
                .await),
        }
    }

    /// `GET /v1/erasure-requests/{id}`: a self-only caller sees only its own requests.
    pub async fn erasure_receipt(
        &self,
        caller: &Caller,
        request_id: &str,
    ) -> Result<serde_json::Value, VaultError> {
        let action = Action::GuestErase;
        let grant = self.authorize(caller, action, None).await?;
        let id = request_id.to_string();
        let row = if uuid::Uuid::try_parse(request_id).is_ok() {
            self.readers.run(move |c| store::get_dsr(c, &id)).await?
        } else {
            None
        };
        let mine =
            |subject: &[u8]| !grant.role().self_only || self.subject(&caller.actor) == subject;
        match row {
            Some((row, subject)) if mine(&subject) => {
                let event = self.event(
                    caller,
                    action,
                    None,
                    vec![],
                    Outcome::Allowed,
                    Some("erasure receipt read"),
                    grant.rules().to_vec(),
                );
                self.record(event).await?;
                let mut v: serde_json::Value = serde_json::from_str(&row.receipt)
                    .map_err(|e| VaultError::Internal(e.to_string()))?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("status".into(), row.status.into());
                    o.insert("kind".into(), row.kind.into());
                }
                Ok(v)
            }
            _ => Err(self
                .refuse(
                    caller,
                    action,
                    None,
                    vec![],
                    VaultError::NotFound,
                    grant.rules().to_vec(),
                )
                .await),
        }
    }

    /// Data-subject requests past their due date and not completed (REQ-32).
    pub async fn overdue_requests(
        &self,
        caller: &Caller,
    ) -> Result<Vec<OverdueRequest>, VaultError> {
        let action = Action::GuestErase;
        let grant = self.authorize(caller, action, None).await?;
        if grant.role().self_only {
            let rule = format!("roles.{}.self_only", grant.role().name);
            return Err(self
                .refuse(
                    caller,
                    action,
                    None,
                    vec![],
                    VaultError::Denied(crate::policy::DenyReason::ActionNotAllowed),
                    vec![rule],
                )
                .await);
        }
        let today = self.today().to_string();
        let rows = self
            .readers
            .run(move |c| store::overdue_dsr(c, &today))
            .await?;
        let event = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some("overdue requests listed"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        Ok(rows
            .into_iter()
            .map(|r| OverdueRequest {
                request_id: r.request_id,
                kind: r.kind,
                status: r.status,
                received_at: r.received_at,
                due_at: r.due_at,
            })
            .collect())
    }
}

enum Erased {
    Done(Box<Receipt>),
    Repeat(DsrRow),
    Missing,
    Restricted,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn facts(
        fields: &[&str],
        last_checkout: Option<&str>,
        stays: &[(&str, &str)],
    ) -> RetentionFacts {
        RetentionFacts {
            guest_id: "g".into(),
            status: GuestStatus::Active,
            created_at: "2026-01-10T00:00:00.000000Z".into(),
            last_activity_at: "2026-11-20T00:00:00.000000Z".into(),
            last_checkout: last_checkout.map(str::to_string),
            fields: fields.iter().map(|s| s.to_string()).collect(),
            stays: stays
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            consents: vec![],
        }
    }

    #[test]
    fn erasure_keeps_statutory_data_inside_its_period_and_deletes_the_rest() {
        let p = Policies::load(None).unwrap();
        let f = facts(
            &["id_number", "full_name", "mobile", "dietary_needs"],
            Some("2026-11-23"),
            &[("s1", "2026-11-23")],
        );
        let plan = plan(&p, &f, date!(2026 - 11 - 24), Mode::Erasure);
        assert_eq!(plan.delete_fields, vec!["mobile", "dietary_needs"]);
        assert_eq!(
            plan.kept_fields[0],
            ("id_number".into(), "identity".into(), date!(2029 - 11 - 23))
        );
        assert_eq!(plan.kept_stays, vec![("s1".into(), date!(2029 - 11 - 23))]);
        assert!(!plan.shreds_guest());
        // After the statutory period everything goes.
        let plan = super::plan(&p, &f, date!(2029 - 11 - 24), Mode::Erasure);
        assert!(plan.shreds_guest());
    }

    #[test]
    fn sweep_purges_each_class_the_day_after_its_period() {
        let p = Policies::load(None).unwrap();
        // contact: 1y after last check-out (2026-11-23) → kept through 2027-11-23.
        let f = facts(&["mobile", "full_name"], Some("2026-11-23"), &[]);
        assert!(plan(&p, &f, date!(2027 - 11 - 23), Mode::Sweep)
            .delete_fields
            .is_empty());
        assert_eq!(
            plan(&p, &f, date!(2027 - 11 - 24), Mode::Sweep).delete_fields,
            vec!["mobile"]
        );
        // sensitive preferences: 30 days after check-out.
        let f = facts(&["dietary_needs"], Some("2026-11-23"), &[]);
        assert!(plan(&p, &f, date!(2026 - 12 - 23), Mode::Sweep)
            .delete_fields
            .is_empty());
        assert_eq!(
            plan(&p, &f, date!(2026 - 12 - 24), Mode::Sweep).delete_fields,
            vec!["dietary_needs"]
        );
    }

    #[test]
    fn withdrawing_personalization_expires_preferences_at_once() {
        let p = Policies::load(None).unwrap();
        let mut f = facts(&["preferences", "membership_level"], None, &[]);
        assert!(plan(&p, &f, date!(2026 - 11 - 22), Mode::Sweep)
            .delete_fields
            .is_empty());
        f.consents.push((
            "personalization".into(),
            "withdrawn".into(),
            Some("2026-11-22T00:00:00.000000Z".into()),
        ));
        assert_eq!(
            plan(&p, &f, date!(2026 - 11 - 22), Mode::Sweep).delete_fields,
            vec!["preferences"]
        );
    }
}
