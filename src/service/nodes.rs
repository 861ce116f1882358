//! This vault as one node of several on a PostgreSQL database (issue 14, requirement 5;
//! docs/storage.md, "Coordination between nodes"): its heartbeat, the locks that keep each
//! background job on one node at a time, and the rotation gate, by which a new KEK becomes
//! active only once every live node holds it. On SQLite there is no [`Coordination`] and all
//! of this is skipped: one server per data dir already runs every job alone.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{Vault, VaultError};
use crate::crypto::Keyring;
use crate::store::coordination::{self as coord, Job, JobLock, NodeReport};
use crate::store::Location;

/// How often a node writes its heartbeat (`startup::heartbeat_timer`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// A node is live while its last heartbeat is at most this old (five missed beats): a node
/// that died stops holding a rotation back after this long.
pub const NODE_LIVE_SECS: f64 = 10.0;
/// How long a rotation waits for every live node to hold its new KEK (the operator copies the
/// keyring file to each) before it fails; run it again to resume.
pub const KEK_GATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How often the gate looks again, and how often it logs whom it waits for.
const GATE_POLL: Duration = Duration::from_millis(500);
const GATE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Marks a rotation's failure as the gate's: a live node did not load the new KEK in time.
pub(super) const KEK_NOT_ON_EVERY_NODE: &str = "kek_not_on_every_node";

/// This node among the others (PostgreSQL only).
#[derive(Debug)]
pub struct Coordination {
    /// Random per process: a restarted node is a new node, and its old row expires.
    node_id: String,
    listen: String,
    /// Where session locks open their own connection.
    location: Location,
    /// The vault's active KEK as the database last said (0: not read yet).
    db_active: AtomicU32,
    /// Set by the first heartbeat: this process serves (a CLI process never beats, so it is
    /// never counted by the gate).
    beating: AtomicBool,
    gate_timeout: Duration,
}

impl Coordination {
    /// `active_kek`: the vault's active KEK as the database said at start.
    pub fn new(location: Location, listen: &str, active_kek: Option<u32>) -> Self {
        Self {
            node_id: format!("node-{}", uuid::Uuid::new_v4().simple()),
            listen: listen.to_string(),
            location,
            db_active: AtomicU32::new(active_kek.unwrap_or(0)),
            beating: AtomicBool::new(false),
            gate_timeout: KEK_GATE_TIMEOUT,
        }
    }

    /// A shorter wait for the gate (tests).
    pub fn with_gate_timeout(mut self, timeout: Duration) -> Self {
        self.gate_timeout = timeout;
        self
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }
}

impl Vault {
    /// Makes this vault a node that coordinates with the others on its database.
    pub fn with_coordination(mut self, c: Coordination) -> Self {
        self.coordination = Some(std::sync::Arc::new(c));
        self
    }

    /// This node's id in `nodes` (PostgreSQL only).
    pub fn node_id(&self) -> Option<&str> {
        self.coordination.as_deref().map(Coordination::node_id)
    }

    /// Takes `job`'s lock for a job of many units; `None` while another node runs it. Without
    /// coordination (SQLite) it is always granted.
    pub(super) async fn job_lock(&self, job: Job) -> Result<Option<JobLock>, VaultError> {
        match &self.coordination {
            None => Ok(Some(JobLock::Local)),
            Some(c) => Ok(JobLock::try_take(&c.location, job).await?),
        }
    }

    /// The KEK the database says is active, once known (PostgreSQL only).
    fn db_active_kek(&self) -> Option<u32> {
        let c = self.coordination.as_deref()?;
        Some(c.db_active.load(Ordering::SeqCst)).filter(|v| *v > 0)
    }

    /// Makes a keyring just read from the file follow the database's active KEK: a node wraps
    /// new DEKs only under the KEK every live node holds. A file without that KEK is refused
    /// (it is older than the vault's keys: copy the current keyring to this node).
    pub(super) fn follow_database_kek(&self, mut k: Keyring) -> Result<Keyring, VaultError> {
        if let Some(v) = self.db_active_kek() {
            if k.activate(v).is_err() {
                return Err(VaultError::Internal(format!(
                    "the keyring file lacks KEK v{v}, the vault's active KEK: copy the current \
                     keyring to this node"
                )));
            }
        }
        Ok(k)
    }

    /// Records the database's active KEK and switches this node's keyring to it when it
    /// differs (the file is read again, so the keyring swapped in is the file's own).
    fn adopt_database_kek(&self, active: Option<u32>) -> Result<(), VaultError> {
        let (Some(c), Some(v)) = (self.coordination.as_deref(), active) else {
            return Ok(());
        };
        c.db_active.store(v, Ordering::SeqCst);
        let keys = self.keys();
        if keys.active_kek_version() == v {
            return Ok(());
        }
        if !keys.kek_versions().contains(&v) {
            // Perhaps the file was copied here since: read it before giving up. Until then this
            // node keeps wrapping under a KEK every node holds, and cannot open DEKs under `v`.
            return self.reload_keyring();
        }
        let k = self
            .key_source
            .load()
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        let k = self.follow_database_kek(k)?;
        tracing::info!(
            kek = v,
            "this node now wraps new DEKs under the vault's active KEK"
        );
        self.install_keyring(k);
        Ok(())
    }

    fn report(&self, c: &Coordination) -> NodeReport {
        let keys = self.keys();
        NodeReport {
            node_id: c.node_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            keyring_fingerprint: keys.fingerprint().to_string(),
            kek_versions: keys.kek_versions(),
            active_kek: keys.active_kek_version(),
            listen: c.listen.clone(),
        }
    }

    /// Writes this node's heartbeat and follows the database's active KEK. At start it fails
    /// when this node's keyring lacks that KEK; later that is logged (the node keeps serving
    /// what it can read and retries at the next beat). Nothing without coordination.
    pub async fn node_heartbeat(&self) -> Result<(), VaultError> {
        let Some(c) = self.coordination.clone() else {
            return Ok(());
        };
        let report = self.report(&c);
        let active = self
            .writer
            .execute(move |conn| coord::heartbeat(conn, &report))
            .await?;
        c.beating.store(true, Ordering::SeqCst);
        self.adopt_database_kek(active)
    }

    /// Removes this node's row at a clean shutdown, so no rotation waits for it.
    pub async fn leave(&self) {
        let Some(c) = self.coordination.clone() else {
            return;
        };
        let id = c.node_id.clone();
        if let Err(e) = self
            .writer
            .execute(move |conn| coord::remove_node(conn, &id))
            .await
        {
            tracing::warn!(error = %e, "could not remove this node's heartbeat row");
        }
    }

    /// The rotation gate: waits until every live node holds KEK `version`, then activates it
    /// in the database and on this node, then waits (bounded, best effort) until every live
    /// node wraps under it, so the rewrap that follows leaves no DEK behind. Without
    /// coordination it returns at once.
    pub(super) async fn open_kek_gate(&self, version: u32) -> Result<(), VaultError> {
        let Some(c) = self.coordination.clone() else {
            return Ok(());
        };
        let started = Instant::now();
        let mut logged: Option<Instant> = None;
        loop {
            // This node's own row must show the new KEK before the gate counts it.
            if c.beating.load(Ordering::SeqCst) {
                self.node_heartbeat().await?;
            }
            let by = c.node_id.clone();
            let lacking = self
                .writer
                .execute(move |conn| coord::try_activate_kek(conn, version, NODE_LIVE_SECS, &by))
                .await?;
            if lacking.is_empty() {
                break;
            }
            if started.elapsed() >= c.gate_timeout {
                return Err(VaultError::Internal(format!(
                    "{KEK_NOT_ON_EVERY_NODE}: node(s) {} did not load KEK v{version} within {}s",
                    lacking.join(", "),
                    c.gate_timeout.as_secs()
                )));
            }
            if logged.is_none_or(|t| t.elapsed() >= GATE_LOG_EVERY) {
                logged = Some(Instant::now());
                tracing::info!(
                    kek = version,
                    waiting_for = %lacking.join(", "),
                    "KEK not active until every live node holds it: copy the keyring file to those nodes"
                );
            }
            tokio::time::sleep(GATE_POLL).await;
        }
        tracing::info!(
            kek = version,
            "every live node holds the new KEK: activated"
        );
        self.adopt_database_kek(Some(version))?;
        // This node's row says so at once (a retirement right after checks the rows).
        if c.beating.load(Ordering::SeqCst) {
            self.node_heartbeat().await?;
        }
        // The other nodes switch at their next heartbeat.
        let deadline = Instant::now() + HEARTBEAT_INTERVAL * 3;
        while Instant::now() < deadline {
            let behind = self
                .nodes_wrapping_under(move |active| active != version)
                .await?;
            if behind.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(GATE_POLL).await;
        }
        tracing::warn!(
            kek = version,
            "some live node has not switched to the new KEK yet; DEKs it wraps meanwhile are \
             left for the next rotation run"
        );
        Ok(())
    }

    /// The live nodes whose active KEK matches `pred`.
    pub(super) async fn nodes_wrapping_under(
        &self,
        pred: impl Fn(u32) -> bool + Send + 'static,
    ) -> Result<Vec<String>, VaultError> {
        if self.coordination.is_none() {
            return Ok(Vec::new());
        }
        let nodes = self
            .readers
            .run(|conn| coord::live_nodes(conn, NODE_LIVE_SECS))
            .await?;
        Ok(nodes
            .into_iter()
            .filter(|n| pred(n.report.active_kek))
            .map(|n| n.report.node_id)
            .collect())
    }
}
