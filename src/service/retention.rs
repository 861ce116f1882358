//! The retention sweeper (PIPL Art. 19, 47(1); REQ-23, REQ-25): finds what has expired, in
//! batches, and deletes it — field values, stays, and the whole guest (crypto-shredded) when
//! nothing remains. Each purge is audited per guest as `retention.purge` with field names and
//! counts. A dry run reports the same counts and changes nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::erasure::{apply_plan, plan, Mode};
use super::{Vault, VaultError};
use crate::audit::{NewEvent, Outcome};
use crate::policy::{Action, Permit};
use crate::store;
use crate::store::coordination::Job;

const BATCH_GUESTS: usize = 500;
pub const SWEEP_ACTOR: &str = "system:retention";
/// The `Conflict` of a sweep while another node's holds the lock (PostgreSQL).
pub const SWEEP_RUNNING: &str = "a retention sweep is running on another node";

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ClassCount {
    pub fields: u64,
    pub stays: u64,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SweepReport {
    pub dry_run: bool,
    pub guests_checked: u64,
    /// Guests that had something expired.
    pub guests_affected: u64,
    /// Guests crypto-shredded because nothing remained.
    pub guests_erased: u64,
    /// Guests skipped because a legal hold stands (REQ-23).
    pub guests_held: u64,
    pub classes: BTreeMap<String, ClassCount>,
    /// Retention stages applied (or, in a dry run, due): class → stage action (`restrict`,
    /// `pseudonymize`) → guests (issue 16 §3).
    pub stages: BTreeMap<String, BTreeMap<String, u64>>,
    /// Data-subject requests this run escalated (80% of their time passed) or found overdue
    /// (REQ-32). Zero in a dry run, which raises nothing.
    pub dsr_alerts: super::DeadlineAlerts,
}

impl SweepReport {
    fn merge(&mut self, other: SweepReport) {
        self.guests_checked += other.guests_checked;
        self.guests_affected += other.guests_affected;
        self.guests_erased += other.guests_erased;
        self.guests_held += other.guests_held;
        for (k, v) in other.classes {
            let e = self.classes.entry(k).or_default();
            e.fields += v.fields;
            e.stays += v.stays;
        }
        for (class, actions) in other.stages {
            let e = self.stages.entry(class).or_default();
            for (action, n) in actions {
                *e.entry(action).or_default() += n;
            }
        }
    }
}

impl Vault {
    /// One full sweep over every guest, as of the vault's clock. `progress` is called after
    /// each batch with the number of guests checked so far.
    ///
    /// On PostgreSQL a sweep that deletes runs on one node at a time: it holds the sweep's
    /// advisory lock throughout, and answers `Conflict` (409 `conflict`; the background sweeper
    /// skips its turn) while another node's sweep holds it. A dry run deletes nothing and
    /// takes no lock.
    pub async fn retention_run(
        &self,
        request_id: &str,
        dry_run: bool,
        progress: impl Fn(u64),
    ) -> Result<SweepReport, VaultError> {
        let now_dt = self.now();
        let today = now_dt.date();
        let now = crate::clock::timestamp(now_dt);
        let mut report = SweepReport {
            dry_run,
            ..SweepReport::default()
        };
        let lock = if dry_run {
            None
        } else {
            Some(
                self.job_lock(Job::RetentionSweep)
                    .await?
                    .ok_or_else(|| VaultError::Conflict(SWEEP_RUNNING.into()))?,
            )
        };
        let mut cursor = String::new();
        loop {
            if lock.as_ref().is_some_and(|l| !l.is_held()) {
                // The lock's session was lost (the database restarted, a network cut): another
                // node may be sweeping now. Stop; the next turn starts again from the start.
                return Err(VaultError::Store(store::StoreError::Unavailable(
                    "the retention sweep lost its lock".into(),
                )));
            }
            let after = cursor.clone();
            let ids = self
                .readers
                .run(move |c| store::guest_ids_after(c, &after, BATCH_GUESTS))
                .await?;
            let Some(last) = ids.last() else { break };
            cursor = last.clone();
            let subjects: Vec<(String, Vec<u8>)> = ids
                .iter()
                .map(|id| (id.clone(), self.subject(id)))
                .collect();
            let policies = self.policies.clone();
            let request_id = request_id.to_string();
            let now = now.clone();
            let keys = self.keys();
            let today_s = today.to_string();
            let batch = self
                .writer
                .execute(move |c| {
                    let permit = Permit::system_unchecked(crate::policy::SystemJob::RetentionSweep);
                    let mut r = SweepReport::default();
                    for (gid, subject) in subjects {
                        let Some(mut facts) = store::retention_facts(c, &gid)? else {
                            continue;
                        };
                        r.guests_checked += 1;
                        // Legal holds (REQ-23, issue 16 §2): a held guest loses nothing; an
                        // erasure a hold held back finishes once the hold is lifted or lapses.
                        if !store::holds::active(c, &gid, &today_s)?.is_empty() {
                            r.guests_held += 1;
                            continue;
                        }
                        let held_back = match facts.status {
                            store::GuestStatus::Restricted => store::latest_erasure(c, &subject)?
                                .filter(|row| row.status == "partially_completed")
                                .filter(|row| super::erasure::held_back(&row.receipt)),
                            _ => None,
                        };
                        let mode = if held_back.is_some() {
                            Mode::Erasure
                        } else {
                            Mode::Sweep
                        };
                        // Stages first (issue 16 §3): what the plan below then deletes at the
                        // end of a period needs no stage.
                        let staged = super::stages::sweep_guest(
                            c,
                            &permit,
                            &policies,
                            &mut facts,
                            today,
                            &now,
                            &request_id,
                            SWEEP_ACTOR,
                            dry_run,
                        )?;
                        for a in &staged {
                            *r.stages
                                .entry(a.class.clone())
                                .or_default()
                                .entry(a.action.as_str().to_string())
                                .or_default() += 1;
                        }
                        let plan = plan(&policies, &facts, today, mode);
                        // Nothing left to keep (even a guest whose every field was removed by
                        // corrections): the whole guest goes, consents and data key included.
                        let shred = plan.shreds_guest();
                        if plan.delete_fields.is_empty() && plan.delete_stays.is_empty() && !shred {
                            continue;
                        }
                        r.guests_affected += 1;
                        for (class, (f, s)) in &plan.by_class {
                            let e = r.classes.entry(class.clone()).or_default();
                            e.fields += f;
                            e.stays += s;
                        }
                        if shred {
                            r.guests_erased += 1;
                        }
                        if dry_run {
                            continue;
                        }
                        apply_plan(c, &policies, &keys, &permit, &gid, &plan)?;
                        if let (Some(row), false) = (&held_back, shred) {
                            if let Some((status, receipt)) =
                                super::erasure::release_receipt(&row.receipt, &now)
                            {
                                store::rewrite_receipt(
                                    c,
                                    &row.request_id,
                                    &status,
                                    &now,
                                    &receipt,
                                )?;
                            }
                        }
                        if shred {
                            // apply_plan shredded the guest; a restricted guest's erasure request is now fully done.
                            store::complete_erasures(c, &subject, &now, |receipt| {
                                complete_receipt(receipt, &now)
                            })?;
                        }
                        let mut fields = plan.delete_fields.clone();
                        if !plan.delete_stays.is_empty() {
                            fields.push("stays".into());
                        }
                        let counts: Vec<String> = plan
                            .by_class
                            .iter()
                            .map(|(k, (f, s))| format!("{k}: {f} fields, {s} stays"))
                            .collect();
                        let reason = format!(
                            "expired{}; {}",
                            if shred { ", guest erased" } else { "" },
                            counts.join("; ")
                        );
                        crate::audit::append(
                            c,
                            NewEvent {
                                ts: now.clone(),
                                request_id: request_id.clone(),
                                actor: SWEEP_ACTOR.into(),
                                role: "system".into(),
                                purpose: None,
                                action: "retention.purge".into(),
                                guest_id: Some(gid.clone()),
                                fields,
                                outcome: Outcome::Allowed,
                                reason: Some(reason),
                                rules: plan
                                    .by_class
                                    .keys()
                                    .map(|k| format!("classes.{k}"))
                                    .collect(),
                                justification: None,
                                value_hashes: Vec::new(),
                            },
                        )?;
                    }
                    Ok(r)
                })
                .await
                .map_err(VaultError::from_write)?;
            if !dry_run && (batch.guests_affected > 0 || !batch.stages.is_empty()) {
                self.writer.note_shredded();
            }
            report.merge(batch);
            progress(report.guests_checked);
        }
        if !dry_run {
            // Under the sweep's lock, so two nodes never raise the same alert twice in a race
            // (the marks would stop the second anyway).
            report.dsr_alerts = self.watch_deadlines(request_id).await?;
        }
        drop(lock);
        Ok(report)
    }
}

/// The receipt of an erasure whose restricted remainder the sweeper has now deleted.
fn complete_receipt(receipt: &str, now: &str) -> String {
    match serde_json::from_str::<super::Receipt>(receipt) {
        Ok(mut r) => {
            r.status = "completed".into();
            r.erased.extend(r.retained.drain(..).map(|k| k.field));
            r.completed_at = now.to_string();
            serde_json::to_string(&r).unwrap_or_else(|_| receipt.to_string())
        }
        Err(_) => receipt.to_string(),
    }
}

impl Vault {
    /// `POST /v1/admin/retention/run`: an audited, on-demand sweep (admin role).
    pub async fn admin_retention(
        &self,
        caller: &super::Caller,
        dry_run: bool,
    ) -> Result<SweepReport, VaultError> {
        let action = Action::AdminRetention;
        let grant = self.authorize(caller, action, None).await?;
        let report = self
            .retention_run(&caller.request_id, dry_run, |_| {})
            .await?;
        let reason = format!(
            "retention run{}: {} checked, {} affected, {} erased",
            if dry_run { " (dry run)" } else { "" },
            report.guests_checked,
            report.guests_affected,
            report.guests_erased
        );
        let event = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some(&reason),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        Ok(report)
    }
}
