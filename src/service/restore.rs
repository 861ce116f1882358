//! Restore support: re-applying the erasure ledger to a restored database (REQ-27).

use super::erasure::{apply_plan, date_of, plan, withhold, Mode};
use super::{Vault, VaultError};
use crate::audit::Outcome;
use crate::policy::Action;
use crate::store::{self, GuestStatus};

impl Vault {
    /// Records a completed operation by `actor` (`cli:<user>`), such as a restore, in the trail.
    pub async fn record_operation(
        &self,
        actor: &str,
        action: Action,
        reason: String,
    ) -> Result<(), VaultError> {
        let event = crate::audit::NewEvent {
            ts: self.now_ts(),
            request_id: uuid::Uuid::new_v4().to_string(),
            actor: actor.to_string(),
            role: "operator".into(),
            purpose: Some("administration".into()),
            action: action.as_str().to_string(),
            guest_id: None,
            fields: vec![],
            outcome: Outcome::Allowed,
            reason: Some(reason),
            rules: vec![],
            justification: None,
            value_hashes: Vec::new(),
        };
        self.record(event).await
    }

    /// Re-applies erasures from the ledger to a restored database (REQ-27): each as it was
    /// decided on its own date, so statutory data of that time is restricted, not deleted.
    /// Guests already gone are skipped, so replaying the whole ledger is safe. Returns how
    /// many entries changed something.
    pub async fn replay_erasures(
        &self,
        entries: &[crate::ledger::LedgerEntry],
    ) -> Result<u64, VaultError> {
        let counts = self.replay_ledger(entries).await?;
        Ok(counts.erasures + counts.withdrawals + counts.holds)
    }

    /// [`Vault::replay_erasures`], counted by kind. After a replay that shredded anything the
    /// backend is told, so PostgreSQL vacuums the tables (and SQLite empties its WAL).
    pub async fn replay_ledger(
        &self,
        entries: &[crate::ledger::LedgerEntry],
    ) -> Result<ReplayCounts, VaultError> {
        let mut counts = ReplayCounts::default();
        for entry in entries {
            if entry.event.starts_with(crate::ledger::HOLD_PREFIX)
                || entry.event.starts_with(crate::ledger::HOLD_LIFTED_PREFIX)
            {
                if self.replay_hold(entry).await? {
                    counts.holds += 1;
                } else {
                    counts.unchanged += 1;
                }
                continue;
            }
            if let Some(purpose) = entry.event.strip_prefix(crate::ledger::WITHDRAWAL_PREFIX) {
                if self.replay_withdrawal(entry, purpose).await? {
                    counts.withdrawals += 1;
                } else {
                    counts.unchanged += 1;
                }
                continue;
            }
            if entry.event != crate::ledger::ERASURE_EVENT {
                counts.unchanged += 1;
                continue;
            }
            let Some(gid) = crate::domain::GuestId::parse(&entry.guest_id) else {
                counts.unchanged += 1;
                continue;
            };
            let gid = gid.as_str().to_string();
            let today = date_of(&entry.erased_at).unwrap_or_else(|| self.today());
            let policies = self.policies.clone();
            let now = self.now_ts();
            let erased_at = entry.erased_at.clone();
            let keys = self.keys();
            let day = today.to_string();
            let done = self
                .writer
                .execute(move |c| {
                    let Some(mut facts) = store::retention_facts(c, &gid)? else {
                        return Ok(false);
                    };
                    // Pseudonymized fields are kept or deleted with their class (issue 16 §3).
                    let pseudonymized = store::stage_facts(c, &gid)?
                        .map(|sf| sf.pseudonymized)
                        .unwrap_or_default();
                    super::stages::with_pseudonymized(&mut facts, &pseudonymized);
                    let permit = crate::policy::Permit::system_unchecked(
                        crate::policy::SystemJob::ErasureReplay,
                    );
                    // A hold that stood on the erasure's day (in the snapshot, or re-applied from
                    // the ledger before this entry) held it back then: it does now too.
                    let mut plan = plan(&policies, &facts, today, Mode::Erasure);
                    if !store::holds::active(c, &gid, &day)?.is_empty() {
                        withhold(&policies, &mut plan);
                    }
                    let changes = !plan.delete_fields.is_empty()
                        || !plan.delete_stays.is_empty()
                        || plan.shreds_guest()
                        || facts.status != GuestStatus::Restricted;
                    if !changes {
                        // Erased (restricted) before the snapshot was taken: already in it.
                        return Ok(false);
                    }
                    apply_plan(c, &policies, &keys, &permit, &gid, &plan)?;
                    if !plan.shreds_guest() {
                        store::set_status(c, &permit, &gid, GuestStatus::Restricted)?;
                    }
                    crate::audit::append(
                        c,
                        crate::audit::NewEvent {
                            ts: now,
                            request_id: format!("restore-{}", uuid::Uuid::new_v4()),
                            actor: "system:restore".into(),
                            role: "system".into(),
                            purpose: None,
                            action: "erasure.replay".into(),
                            guest_id: Some(gid.clone()),
                            fields: plan.delete_fields.clone(),
                            outcome: Outcome::Allowed,
                            reason: Some(format!(
                                "erasure of {erased_at} re-applied after restore"
                            )),
                            rules: vec![],
                            justification: None,
                            value_hashes: Vec::new(),
                        },
                    )?;
                    Ok(true)
                })
                .await
                .map_err(VaultError::from_write)?;
            if done {
                counts.erasures += 1;
            } else {
                counts.unchanged += 1;
            }
        }
        if counts.erasures > 0 {
            self.writer.note_shredded();
        }
        Ok(counts)
    }
}

/// What a ledger replay changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayCounts {
    /// Erasures re-applied: the guest was back in the database.
    pub erasures: u64,
    /// Withdrawals re-applied: the consent was granted again in the database.
    pub withdrawals: u64,
    /// Legal holds placed or lifted again (REQ-23): the snapshot predates them.
    pub holds: u64,
    /// Entries that found nothing to do (already applied, or an entry of an unknown kind).
    pub unchanged: u64,
}

impl Vault {
    /// Withdraws a consent again if the restored database still shows it granted since before
    /// the withdrawal.
    async fn replay_withdrawal(
        &self,
        entry: &crate::ledger::LedgerEntry,
        purpose: &str,
    ) -> Result<bool, VaultError> {
        let Some(gid) = crate::domain::GuestId::parse(&entry.guest_id) else {
            return Ok(false);
        };
        let gid = gid.as_str().to_string();
        let purpose = purpose.to_string();
        let at = entry.erased_at.clone();
        let now = self.now_ts();
        self.writer
            .execute(move |c| {
                if !store::consents::replay_withdrawal(c, &gid, &purpose, &at)? {
                    return Ok(false);
                }
                crate::audit::append(
                    c,
                    crate::audit::NewEvent {
                        ts: now,
                        request_id: format!("restore-{}", uuid::Uuid::new_v4()),
                        actor: "system:restore".into(),
                        role: "system".into(),
                        purpose: None,
                        action: "consent.replay".into(),
                        guest_id: Some(gid),
                        fields: vec![],
                        outcome: Outcome::Allowed,
                        reason: Some(format!(
                            "consent withdrawn: {purpose} (re-applied after restore)"
                        )),
                        rules: vec![],
                        justification: None,
                        value_hashes: Vec::new(),
                    },
                )?;
                Ok(true)
            })
            .await
            .map_err(VaultError::from_write)
    }
}

impl Vault {
    /// Places or lifts a legal hold again if the restored database predates it (REQ-23): a
    /// hold placed after the snapshot must hold back the erasures replayed after it, and a
    /// lift after the snapshot must not leave the hold standing.
    async fn replay_hold(&self, entry: &crate::ledger::LedgerEntry) -> Result<bool, VaultError> {
        let Some(gid) = crate::domain::GuestId::parse(&entry.guest_id) else {
            return Ok(false);
        };
        let gid = gid.as_str().to_string();
        let at = entry.erased_at.clone();
        let event = entry.event.clone();
        let now = self.now_ts();
        self.writer
            .execute(move |c| {
                let (changed, what) =
                    if let Some(rest) = event.strip_prefix(crate::ledger::HOLD_LIFTED_PREFIX) {
                        (
                            store::holds::replay_lift(c, rest, &at, "system:restore")?,
                            format!("legal hold {rest} lifted (re-applied after restore)"),
                        )
                    } else {
                        let Some(hold) = crate::ledger::parse_hold(&event, &gid, &at) else {
                            return Ok(false);
                        };
                        let what = format!(
                            "legal hold {} placed: {} (re-applied after restore)",
                            hold.hold_id, hold.reason
                        );
                        (store::holds::place(c, &hold)?, what)
                    };
                if !changed {
                    return Ok(false);
                }
                crate::audit::append(
                    c,
                    crate::audit::NewEvent {
                        ts: now,
                        request_id: format!("restore-{}", uuid::Uuid::new_v4()),
                        actor: "system:restore".into(),
                        role: "system".into(),
                        purpose: None,
                        action: "hold.replay".into(),
                        guest_id: Some(gid),
                        fields: vec![],
                        outcome: Outcome::Allowed,
                        reason: Some(what),
                        rules: vec![],
                        justification: None,
                        value_hashes: Vec::new(),
                    },
                )?;
                Ok(true)
            })
            .await
            .map_err(VaultError::from_write)
    }
}
