//! The single writer. One thread owns the write connection and commits in groups: it takes
//! every pending operation (up to `max_batch`), runs each inside its own savepoint in one
//! transaction, commits once (one fsync for the whole group), and only then answers each
//! caller. A failing operation rolls back its savepoint alone; a failing commit fails them all.
//! So an acknowledged write is durable, and an audit event commits with the change it records.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use rusqlite::Connection;

use super::checkpoint::{Checkpointer, Msg, ReadGate, WalBrake};
use super::health::{CommitHealth, Fault, WriterStats};
use super::StoreError;

type Completion = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;
/// Runs its operation on the connection, or, given `None` (the group transaction could not
/// begin), skips it; either way returns how to answer the caller once the group is settled.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;
/// Runs in every group transaction after its operations and before the commit (in its own
/// savepoint; a failure is logged and does not fail the group). The audit checkpoint every N
/// events uses it.
pub type PreCommitHook = Box<dyn FnMut(&Connection) -> Result<(), StoreError> + Send>;
/// Runs in every group transaction just before the commit; unlike a [`PreCommitHook`], its
/// failure fails the whole group (the erasure ledger's fsync: an erasure must never commit
/// before its ledger line is durable).
pub type CommitBarrier = Box<dyn FnMut() -> Result<(), StoreError> + Send>;

/// Handle to the writer thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    stats: Arc<WriterStats>,
    /// Set after a commit that deleted personal data: the checkpointer then empties the WAL.
    shredded: Arc<AtomicBool>,
    /// Wakes the checkpointer at once after such a commit.
    wake: Option<mpsc::Sender<Msg>>,
    /// The reader pool's gate, which the checkpointer closes for a moment to reset the WAL.
    gate: Arc<ReadGate>,
    health: Arc<CommitHealth>,
}

/// `storage.wal_max_bytes` by default: 256 MiB.
pub const DEFAULT_WAL_MAX_BYTES: u64 = 256 * 1024 * 1024;

impl Writer {
    /// Starts the writer thread on `conn`. The thread ends when every handle is dropped.
    pub fn start(
        conn: Connection,
        max_batch: usize,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        Self::start_with_hook(conn, max_batch, None)
    }

    /// Like [`start`](Self::start), with a hook run before each group commit.
    pub fn start_with_hook(
        conn: Connection,
        max_batch: usize,
        hook: Option<PreCommitHook>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        Self::start_with_hooks(conn, max_batch, hook, None)
    }

    /// Like [`start_with_hook`](Self::start_with_hook), plus a barrier that must succeed for a
    /// group to commit.
    pub fn start_with_hooks(
        conn: Connection,
        max_batch: usize,
        hook: Option<PreCommitHook>,
        barrier: Option<CommitBarrier>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        Self::start_with_options(conn, max_batch, hook, barrier, DEFAULT_WAL_MAX_BYTES)
    }

    /// Like [`start_with_hooks`](Self::start_with_hooks), with the WAL kept under
    /// `wal_max_bytes` (`storage.wal_max_bytes`).
    pub fn start_with_options(
        conn: Connection,
        max_batch: usize,
        hook: Option<PreCommitHook>,
        barrier: Option<CommitBarrier>,
        wal_max_bytes: u64,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let shredded = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(ReadGate::default());
        let health = Arc::new(CommitHealth::default());
        let checkpointer = Checkpointer::start(
            &conn,
            shredded.clone(),
            gate.clone(),
            health.clone(),
            wal_max_bytes,
        );
        let (checkpointer, wake) = match checkpointer {
            Some((c, w)) => (Some(c), Some(w)),
            None => (None, None),
        };
        // Only with the checkpointer: without it SQLite's own auto-checkpoint is on.
        let brake = checkpointer
            .as_ref()
            .and_then(|_| WalBrake::new(&conn, wal_max_bytes));
        let thread_health = health.clone();
        let thread_gate = gate.clone();
        let handle = std::thread::Builder::new()
            .name("guestvault-writer".into())
            .spawn(move || {
                let sinks = (&*thread_stats, &*thread_health, &*thread_gate);
                run(conn, rx, max_batch, (hook, barrier), brake, sinks);
                if let Some(c) = checkpointer {
                    c.stop();
                }
            })?;
        Ok((
            Self {
                tx,
                stats,
                shredded,
                wake,
                gate,
                health,
            },
            handle,
        ))
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Call after a committed write that deleted personal data (erasure, retention purge).
    /// The deleted rows' old page images are still in the WAL file, which SQLite only
    /// overwrites as it is reused; the checkpointer's next round (within half a second) copies
    /// the WAL into the database, where `secure_delete` has zeroed them, and truncates the WAL
    /// to nothing. It is woken at once, so this takes milliseconds even under load.
    pub fn note_shredded(&self) {
        self.shredded.store(true, Ordering::Release);
        if let Some(w) = &self.wake {
            let _ = w.send(Msg::Wake);
        }
    }

    /// The gate every pooled read passes through (give it to [`Readers::open_gated`]).
    ///
    /// [`Readers::open_gated`]: super::Readers::open_gated
    pub fn read_gate(&self) -> Arc<ReadGate> {
        self.gate.clone()
    }

    /// The outcome of the last group commits (readiness).
    pub fn health(&self) -> &CommitHealth {
        &self.health
    }

    /// Runs `op` inside a savepoint of the next group transaction and returns its result once
    /// that transaction has committed.
    pub async fn execute<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(op, true).await
    }

    /// Like [`execute`](Self::execute), without the savepoint: only for an operation that
    /// changes the database in at most one statement (SQLite undoes a failed statement by
    /// itself), such as appending one audit event. It spares the two extra statements per
    /// operation on the hot path of every audited read.
    pub async fn execute_atomic<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(op, false).await
    }

    async fn submit<T, F>(&self, op: F, savepoint: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |conn: Option<&Connection>| {
            // Without the group transaction the operation must not run: outside a transaction
            // its savepoint would commit on its own while the caller is told it failed.
            let result = match conn {
                Some(conn) if savepoint => in_savepoint(conn, op),
                Some(conn) => std::panic::catch_unwind(AssertUnwindSafe(|| op(conn)))
                    .unwrap_or(Err(StoreError::Panicked)),
                None => Err(StoreError::Other("not run".into())),
            };
            Box::new(move |commit: Result<(), Arc<StoreError>>| {
                let outcome = match (commit, result) {
                    (Ok(()), r) => r,
                    (Err(e), _) => Err(StoreError::Commit(e)),
                };
                let _ = done_tx.send(outcome);
            })
        });
        self.tx.send(job).map_err(|_| StoreError::WriterGone)?;
        done_rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Prepared once per connection: these run around every operation.
    let run = |sql: &str| -> Result<(), StoreError> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    run("SAVEPOINT op")?;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| op(conn)))
        .unwrap_or(Err(StoreError::Panicked));
    if result.is_err() {
        run("ROLLBACK TO op")?;
    }
    run("RELEASE op")?;
    result
}

fn run(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    max_batch: usize,
    (mut hook, mut barrier): (Option<PreCommitHook>, Option<CommitBarrier>),
    mut brake: Option<WalBrake>,
    (stats, health, gate): (&WriterStats, &CommitHealth, &ReadGate),
) {
    while let Ok(first) = rx.recv() {
        if let Some(b) = brake.as_mut() {
            b.before_group(&conn, gate);
        }
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // The group passes the gate like a read: the checkpointer resets the WAL between
        // groups, never waiting on SQLite's lock (the writer would win it every time).
        let _pass = gate.enter();
        let started = std::time::Instant::now();
        let begin = conn.execute_batch("BEGIN IMMEDIATE");
        let mut completions = Vec::with_capacity(jobs.len());
        if let Err(e) = begin {
            let e = Arc::new(StoreError::from(e));
            health.note_fault(Fault::of_store(&e));
            for job in jobs {
                // The op is not run; answer with the begin failure.
                job(None)(Err(e.clone()));
            }
            continue;
        }
        let n = jobs.len() as u64;
        for job in jobs {
            completions.push(job(Some(&conn)));
        }
        if let Some(hook) = hook.as_mut() {
            if let Err(e) = in_savepoint(&conn, |c| hook(c)) {
                tracing::warn!(error = %e, "pre-commit hook failed");
            }
        }
        let barrier_ok = match barrier.as_mut().map(|b| b()) {
            Some(Err(e)) => {
                tracing::error!(error = %e, "commit barrier failed; the group is rolled back");
                Err(e)
            }
            _ => Ok(()),
        };
        let commit = match barrier_ok
            .and_then(|()| conn.execute_batch("COMMIT").map_err(StoreError::from))
        {
            Ok(()) => {
                health.note_ok();
                Ok(())
            }
            Err(e) => {
                health.note_fault(Fault::of_store(&e));
                tracing::error!(error = %e, "group commit failed");
                let _ = conn.execute_batch("ROLLBACK");
                Err(Arc::new(e))
            }
        };
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.operations.fetch_add(n, Ordering::Relaxed);
        stats.commit_micros_total.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        crate::metrics::record_group_commit(n, started.elapsed());
        for completion in completions {
            completion(commit.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(&dir.path().join("w.db"), "full", "fp").unwrap();
        let (w, _h) = Writer::start(conn, 64).unwrap();
        (dir, w)
    }

    #[tokio::test]
    async fn a_failed_operation_rolls_back_only_itself() {
        let (_dir, w) = writer();
        let ok = w.execute(|c| {
            c.execute("INSERT INTO meta (key, value) VALUES ('a', '1')", [])?;
            Ok(())
        });
        let bad = w.execute(|c| {
            c.execute("INSERT INTO meta (key, value) VALUES ('b', '1')", [])?;
            Err::<(), _>(StoreError::Other("refused".into()))
        });
        let (ok, bad) = tokio::join!(ok, bad);
        assert!(ok.is_ok());
        assert!(bad.is_err());
        let keys: Vec<String> = w
            .execute(|c| {
                let mut s = c.prepare("SELECT key FROM meta WHERE key IN ('a','b')")?;
                let v = s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
                Ok(v)
            })
            .await
            .unwrap();
        assert_eq!(keys, vec!["a".to_string()]);
    }

    #[tokio::test]
    async fn an_operation_is_not_run_when_the_group_transaction_cannot_begin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = super::super::open_writer(&path, "full", "fp").unwrap();
        conn.busy_timeout(std::time::Duration::from_millis(50))
            .unwrap();
        let (w, _h) = Writer::start(conn, 64).unwrap();
        // Another process holds the write lock, so `BEGIN IMMEDIATE` times out.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let r = w
            .execute(move |_| {
                flag.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(r.is_err());
        assert!(
            !ran.load(Ordering::SeqCst),
            "the operation ran outside a transaction"
        );
        other.execute_batch("COMMIT").unwrap();
        assert!(w.execute(|_| Ok(1)).await.is_ok());
    }

    #[tokio::test]
    async fn a_panicking_operation_fails_alone() {
        let (_dir, w) = writer();
        let r = w
            .execute(|_| -> Result<(), StoreError> { panic!("boom") })
            .await;
        assert!(matches!(r, Err(StoreError::Panicked)));
        assert!(w.execute(|_| Ok(1)).await.is_ok());
    }

    #[tokio::test]
    async fn many_concurrent_writes_all_commit() {
        let (_dir, w) = writer();
        let mut handles = Vec::new();
        for i in 0..200 {
            let w = w.clone();
            handles.push(tokio::spawn(async move {
                w.execute(move |c| {
                    c.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, 'v')",
                        [format!("n{i}")],
                    )?;
                    Ok(())
                })
                .await
            }));
        }
        for h in handles {
            h.await.unwrap().unwrap();
        }
        let n: i64 = w
            .execute(|c| {
                Ok(
                    c.query_row("SELECT count(*) FROM meta WHERE key LIKE 'n%'", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .await
            .unwrap();
        assert_eq!(n, 200);
        assert!(w.stats().batches.load(Ordering::Relaxed) < 202);
    }

    #[tokio::test]
    async fn a_failing_barrier_rolls_back_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(&dir.path().join("b.db"), "full", "fp").unwrap();
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let f = fail.clone();
        let barrier: CommitBarrier = Box::new(move || {
            if f.load(Ordering::SeqCst) {
                Err(StoreError::Other("disk full".into()))
            } else {
                Ok(())
            }
        });
        let (w, _h) = Writer::start_with_hooks(conn, 64, None, Some(barrier)).unwrap();
        let r = w
            .execute(|c| {
                c.execute("INSERT INTO meta (key, value) VALUES ('x', '1')", [])?;
                Ok(())
            })
            .await;
        assert!(r.is_err(), "the caller is told its write failed");
        fail.store(false, Ordering::SeqCst);
        let n: i64 = w
            .execute(|c| {
                Ok(
                    c.query_row("SELECT count(*) FROM meta WHERE key = 'x'", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .await
            .unwrap();
        assert_eq!(n, 0, "nothing of the failed group was committed");
    }
}
