//! The storage seam: the one way the service, audit, retention, keys, backup/restore, ops and
//! CLI code reach the database (design in `docs/storage.md`).
//!
//! A use case never writes SQL. It runs a *unit of work* on one of two handles and calls the
//! seam's domain-level operations inside it:
//! - [`Writer::execute`] (and [`Writer::execute_atomic`]): the unit runs inside the backend's
//!   group transaction, on its own savepoint, and the call returns only once that group has
//!   committed. A data change and the audit events that record it go in the same unit, so
//!   they commit together or not at all; a read's event is durable before the read answers.
//! - [`Readers::run`]: the unit runs on a read-only connection of the reader pool.
//!
//! Both hand the unit a [`Conn`], which it only passes on to the operations listed below. The
//! operations are plain functions, so the hot paths pay no dynamic dispatch.
//!
//! This build has one backend, SQLite ([`sqlite`]); `storage.backend = "postgres"` is refused
//! at start (see [`Backend`]). The PostgreSQL backend will sit beside it under
//! `store/postgres/`, with the same operations, `Conn` becoming an enum of the two backends'
//! handles.
//!
//! Shared by every backend and kept outside them: the row types ([`rows`]), the readiness
//! faults ([`health`]), the start-up checks of files ([`preflight`]), and in other modules the
//! chain hashing ([`crate::audit::link`], [`crate::audit::check_chain`]), checkpoint signing
//! ([`crate::audit::checkpoint`]), the purge rules ([`crate::audit::purge`]), the query and
//! export formats, retention planning and the erasure ledger.

pub mod health;
/// Started, not usable: the PostgreSQL schema and its migration only (see its module doc).
pub mod postgres;
pub mod preflight;
pub mod rows;
pub mod sqlite;

pub use health::{CommitHealth, Fault, FAULTS};
pub use rows::{
    DsrRow, GuestStatus, PendingCorrection, RetentionFacts, SealedGuest, SealedStay,
    PLAUSIBLE_HORIZON_DAYS,
};

// The backend of this build, and its handles.
pub use sqlite::{
    CommitBarrier, Conn, PreCommitHook, ReadGate, Readers, Writer, WriterStats,
    DEFAULT_WAL_MAX_BYTES, GATE_WAIT,
};

// Opening, migrating, checking the keyring fingerprint, the readiness heartbeat.
pub use sqlite::{open_reader, open_writer, ping, write_heartbeat};

// Guests, fields, the blind index, stays.
pub use sqlite::{
    count_guests, delete_field, guest_status, insert_guest, insert_stay, list_stays, load_guest,
    put_field, put_index, search_index, touch_guest,
};

// Retention, erasure and data-subject requests.
pub use sqlite::{
    complete_erasures, erase_fields, erase_stays, get_dsr, guest_ids_after, insert_dsr,
    latest_erasure, overdue_dsr, retention_facts, set_status, shred_guest,
};

// Corrections.
pub use sqlite::{
    correct_stay, decide_correction, get_stay, insert_correction, keep_registered,
    pending_correction, pending_corrections, registered_values,
};

// Key rotation.
pub use sqlite::{dek_counts, deks_not_under, rewrap};

/// Consents: the current view, the ledger of changes, re-applying a withdrawal after a restore.
pub use sqlite::consents;

/// The audit trail: append (the chain head read and the insert), read back, checkpoints, the
/// officer's query, export ranges, the trail's purge.
pub use sqlite::audit;

/// `GET /v1/audit/verify`: the whole trail or from the newest checkpoint.
pub use sqlite::audit_since;

/// Online backup, restore staging and the checks on a backup file.
pub use sqlite::backup;

/// Which storage backend a vault runs on (`storage.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// One SQLite file in `storage.data_dir` (the embedded default).
    #[default]
    Sqlite,
    /// PostgreSQL, shared by several vault nodes. Not in this build: the start stops with an
    /// error naming `storage.backend`.
    Postgres,
}

impl Backend {
    /// The value of `storage.backend`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sqlite" => Some(Self::Sqlite),
            "postgres" => Some(Self::Postgres),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// Whether this build can run on the backend.
    pub fn is_available(self) -> bool {
        matches!(self, Self::Sqlite)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] sqlite::SqliteError),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlite::MigrationError),
    #[error("database error: {0}")]
    Postgres(#[from] postgres::PgError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the writer thread is not running")]
    WriterGone,
    #[error("the keyring does not match this database (database expects fingerprint {expected}, keyring has {actual}); start with the keyring this data dir was created with")]
    KeyringMismatch { expected: String, actual: String },
    #[error("audit append failed: {0}")]
    Audit(Box<StoreError>),
    /// The group transaction the operation ran in could not begin or commit (a full disk, a
    /// read-only file system, an I/O error): nothing of it was written, its audit events
    /// included.
    #[error("commit failed: {0}")]
    Commit(std::sync::Arc<StoreError>),
    #[error("an operation panicked")]
    Panicked,
    #[error("{0}")]
    Other(String),
}
