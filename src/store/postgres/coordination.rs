//! Coordination between the vault nodes on one database (docs/storage.md, "Coordination between
//! nodes"): the advisory locks that keep each background job on one node at a time, the nodes'
//! heartbeats, and the rotation gate that activates a new KEK only once every live node holds
//! it.
//!
//! Two kinds of lock, after how long a job runs:
//! - a job that is one transaction (a signed checkpoint) takes [`try_xact_lock`] inside its
//!   writer unit: the lock ends with the group's commit or rollback, and nothing has to be
//!   kept;
//! - a job of many writer units (a retention sweep in batches, a rotation's rewrap) holds a
//!   [`SessionLock`]: a session-level advisory lock on a connection of its own, owned by a
//!   thread for as long as the job runs. If the node dies, its session ends and the lock with
//!   it, so another node's next turn takes the job over.
//!
//! The rotation gate and the heartbeats share one more lock, [`KEK_GATE_LOCK`]: a heartbeat
//! takes it shared inside its writer unit, an activation takes it exclusively. So a node that
//! registers while a KEK is being activated is either seen by the gate (and holds it back if it
//! lacks the KEK) or sees the activation (and adopts the KEK, or refuses to start without it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use super::conn::PgConn;
use crate::store::coordination::{Job, NodeReport, NodeRow};
use crate::store::StoreError;

/// Serialises the rotation gate's check and activation against the nodes' heartbeats
/// ("GVKEKGAT" in ASCII; [`super::MIGRATION_LOCK`] is "GVMIGRAT").
pub const KEK_GATE_LOCK: i64 = 0x4756_4b45_4b47_4154;

/// The advisory lock id of each job: an arbitrary constant, the same on every node, spelling
/// the job in ASCII so `pg_locks.objid` is recognisable.
pub fn lock_id(job: Job) -> i64 {
    match job {
        // "GVCHKPNT"
        Job::Checkpoint => 0x4756_4348_4b50_4e54,
        // "GVRETENT"
        Job::RetentionSweep => 0x4756_5245_5445_4e54,
        // "GVROTATE"
        Job::KeyRotation => 0x4756_524f_5441_5445,
    }
}

/// How often the thread holding a [`SessionLock`] checks that its session is still there.
const SESSION_KEEPALIVE: Duration = Duration::from_secs(1);

/// Takes `job`'s transaction-level advisory lock if no other transaction holds it; `false`
/// when another node's (or this node's) transaction does. Call it inside a transaction (a
/// writer unit): it is released when that transaction ends.
pub fn try_xact_lock(conn: &PgConn, job: Job) -> Result<bool, StoreError> {
    let row = conn.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&lock_id(job)])?;
    Ok(row.try_get(0)?)
}

fn sql_version(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn version_of(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Writes this node's heartbeat (its row in `nodes`, created on the first beat) and returns the
/// vault's active KEK as the database records it (`None` before any was recorded). Call it
/// inside a transaction (a writer unit): it holds [`KEK_GATE_LOCK`] shared until the commit, so
/// what it reports and what it returns are consistent with any activation.
pub fn heartbeat(conn: &PgConn, node: &NodeReport) -> Result<Option<u32>, StoreError> {
    conn.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&KEK_GATE_LOCK])?;
    let versions: Vec<i32> = node.kek_versions.iter().copied().map(sql_version).collect();
    conn.execute(
        "INSERT INTO nodes (node_id, version, keyring_fingerprint, kek_versions, active_kek, listen)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (node_id) DO UPDATE SET
             version = excluded.version,
             keyring_fingerprint = excluded.keyring_fingerprint,
             kek_versions = excluded.kek_versions,
             active_kek = excluded.active_kek,
             listen = excluded.listen,
             last_seen = clock_timestamp()",
        &[
            &node.node_id,
            &node.version,
            &node.keyring_fingerprint,
            &versions,
            &sql_version(node.active_kek),
            &node.listen,
        ],
    )?;
    conn.execute(
        "DELETE FROM nodes WHERE last_seen < clock_timestamp() - interval '1 hour'",
        &[],
    )?;
    // A node that died and never came back: forgotten an hour after its last beat.
    active_kek(conn)
}

/// The vault's active KEK as the database records it: the greatest activated version.
pub fn active_kek(conn: &PgConn) -> Result<Option<u32>, StoreError> {
    let row = conn.query_one("SELECT max(version) FROM kek_activations", &[])?;
    Ok(row.try_get::<_, Option<i32>>(0)?.map(version_of))
}

/// The active KEK at start: the database's, or, on a database where none is recorded yet (a
/// new one, or one from before this table), `keyring_active`, which is then recorded. Runs in
/// a transaction of its own (call it on a connection outside any, such as the start's probe).
pub fn kek_in_force(
    conn: &PgConn,
    keyring_active: u32,
    by: &str,
) -> Result<Option<u32>, StoreError> {
    conn.batch("BEGIN")?;
    let result = (|| {
        conn.execute("SELECT pg_advisory_xact_lock($1)", &[&KEK_GATE_LOCK])?;
        conn.execute(
            "INSERT INTO kek_activations (version, activated_by)
             SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM kek_activations)",
            &[&sql_version(keyring_active), &by],
        )?;
        active_kek(conn)
    })();
    match result {
        Ok(v) => {
            conn.batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Removes this node's row (a clean shutdown), so a rotation does not wait for it.
pub fn remove_node(conn: &PgConn, node_id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM nodes WHERE node_id = $1", &[&node_id])?;
    Ok(())
}

/// The nodes whose last heartbeat is at most `live_secs` old, by id.
pub fn live_nodes(conn: &PgConn, live_secs: f64) -> Result<Vec<NodeRow>, StoreError> {
    conn.query(
        "SELECT node_id, version, keyring_fingerprint, kek_versions, active_kek, listen,
                to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                extract(epoch FROM clock_timestamp() - last_seen)::FLOAT8
         FROM nodes
         WHERE last_seen > clock_timestamp() - make_interval(secs => $1::FLOAT8)
         ORDER BY node_id",
        &[&live_secs],
    )?
    .iter()
    .map(|r| {
        let versions: Vec<i32> = r.try_get(3)?;
        Ok(NodeRow {
            report: NodeReport {
                node_id: r.try_get(0)?,
                version: r.try_get(1)?,
                keyring_fingerprint: r.try_get(2)?,
                kek_versions: versions.into_iter().map(version_of).collect(),
                active_kek: version_of(r.try_get(4)?),
                listen: r.try_get(5)?,
            },
            started_at: r.try_get(6)?,
            seen_secs_ago: r.try_get(7)?,
        })
    })
    .collect()
}

/// The rotation gate: activates KEK `version` if every node live within `live_secs` holds it,
/// and returns the ids of the live nodes that do not (nothing activated then). Call it inside
/// a transaction (a writer unit): it holds [`KEK_GATE_LOCK`] exclusively until the commit, so
/// no heartbeat lands between the check and the activation. The active KEK only moves forward:
/// activating a version below the greatest changes nothing.
pub fn try_activate_kek(
    conn: &PgConn,
    version: u32,
    live_secs: f64,
    by: &str,
) -> Result<Vec<String>, StoreError> {
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&KEK_GATE_LOCK])?;
    let v = sql_version(version);
    let lacking: Vec<String> = conn
        .query(
            "SELECT node_id FROM nodes
             WHERE last_seen > clock_timestamp() - make_interval(secs => $1::FLOAT8)
               AND NOT ($2 = ANY (kek_versions))
             ORDER BY node_id",
            &[&live_secs, &v],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if lacking.is_empty() {
        conn.execute(
            "INSERT INTO kek_activations (version, activated_by) VALUES ($1, $2)
             ON CONFLICT (version) DO NOTHING",
            &[&v, &by],
        )?;
    }
    Ok(lacking)
}

/// A session-level advisory lock held for a job that spans many transactions, on a connection
/// of its own that a thread keeps open (and checks every [`SESSION_KEEPALIVE`]) until the value
/// is dropped. If the connection is lost the lock is gone with it (the server releases a dead
/// session's locks, and another node may take the job): [`SessionLock::is_held`] then answers
/// `false` and the job stops at its next step.
///
/// Dropping the value unlocks before it returns (bounded by [`UNLOCK_WAIT`]): a job taken
/// right after, by this process or another node, must not find the lock still held.
#[derive(Debug)]
pub struct SessionLock {
    lost: Arc<AtomicBool>,
    pid: i32,
    /// Dropping it tells the thread to unlock and close the connection.
    release: Option<mpsc::Sender<()>>,
    /// Closed by the thread once the lock is released (or its session gone).
    unlocked: mpsc::Receiver<()>,
}

/// How long dropping a [`SessionLock`] waits for the unlock to reach the server.
const UNLOCK_WAIT: Duration = Duration::from_secs(2);

impl Drop for SessionLock {
    fn drop(&mut self) {
        self.release.take();
        // Disconnected once the thread has unlocked and ended.
        let _ = self.unlocked.recv_timeout(UNLOCK_WAIT);
    }
}

impl SessionLock {
    /// Opens a connection with `open` and takes `job`'s lock there if no other session holds
    /// it; `None` when one does. Blocks until the server answered (call it off the async
    /// runtime).
    pub fn try_take(
        open: impl FnOnce() -> Result<PgConn, StoreError> + Send + 'static,
        job: Job,
    ) -> Result<Option<Self>, StoreError> {
        let (answer_tx, answer_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (unlocked_tx, unlocked_rx) = mpsc::channel::<()>();
        let lost = Arc::new(AtomicBool::new(false));
        let thread_lost = lost.clone();
        let id = lock_id(job);
        std::thread::Builder::new()
            .name(format!("gv-lock-{}", job.as_str()))
            .spawn(move || {
                let conn = match open() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = answer_tx.send(Err(e));
                        return;
                    }
                };
                let taken = conn
                    .query_one("SELECT pg_try_advisory_lock($1), pg_backend_pid()", &[&id])
                    .and_then(|r| Ok((r.try_get::<_, bool>(0)?, r.try_get::<_, i32>(1)?)));
                let pid = match taken {
                    Ok((true, pid)) => pid,
                    Ok((false, _)) => {
                        let _ = answer_tx.send(Ok(None));
                        return;
                    }
                    Err(e) => {
                        let _ = answer_tx.send(Err(e));
                        return;
                    }
                };
                if answer_tx.send(Ok(Some(pid))).is_err() {
                    return; // the caller is gone: closing the connection releases the lock
                }
                hold(&conn, id, &release_rx, &thread_lost);
                drop(unlocked_tx);
            })
            .map_err(StoreError::Io)?;
        let answer = answer_rx
            .recv()
            .map_err(|_| StoreError::Other("the lock thread ended without answering".into()))?;
        Ok(answer?.map(|pid| Self {
            lost,
            pid,
            release: Some(release_tx),
            unlocked: unlocked_rx,
        }))
    }

    /// Whether the lock is still held: `false` once its session was found gone.
    pub fn is_held(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
    }

    /// The server process of the session that holds the lock (`pg_locks.pid`).
    pub fn backend_pid(&self) -> i32 {
        self.pid
    }
}

/// The lock thread's life after taking the lock: wait for the release, checking the session.
fn hold(conn: &PgConn, id: i64, release: &mpsc::Receiver<()>, lost: &AtomicBool) {
    loop {
        match release.recv_timeout(SESSION_KEEPALIVE) {
            Err(RecvTimeoutError::Timeout) => {
                if conn.is_closed() || conn.query_one("SELECT 1", &[]).is_err() {
                    lost.store(true, Ordering::SeqCst);
                    tracing::warn!(lock = id, "lost the session holding a job lock");
                    return;
                }
            }
            // Released (or the holder is gone): unlock; closing the session would too.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = conn.execute("SELECT pg_advisory_unlock($1)", &[&id]);
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "coordination_tests.rs"]
mod tests;
