//! The PostgreSQL reader pool of one node: `size` connections, each owned by its own thread
//! (as for SQLite, so statement caches stay warm and no request handler blocks). Each unit
//! runs in a read-only REPEATABLE READ transaction, so a unit of several statements sees one
//! snapshot. A lost connection is reopened before the next unit; while it cannot be, units
//! fail with [`StoreError::Unavailable`].
//!
//! With `storage.postgres_readers_total` set, the nodes share that many reads at once: each
//! node runs at most its share (the total over the live nodes that are busy, itself included,
//! rounded up, at least one, at most its pool), reset at every heartbeat
//! ([`Readers::share_among`]; busy: more than one read in flight at once since the last
//! beat, [`Readers::take_peak_demand`]), so an idle standby holds back nothing. The database runs
//! every node's readers on its own cores, so its speed depends on the reads it runs at once
//! over all nodes, not on one node's pool (BENCHMARKS.md, stop 29).

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Condvar, Mutex};

use super::conn::PgConn;
use super::writer::Connect;
use crate::store::StoreError;

type ReadJob = Box<dyn FnOnce(Result<&PgConn, StoreError>) + Send>;

#[derive(Debug)]
pub struct Readers {
    tx: Mutex<Option<mpsc::Sender<ReadJob>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    gate: Arc<Gate>,
    /// Reads asked for and not yet answered.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// The most reads in flight at once since [`Readers::take_peak_demand`].
    peak: std::sync::atomic::AtomicUsize,
}

/// How many of the pool's threads may take and run reads: a thread passes the gate before it
/// takes a read from the queue, so the ones beyond the share wait idle (holding no read) and
/// the reads wait in the queue, as in a pool of that many threads. A thread keeps its pass
/// from read to read (no hand-over, so no thread switch per read) and gives it up after a
/// read only when the share has shrunk below the threads holding one: right after a share
/// shrinks, each thread already waiting for a read may still run one, then the share holds.
#[derive(Debug)]
struct Gate {
    size: usize,
    state: Mutex<GateState>,
    freed: Condvar,
}

#[derive(Debug)]
struct GateState {
    /// `storage.postgres_readers_total`, if set.
    total: Option<usize>,
    /// Reads this node may run at once now.
    limit: usize,
    /// Threads past the gate (taking or running a read).
    running: usize,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until a read may start; the guard lets the next one in when dropped.
    fn enter(&self) -> GatePass<'_> {
        let mut s = self.lock();
        while s.running >= s.limit {
            s = self
                .freed
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        s.running += 1;
        GatePass(self)
    }

    /// More threads hold a pass than the share allows (it shrank).
    fn over(&self) -> bool {
        let s = self.lock();
        s.running > s.limit
    }
}

struct GatePass<'a>(&'a Gate);

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        self.0.lock().running -= 1;
        self.0.freed.notify_one();
    }
}

/// A node's share of `total` reads at once among `live_nodes` (this one included): rounded
/// up, at least one, at most the node's `size` connections; `size` when no total is set.
pub fn share_of(total: Option<usize>, live_nodes: usize, size: usize) -> usize {
    match total {
        None => size,
        Some(t) => t.div_ceil(live_nodes.max(1)).clamp(1, size.max(1)),
    }
}

impl Readers {
    /// Opens `size` connections with `connect` (shared by the threads) and starts the threads;
    /// `total` is `storage.postgres_readers_total` (the node counts itself alone until its
    /// first [`share_among`](Self::share_among)).
    pub fn open(
        connect: Arc<dyn Fn() -> Result<PgConn, StoreError> + Send + Sync>,
        size: usize,
        total: Option<usize>,
    ) -> Result<Arc<Self>, StoreError> {
        let (tx, rx) = mpsc::channel::<ReadJob>();
        let rx = Arc::new(Mutex::new(rx));
        let size = size.max(1);
        let gate = Arc::new(Gate {
            size,
            state: Mutex::new(GateState {
                total,
                limit: share_of(total, 1, size),
                running: 0,
            }),
            freed: Condvar::new(),
        });
        let mut threads = Vec::with_capacity(size);
        for i in 0..size {
            let conn = connect()?;
            let rx = rx.clone();
            let connect = connect.clone();
            let reconnect: Connect = Box::new(move || connect());
            let gate = gate.clone();
            let handle = std::thread::Builder::new()
                .name(format!("guestvault-pg-reader-{i}"))
                .spawn(move || serve(Some(conn), &reconnect, &rx, &gate))
                .map_err(|e| StoreError::Other(format!("cannot start a reader thread: {e}")))?;
            threads.push(handle);
        }
        Ok(Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            gate,
            in_flight: Arc::default(),
            peak: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    /// Sets `storage.postgres_readers_total` anew (`None`: the whole pool, always), counting
    /// this node alone until the next [`share_among`](Self::share_among).
    pub fn set_total(&self, total: Option<usize>) {
        self.gate.lock().total = total;
        self.share_among(1);
    }

    /// Sets this node's share of the total for `live_nodes` live nodes (this one included) and
    /// returns it, with whether it changed. Reads beyond the share wait for a running one.
    pub fn share_among(&self, live_nodes: usize) -> (usize, bool) {
        let mut s = self.gate.lock();
        let limit = share_of(s.total, live_nodes, self.gate.size);
        let changed = limit != s.limit;
        s.limit = limit;
        drop(s);
        self.gate.freed.notify_all();
        (limit, changed)
    }

    /// The most reads this node had to run at once (running or waiting) since the last call;
    /// the count starts again from those running or waiting now.
    pub fn take_peak_demand(&self) -> usize {
        use std::sync::atomic::Ordering;
        self.peak
            .swap(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst)
    }

    /// Reads this node may run at once now.
    pub fn allowed(&self) -> usize {
        self.gate.lock().limit
    }

    /// Runs `f` on the next free reader connection, in a read-only transaction.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&PgConn) -> Result<T, StoreError> + Send + 'static,
    {
        use std::sync::atomic::Ordering;
        // Counted until answered or given up (the guard also ends the count of a dropped call).
        struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let _counted = InFlight(&self.in_flight);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = done_tx.send(conn.and_then(|c| in_read_transaction(c, f)));
        });
        {
            let tx = self
                .tx
                .lock()
                .map_err(|_| StoreError::Other("reader pool poisoned".into()))?;
            tx.as_ref()
                .ok_or_else(|| StoreError::Other("reader pool closed".into()))?
                .send(job)
                .map_err(|_| StoreError::Other("reader pool closed".into()))?;
        }
        done_rx.await.map_err(|_| StoreError::Panicked)?
    }
}

fn in_read_transaction<T>(
    conn: &PgConn,
    f: impl FnOnce(&PgConn) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // `serve` has begun the transaction.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)));
    // A read changes nothing: ending it either way is the same; a failed statement left the
    // transaction aborted, which ROLLBACK clears.
    let end = conn.batch(if matches!(result, Ok(Ok(_))) {
        "COMMIT"
    } else {
        "ROLLBACK"
    });
    match result {
        Ok(r) => {
            let value = r?;
            end?;
            Ok(value)
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

fn serve(
    mut conn: Option<PgConn>,
    reconnect: &Connect,
    rx: &Mutex<mpsc::Receiver<ReadJob>>,
    gate: &Gate,
) {
    let mut pass = None;
    loop {
        // Through the gate first: beyond the node's share, a thread waits here holding no read.
        if pass.is_none() {
            pass = Some(gate.enter());
        }
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        match begin(&mut conn, reconnect) {
            Ok(()) => {
                let c = conn.as_ref().expect("connected");
                // A panicking read drops its sender: the caller gets an error, the thread
                // lives on.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(c))));
            }
            Err(e) => job(Err(e)),
        }
        if gate.over() {
            pass = None;
        }
    }
}

/// Begins the unit's read transaction, on a new connection if there is none, and once more
/// on a new one if the one it had turns out to be dead (an idle connection learns that the
/// server ended it only when it is next used; the unit has not run yet, so nothing is lost
/// by trying again).
fn begin(conn: &mut Option<PgConn>, reconnect: &Connect) -> Result<(), StoreError> {
    let had = conn.as_ref().is_some_and(|c| !c.is_closed());
    if !had {
        *conn = Some(reconnect().map_err(|e| StoreError::Unavailable(e.to_string()))?);
    }
    match conn.as_ref().expect("connected").batch(BEGIN_READ) {
        Ok(()) => Ok(()),
        Err(e) if had && matches!(e, StoreError::Unavailable(_)) => {
            *conn = Some(reconnect().map_err(|e| StoreError::Unavailable(e.to_string()))?);
            conn.as_ref().expect("connected").batch(BEGIN_READ)
        }
        Err(e) => {
            *conn = None;
            Err(e)
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::conn::testdb::{self, off_runtime, TestDb};
    use super::*;

    #[test]
    fn a_nodes_share_is_the_total_over_the_live_nodes_rounded_up_within_its_pool() {
        assert_eq!(share_of(None, 3, 4), 4);
        assert_eq!(share_of(Some(4), 1, 4), 4);
        assert_eq!(share_of(Some(4), 2, 4), 2);
        assert_eq!(share_of(Some(4), 3, 4), 2);
        assert_eq!(share_of(Some(8), 1, 4), 4, "never more than the pool");
        assert_eq!(share_of(Some(1), 5, 4), 1, "never less than one");
        assert_eq!(
            share_of(Some(4), 0, 4),
            4,
            "no live row yet counts as alone"
        );
    }

    proptest::proptest! {
        /// The shares of all live nodes cover the total (when the pools allow), and one node's
        /// share is never more than its pool nor less than one.
        #[test]
        fn shares_cover_the_total_and_stay_within_the_pool(
            total in 1usize..5000, live in 1usize..64, size in 1usize..65,
        ) {
            let share = share_of(Some(total), live, size);
            proptest::prop_assert!((1..=size).contains(&share));
            proptest::prop_assert!(share * live >= total.min(size * live));
            proptest::prop_assert!(share <= total.max(1));
        }
    }

    /// At most the share runs at once; raising it lets the waiting reads in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_reads_run_at_once_than_the_share() {
        let Some(db) = TestDb::create() else { return };
        let config = db.config.clone();
        let readers = off_runtime(move || {
            Readers::open(Arc::new(move || Ok(testdb::connect(&config))), 4, Some(4)).unwrap()
        });
        assert_eq!(readers.allowed(), 4, "alone until the first heartbeat");
        assert_eq!(readers.share_among(4), (1, true));
        assert_eq!(readers.share_among(4), (1, false));
        assert_eq!(readers.allowed(), 1);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let reads = |n: usize| {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let (r, running, most) = (readers.clone(), running.clone(), most.clone());
                    tokio::spawn(async move {
                        r.run(move |c| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            c.batch("SELECT pg_sleep(0.05)")?;
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .await
                    })
                })
                .collect();
            tasks
        };
        // Right after the share shrank, each thread already waiting for a read may run one.
        for t in reads(8) {
            t.await.unwrap().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 4);
        most.store(0, Ordering::SeqCst);
        for t in reads(8) {
            t.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        // Eight reads wanted to run at once: the node is busy; then, idle, it is not.
        assert!(readers.take_peak_demand() >= 2);
        assert_eq!(readers.take_peak_demand(), 0);
        assert_eq!(readers.share_among(1), (4, true));
        most.store(0, Ordering::SeqCst);
        for t in reads(8) {
            t.await.unwrap().unwrap();
        }
        let seen = most.load(Ordering::SeqCst);
        assert!(
            (2..=4).contains(&seen),
            "{seen} reads at once with a share of 4"
        );
        readers.set_total(None);
        assert_eq!(readers.allowed(), 4);
    }
}
