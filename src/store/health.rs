//! Whether writes can commit, as the writer last saw it: every group commit (and the
//! checkpointer's truncation) reports its outcome here, classified into the reason codes that
//! `/readyz` and the `guestvault_ready` metric carry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Why writes cannot succeed. The codes are part of the public contract (`/readyz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The database, its `-wal`/`-shm`, or the file system is read-only (SQLITE_READONLY,
    /// EROFS, EACCES).
    ReadOnly,
    /// No space left (SQLITE_FULL, ENOSPC).
    DiskFull,
    /// The keyring file cannot be read (a restart, a rotation or a reload would fail).
    KeyringUnreadable,
    /// Anything else that stops a commit (I/O error, the write lock held elsewhere): every
    /// request appends an audit event, so none can be answered.
    AuditUnavailable,
    /// PostgreSQL: the database cannot be reached (connection lost, server down or failing
    /// over); the node reconnects by itself.
    DatabaseUnavailable,
}

pub const FAULTS: [Fault; 5] = [
    Fault::ReadOnly,
    Fault::DiskFull,
    Fault::KeyringUnreadable,
    Fault::AuditUnavailable,
    Fault::DatabaseUnavailable,
];

impl Fault {
    pub fn code(self) -> &'static str {
        match self {
            Self::ReadOnly => "storage_read_only",
            Self::DiskFull => "disk_full",
            Self::KeyringUnreadable => "keyring_unreadable",
            Self::AuditUnavailable => "audit_unavailable",
            Self::DatabaseUnavailable => "database_unavailable",
        }
    }

    /// What an operator should look at.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ReadOnly => "the database files or their file system are read-only",
            Self::DiskFull => "the data dir's file system is full",
            Self::KeyringUnreadable => "the keyring file cannot be read",
            Self::AuditUnavailable => "commits fail (I/O error or the write lock is held)",
            Self::DatabaseUnavailable => "the PostgreSQL database cannot be reached",
        }
    }

    pub fn of_io(e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::StorageFull | K::QuotaExceeded => Self::DiskFull,
            K::ReadOnlyFilesystem | K::PermissionDenied => Self::ReadOnly,
            _ => Self::AuditUnavailable,
        }
    }

    /// Any failed commit: a storage fault if it is one, else the audit trail cannot be written.
    pub fn of_store(e: &super::StoreError) -> Self {
        match e {
            super::StoreError::Sqlite(s) => Self::of_sqlite(s).unwrap_or(Self::AuditUnavailable),
            super::StoreError::Io(io) => Self::of_io(io),
            super::StoreError::Audit(inner) => Self::of_store(inner),
            super::StoreError::Commit(inner) => Self::of_store(inner),
            super::StoreError::Unavailable(_) => Self::DatabaseUnavailable,
            _ => Self::AuditUnavailable,
        }
    }
}

/// Counters of one node's writer, which the metrics endpoint and benchmarks read.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub operations: AtomicU64,
    pub commit_micros_total: AtomicU64,
    /// PostgreSQL: groups that appended audit events under the shared chain head's lock,
    /// the events they appended, and how long they held the lock (from taking it to commit).
    pub head_holds: AtomicU64,
    pub head_events: AtomicU64,
    pub head_hold_micros_total: AtomicU64,
}

impl WriterStats {
    pub fn record_head_hold(&self, events: u64, held: std::time::Duration) {
        self.head_holds.fetch_add(1, Ordering::Relaxed);
        self.head_events.fetch_add(events, Ordering::Relaxed);
        self.head_hold_micros_total.fetch_add(
            u64::try_from(held.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// The last commit outcomes.
#[derive(Debug, Default)]
pub struct CommitHealth {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_ok: Option<Instant>,
    last_fault: Option<(Instant, Fault)>,
}

impl CommitHealth {
    pub fn note_ok(&self) {
        self.lock().last_ok = Some(Instant::now());
    }

    pub fn note_fault(&self, f: Fault) {
        self.lock().last_fault = Some((Instant::now(), f));
    }

    /// The fault of the last failure, if nothing has committed since.
    pub fn current(&self) -> Option<Fault> {
        let s = self.lock();
        match (s.last_fault, s.last_ok) {
            (Some((at, f)), Some(ok)) if at > ok => Some(f),
            (Some((_, f)), None) => Some(f),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_commit_clears_a_fault() {
        let h = CommitHealth::default();
        assert_eq!(h.current(), None);
        h.note_fault(Fault::DiskFull);
        assert_eq!(h.current(), Some(Fault::DiskFull));
        std::thread::sleep(std::time::Duration::from_millis(2));
        h.note_ok();
        assert_eq!(h.current(), None);
    }

    #[test]
    fn io_errors_are_classified() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            Fault::of_io(&Error::from(ErrorKind::StorageFull)),
            Fault::DiskFull
        );
        assert_eq!(
            Fault::of_io(&Error::from(ErrorKind::ReadOnlyFilesystem)),
            Fault::ReadOnly
        );
        assert_eq!(
            Fault::of_io(&Error::from(ErrorKind::Other)),
            Fault::AuditUnavailable
        );
    }
}
