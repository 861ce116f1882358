//! Retention stages (issue 16 §3; REQ-23, REQ-24; legal analysis §(b) #1): inside its period a
//! class may become storage-only (`restrict`) and have fields pseudonymized (`pseudonymize`:
//! the ciphertext goes, the keyed blind-index entry stays). The stage a guest's class is in is
//! decided from the dates alone (the class's anchor and the injected clock), so it holds from
//! its first day even before the sweeper runs; the sweeper then applies it (deletes the
//! pseudonymized values) and audits it once per guest, class and stage (`retention.stage`).
//! Erasure is unchanged: an erased guest is storage-only as a whole until its period ends;
//! its identity stages still run (a pseudonymized ID number stays pseudonymized).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::Date;

use super::erasure::{date_of, Receipt};
use crate::audit::{NewEvent, Outcome};
use crate::domain::retention::kept_until;
use crate::policy::{Anchor, FieldScope, Permit, Policies, RetentionClass, StageAction};
use crate::store::{self, FieldStage, RetentionFacts, StageFacts, Staging, StoreError};

fn stage_of(action: StageAction) -> FieldStage {
    match action {
        StageAction::Restrict => FieldStage::Restricted,
        StageAction::Pseudonymize => FieldStage::Pseudonymized,
    }
}

/// A stage still to come, as receipts and the access package show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct NextStage {
    /// `restricted` (storage only) or `pseudonymized` (value deleted, blind index kept).
    pub stage: String,
    /// The first day of the stage.
    pub from: String,
}

/// The dates a class's stages run from (created, last activity, last check-out), as the
/// period does. `None` for a class anchored on a consent withdrawal (it has no stages).
fn anchor(
    class: &RetentionClass,
    created: &str,
    last_activity: &str,
    last_checkout: Option<&str>,
) -> Option<Date> {
    let created = date_of(created)?;
    let last_activity = date_of(last_activity).unwrap_or(created);
    match class.after {
        Anchor::Created => Some(created),
        Anchor::LastActivity => Some(last_activity),
        Anchor::LastCheckout => Some(last_checkout.and_then(date_of).unwrap_or(created)),
        Anchor::ConsentWithdrawn => None,
    }
}

fn class_of<'p>(p: &'p Policies, field: &str) -> Option<&'p RetentionClass> {
    let spec = p.catalog.get(FieldScope::Guest, field)?;
    p.retention
        .class(&spec.category)
        .filter(|c| !c.stages.is_empty())
}

/// The state of `field` on `today` given the class anchor: the latest stage in force that
/// covers it (pseudonymized after restricted), `None` while in full use.
fn due_state(class: &RetentionClass, a: Date, field: &str, today: Date) -> Option<FieldStage> {
    class
        .stages
        .iter()
        .filter(|s| s.covers(field) && s.from(a) <= today)
        .map(|s| stage_of(s.action))
        .max()
}

/// The guest's stages for one caller; `stored` are the names of the fields with a value.
pub(crate) fn staging<'a>(
    p: &Policies,
    sf: &StageFacts,
    stored: impl Iterator<Item = &'a str>,
    today: Date,
    restricted_ok: bool,
) -> Staging {
    let mut out = Staging::default();
    for class in p
        .retention
        .classes
        .values()
        .filter(|c| !c.stages.is_empty())
    {
        let Some(a) = anchor(
            class,
            &sf.created_at,
            &sf.last_activity_at,
            sf.last_checkout.as_deref(),
        ) else {
            continue;
        };
        let restricted = class
            .stages
            .iter()
            .any(|s| s.action == StageAction::Restrict && s.from(a) <= today);
        if restricted {
            out.restricted_classes.insert(class.name.clone());
        }
    }
    let marked: BTreeSet<&str> = sf.pseudonymized.iter().map(String::as_str).collect();
    let mut names: BTreeSet<&str> = marked.clone();
    let stored: Vec<&str> = stored.collect();
    names.extend(stored.iter().copied());
    for name in names {
        let Some(class) = class_of(p, name) else {
            continue;
        };
        let Some(a) = anchor(
            class,
            &sf.created_at,
            &sf.last_activity_at,
            sf.last_checkout.as_deref(),
        ) else {
            continue;
        };
        let mut state = due_state(class, a, name, today);
        if marked.contains(name) {
            state = Some(FieldStage::Pseudonymized);
        }
        if out.restricted_classes.contains(&class.name) || state == Some(FieldStage::Restricted) {
            // Storage only: a purpose with `restricted_access` reads it as before.
            if restricted_ok {
                state = state.filter(|s| *s == FieldStage::Pseudonymized);
            } else {
                state = Some(FieldStage::Restricted);
            }
        }
        if let Some(s) = state {
            out.fields.insert(name.to_string(), s);
        }
    }
    out
}

/// Whether `field` belongs to a class in its storage-only stage (no processing under a
/// purpose without `restricted_access`).
pub(crate) fn is_restricted(s: &Staging, p: &Policies, field: &str) -> bool {
    p.catalog
        .get(FieldScope::Guest, field)
        .is_some_and(|spec| s.restricted_classes.contains(&spec.category))
}

/// The stage of one field and the dates of the next ones (receipts, the access package).
pub(crate) fn timeline(
    p: &Policies,
    field: &str,
    created: &str,
    last_activity: &str,
    last_checkout: Option<&str>,
    pseudonymized: bool,
    today: Date,
) -> Option<(&'static str, Vec<NextStage>)> {
    let class = class_of(p, field)?;
    let a = anchor(class, created, last_activity, last_checkout)?;
    let until = kept_until(a, class.retain);
    let mut state = due_state(class, a, field, today);
    if pseudonymized {
        state = Some(FieldStage::Pseudonymized);
    }
    let next = class
        .stages
        .iter()
        .filter(|s| s.covers(field) && s.from(a) > today && s.from(a) <= until)
        .filter(|s| state.is_none_or(|st| stage_of(s.action) > st))
        .map(|s| NextStage {
            stage: stage_of(s.action).as_str().into(),
            from: s.from(a).to_string(),
        })
        .collect();
    Some((state.map_or("in_use", FieldStage::as_str), next))
}

/// Adds the stage of each retained field, and the dates of the next ones, to an erasure
/// receipt (as of the erasure).
pub(crate) fn annotate_receipt(
    p: &Policies,
    f: &RetentionFacts,
    pseudonymized: &[String],
    today: Date,
    receipt: &mut Receipt,
) {
    for r in &mut receipt.retained {
        let is_pseudo = pseudonymized.contains(&r.field);
        if let Some((stage, next)) = timeline(
            p,
            &r.field,
            &f.created_at,
            &f.last_activity_at,
            f.last_checkout.as_deref(),
            is_pseudo,
            today,
        ) {
            r.stage = Some(stage.to_string());
            r.next_stages = next;
        }
    }
}

/// Adds the fields left with only a blind-index entry to the facts, so the plan keeps them
/// (and the guest) until their period ends and then deletes them with their index entry.
pub(crate) fn with_pseudonymized(f: &mut RetentionFacts, pseudonymized: &[String]) {
    for name in pseudonymized {
        if !f.fields.contains(name) {
            f.fields.push(name.clone());
        }
    }
    f.fields.sort();
}

/// Stages a sweep applied (or, in a dry run, would apply) to one guest.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub class: String,
    pub action: StageAction,
}

/// Applies the stages due on `today` to one guest inside the sweep's writer unit, audits each
/// (`retention.stage`: class, stage and field names, never a value), and adds pseudonymized
/// fields to `facts` for the plan. Idempotent: a stage is applied once per anchor date, and a
/// pseudonymized field has no value left to delete. A class past its period is left to the
/// plan, which deletes it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sweep_guest(
    c: &store::Conn,
    permit: &Permit,
    p: &Policies,
    facts: &mut RetentionFacts,
    today: Date,
    now: &str,
    request_id: &str,
    actor: &str,
    dry_run: bool,
) -> Result<Vec<Applied>, StoreError> {
    if p.retention.classes.values().all(|c| c.stages.is_empty()) {
        return Ok(Vec::new());
    }
    let gid = facts.guest_id.clone();
    let pseudonymized = store::stage_facts(c, &gid)?
        .map(|sf| sf.pseudonymized)
        .unwrap_or_default();
    let applied = store::applied_stages(c, &gid)?;
    let mut out = Vec::new();
    for class in p
        .retention
        .classes
        .values()
        .filter(|c| !c.stages.is_empty())
    {
        let Some(a) = anchor(
            class,
            &facts.created_at,
            &facts.last_activity_at,
            facts.last_checkout.as_deref(),
        ) else {
            continue;
        };
        if today > kept_until(a, class.retain) {
            continue;
        }
        let in_class = |f: &String| {
            p.catalog
                .get(FieldScope::Guest, f)
                .is_some_and(|s| s.category == class.name)
        };
        let with_value: Vec<String> = facts
            .fields
            .iter()
            .filter(|f| in_class(f))
            .cloned()
            .collect();
        let held: BTreeSet<&String> = with_value
            .iter()
            .chain(pseudonymized.iter().filter(|f| in_class(f)))
            .collect();
        if held.is_empty() {
            continue;
        }
        let anchor_text = a.to_string();
        for stage in class.stages.iter().filter(|s| s.from(a) <= today) {
            let action = stage.action.as_str();
            let recorded = applied
                .iter()
                .any(|(k, ac, an)| k == &class.name && ac == action && an == &anchor_text);
            let fields: Vec<String> = match stage.action {
                StageAction::Restrict if recorded => continue,
                StageAction::Restrict => held.iter().map(|f| (*f).clone()).collect(),
                StageAction::Pseudonymize => {
                    let todo: Vec<String> = with_value
                        .iter()
                        .filter(|f| stage.fields.contains(f))
                        .cloned()
                        .collect();
                    if todo.is_empty() {
                        continue;
                    }
                    todo
                }
            };
            out.push(Applied {
                class: class.name.clone(),
                action: stage.action,
            });
            if dry_run {
                continue;
            }
            if stage.action == StageAction::Pseudonymize {
                store::pseudonymize_fields(c, permit, &gid, &fields, now)?;
            }
            store::record_stage(c, permit, &gid, &class.name, action, &anchor_text, now)?;
            let reason = match stage.action {
                StageAction::Restrict => format!("{}: restricted (storage only)", class.name),
                StageAction::Pseudonymize => {
                    format!(
                        "{}: pseudonymized (value deleted, blind index kept)",
                        class.name
                    )
                }
            };
            crate::audit::append(
                c,
                NewEvent {
                    ts: now.to_string(),
                    request_id: request_id.to_string(),
                    actor: actor.to_string(),
                    role: "system".into(),
                    purpose: None,
                    action: "retention.stage".into(),
                    guest_id: Some(gid.clone()),
                    fields,
                    outcome: Outcome::Allowed,
                    reason: Some(reason),
                    rules: vec![stage.rule(&class.name)],
                    justification: None,
                    value_hashes: Vec::new(),
                },
            )?;
        }
    }
    with_pseudonymized(facts, &pseudonymized);
    Ok(out)
}

/// Whether `class` is in its storage-only stage for the guest of `sf` on `today`.
pub(crate) fn class_restricted(p: &Policies, class: &str, sf: &StageFacts, today: Date) -> bool {
    let Some(class) = p.retention.class(class) else {
        return false;
    };
    anchor(
        class,
        &sf.created_at,
        &sf.last_activity_at,
        sf.last_checkout.as_deref(),
    )
    .is_some_and(|a| {
        class
            .stages
            .iter()
            .any(|s| s.action == StageAction::Restrict && s.from(a) <= today)
    })
}

/// The last day the guest's `class` is kept (its period's end), as text.
pub(crate) fn kept_until_of(p: &Policies, class: &str, sf: &StageFacts) -> Option<String> {
    let class = p.retention.class(class)?;
    let a = anchor(
        class,
        &sf.created_at,
        &sf.last_activity_at,
        sf.last_checkout.as_deref(),
    )?;
    Some(kept_until(a, class.retain).to_string())
}
