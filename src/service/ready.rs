//! Readiness that tells the truth (issue 13): ready only when a real write commits. At most
//! once a second (cached, and one probe at a time however many callers ask) the vault writes
//! a heartbeat row through the writer, reads through the pool, and checks that the keyring
//! file can still be read; a failure is classified into a [`Fault`] whose code `/readyz` and
//! the `guestvault_ready` metric carry. Recovery shows at the next probe, without a restart.

use std::time::{Duration, Instant};

use super::Vault;
use crate::store::{self, Fault, StoreError};

/// How long one probe's answer is reused.
pub const READY_CACHE: Duration = Duration::from_secs(1);
/// A heartbeat that has not committed by then counts as failed (the writer is stuck).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The last probe: when, and its fault if any.
#[derive(Debug, Default)]
pub struct ReadyCache {
    last: tokio::sync::Mutex<Option<(Instant, Option<Fault>)>>,
}

impl Vault {
    /// `None` when ready; else why writes cannot succeed.
    pub async fn readiness(&self) -> Option<Fault> {
        let mut last = self.ready.last.lock().await;
        if let Some((at, fault)) = *last {
            if at.elapsed() < READY_CACHE {
                return fault;
            }
        }
        let fault = self.probe().await;
        if let Some(f) = fault {
            tracing::warn!(reason = f.code(), "not ready: {}", f.describe());
        }
        crate::metrics::record_readiness(fault);
        *last = Some((Instant::now(), fault));
        fault
    }

    async fn probe(&self) -> Option<Fault> {
        let beat = self.writer.execute_atomic(store::write_heartbeat);
        match tokio::time::timeout(PROBE_TIMEOUT, beat).await {
            Err(_) => return Some(Fault::AuditUnavailable),
            Ok(Err(e)) => {
                // A failed commit was classified by the writer; the op's own error here.
                let fault = match &e {
                    StoreError::Sqlite(s) => Fault::of_sqlite(s),
                    _ => None,
                };
                let fault = fault
                    .or_else(|| self.writer.health().current())
                    .unwrap_or(Fault::AuditUnavailable);
                return Some(self.refine(fault).await);
            }
            Ok(Ok(())) => {}
        }
        let read = self.readers.run(store::ping).await;
        if read.is_err() {
            return Some(Fault::AuditUnavailable);
        }
        if store::preflight::check_keyring(self.key_path()).is_err() {
            return Some(Fault::KeyringUnreadable);
        }
        None
    }

    /// SQLite reports a write to a file system remounted read-only, or an fsync on a full one,
    /// as a bare I/O error: look at the data dir itself to say which.
    async fn refine(&self, fault: Fault) -> Fault {
        if fault != Fault::AuditUnavailable {
            return fault;
        }
        let Some(db) = self.readers.database_path().map(ToOwned::to_owned) else {
            return fault;
        };
        tokio::task::spawn_blocking(move || diagnose(&db))
            .await
            .ok()
            .flatten()
            .unwrap_or(fault)
    }
}

/// Opens the database file for writing (a read-only mount fails), then writes and removes one
/// page in a probe file beside it (a full file system fails).
fn diagnose(db: &std::path::Path) -> Option<Fault> {
    use std::io::Write;
    if let Err(e) = std::fs::OpenOptions::new().write(true).open(db) {
        return Some(Fault::of_io(&e));
    }
    let probe = db.with_extension("db-ready-probe");
    let written = std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(&[0u8; 4096]).and_then(|()| f.sync_all()));
    let _ = std::fs::remove_file(&probe);
    match written {
        Err(e) if Fault::of_io(&e) != Fault::AuditUnavailable => Some(Fault::of_io(&e)),
        _ => None,
    }
}
