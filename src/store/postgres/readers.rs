//! The PostgreSQL reader pool of one node: `size` connections, each owned by its own thread
//! (as for SQLite, so statement caches stay warm and no request handler blocks). Each unit
//! runs in a read-only REPEATABLE READ transaction, so a unit of several statements sees one
//! snapshot. A lost connection is reopened before the next unit; while it cannot be, units
//! fail with [`StoreError::Unavailable`].

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex};

use super::conn::PgConn;
use super::writer::Connect;
use crate::store::StoreError;

type ReadJob = Box<dyn FnOnce(Result<&PgConn, StoreError>) + Send>;

#[derive(Debug)]
pub struct Readers {
    tx: Mutex<Option<mpsc::Sender<ReadJob>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Readers {
    /// Opens `size` connections with `connect` (shared by the threads) and starts the threads.
    pub fn open(
        connect: Arc<dyn Fn() -> Result<PgConn, StoreError> + Send + Sync>,
        size: usize,
    ) -> Result<Arc<Self>, StoreError> {
        let (tx, rx) = mpsc::channel::<ReadJob>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(size);
        for i in 0..size.max(1) {
            let conn = connect()?;
            let rx = rx.clone();
            let connect = connect.clone();
            let reconnect: Connect = Box::new(move || connect());
            let handle = std::thread::Builder::new()
                .name(format!("guestvault-pg-reader-{i}"))
                .spawn(move || serve(Some(conn), &reconnect, &rx))
                .map_err(|e| StoreError::Other(format!("cannot start a reader thread: {e}")))?;
            threads.push(handle);
        }
        Ok(Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        }))
    }

    /// Runs `f` on the next free reader connection, in a read-only transaction.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&PgConn) -> Result<T, StoreError> + Send + 'static,
    {
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

fn serve(mut conn: Option<PgConn>, reconnect: &Connect, rx: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
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
