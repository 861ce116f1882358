//! Scheduled KEK rotation and retirement (issue 14, requirement 6). On PostgreSQL an erasure
//! deletes the rows and the wrapped DEK, and the writer vacuums the tables; but dead tuples
//! not yet reused, WAL archives and base backups still hold the wrapped DEK. It becomes
//! unreadable only once the KEK that wrapped it is gone from every keyring: so the vault
//! rotates every `keys.rotate_every_days` and retires a replaced KEK
//! `keys.retire_after_days` after the rotation that replaced it. The grace period keeps
//! backups taken shortly before a rotation restorable; an erasure is final at most
//! `rotate_every_days + retire_after_days` after it was made.
//!
//! The schedule keeps no state of its own: when the last rotation ran is read from the audit
//! trail (`admin.keys` events, which every backend and every node share), so a restarted
//! node, or another node, takes it up where it was.
//!
//! With several nodes, only one may run it at a time: [`Vault::run_key_schedule`] is the one
//! call a node's timer makes (`startup::key_schedule_forever`), and the place to take the
//! cluster-wide job lock.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Caller, RotationReport, Vault, VaultError};
use crate::audit::query::Filter;
use crate::audit::Outcome;
use crate::policy::Action;

/// The actor the schedule's rotations and retirements are audited under.
pub const KEY_SCHEDULE_ACTOR: &str = "system:key-schedule";
/// How often a node checks whether a rotation or retirement is due.
pub const KEY_SCHEDULE_CHECK: std::time::Duration = std::time::Duration::from_secs(3600);
/// Audit events read per page while looking for past rotations.
const PAGE: usize = 500;
/// The start of every rotation event's reason (`service::keys`): `key rotation to v<N> <what>`.
const ROTATION_REASON: &str = "key rotation to v";

/// `keys.rotate_every_days` and `keys.retire_after_days`; `None` when rotation is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchedule {
    pub rotate_every_days: u32,
    pub retire_after_days: u32,
}

impl KeySchedule {
    pub fn from_config(keys: &crate::config::KeysConfig) -> Option<Self> {
        (keys.rotate_every_days > 0).then_some(Self {
            rotate_every_days: keys.rotate_every_days,
            retire_after_days: keys.retire_after_days,
        })
    }
}

/// What one run of the schedule did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleOutcome {
    pub rotation: Option<RotationReport>,
    pub retired: Vec<u32>,
}

/// The target version of a rotation event (`key rotation to v3 finished: ...`) and whether
/// it says the rotation finished.
fn rotation_event(reason: &str) -> Option<(u32, bool)> {
    let rest = reason.strip_prefix(ROTATION_REASON)?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let version = rest[..digits].parse().ok()?;
    Some((version, rest[digits..].starts_with(" finished")))
}

impl Vault {
    /// One check of the schedule: rotates if no rotation finished within
    /// `rotate_every_days` (and the vault is older than that), or resumes one left unfinished;
    /// then retires every KEK version that wraps no DEK and was replaced more than
    /// `retire_after_days` ago. Each step is audited like the `keys` commands, as
    /// [`KEY_SCHEDULE_ACTOR`] with the `admin` role.
    pub async fn run_key_schedule(
        &self,
        schedule: &KeySchedule,
    ) -> Result<ScheduleOutcome, VaultError> {
        let caller = Caller {
            request_id: format!("key-schedule-{}", uuid::Uuid::new_v4()),
            actor: KEY_SCHEDULE_ACTOR.into(),
            role: "admin".into(),
            purpose: None,
        };
        let mut outcome = ScheduleOutcome::default();
        if self.rotation_due(schedule.rotate_every_days).await? {
            match self.rotate_keys(&caller, None, |_, _| {}).await {
                Ok(report) => outcome.rotation = Some(report),
                // A rotation started by hand runs now: it does the schedule's work.
                Err(VaultError::Conflict(_)) => return Ok(outcome),
                Err(e) => return Err(e),
            }
        }
        for version in self.retirable(schedule.retire_after_days).await? {
            self.retire_kek(&caller, version).await?;
            outcome.retired.push(version);
        }
        Ok(outcome)
    }

    async fn rotation_due(&self, every_days: u32) -> Result<bool, VaultError> {
        let active = self.keys().active_kek_version();
        let counts = self.readers.run(crate::store::dek_counts).await?;
        if counts.iter().any(|(v, n)| *v != active && *n > 0) {
            return Ok(true); // an unfinished rotation: resume it
        }
        let since = self.days_ago(every_days);
        if self
            .rotation_events_since(&since)
            .await?
            .iter()
            .any(|(_, finished)| *finished)
        {
            return Ok(false);
        }
        // A vault younger than the period has nothing to rotate yet.
        let older = Filter {
            until: Some(since),
            ..Filter::default()
        };
        let first = self
            .readers
            .run(move |c| crate::store::audit::query_events(c, &older, 0, 1))
            .await?;
        Ok(!first.is_empty())
    }

    /// KEK versions below the active one that wrap no DEK and whose successor's rotation left no
    /// event within `after_days` (rotations run one after the other, each finishing before the
    /// next starts, so version `v` stopped wrapping DEKs when the rotation to `v + 1` did).
    async fn retirable(&self, after_days: u32) -> Result<Vec<u32>, VaultError> {
        let keys = self.keys();
        let active = keys.active_kek_version();
        let counts = self.readers.run(crate::store::dek_counts).await?;
        let recent: BTreeSet<u32> = self
            .rotation_events_since(&self.days_ago(after_days))
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        Ok(keys
            .kek_versions()
            .into_iter()
            // Only versions below the active one are old: a version above it is a new KEK
            // not yet in force (one waiting until every node holds it), never retired here.
            .filter(|v| *v < active)
            .filter(|v| !counts.iter().any(|(cv, n)| cv == v && *n > 0))
            .filter(|v| !recent.contains(&(v + 1)))
            .collect())
    }

    /// Rotation events (target version, finished) recorded at or after `since`.
    async fn rotation_events_since(&self, since: &str) -> Result<Vec<(u32, bool)>, VaultError> {
        let mut found = Vec::new();
        let mut after = 0;
        loop {
            let filter = Filter {
                since: Some(since.to_string()),
                action: Some(Action::AdminKeys.as_str().to_string()),
                outcome: Some(Outcome::Allowed),
                ..Filter::default()
            };
            let page = self
                .readers
                .run(move |c| crate::store::audit::query_events(c, &filter, after, PAGE))
                .await?;
            for e in &page {
                if let Some(r) = e.event.reason.as_deref().and_then(rotation_event) {
                    found.push(r);
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = last.event.seq,
                _ => return Ok(found),
            }
        }
    }

    fn days_ago(&self, days: u32) -> String {
        crate::clock::timestamp(self.now() - time::Duration::days(i64::from(days)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_reasons_are_read_back() {
        assert_eq!(
            rotation_event("key rotation to v3 finished: 12 DEKs rewrapped"),
            Some((3, true))
        );
        assert_eq!(
            rotation_event("key rotation to v12 started: 0 DEKs"),
            Some((12, false))
        );
        assert_eq!(rotation_event("key rotation failed: internal"), None);
        assert_eq!(rotation_event("KEK v2 retired"), None);
    }
}
