//! A small pool of read-only connections, each owned by its own thread. WAL lets readers run
//! beside the writer. A fixed set of threads (rather than the async runtime's blocking pool)
//! keeps each connection's statement cache warm and avoids spawning threads under load.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use rusqlite::Connection;

use super::{open_reader, ReadGate, StoreError};

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

#[derive(Debug)]
pub struct Readers {
    path: std::path::PathBuf,
    tx: Mutex<Option<mpsc::Sender<ReadJob>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Readers {
    /// A pool whose reads pass no gate (tools and tests without a checkpointer).
    pub fn open(path: &Path, size: usize) -> Result<Arc<Self>, StoreError> {
        Self::open_gated(path, size, Arc::new(ReadGate::default()))
    }

    /// A pool whose every read runs inside `gate` (the writer's [`Writer::read_gate`]), so the
    /// checkpointer can reset the WAL between reads.
    ///
    /// [`Writer::read_gate`]: super::Writer::read_gate
    pub fn open_gated(
        path: &Path,
        size: usize,
        gate: Arc<ReadGate>,
    ) -> Result<Arc<Self>, StoreError> {
        let (tx, rx) = mpsc::channel::<ReadJob>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(size);
        for i in 0..size {
            let conn = open_reader(path)?;
            let rx = rx.clone();
            let gate = gate.clone();
            let handle = std::thread::Builder::new()
                .name(format!("guestvault-reader-{i}"))
                .spawn(move || serve(&conn, &rx, &gate))
                .map_err(|e| StoreError::Other(format!("cannot start a reader thread: {e}")))?;
            threads.push(handle);
        }
        Ok(Arc::new(Self {
            path: path.to_owned(),
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        }))
    }

    /// The database file the pool reads.
    pub fn database_path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the next free reader connection.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = done_tx.send(f(conn));
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
        // A panicking read drops its sender: the caller gets an error, the thread lives on.
        done_rx.await.map_err(|_| StoreError::Panicked)?
    }
}

fn serve(conn: &Connection, rx: &Mutex<mpsc::Receiver<ReadJob>>, gate: &ReadGate) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => {
                // Held for the whole read: its snapshot may use the WAL until it returns.
                let _pass = gate.enter();
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(conn)));
            }
            Err(_) => return,
        }
    }
}

impl Drop for Readers {
    /// Closes the queue and waits for the threads, so every connection is closed on return
    /// (restore swaps database files right after).
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
    use super::*;

    #[tokio::test]
    async fn a_panicking_read_fails_alone_and_the_pool_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        drop(super::super::open_writer(&db, "full", "fp").unwrap());
        let readers = Readers::open(&db, 2).unwrap();
        for _ in 0..5 {
            let r = readers
                .run(|_| -> Result<(), StoreError> { panic!("boom") })
                .await;
            assert!(matches!(r, Err(StoreError::Panicked)));
        }
        let n: i64 = readers
            .run(|c| Ok(c.query_row("SELECT 41 + 1", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 42);
    }
}
