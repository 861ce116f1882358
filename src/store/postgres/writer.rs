//! The PostgreSQL writer of one node: one thread, one connection, group commit. It takes every
//! pending unit (up to `max_batch`), runs each in a savepoint of one transaction, runs the
//! commit barrier (the erasure ledger's fsync), then appends the group's audit events to the
//! shared chain under the chain head's row lock ([`super::audit::queue_pending`]), runs the
//! pre-commit hook (the signed checkpoint every N events) and commits once
//! (`synchronous_commit = on`: the commit returns once the WAL record is durable, and on a
//! synchronous standby too when the server is set up so). Only then is each caller answered.
//!
//! The head's lock is taken last and held only from the append to the commit, so other nodes'
//! groups wait on it only for that long: one round trip (the insert goes out with the
//! `COMMIT`) unless a checkpoint is due. [`WriterStats`] counts that hold time.
//!
//! A connection lost mid-run fails the group (its callers get an error, nothing of it is
//! committed) and the next group opens a new connection; until one can be opened, units are
//! not run and their callers are told the database is unavailable.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use super::conn::PgConn;
use crate::audit::checkpoint::ChainTip;
use crate::audit::NewEvent;
use crate::store::health::{CommitHealth, Fault, WriterStats};
use crate::store::StoreError;

type Completion = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;
type Job = Box<dyn FnOnce(Option<&PgConn>) -> Completion + Send>;
/// Opens a connection (at start and after one was lost).
pub type Connect = Box<dyn Fn() -> Result<PgConn, StoreError> + Send>;
/// A [`Connect`] shared by the writer threads.
pub type SharedConnect = Arc<Mutex<Connect>>;
/// Runs after the group's audit events are linked, before the commit, with the head the group
/// moved to (only for a group that appended events); a failure is logged and rolls back only
/// its own savepoint.
pub type PreCommitHook = Box<dyn FnMut(&PgConn, &ChainTip) -> Result<(), StoreError> + Send>;
/// Runs just before the commit; its failure fails the whole group.
pub type CommitBarrier = Box<dyn FnMut() -> Result<(), StoreError> + Send>;

/// The tables whose dead tuples may hold shredded personal data (ciphertext, wrapped DEKs,
/// blind-index digests) after an erasure: vacuumed after commits that shredded (at most once
/// per [`VACUUM_SPACING`]).
pub const SHREDDED_TABLES: &[&str] = &[
    "guest_keys",
    "guest_fields",
    "blind_index",
    "stays",
    "guest_field_history",
    "correction_requests",
    "consents",
    "legal_holds",
];

/// The answer to one pooled event's caller.
type EventDone = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// Audit events that belong to no unit of work (the record of a read or a refusal): any
/// group's transaction may carry them. Each waits here with its caller's answer; the writer
/// that next locks the chain head takes them all into its insert (late binding). Under
/// contention for the head, one hold then carries every such event that queued while other
/// groups (of this node or another) held it, instead of each writer committing a small group
/// of its own behind the others.
#[derive(Debug, Default)]
struct EventPool {
    next_id: AtomicU64,
    waiting: Mutex<Vec<(u64, NewEvent, EventDone)>>,
}

impl EventPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, NewEvent, EventDone)>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, event: NewEvent, done: EventDone) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, event, done));
        id
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn take_all(&self) -> Vec<(u64, NewEvent, EventDone)> {
        std::mem::take(&mut *self.lock())
    }

    /// Answers event `id` with `error` if no group has taken it yet (its wake-up group failed
    /// before it reached the head).
    fn fail(&self, id: u64, error: &Arc<StoreError>) {
        let mut waiting = self.lock();
        if let Some(at) = waiting.iter().position(|(i, _, _)| *i == id) {
            let (_, _, done) = waiting.swap_remove(at);
            let _ = done.send(Err(StoreError::Commit(error.clone())));
        }
    }
}

/// How many of a node's writer connections may wait for or hold the chain head's lock at
/// once: one. The node's other connections keep taking pending units into their open group
/// while they wait for the slot (see [`Queue::enter_head`]), instead of sealing a small group
/// and queueing it at the head: under contention (another node holding the head) groups grow
/// rather than multiply.
///
/// Two slots (one holding, one queued behind it in PostgreSQL, so the lock passed on without
/// a round trip) measured slower on one node and on two, on this 2-core machine where the
/// database shares the cores: the queued connection's group was sealed while it waited, so
/// commits were smaller and more numerous (BENCHMARKS.md, stop 26: one node +7% create, +16%
/// read, +10% search + read; two nodes +3%, +7%, +6%).
pub const HEAD_SLOTS: usize = 1;

/// While other nodes commit to the chain between this node's commits, this node locks the
/// head at most once per this spacing: its next group stays open (taking the units that
/// arrive, up to the batch limit) until this long after its previous commit ended.
///
/// Why: with several nodes on one head, each node's groups carry only its own share of the
/// requests, so the nodes together make more, smaller commits than one node would for the
/// same load, and each commit costs the 2 cores shared by the database and the nodes (and a
/// hold of the one head). Two nodes' requests were then 10–25% slower than one node's; held
/// open, the groups are again about as large as one node's (BENCHMARKS.md, stop 27). A
/// node's requests wait at most this much longer; a node whose commits are further apart
/// than this (light load) does not wait at all, nor does a node alone on the chain.
pub const CONTENDED_SPACING: std::time::Duration = std::time::Duration::from_millis(8);

/// How many of a node's last 16 commits must have found the chain moved on by another writer
/// (another node, or this node's background work) for [`CONTENDED_SPACING`] to apply.
const CONTENDED_OF_16: u32 = 8;

/// The node's pending units and its head slots, shared by its writer threads.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    changed: std::sync::Condvar,
    contention: Mutex<Contention>,
}

/// Whether other nodes append to the chain between this node's commits, and when this node's
/// last commit ended: see [`CONTENDED_SPACING`].
#[derive(Debug, Default)]
struct Contention {
    /// The seq this node's last commit moved the head to.
    last_own_seq: u64,
    /// One bit per recent commit of this node: set when the head had moved on since its
    /// previous one (another node, or this node's background work, appended between them).
    recent: u16,
    /// When this node's last commit ended.
    last_end: Option<Instant>,
}

#[derive(Default)]
struct QueueState {
    jobs: std::collections::VecDeque<Job>,
    /// Writer threads between asking for the head's lock and their group's end.
    at_head: usize,
    /// The slot holder is holding its group open: the other writers leave new units to it.
    delaying: bool,
    /// Writer threads still running (a job pushed when none is gets `WriterGone`).
    alive: usize,
    /// Every handle is gone: the threads end once the queue is empty.
    closed: bool,
}

impl Contention {
    /// Records a commit of this node that found the head at `head_before` and moved it to
    /// `last_seq`, ending at `now`.
    fn note_commit(&mut self, head_before: u64, last_seq: u64, now: Instant) {
        let foreign = self.last_own_seq != 0 && head_before != self.last_own_seq;
        self.recent = (self.recent << 1) | u16::from(foreign);
        self.last_own_seq = last_seq;
        self.last_end = Some(now);
    }

    /// Whether at least [`CONTENDED_OF_16`] of this node's last 16 commits found the head
    /// moved on by someone else.
    fn contended(&self) -> bool {
        self.recent.count_ones() >= CONTENDED_OF_16
    }

    /// When this node's next group may lock the head: [`CONTENDED_SPACING`] after its last
    /// commit ended, if the chain is contended (`None`: at once).
    fn hold_open_until(&self) -> Option<Instant> {
        if !self.contended() {
            return None;
        }
        self.last_end.map(|t| t + CONTENDED_SPACING)
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait<'a>(
        &self,
        guard: std::sync::MutexGuard<'a, QueueState>,
    ) -> std::sync::MutexGuard<'a, QueueState> {
        self.changed
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `job`, or gives it back if no writer thread is left to run it.
    fn push(&self, job: Job) -> Result<(), Job> {
        let mut s = self.lock();
        if s.alive == 0 || s.closed {
            return Err(job);
        }
        s.jobs.push_back(job);
        drop(s);
        self.changed.notify_all();
        Ok(())
    }

    /// The next group's units (at least one, at most `max_batch`), or `None` once every handle
    /// is gone and nothing is left.
    fn next_group(&self, max_batch: usize) -> Option<Vec<Job>> {
        let mut s = self.lock();
        loop {
            if !s.jobs.is_empty() {
                let n = s.jobs.len().min(max_batch.max(1));
                return Some(s.jobs.drain(..n).collect());
            }
            if s.closed {
                return None;
            }
            s = self.wait(s);
        }
    }

    /// Takes up to `room` pending units and runs them in the caller's group (`absorb`), with
    /// the queue unlocked meanwhile; returns the queue locked again.
    fn absorb_pending<'a>(
        &'a self,
        mut s: std::sync::MutexGuard<'a, QueueState>,
        room: &mut usize,
        absorb: &mut impl FnMut(Vec<Job>),
    ) -> std::sync::MutexGuard<'a, QueueState> {
        let n = s.jobs.len().min(*room);
        let more: Vec<Job> = s.jobs.drain(..n).collect();
        drop(s);
        *room -= n;
        absorb(more);
        self.lock()
    }

    /// Waits for a head slot. While none is free and the group has room, runs more pending
    /// units in it (`absorb`), so the wait grows the group instead of idling.
    fn enter_head(&self, room: usize, mut absorb: impl FnMut(Vec<Job>)) -> HeadSlot<'_> {
        let mut room = room;
        let mut s = self.lock();
        loop {
            if s.at_head < HEAD_SLOTS {
                s.at_head += 1;
                return HeadSlot(self);
            }
            if room > 0 && !s.jobs.is_empty() && !s.delaying {
                s = self.absorb_pending(s, &mut room, &mut absorb);
                continue;
            }
            s = self.wait(s);
        }
    }

    /// Holds the slot holder's group open until `deadline` (or until it has no room left),
    /// running the units that arrive in it (`absorb`); meanwhile the node's other connections
    /// leave new units to it ([`CONTENDED_SPACING`]).
    fn absorb_until(&self, deadline: Instant, room: usize, mut absorb: impl FnMut(Vec<Job>)) {
        let mut room = room;
        let mut s = self.lock();
        s.delaying = true;
        loop {
            let now = Instant::now();
            if room == 0 || now >= deadline || s.closed {
                break;
            }
            if !s.jobs.is_empty() {
                s = self.absorb_pending(s, &mut room, &mut absorb);
                continue;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        s.delaying = false;
        drop(s);
        self.changed.notify_all();
    }

    fn contention(&self) -> std::sync::MutexGuard<'_, Contention> {
        self.contention
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn thread_ended(&self) {
        self.lock().alive -= 1;
    }
}

/// A writer thread's place at the chain head, given back when its group has ended (however
/// it ended).
struct HeadSlot<'a>(&'a Queue);

impl Drop for HeadSlot<'_> {
    fn drop(&mut self) {
        self.0.lock().at_head -= 1;
        self.0.changed.notify_all();
    }
}

/// Closes the queue when the last [`Writer`] handle is dropped.
#[derive(Debug)]
struct Closer(Arc<Queue>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.changed.notify_all();
    }
}

/// Handle to the writer thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: Arc<Queue>,
    _closer: Arc<Closer>,
    pool: Arc<EventPool>,
    stats: Arc<WriterStats>,
    health: Arc<CommitHealth>,
    shredded: Arc<AtomicBool>,
    vacuum: Option<mpsc::Sender<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn` (already migrated), reconnecting with `connect`, and
    /// a vacuum thread with a connection of its own when `vacuum` is given.
    pub fn start(
        conn: PgConn,
        connect: Connect,
        max_batch: usize,
        hook: Option<PreCommitHook>,
        barrier: Option<CommitBarrier>,
        vacuum: Option<Connect>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let connect: SharedConnect = Arc::new(Mutex::new(connect));
        Self::start_many(conn, connect, 1, max_batch, hook, barrier, vacuum)
    }

    /// Like [`start`](Self::start) with `writers` connections (`storage.postgres_writers`),
    /// each a thread that takes the next pending units and commits them as its own group. At
    /// most [`HEAD_SLOTS`] of them wait for or hold the chain head at once; the others keep
    /// adding pending units to their groups until a slot is free.
    /// Groups of different connections run their units at the same time; they meet only at
    /// the chain head's row lock, which each takes last, so the units' row locks never wait
    /// on it in a cycle. The pre-commit hook and the commit barrier run under that lock, so
    /// sharing them behind a mutex costs no extra waiting.
    pub fn start_many(
        conn: PgConn,
        connect: SharedConnect,
        writers: usize,
        max_batch: usize,
        hook: Option<PreCommitHook>,
        barrier: Option<CommitBarrier>,
        vacuum: Option<Connect>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let queue = Arc::new(Queue::default());
        queue.lock().alive = writers.max(1);
        let stats = Arc::new(WriterStats::default());
        let health = Arc::new(CommitHealth::default());
        let vacuum = match vacuum {
            Some(connect) => Some(start_vacuum(connect)?),
            None => None,
        };
        let hook = hook.map(|h| Arc::new(Mutex::new(h)));
        let barrier = barrier.map(|b| Arc::new(Mutex::new(b)));
        let pool = Arc::new(EventPool::default());
        let mut first = Some(conn);
        let mut threads = Vec::with_capacity(writers.max(1));
        for i in 0..writers.max(1) {
            let mut w = WriterThread {
                // The others connect on their first group.
                conn: first.take(),
                connect: connect.clone(),
                hook: hook.clone(),
                barrier: barrier.clone(),
                stats: stats.clone(),
                health: health.clone(),
                pool: pool.clone(),
                drained: Vec::new(),
            };
            let q = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("guestvault-pg-writer-{i}"))
                .spawn(move || {
                    w.run(&q, max_batch);
                    q.thread_ended();
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    queue.lock().alive -= 1;
                    return Err(e);
                }
            }
        }
        // One handle for the caller: it ends when every writer thread has.
        let handle = std::thread::Builder::new()
            .name("guestvault-pg-writers".into())
            .spawn(move || {
                for t in threads {
                    let _ = t.join();
                }
            })?;
        Ok((
            Self {
                _closer: Arc::new(Closer(queue.clone())),
                queue,
                pool,
                stats,
                health,
                shredded: Arc::new(AtomicBool::new(false)),
                vacuum,
            },
            handle,
        ))
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    pub fn health(&self) -> &CommitHealth {
        &self.health
    }

    /// Call after a committed write that deleted personal data: the vacuum thread then
    /// vacuums [`SHREDDED_TABLES`], so the dead tuples holding the old rows are reclaimed
    /// (their pages reused). This does not reach WAL archives or base backups: there an
    /// erasure is final only once the KEK in force is retired (README, "Running several
    /// nodes").
    pub fn note_shredded(&self) {
        self.shredded.store(true, Ordering::Release);
        if let Some(v) = &self.vacuum {
            let _ = v.send(());
        }
    }

    /// Runs `op` inside a savepoint of the next group transaction and returns its result once
    /// that transaction has committed.
    pub async fn execute<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&PgConn) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(op, true).await
    }

    /// Like [`execute`](Self::execute) without the savepoint, for a unit that only appends
    /// audit events (which are queued, not written, until the group commits) or runs one
    /// statement: if that statement fails, the whole group fails, as a commit would.
    pub async fn execute_atomic<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&PgConn) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(op, false).await
    }

    /// Appends one audit event that belongs to no unit (a read's record) and returns once a
    /// group that carries it has committed. The event waits in the node's pool, which the next
    /// writer to lock the chain head takes whole; a no-op job wakes a writer for it.
    pub async fn append_event(&self, event: NewEvent) -> Result<(), StoreError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let id = self.pool.push(event, done);
        let pool = self.pool.clone();
        let wake: Job = Box::new(move |_conn: Option<&PgConn>| {
            Box::new(move |commit: Result<(), Arc<StoreError>>| {
                // Taken by this group or another; only a group that failed before any took
                // it leaves it waiting, and then its caller gets this group's error.
                if let Err(e) = commit {
                    pool.fail(id, &e);
                }
            })
        });
        if self.queue.push(wake).is_err() {
            let gone = Arc::new(StoreError::WriterGone);
            self.pool.fail(id, &gone);
        }
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    async fn submit<T, F>(&self, op: F, savepoint: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&PgConn) -> Result<T, StoreError> + Send + 'static,
    {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |conn: Option<&PgConn>| {
            let result = match conn {
                Some(conn) if savepoint => in_savepoint(conn, op),
                Some(conn) => {
                    let mark = conn.pending_len();
                    let r = std::panic::catch_unwind(AssertUnwindSafe(|| op(conn)))
                        .unwrap_or(Err(StoreError::Panicked));
                    if r.is_err() {
                        conn.truncate_pending(mark);
                    }
                    r
                }
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
        self.queue.push(job).map_err(|_| StoreError::WriterGone)?;
        done_rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

std::thread_local! {
    /// On the writer thread: the last unit's savepoint succeeded and is still open. Its
    /// `RELEASE` goes out with the next unit's `SAVEPOINT`, in one round trip; the group's
    /// `COMMIT` ends the last one. Reset when a group begins.
    static RELEASE_DUE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `op` in a savepoint; a failed unit rolls back its statements and drops the audit
/// events it queued.
fn in_savepoint<T>(
    conn: &PgConn,
    op: impl FnOnce(&PgConn) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // The savepoint statements and the unit's plain writes (`PgConn::execute_deferred`) are
    // pipelined: they go out with the unit's first read, or all together in the flush below.
    // The flush comes before the unit's outcome is decided, so an error of a queued write
    // fails this unit, not a later one.
    if RELEASE_DUE.replace(false) {
        conn.pipeline("RELEASE SAVEPOINT op", Vec::new());
    }
    conn.pipeline("SAVEPOINT op", Vec::new());
    let mark = conn.pending_len();
    conn.deferring(true);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| op(conn)))
        .unwrap_or(Err(StoreError::Panicked));
    conn.deferring(false);
    let result = match result {
        Ok(v) => conn.flush_deferred().map(|()| v),
        Err(e) => {
            // The savepoint must exist before it is rolled back to (the writes queued with it
            // are undone by that rollback); if this flush fails, the rollback below fails and
            // so does the group.
            let _ = conn.flush_deferred();
            Err(e)
        }
    };
    if result.is_err() {
        conn.truncate_pending(mark);
        conn.batch("ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op")?;
    } else {
        RELEASE_DUE.set(true);
    }
    result
}

/// Runs the pre-commit hook in a savepoint that only a failure rolls back. A success leaves
/// it open: the `COMMIT` that follows ends it, so the head's lock is not held for a `RELEASE`
/// round trip. The outer error fails the group: the rollback to the savepoint failed, which
/// is also how an error of the pipelined audit insert shows when the hook's own statement
/// carried it (the transaction is aborted then, and the savepoint was never made). The inner
/// one is the hook's own failure, which the group survives.
fn hook_in_savepoint(
    conn: &PgConn,
    hook: impl FnOnce(&PgConn) -> Result<(), StoreError>,
) -> Result<Result<(), StoreError>, StoreError> {
    // Queued already (`WriterThread::finish` pipelines it after the audit insert).
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| hook(conn)))
        .unwrap_or(Err(StoreError::Panicked));
    if result.is_err() {
        conn.batch("ROLLBACK TO SAVEPOINT hook; RELEASE SAVEPOINT hook")?;
    }
    Ok(result)
}

struct WriterThread {
    conn: Option<PgConn>,
    connect: SharedConnect,
    hook: Option<Arc<Mutex<PreCommitHook>>>,
    barrier: Option<Arc<Mutex<CommitBarrier>>>,
    stats: Arc<WriterStats>,
    health: Arc<CommitHealth>,
    pool: Arc<EventPool>,
    /// The pooled events the running group took under the head's lock, answered once it
    /// has committed or failed.
    drained: Vec<EventDone>,
}

impl WriterThread {
    fn run(&mut self, queue: &Queue, max_batch: usize) {
        while let Some(jobs) = queue.next_group(max_batch) {
            self.group(jobs, queue, max_batch);
        }
    }

    /// The connection, opened anew if there is none or the last one was lost.
    fn connection(&mut self) -> Result<&PgConn, StoreError> {
        if self.conn.as_ref().is_some_and(PgConn::is_closed) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let connect = self
                .connect
                .lock()
                .map_err(|_| StoreError::Other("writer connect poisoned".into()))?;
            self.conn = Some((*connect)()?);
        }
        Ok(self.conn.as_ref().expect("just opened"))
    }

    fn group(&mut self, jobs: Vec<Job>, queue: &Queue, max_batch: usize) {
        let started = Instant::now();
        let mut n = jobs.len() as u64;
        RELEASE_DUE.set(false);
        let had = self.conn.as_ref().is_some_and(|c| !c.is_closed());
        let mut begun = self.connection().and_then(|c| c.batch("BEGIN"));
        if had && matches!(begun, Err(StoreError::Unavailable(_))) {
            // An idle connection learns that the server ended it only when it is next used:
            // no unit has run yet, so begin once more on a new one.
            self.conn = None;
            begun = self.connection().and_then(|c| c.batch("BEGIN"));
        }
        if let Err(e) = begun {
            // A fresh connection next time: this one may be half dead.
            self.conn = None;
            let e = Arc::new(StoreError::Unavailable(e.to_string()));
            self.health.note_fault(Fault::of_store(&e));
            tracing::error!(error = %e, "cannot begin a group transaction on PostgreSQL");
            for job in jobs {
                job(None)(Err(e.clone()));
            }
            return;
        }
        let conn = self.conn.as_ref().expect("connected");
        drop(conn.take_pending());
        let mut completions = Vec::with_capacity(jobs.len());
        for job in jobs {
            completions.push(job(Some(conn)));
        }
        let slot = queue.enter_head(max_batch.saturating_sub(completions.len()), |more| {
            n += more.len() as u64;
            for job in more {
                completions.push(job(Some(conn)));
            }
        });
        let hold_open = queue.contention().hold_open_until();
        if let Some(deadline) = hold_open {
            queue.absorb_until(
                deadline,
                max_batch.saturating_sub(completions.len()),
                |more| {
                    n += more.len() as u64;
                    for job in more {
                        completions.push(job(Some(conn)));
                    }
                },
            );
        }
        let outcome = self.finish(started, queue);
        drop(slot);
        let commit = match outcome {
            Ok(()) => {
                self.health.note_ok();
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                let lost = matches!(e, StoreError::Unavailable(_))
                    || matches!(&e, StoreError::Audit(inner) if matches!(**inner, StoreError::Unavailable(_)));
                if let Some(c) = self.conn.as_ref() {
                    drop(c.take_pending());
                    if lost || c.batch("ROLLBACK").is_err() {
                        self.conn = None;
                    }
                }
                let e = if lost || self.conn.as_ref().is_none_or(PgConn::is_closed) {
                    StoreError::Unavailable(e.to_string())
                } else {
                    e
                };
                self.health.note_fault(Fault::of_store(&e));
                Err(Arc::new(e))
            }
        };
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.operations.fetch_add(n, Ordering::Relaxed);
        self.stats.commit_micros_total.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        crate::metrics::record_group_commit(n, started.elapsed());
        for done in std::mem::take(&mut self.drained) {
            let _ = done.send(commit.clone().map_err(StoreError::Commit));
        }
        for completion in completions {
            completion(commit.clone());
        }
    }

    /// The group's tail: barrier, audit append under the head lock, hook, commit.
    ///
    /// From the moment the head's lock is granted the group makes one round trip, in the
    /// common case: the events' insert (and the hook's savepoint) go out with the `COMMIT`.
    /// The barrier runs before the lock, and the hook makes a statement only when a
    /// checkpoint is due, which it decides from the [`ChainTip`] without reading the head.
    fn finish(&mut self, _started: Instant, queue: &Queue) -> Result<(), StoreError> {
        let conn = self.conn.as_ref().expect("connected");
        let as_audit = |e| match e {
            e @ StoreError::Audit(_) => e,
            e => StoreError::Audit(Box::new(e)),
        };
        // The erasure ledger's fsync, before the head is locked: every unit of the group has
        // run, so every ledger line the group's commit stands for is written already. As
        // before, its failure fails the group; it only no longer lengthens the lock's hold.
        if let Some(barrier) = self.barrier.as_ref() {
            let mut barrier = barrier
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (*barrier)().inspect_err(|e| {
                tracing::error!(error = %e, "commit barrier failed; the group is rolled back");
            })?;
        }
        // Under the head's lock: the events' insert is only queued, and goes out with the
        // next statement (the hook's, if a checkpoint is due, or the `COMMIT`). Its error is
        // that statement's error, so it still fails the group (a `COMMIT` of an aborted
        // transaction would not report it, but the pipelined insert's own answer does).
        // The pooled events join under the head's lock (late binding); the ones taken are
        // answered with the group's outcome even if the insert fails.
        let pool = self.pool.clone();
        let has_late = !pool.is_empty();
        let mut taken = Vec::new();
        let flushed = if conn.pending_len() > 0 || has_late {
            let queued = super::audit::queue_pending(conn, has_late, &mut || {
                pool.take_all()
                    .into_iter()
                    .map(|(_, event, done)| {
                        taken.push(done);
                        event
                    })
                    .collect()
            });
            self.drained = taken;
            queued.map_err(as_audit)?
        } else {
            super::audit::Flushed::default()
        };
        if let (Some(hook), Some(tip)) = (self.hook.as_ref(), flushed.tip.as_ref()) {
            conn.pipeline("SAVEPOINT hook", Vec::new());
            let mut hook = hook
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = hook_in_savepoint(conn, |c| (*hook)(c, tip)).map_err(as_audit)? {
                tracing::warn!(error = %e, "pre-commit hook failed");
            }
        }
        let committed = conn.batch("COMMIT");
        if flushed.events > 0 {
            committed.map_err(as_audit)?;
        } else {
            committed?;
        }
        if flushed.events > 0 {
            queue
                .contention()
                .note_commit(flushed.head_before, flushed.last_seq, Instant::now());
        }
        if let Some(at) = flushed.locked_at {
            let held = at.elapsed();
            self.stats.record_head_hold(flushed.events, held);
            crate::metrics::record_head_hold(flushed.events, held);
        }
        Ok(())
    }
}

/// `VACUUM` of [`SHREDDED_TABLES`] (outside a transaction: VACUUM cannot run in one).
pub fn vacuum_shredded(conn: &PgConn) -> Result<(), StoreError> {
    conn.batch(&format!("VACUUM {}", SHREDDED_TABLES.join(", ")))
}

/// The least time between two starts of a vacuum after erasures, on any node (the database's
/// clock decides, so the nodes' clocks need not agree). A `VACUUM` of [`SHREDDED_TABLES`]
/// scans every index of a table that has dead tuples, whatever their number, so run back to
/// back under a stream of erasures it cost more of the two cores than the erasures themselves
/// (BENCHMARKS.md, stop 24). Spaced, one run reclaims every erasure of the last seconds. A
/// node's dead tuples wait at most this long times the nodes that have some (plus the runs);
/// an erasure is final in any case only once its KEK is retired.
pub const VACUUM_SPACING: std::time::Duration = std::time::Duration::from_secs(5);

/// Held (a session advisory lock) while a node decides on and runs a vacuum of
/// [`SHREDDED_TABLES`]: the nodes' vacuums run one after the other, never two at once.
pub const VACUUM_LOCK: i64 = 0x4756_5641_4355_554d;

/// The `meta` row holding when the last vacuum after erasures started (any node, the
/// database's clock).
const VACUUM_STARTED_KEY: &str = "vacuum_started_at";

/// Vacuums [`SHREDDED_TABLES`] once [`VACUUM_SPACING`] has passed since the last vacuum any
/// node started, waiting until then; `started` runs just before the `VACUUM` begins.
fn vacuum_when_due(conn: &PgConn, started: &mut dyn FnMut()) -> Result<(), StoreError> {
    loop {
        conn.execute("SELECT pg_advisory_lock($1)", &[&VACUUM_LOCK])?;
        let unlock = || {
            conn.execute("SELECT pg_advisory_unlock($1)", &[&VACUUM_LOCK])
                .map(|_| ())
        };
        let ago: Option<f64> = match conn.query_one(
            "SELECT (SELECT extract(epoch FROM clock_timestamp() - value::timestamptz)::float8
                     FROM meta WHERE key = $1)",
            &[&VACUUM_STARTED_KEY],
        ) {
            Ok(row) => row.try_get(0)?,
            Err(e) => {
                let _ = unlock();
                return Err(e);
            }
        };
        let spacing = VACUUM_SPACING.as_secs_f64();
        if let Some(ago) = ago.filter(|a| (0.0..spacing).contains(a)) {
            unlock()?;
            std::thread::sleep(std::time::Duration::from_secs_f64(spacing - ago));
            continue;
        }
        started();
        let run = conn
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, clock_timestamp()::text)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&VACUUM_STARTED_KEY],
            )
            .and_then(|_| vacuum_shredded(conn));
        let unlocked = unlock();
        return run.and(unlocked);
    }
}

/// The vacuum thread: woken after a shredding commit, it vacuums the tables that held the
/// shredded rows ([`vacuum_when_due`]); the wake-ups of commits made before a run starts are
/// served by that run.
fn start_vacuum(connect: Connect) -> std::io::Result<mpsc::Sender<()>> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("guestvault-pg-vacuum".into())
        .spawn(move || {
            let mut conn: Option<PgConn> = None;
            while rx.recv().is_ok() {
                if conn.as_ref().is_none_or(PgConn::is_closed) {
                    conn = connect().ok();
                }
                let Some(c) = conn.as_ref() else {
                    tracing::warn!(
                        "cannot connect to vacuum after an erasure; retried after the next one"
                    );
                    continue;
                };
                // Every commit that woke us before the run starts is covered by it.
                let mut drain = || while rx.try_recv().is_ok() {};
                match vacuum_when_due(c, &mut drain) {
                    Ok(()) => tracing::debug!("vacuumed after an erasure"),
                    Err(e) => tracing::warn!(error = %e, "VACUUM after an erasure failed"),
                }
            }
        })?;
    Ok(tx)
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
