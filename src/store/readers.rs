//! A small pool of read-only connections. WAL lets readers run beside the writer; each read
//! runs on the blocking thread pool so SQLite never stalls the async runtime.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::{open_reader, StoreError};

#[derive(Debug)]
pub struct Readers {
    conns: Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Readers {
    pub fn open(path: &Path, size: usize) -> Result<Arc<Self>, StoreError> {
        let conns = (0..size)
            .map(|_| open_reader(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Self {
            conns: Mutex::new(conns),
            permits: Arc::new(tokio::sync::Semaphore::new(size)),
        }))
    }

    /// Runs `f` on a pooled connection on the blocking pool.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Other("reader pool closed".into()))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // INVARIANT: the semaphore has as many permits as the pool has connections, so a
            // holder of a permit always finds one. The lock is held only to pop and push.
            let conn = pool
                .conns
                .lock()
                .map_err(|_| StoreError::Other("reader pool poisoned".into()))?
                .pop()
                .ok_or_else(|| StoreError::Other("reader pool empty".into()))?;
            // Give the connection back even if `f` panics, or the pool would shrink for good.
            let guard = ReturnOnDrop {
                pool: &pool,
                conn: Some(conn),
            };
            let result = f(guard
                .conn
                .as_ref()
                .ok_or_else(|| StoreError::Other("no connection".into()))?);
            drop(guard);
            result
        })
        .await
        .map_err(|_| StoreError::Panicked)?
    }
}

struct ReturnOnDrop<'a> {
    pool: &'a Readers,
    conn: Option<Connection>,
}

impl Drop for ReturnOnDrop<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut conns)) = (self.conn.take(), self.pool.conns.lock()) {
            conns.push(conn);
        }
    }
}
