//! Erasure (PIPL Art. 47; REQ-24): each field and stay is either deleted now or, when a law
//! requires keeping it and its period has not ended, restricted to storage (Art. 47(2)) until
//! the sweeper deletes it. The reply is a receipt naming what was erased and what was kept,
//! with the legal basis and end date. Receipts are found later by request id, and a repeated
//! request returns the latest receipt.
//!
//! A legal hold (REQ-23, `service/holds.rs`) that stands when the erasure is decided keeps
//! everything the erasure would delete: the guest is restricted, nothing is deleted, and the
//! receipt names the hold's reason and ticket as the basis. Once the hold is lifted or lapses,
//! a repeated request or the next retention sweep finishes the erasure.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::Date;

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::domain::retention::kept_until;
use crate::policy::{Action, Anchor, Basis, FieldScope, Policies};
use crate::store::{self, DsrRow, GuestStatus, HoldRow, RetentionFacts};

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
    /// (field, class) an active legal hold keeps from deletion (see [`withhold`]).
    pub held_fields: Vec<(String, String)>,
    /// Stay ids an active legal hold keeps from deletion.
    pub held_stays: Vec<String>,
}

impl Plan {
    /// Nothing would remain: the whole guest is crypto-shredded.
    pub fn shreds_guest(&self) -> bool {
        self.kept_fields.is_empty()
            && self.kept_stays.is_empty()
            && self.held_fields.is_empty()
            && self.held_stays.is_empty()
    }
}

/// A legal hold that stands (REQ-23; PIPL Art. 47(2)) keeps everything `plan` would delete:
/// it is restricted with the rest, nothing is deleted and the guest is not shredded.
pub(crate) fn withhold(p: &Policies, plan: &mut Plan) {
    for field in plan.delete_fields.drain(..) {
        let class = p
            .catalog
            .get(FieldScope::Guest, &field)
            .map_or_else(|| "(unclassified)".to_string(), |s| s.category.clone());
        plan.held_fields.push((field, class));
    }
    plan.held_stays.append(&mut plan.delete_stays);
    plan.by_class.clear();
}

/// What `until` says of data kept by a hold without an end date.
pub const UNTIL_LIFTED: &str = "until_lifted";

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
    // No stay recorded, ever: `last_checkout` is set by the first stay and kept when stays are
    // erased; a stay deleted as entered in error clears it with the stay.
    let stayed = f.last_checkout.is_some() || !f.stays.is_empty();
    let mut out = Plan::default();
    for field in &f.fields {
        let class = p
            .catalog
            .get(FieldScope::Guest, field)
            .and_then(|spec| p.retention.class(&spec.category));
        let Some(class) = class else {
            // A field no longer in the catalog has no retention rule: erasure deletes it, the
            // sweeper leaves it for an operator (a policy edit must not silently delete data),
            // so it also keeps its guest from being shredded.
            match mode {
                Mode::Erasure => out.delete_fields.push(field.clone()),
                Mode::Sweep => {
                    out.kept_fields
                        .push((field.clone(), "(unclassified)".into(), Date::MAX))
                }
            }
            continue;
        };
        let withdrawn_on = withdrawn_on(f, &class.withdrawal_purposes);
        let until = match class.after {
            Anchor::Created => kept_until(created, class.retain),
            Anchor::LastCheckout => kept_until(last_checkout, class.retain),
            Anchor::LastActivity => kept_until(last_activity, class.retain),
            // The period has not begun while the consent stands.
            Anchor::ConsentWithdrawn => withdrawn_on
                .map(|d| kept_until(d, class.retain))
                .unwrap_or(Date::MAX),
        };
        let keep = match mode {
            // A statutory class that runs from the last check-out (the lodging registration)
            // has nothing to keep for a guest who never stayed (issue 16 §3).
            Mode::Erasure => {
                class.statutory && today <= until && (class.after != Anchor::LastCheckout || stayed)
            }
            Mode::Sweep => {
                // Withdrawal ends the period at once, except for what another basis still
                // needs (REQ-25; PIPL Art. 13, 15, 47(1)(3)).
                let until = match withdrawn_on {
                    Some(_) if class.after != Anchor::ConsentWithdrawn => {
                        until.min(still_needed_until(p, f, field, until))
                    }
                    _ => until,
                };
                today <= until
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

/// The day the guest withdrew its consent for one of `purposes` (the earliest, if several),
/// or `None` while none of them is withdrawn.
fn withdrawn_on(f: &RetentionFacts, purposes: &[String]) -> Option<Date> {
    f.consents
        .iter()
        .filter(|(p, status, _)| status == "withdrawn" && purposes.contains(p))
        .filter_map(|(_, _, at)| at.as_deref().and_then(date_of))
        .min()
}

/// After a consent withdrawal, how long another basis still needs `field` (REQ-25: "fields
/// shared with stay service remain"): a legal obligation or vital interest, or another
/// consent the guest still gives, keeps the class's own period (`until`); a contract keeps it
/// for the stay in progress (through the last check-out; a guest without stays has none);
/// nothing else keeps it at all.
/// Purposes flagged `restricted_access` (police, data-subject requests) only read what is
/// already held and are no reason to hold it.
fn still_needed_until(p: &Policies, f: &RetentionFacts, field: &str, until: Date) -> Date {
    let last_checkout = f.last_checkout.as_deref().and_then(date_of);
    let granted = |purpose: &str| {
        f.consents
            .iter()
            .any(|(p, status, _)| p == purpose && status == "granted")
    };
    let mut needed = Date::MIN;
    for purpose in p.access.purposes.values() {
        if purpose.restricted_access || !purpose.touches(FieldScope::Guest, field) {
            continue;
        }
        let end = match purpose.basis {
            Basis::LegalObligation | Basis::VitalInterest => until,
            Basis::Consent if granted(&purpose.name) => until,
            Basis::Consent => continue,
            Basis::Contract => match last_checkout {
                Some(d) => d,
                None => continue,
            },
        };
        needed = needed.max(end);
    }
    needed
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
    /// `cn` or `eu`: whose due date `due_at` is (REQ-32, REQ-48). Absent on receipts of
    /// before the field existed (the Chinese clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// The due date under each regime that applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_dates: Option<super::DueDates>,
    /// The legal holds that stood when the erasure was decided and keep what `retained` marks
    /// `held_by` (REQ-23). Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HoldBasis>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Retained {
    /// A field name, or `stays`.
    pub field: String,
    pub class: String,
    pub basis: String,
    /// The last day it is kept; the sweeper deletes it after. For data kept by a legal hold:
    /// the hold's last day, or `until_lifted` for a hold without one.
    pub until: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// For a class with retention stages (issue 16 §3), the field's stage at the time of the
    /// receipt: `in_use`, `restricted` or `pseudonymized`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The stages still to come before `until`, with their first day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_stages: Vec<super::stages::NextStage>,
    /// The ids of the legal holds that keep it (it would be deleted otherwise). Absent when
    /// none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by: Vec<String>,
}

/// A legal hold as an erasure receipt names it: the basis of what it keeps.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldBasis {
    pub hold_id: String,
    /// A code of `[hold_reasons]` in `access.toml`.
    pub reason: String,
    pub ticket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// A data-subject request past its due date (`GET /v1/erasure-requests?status=overdue`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OverdueRequest {
    pub request_id: String,
    pub kind: String,
    pub status: String,
    pub received_at: String,
    pub due_at: String,
    /// Which clock set `due_at`, the due date of each regime, and any extension (REQ-32).
    #[serde(flatten)]
    pub deadlines: super::DsrClock,
}

/// The basis text of data kept by `holds`: each hold's reason code, its description and ticket.
fn hold_basis(p: &Policies, holds: &[HoldRow]) -> String {
    let each: Vec<String> = holds
        .iter()
        .map(|h| {
            let what = p
                .access
                .hold_reasons
                .get(&h.reason)
                .map_or("", |r| r.description.as_str());
            format!("legal hold `{}` ({what}), ticket {}", h.reason, h.ticket)
        })
        .collect();
    format!(
        "Kept under {} (PIPL Art. 47(2)); deleted once lifted",
        each.join("; ")
    )
}

/// The last day data kept by `holds` is kept: the latest `until`, or `until_lifted` when one
/// hold has none.
fn held_until(holds: &[HoldRow]) -> String {
    if holds.iter().any(|h| h.until.is_none()) {
        return UNTIL_LIFTED.to_string();
    }
    holds
        .iter()
        .filter_map(|h| h.until.clone())
        .max()
        .unwrap_or_else(|| UNTIL_LIFTED.to_string())
}

fn receipt_for(
    p: &Policies,
    plan: &Plan,
    holds: &[HoldRow],
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
            stage: None,
            next_stages: Vec::new(),
            held_by: Vec::new(),
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
            stage: None,
            next_stages: Vec::new(),
            held_by: Vec::new(),
        });
    }
    let held_by: Vec<String> = holds.iter().map(|h| h.hold_id.clone()).collect();
    for (field, class) in &plan.held_fields {
        retained.push(Retained {
            field: field.clone(),
            class: class.clone(),
            basis: hold_basis(p, holds),
            until: held_until(holds),
            count: None,
            held_by: held_by.clone(),
            stage: None,
            next_stages: Vec::new(),
        });
    }
    if !plan.held_stays.is_empty() {
        retained.push(Retained {
            field: "stays".into(),
            class: p.retention.stay_class.clone(),
            basis: hold_basis(p, holds),
            until: held_until(holds),
            count: Some(plan.held_stays.len()),
            held_by: held_by.clone(),
            stage: None,
            next_stages: Vec::new(),
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
        clock: None,
        due_dates: None,
        holds: if plan.held_fields.is_empty() && plan.held_stays.is_empty() {
            Vec::new()
        } else {
            holds
                .iter()
                .map(|h| HoldBasis {
                    hold_id: h.hold_id.clone(),
                    reason: h.reason.clone(),
                    ticket: h.ticket.clone(),
                    until: h.until.clone(),
                })
                .collect()
        },
    }
}

/// The receipt of an erasure a legal hold held back, once the sweeper deleted what the hold
/// kept: those items move to `erased`, the holds go, and the status follows what is left.
/// Returns the new status and receipt.
pub(crate) fn release_receipt(receipt: &str, now: &str) -> Option<(String, String)> {
    let mut r: Receipt = serde_json::from_str(receipt).ok()?;
    let (held, kept): (Vec<Retained>, Vec<Retained>) =
        r.retained.drain(..).partition(|k| !k.held_by.is_empty());
    r.retained = kept;
    for k in held {
        if !r.erased.contains(&k.field) {
            r.erased.push(k.field);
        }
    }
    r.holds.clear();
    r.status = if r.retained.is_empty() {
        "completed"
    } else {
        "partially_completed"
    }
    .into();
    r.completed_at = now.to_string();
    Some((r.status.clone(), serde_json::to_string(&r).ok()?))
}

/// Whether a receipt is of an erasure a legal hold held back.
pub(crate) fn held_back(receipt: &str) -> bool {
    serde_json::from_str::<Receipt>(receipt).is_ok_and(|r| !r.holds.is_empty())
}

/// Applies a plan inside the writer transaction: stays are anonymized first when their class
/// says `anonymize`; then, when nothing would remain ([`Plan::shreds_guest`]), the whole guest
/// is crypto-shredded in one step, else the planned fields and stays are deleted one by one.
/// Restricting what remains is the caller's (a retention sweep does not restrict).
///
/// A shred does not delete the planned fields first: deleting the guest takes every one of its
/// rows with it, and the field-by-field deletes (three statements per field) were a third of
/// the writer's time per erasure (issue 14, the SQLite erasure figure).
pub(crate) fn apply_plan(
    c: &store::Conn,
    p: &Policies,
    keys: &crate::crypto::Keyring,
    permit: &crate::policy::Permit,
    gid: &str,
    plan: &Plan,
) -> Result<(), store::StoreError> {
    let anonymize = p
        .retention
        .class(&p.retention.stay_class)
        .is_some_and(|c| c.anonymize);
    if anonymize && !plan.delete_stays.is_empty() {
        anonymize_stays(c, keys, permit, gid, &plan.delete_stays)?;
    }
    if plan.shreds_guest() {
        return store::shred_guest(c, permit, gid);
    }
    store::erase_fields(c, permit, gid, &plan.delete_fields)?;
    store::clear_pseudonymized(c, gid, &plan.delete_fields)?;
    store::erase_stays(c, permit, gid, &plan.delete_stays)?;
    Ok(())
}

/// Stores each stay's check-in and check-out dates, amount and currency in
/// `anonymized_stays`, linked to nobody (legal analysis §(b) #8; PIPL Art. 73(4)); the caller
/// then deletes the stays.
fn anonymize_stays(
    c: &store::Conn,
    keys: &crate::crypto::Keyring,
    permit: &crate::policy::Permit,
    gid: &str,
    stay_ids: &[String],
) -> Result<(), store::StoreError> {
    let other = |e: String| store::StoreError::Other(e);
    let Some((wrapped, stays)) = store::stays_to_anonymize(c, permit, gid, stay_ids)? else {
        return Ok(());
    };
    let dek = keys
        .unwrap_dek(&wrapped, gid)
        .map_err(|e| other(e.to_string()))?;
    let cipher = crate::crypto::FieldCipher::new(&dek, gid);
    for (stay_id, ct) in stays {
        let bytes = zeroize::Zeroizing::new(
            cipher
                .open(&format!("stay:{stay_id}"), &ct)
                .map_err(|e| other(e.to_string()))?,
        );
        let doc: BTreeMap<String, String> =
            serde_json::from_slice(&bytes).map_err(|e| other(e.to_string()))?;
        store::insert_anonymized_stay(
            c,
            permit,
            &store::AnonymizedStay {
                check_in: doc.get("check_in").cloned(),
                check_out: doc.get("check_out").cloned(),
                amount: doc.get("amount").cloned(),
                currency: doc.get("currency").cloned(),
            },
        )?;
    }
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
        let deadlines = self.deadlines_now(self.jurisdictions_of(&grant, guest_id.as_str()).await?);
        let due = deadlines.due();
        let clock = super::DsrClock::of(&deadlines, None);
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
        let keys = self.keys();
        let today_s = today.to_string();
        let outcome = self
            .writer
            .execute(move |c| {
                let Some(mut facts) = store::retention_facts(c, &gid)? else {
                    // Already erased (or never existed): a repeated request returns the receipt.
                    return Ok(match store::latest_erasure(c, &job_subject)? {
                        Some(row) => Erased::Repeat(row),
                        None => Erased::Missing,
                    });
                };
                if facts.status == GuestStatus::Restricted && !restricted_ok {
                    return Ok(Erased::Restricted);
                }
                // Pseudonymized fields (only their blind-index entry left) are kept or deleted
                // like the rest of their class (issue 16 §3).
                let pseudonymized = store::stage_facts(c, &gid)?
                    .map(|sf| sf.pseudonymized)
                    .unwrap_or_default();
                super::stages::with_pseudonymized(&mut facts, &pseudonymized);
                let holds = store::holds::active(c, &gid, &today_s)?;
                let mut plan = plan(&policies, &facts, today, Mode::Erasure);
                if !holds.is_empty() {
                    withhold(&policies, &mut plan);
                }
                let nothing_new = plan.delete_fields.is_empty() && plan.delete_stays.is_empty();
                if facts.status == GuestStatus::Restricted && nothing_new && !plan.shreds_guest() {
                    // Asked again while restricted, with nothing more to delete: the request
                    // is the one already answered.
                    if let Some(row) = store::latest_erasure(c, &job_subject)? {
                        return Ok(Erased::Repeat(row));
                    }
                }
                apply_plan(c, &policies, &keys, &permit, &gid, &plan)?;
                // Before the commit, so a restore can never forget this erasure (REQ-27).
                ledger
                    .append(&gid, crate::ledger::ERASURE_EVENT, &now)
                    .map_err(|e| store::StoreError::Other(e.to_string()))?;
                if !plan.shreds_guest() {
                    store::set_status(c, &permit, &gid, GuestStatus::Restricted)?;
                }
                let mut receipt =
                    receipt_for(&policies, &plan, &holds, &request_id, &now, &now, due);
                receipt.clock = Some(clock.clock.clone());
                receipt.due_dates = Some(clock.due_dates.clone());
                super::stages::annotate_receipt(
                    &policies,
                    &facts,
                    &pseudonymized,
                    today,
                    &mut receipt,
                );
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
                        deadlines: serde_json::to_string(&clock).ok(),
                    },
                )?;
                event.fields = receipt.erased.clone();
                let kept: Vec<&str> = receipt.retained.iter().map(|r| r.field.as_str()).collect();
                let held: Vec<&str> = receipt.holds.iter().map(|h| h.hold_id.as_str()).collect();
                event.reason = Some(format!(
                    "erasure {} ({reason}); restricted: [{}]{}",
                    receipt.status,
                    kept.join(","),
                    if held.is_empty() {
                        String::new()
                    } else {
                        format!("; legal hold: [{}]", held.join(","))
                    }
                ));
                crate::audit::append(c, event)?;
                Ok(Erased::Done(Box::new(receipt)))
            })
            .await
            .map_err(VaultError::from_write)?;
        match outcome {
            Erased::Done(r) => {
                self.writer.note_shredded();
                Ok(*r)
            }
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
                let clock = super::DsrClock::of_row(row.deadlines.as_deref(), &row.due_at);
                if let (Some(o), Ok(serde_json::Value::Object(c))) =
                    (v.as_object_mut(), serde_json::to_value(&clock))
                {
                    o.insert("status".into(), row.status.into());
                    o.insert("kind".into(), row.kind.into());
                    o.insert("due_at".into(), row.due_at.into());
                    o.extend(c);
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
        // Today in China, the same rule as the console's deadlines (`deadlines.rs`).
        let today = self.dsr_today().to_string();
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
                deadlines: super::DsrClock::of_row(r.deadlines.as_deref(), &r.due_at),
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

    /// REQ-24; issue 16 §3: the stay period is a business choice (not statutory), so an
    /// erasure deletes the stays while identity is restricted.
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
        assert_eq!(plan.kept_stays, vec![]);
        assert_eq!(plan.delete_stays, vec!["s1"]);
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
        // profile: 3 years after the last activity (2026-11-20); preferences: 2 years.
        let f = facts(&["occupation", "preferences"], None, &[]);
        let deleted = |d| plan(&p, &f, d, Mode::Sweep).delete_fields;
        assert!(deleted(date!(2028 - 11 - 20)).is_empty());
        assert_eq!(deleted(date!(2028 - 11 - 21)), vec!["preferences"]);
        assert_eq!(deleted(date!(2029 - 11 - 20)), vec!["preferences"]);
        assert_eq!(
            deleted(date!(2029 - 11 - 21)),
            vec!["occupation", "preferences"]
        );
        // identity: statutory, 3 years after the last check-out; the sweeper deletes it then.
        let f = facts(&["id_number"], Some("2026-11-23"), &[("s1", "2026-11-23")]);
        let p2 = plan(&p, &f, date!(2029 - 11 - 23), Mode::Sweep);
        assert!(p2.delete_fields.is_empty() && p2.delete_stays.is_empty());
        let p2 = plan(&p, &f, date!(2029 - 11 - 24), Mode::Sweep);
        assert_eq!(p2.delete_fields, vec!["id_number"]);
        assert_eq!(p2.delete_stays, vec!["s1"]);
    }

    fn withdrawn(f: &mut RetentionFacts, purpose: &str, on: &str) {
        f.consents.push((
            purpose.into(),
            "withdrawn".into(),
            Some(format!("{on}T09:00:00.000000Z")),
        ));
    }

    /// The embedded policies with one text replaced in the retention or access file.
    fn policies_with(file: &str, from: &str, to: &str) -> Policies {
        let mut s = crate::policy::Sources::embedded();
        let target = match file {
            "retention" => &mut s.retention.1,
            "access" => &mut s.access.1,
            _ => unreachable!(),
        };
        assert!(target.contains(from), "{from:?} not in {file}");
        *target = target.replacen(from, to, 1);
        // These tests are about retention, not about what the notice discloses.
        s.notice_disclosure = false;
        Policies::from_sources(&s).unwrap()
    }

    #[test]
    fn withdrawing_personalization_expires_preferences_at_once_when_no_stay_is_in_progress() {
        let p = Policies::load(None).unwrap();
        let mut f = facts(&["preferences", "membership_level"], None, &[]);
        assert!(plan(&p, &f, date!(2026 - 11 - 22), Mode::Sweep)
            .delete_fields
            .is_empty());
        withdrawn(&mut f, "personalization", "2026-11-22");
        assert_eq!(
            plan(&p, &f, date!(2026 - 11 - 22), Mode::Sweep).delete_fields,
            vec!["preferences"]
        );
    }

    /// REQ-25: withdrawal deletes what was held only for that purpose; what a contract purpose
    /// (guest_service) shares is kept for the stay in progress, and what a legal obligation
    /// shares keeps its own period.
    #[test]
    fn withdrawal_keeps_what_another_basis_still_needs() {
        let p = Policies::load(None).unwrap();
        // A stay in progress: check-out on 2026-11-25.
        let mut f = facts(
            &["dietary_needs", "preferences", "full_name"],
            Some("2026-11-25"),
            &[],
        );
        withdrawn(&mut f, "personalization", "2026-11-22");
        let during = plan(&p, &f, date!(2026 - 11 - 25), Mode::Sweep);
        assert!(
            during.delete_fields.is_empty(),
            "{:?}",
            during.delete_fields
        );
        let after = plan(&p, &f, date!(2026 - 11 - 26), Mode::Sweep);
        assert_eq!(after.delete_fields, vec!["dietary_needs", "preferences"]);

        // Without guest_service touching preferences, nothing else needs them: gone at once.
        let p = policies_with(
            "access",
            r#""email", "membership_level", "preferences", "dietary_needs""#,
            r#""email", "membership_level", "dietary_needs""#,
        );
        let during = plan(&p, &f, date!(2026 - 11 - 23), Mode::Sweep);
        assert_eq!(during.delete_fields, vec!["preferences"]);
    }

    #[test]
    fn a_class_anchored_on_consent_withdrawal_runs_from_the_withdrawal() {
        let p = policies_with(
            "retention",
            "retain = \"2y\"\nafter = \"last_activity\"",
            "retain = \"7d\"\nafter = \"consent_withdrawn\"",
        );
        let mut f = facts(&["preferences"], None, &[]);
        // While the consent stands the period has not begun, however old the data.
        assert!(plan(&p, &f, date!(2040 - 01 - 01), Mode::Sweep)
            .delete_fields
            .is_empty());
        withdrawn(&mut f, "personalization", "2026-11-22");
        assert!(plan(&p, &f, date!(2026 - 11 - 29), Mode::Sweep)
            .delete_fields
            .is_empty());
        assert_eq!(
            plan(&p, &f, date!(2026 - 11 - 30), Mode::Sweep).delete_fields,
            vec!["preferences"]
        );
        // An erasure request does not wait for it (not statutory).
        let f = facts(&["preferences"], None, &[]);
        assert_eq!(
            plan(&p, &f, date!(2026 - 11 - 22), Mode::Erasure).delete_fields,
            vec!["preferences"]
        );
    }

    #[test]
    fn a_consent_withdrawn_class_must_name_purposes_and_not_be_statutory() {
        let mut s = crate::policy::Sources::embedded();
        s.retention.1 = s.retention.1.replacen(
            "retain = \"3y\"\nafter = \"last_checkout\"\nstatutory = true",
            "retain = \"3y\"\nafter = \"consent_withdrawn\"\nstatutory = true",
            1,
        );
        let e = Policies::from_sources(&s).unwrap_err().to_string();
        assert!(e.contains("classes.identity.withdrawal_purposes"), "{e}");
        assert!(e.contains("classes.identity.statutory"), "{e}");
    }

    #[test]
    fn the_sweeper_keeps_a_field_no_longer_in_the_catalog_and_its_guest() {
        let p = Policies::load(None).unwrap();
        let f = facts(&["loyalty_card"], None, &[]);
        let swept = plan(&p, &f, date!(2040 - 01 - 01), Mode::Sweep);
        assert!(swept.delete_fields.is_empty());
        assert!(!swept.shreds_guest(), "a policy edit must not delete data");
        // An erasure request deletes it.
        let erased = plan(&p, &f, date!(2026 - 11 - 22), Mode::Erasure);
        assert_eq!(erased.delete_fields, vec!["loyalty_card"]);
        assert!(erased.shreds_guest());
    }

    #[test]
    fn a_statutory_class_cannot_end_on_a_consent_withdrawal() {
        let mut s = crate::policy::Sources::embedded();
        s.retention.1 = s.retention.1.replacen(
            "statutory = true\nbasis = \"Hotel registration",
            "statutory = true\nwithdrawal_purposes = [\"marketing\"]\nbasis = \"Hotel registration",
            1,
        );
        let e = Policies::from_sources(&s).unwrap_err().to_string();
        assert!(e.contains("classes.identity.withdrawal_purposes"), "{e}");
    }

    /// Issue 16 §3 (REQ-24): a guest who never stayed has no lodging registration to keep, so
    /// an erasure deletes its identity data too; a guest whose stays are gone but who stayed
    /// (`last_checkout` set) keeps it for its period.
    #[test]
    fn a_guest_who_never_stayed_has_no_registration_to_keep() {
        let p = Policies::load(None).unwrap();
        let never = facts(&["id_number", "full_name", "mobile"], None, &[]);
        let plan = plan(&p, &never, date!(2026 - 11 - 24), Mode::Erasure);
        assert_eq!(plan.delete_fields, vec!["id_number", "full_name", "mobile"]);
        assert!(plan.shreds_guest());
        let stayed = facts(&["id_number", "full_name"], Some("2026-11-23"), &[]);
        let plan = super::plan(&p, &stayed, date!(2026 - 11 - 24), Mode::Erasure);
        assert!(plan.delete_fields.is_empty(), "{:?}", plan.delete_fields);
        assert_eq!(plan.kept_fields.len(), 2);
        // The sweeper is unchanged: the period still runs from creation for a guest without stays.
        let swept = super::plan(&p, &never, date!(2026 - 11 - 24), Mode::Sweep);
        assert!(swept.delete_fields.is_empty());
    }

    /// REQ-23: an active hold keeps everything the erasure would delete, and the guest is not
    /// shredded even when nothing statutory remains.
    #[test]
    fn a_hold_keeps_what_an_erasure_would_delete() {
        let p = Policies::load(None).unwrap();
        let f = facts(&["mobile", "email"], None, &[("s1", "2026-11-23")]);
        let mut plan = plan(&p, &f, date!(2026 - 11 - 24), Mode::Erasure);
        assert!(plan.shreds_guest());
        withhold(&p, &mut plan);
        assert!(plan.delete_fields.is_empty() && plan.delete_stays.is_empty());
        assert!(plan.by_class.is_empty());
        assert_eq!(
            plan.held_fields,
            vec![
                ("mobile".to_string(), "contact".to_string()),
                ("email".to_string(), "contact".to_string())
            ]
        );
        assert_eq!(plan.held_stays, vec!["s1"]);
        assert!(!plan.shreds_guest());
    }

    #[test]
    fn only_the_stay_class_can_anonymize() {
        let p = policies_with("retention", "anonymize = false", "anonymize = true");
        assert!(p.retention.class("stays").unwrap().anonymize);
        let mut s = crate::policy::Sources::embedded();
        s.retention.1 = s.retention.1.replacen(
            "statutory = false\nbasis = \"Post-stay",
            "statutory = false\nanonymize = true\nbasis = \"Post-stay",
            1,
        );
        let e = Policies::from_sources(&s).unwrap_err().to_string();
        assert!(e.contains("classes.contact.anonymize"), "{e}");
    }

    /// A receipt a hold held back, released by the sweeper: the held items move to `erased`.
    #[test]
    fn releasing_a_held_receipt_moves_the_held_items_to_erased() {
        let p = Policies::load(None).unwrap();
        let f = facts(&["id_number", "mobile"], Some("2026-11-23"), &[]);
        let mut plan = plan(&p, &f, date!(2026 - 11 - 24), Mode::Erasure);
        withhold(&p, &mut plan);
        let hold = HoldRow {
            hold_id: "h1".into(),
            guest_id: "g".into(),
            reason: "litigation".into(),
            ticket: "CASE-7".into(),
            until: None,
            placed_at: "2026-11-24T00:00:00.000000Z".into(),
            placed_by: "officer".into(),
            lifted_at: None,
            lifted_by: None,
        };
        let r = receipt_for(&p, &plan, &[hold], "r", "t", "t", date!(2026 - 12 - 15));
        let mobile = r.retained.iter().find(|k| k.field == "mobile").unwrap();
        assert!(
            mobile.basis.contains("legal hold `litigation`"),
            "{}",
            mobile.basis
        );
        assert!(mobile.basis.contains("CASE-7"), "{}", mobile.basis);
        assert_eq!(mobile.until, UNTIL_LIFTED);
        assert_eq!(mobile.held_by, vec!["h1"]);
        let json = serde_json::to_string(&r).unwrap();
        assert!(held_back(&json));
        let (status, released) = release_receipt(&json, "later").unwrap();
        assert_eq!(status, "partially_completed");
        let released: Receipt = serde_json::from_str(&released).unwrap();
        assert_eq!(released.erased, vec!["mobile"]);
        assert_eq!(released.retained.len(), 1);
        assert_eq!(released.retained[0].field, "id_number");
        assert!(
            released.holds.is_empty() && !held_back(&serde_json::to_string(&released).unwrap())
        );
    }
}
