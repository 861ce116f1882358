//! Key management: KEK rotation (add a version, make it active, rewrap every DEK under it in
//! batches through the writer — online and resumable), retirement of old KEKs once no DEK uses
//! them, and where the keyring comes from (file, optional passphrase). REQ-11.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use zeroize::Zeroizing;

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::crypto::{Keyring, KeyringError};
use crate::policy::{Action, Permit};
use crate::store;
use crate::store::coordination::Job;

const REWRAP_BATCH: usize = 500;

/// How often a running server rereads the keyring file (`startup::watch_keyring`).
pub const KEYRING_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long the keyring file must have been unchanged before another process (the CLI) may
/// count DEKs to retire a KEK: three polls, so a server beside it has reloaded the keyring and
/// any create that wrapped its DEK under the old KEK just before the reload has committed.
pub const KEYRING_SETTLE: Duration = Duration::from_secs(3 * KEYRING_POLL_INTERVAL.as_secs());

/// Waits until the keyring file at `path` is at least `settle` old, or (when its mtime is in
/// the future, a skewed clock) unchanged for a whole `settle` of our own; calls `waiting` with
/// each wait. Returns at once for a file that has not changed for `settle`.
pub async fn wait_until_keyring_settled(
    path: &Path,
    settle: Duration,
    waiting: impl Fn(Duration),
) -> std::io::Result<()> {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified());
    let mut seen = mtime(path)?;
    loop {
        let age = SystemTime::now()
            .duration_since(seen)
            .unwrap_or(Duration::ZERO);
        if age >= settle {
            return Ok(());
        }
        let wait = settle - age;
        waiting(wait);
        tokio::time::sleep(wait).await;
        let now = mtime(path)?;
        if now == seen {
            return Ok(());
        }
        seen = now;
    }
}

/// Where the keyring is loaded from, and the passphrase if it is sealed (kept to reload it
/// after a rotation by another process; zeroized on drop).
#[derive(Default)]
pub struct KeySource {
    pub path: PathBuf,
    pub passphrase: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySource")
            .field("path", &self.path)
            .field("sealed", &self.passphrase.is_some())
            .finish()
    }
}

impl KeySource {
    pub fn load(&self) -> Result<Keyring, KeyringError> {
        Keyring::load_with(&self.path, || {
            self.passphrase
                .clone()
                .ok_or_else(|| KeyringError::PassphraseNeeded(self.path.clone()))
        })
    }
}

/// Progress of the running (or last) rotation, for `GET /v1/admin/keys` and metrics.
#[derive(Debug, Default)]
pub struct RotationProgress {
    pub running: AtomicBool,
    pub target_version: AtomicU32,
    pub total: AtomicU64,
    pub done: AtomicU64,
    /// Why the last rotation failed (cleared when the next one starts).
    pub error: std::sync::Mutex<Option<super::rotation::RotationError>>,
}

/// The right to run the rotation; releases it on drop (also if the rotation task panics). On
/// PostgreSQL it also holds the rotation's advisory lock, so no other node rotates meanwhile.
#[derive(Debug)]
pub struct RotationClaim {
    progress: std::sync::Arc<RotationProgress>,
    job: Option<store::coordination::JobLock>,
}

impl Drop for RotationClaim {
    fn drop(&mut self) {
        self.progress.running.store(false, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    pub target_version: u32,
    pub resumed: bool,
    pub rewrapped: u64,
    /// False when stopped early (`max_batches`); run again to resume.
    pub finished: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyStatus {
    pub active_version: u32,
    pub sealed: bool,
    pub versions: Vec<KekVersionStatus>,
    pub rotation: RotationStatus,
}

/// One KEK version and how many DEKs it wraps.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KekVersionStatus {
    pub version: u32,
    pub active: bool,
    pub deks: u64,
}

/// The running (or last) rotation of this server.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RotationStatus {
    pub running: bool,
    pub target_version: u32,
    pub done: u64,
    pub total: u64,
    /// Why the last rotation failed; `null` when it did not (or one runs now).
    pub error: Option<super::rotation::RotationError>,
}

impl Vault {
    pub fn rotation_progress(&self) -> &RotationProgress {
        &self.rotation
    }

    /// Claims the right to run the one rotation of this vault; `None` while another runs.
    /// The claim ends when the returned value is dropped.
    pub fn claim_rotation(&self) -> Option<RotationClaim> {
        self.rotation
            .running
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| RotationClaim {
                progress: self.rotation.clone(),
                job: None,
            })
    }

    /// Claims the one rotation of this vault and, on PostgreSQL, of every node on its database
    /// (the rotation's advisory lock). `Conflict` while one runs here or on another node.
    pub async fn claim_rotation_everywhere(&self) -> Result<RotationClaim, VaultError> {
        let mut claim = self
            .claim_rotation()
            .ok_or_else(|| VaultError::Conflict("a key rotation is already running".into()))?;
        match self.job_lock(Job::KeyRotation).await? {
            Some(lock) => {
                claim.job = Some(lock);
                Ok(claim)
            }
            None => {
                tracing::info!("a key rotation is running on another node");
                Err(VaultError::Conflict(
                    "a key rotation is already running on another node".into(),
                ))
            }
        }
    }

    /// Rotates: if a previous rotation did not finish (DEKs remain under older versions), it
    /// resumes it; otherwise it adds a KEK version first. `max_batches` stops early (tests of
    /// resumption). Reads and writes continue throughout: new DEKs use the new KEK at once.
    /// A second rotation while one runs is refused (`Conflict`).
    pub async fn rotate_keys(
        &self,
        caller: &Caller,
        max_batches: Option<usize>,
        progress: impl Fn(u64, u64),
    ) -> Result<RotationReport, VaultError> {
        let grant = self.authorize(caller, Action::AdminKeys, None).await?;
        let claim = self.claim_rotation_everywhere().await?;
        let result = self
            .rotate_inner(caller, grant.rules().to_vec(), max_batches, progress)
            .await;
        if let Err(e) = &result {
            self.rotation_failed(caller, grant.rules().to_vec(), e)
                .await;
        }
        drop(claim);
        result
    }

    /// [`Vault::rotate_keys`] under a claim taken beforehand (`POST /v1/admin/keys/rotate`
    /// claims before it answers 202, so a concurrent second call gets 409).
    pub async fn rotate_keys_claimed(
        &self,
        caller: &Caller,
        claim: RotationClaim,
        progress: impl Fn(u64, u64),
    ) -> Result<RotationReport, VaultError> {
        let grant = self.authorize(caller, Action::AdminKeys, None).await?;
        let result = self
            .rotate_inner(caller, grant.rules().to_vec(), None, progress)
            .await;
        if let Err(e) = &result {
            self.rotation_failed(caller, grant.rules().to_vec(), e)
                .await;
        }
        drop(claim);
        result
    }

    async fn rotate_inner(
        &self,
        caller: &Caller,
        rules: Vec<String>,
        max_batches: Option<usize>,
        progress: impl Fn(u64, u64),
    ) -> Result<RotationReport, VaultError> {
        self.clear_rotation_error();
        let keys = self.keys();
        let active = keys.active_kek_version();
        let counts = self.readers.run(store::dek_counts).await?;
        let pending: u64 = counts
            .iter()
            .filter(|(v, _)| *v != active)
            .map(|(_, n)| n)
            .sum();
        // On PostgreSQL a new KEK waits, inactive, until every live node holds it (the gate):
        // one an earlier rotation added whose gate never opened is taken up again.
        let gated = self.coordination.is_some();
        let waiting = keys
            .kek_versions()
            .into_iter()
            .filter(|v| gated && *v > active)
            .max();
        let resumed = pending > 0 || waiting.is_some();
        let target = if pending > 0 {
            active
        } else if let Some(v) = waiting {
            v
        } else {
            let mut k = self
                .key_source
                .load()
                .map_err(super::rotation::keyring_unreadable)?;
            let v = k
                .add_kek()
                .map_err(|e| VaultError::Internal(e.to_string()))?;
            if gated {
                k.activate(active)
                    .map_err(|e| VaultError::Internal(e.to_string()))?;
            }
            k.write_file(&self.key_source.path, false)
                .map_err(super::rotation::keyring_unreadable)?;
            self.install_keyring(k);
            v
        };
        let total: u64 = if pending > 0 {
            pending
        } else {
            counts.iter().map(|(_, n)| n).sum()
        };
        self.rotation.target_version.store(target, Ordering::SeqCst);
        self.rotation.total.store(total, Ordering::SeqCst);
        self.rotation.done.store(0, Ordering::SeqCst);
        let what = if resumed { "resumed" } else { "started" };
        let event = self.event(
            caller,
            Action::AdminKeys,
            None,
            vec![],
            Outcome::Allowed,
            Some(&format!("key rotation to v{target} {what}: {total} DEKs")),
            rules.clone(),
        );
        self.record(event).await?;
        if target != active {
            self.open_kek_gate(target).await?;
        }

        let permit = Permit::system_unchecked(crate::policy::SystemJob::KeyRotation);
        let mut rewrapped = 0u64;
        let mut batches = 0usize;
        let finished = loop {
            if max_batches.is_some_and(|m| batches >= m) {
                break false;
            }
            let p = permit.clone();
            let batch = self
                .readers
                .run(move |c| store::deks_not_under(c, &p, target, REWRAP_BATCH))
                .await?;
            if batch.is_empty() {
                break true;
            }
            let keys = self.keys();
            let mut updates = Vec::with_capacity(batch.len());
            for (gid, old) in batch {
                let dek = self.open_dek(&old, &gid)?;
                let new = keys
                    .wrap_dek(&dek, &gid)
                    .map_err(|e| VaultError::Internal(e.to_string()))?;
                updates.push((gid, old.kek_version, new));
            }
            let p = permit.clone();
            let n = self
                .writer
                .execute(move |c| {
                    let mut n = 0u64;
                    for (gid, old_version, new) in &updates {
                        n += u64::from(store::rewrap(c, &p, gid, *old_version, new)?);
                    }
                    Ok(n)
                })
                .await
                // No audit event rides in this transaction (the rotation's own event is
                // written when it ends), so a failed commit is a storage error.
                .map_err(VaultError::Store)?;
            rewrapped += n;
            batches += 1;
            self.rotation.done.fetch_add(n, Ordering::SeqCst);
            progress(self.rotation.done.load(Ordering::SeqCst), total);
        };
        let reason = format!(
            "key rotation to v{target} {}: {rewrapped} DEKs rewrapped",
            if finished { "finished" } else { "paused" }
        );
        let event = self.event(
            caller,
            Action::AdminKeys,
            None,
            vec![],
            Outcome::Allowed,
            Some(&reason),
            rules,
        );
        self.record(event).await?;
        Ok(RotationReport {
            target_version: target,
            resumed,
            rewrapped,
            finished,
        })
    }

    /// [`Vault::retire_kek`] from a process beside a running server (the CLI): a server rereads
    /// the keyring file only every [`KEYRING_POLL_INTERVAL`], and until then wraps new DEKs
    /// under the KEK a rotation just replaced. So unless the refusal needs no count (the active
    /// KEK, an unknown version), this first waits until the file has been unchanged for
    /// `settle`, reloads it, and only then counts the DEKs per version.
    pub async fn retire_kek_settled(
        &self,
        caller: &Caller,
        version: u32,
        settle: Duration,
        waiting: impl Fn(Duration),
    ) -> Result<(), VaultError> {
        let keys = self.keys();
        if version != keys.active_kek_version() && keys.kek_versions().contains(&version) {
            wait_until_keyring_settled(&self.key_source.path, settle, &waiting)
                .await
                .map_err(|e| VaultError::Internal(format!("keyring file: {e}")))?;
            self.reload_keyring()
                .map_err(|e| VaultError::Internal(e.to_string()))?;
            // PostgreSQL: the other nodes switch KEK at their heartbeat, not at this file.
            let deadline = std::time::Instant::now() + settle;
            while std::time::Instant::now() < deadline
                && !self
                    .nodes_wrapping_under(move |a| a == version)
                    .await?
                    .is_empty()
            {
                waiting(super::HEARTBEAT_INTERVAL);
                tokio::time::sleep(super::HEARTBEAT_INTERVAL).await;
            }
        }
        self.retire_kek(caller, version).await
    }

    /// Removes KEK `version` from the keyring, only if it is not active and no DEK uses it.
    /// The server's own path: its keyring is the one it wraps under. Another process must use
    /// [`Vault::retire_kek_settled`].
    pub async fn retire_kek(&self, caller: &Caller, version: u32) -> Result<(), VaultError> {
        let action = Action::AdminKeys;
        let grant = self.authorize(caller, action, None).await?;
        let counts = self.readers.run(store::dek_counts).await?;
        let in_use = counts
            .iter()
            .find(|(v, _)| *v == version)
            .map_or(0, |(_, n)| *n);
        // PostgreSQL: a node that has not switched yet would wrap new DEKs under it.
        let wrapping = self.nodes_wrapping_under(move |a| a == version).await?;
        let refusal = if version == self.keys().active_kek_version() {
            Some(format!("KEK v{version} is the active KEK"))
        } else if !wrapping.is_empty() {
            Some(format!(
                "KEK v{version} is still the active KEK of node(s) {}: retry in a few seconds",
                wrapping.join(", ")
            ))
        } else if in_use > 0 {
            Some(format!(
                "KEK v{version} still wraps {in_use} DEK(s): finish the rotation first"
            ))
        } else if !self.keys().kek_versions().contains(&version) {
            Some(format!("KEK v{version} is not in the keyring"))
        } else {
            None
        };
        if let Some(why) = refusal {
            let e = self.event(
                caller,
                action,
                None,
                vec![],
                Outcome::Denied,
                Some(&why),
                grant.rules().to_vec(),
            );
            self.record(e).await?;
            return Err(VaultError::Conflict(why));
        }
        let mut k = self
            .key_source
            .load()
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        // On PostgreSQL the file may still mark an older KEK active (a rotation adds the new
        // one inactive; the database says which is active): keep the one this node wraps
        // under, or the retirement would be refused, and the installed keyring would go back.
        let active = self.keys().active_kek_version();
        if k.active_kek_version() != active && k.kek_versions().contains(&active) {
            k.activate(active)
                .map_err(|e| VaultError::Internal(e.to_string()))?;
        }
        k.retire(version)
            .map_err(|e| VaultError::Conflict(e.to_string()))?;
        k.write_file(&self.key_source.path, false)
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        self.install_keyring(k);
        let e = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some(&format!("KEK v{version} retired")),
            grant.rules().to_vec(),
        );
        self.record(e).await
    }

    /// Versions, DEKs per version, and rotation progress.
    pub async fn key_status(&self, caller: &Caller) -> Result<KeyStatus, VaultError> {
        self.authorize(caller, Action::AdminKeys, None).await?;
        let counts = self.readers.run(store::dek_counts).await?;
        let keys = self.keys();
        let versions = keys
            .kek_versions()
            .into_iter()
            .map(|v| {
                let deks = counts
                    .iter()
                    .find(|(cv, _)| *cv == v)
                    .map_or(0, |(_, n)| *n);
                KekVersionStatus {
                    version: v,
                    active: v == keys.active_kek_version(),
                    deks,
                }
            })
            .collect();
        let r = &self.rotation;
        Ok(KeyStatus {
            active_version: keys.active_kek_version(),
            sealed: keys.is_sealed(),
            versions,
            rotation: RotationStatus {
                running: r.running.load(Ordering::SeqCst),
                target_version: r.target_version.load(Ordering::SeqCst),
                done: r.done.load(Ordering::SeqCst),
                total: r.total.load(Ordering::SeqCst),
                error: self.rotation_error(),
            },
        })
    }
}
