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
pub mod postgres;
pub mod preflight;
pub mod rows;
pub mod sqlite;

mod handles;
mod location;
#[macro_use]
mod seam;

pub use handles::{CommitBarrier, Db, PreCommitHook, Readers, Writer};
pub use health::{CommitHealth, Fault, WriterStats, FAULTS};
pub use location::{Location, StartOptions, Started};
pub use rows::{
    AnonymizedStay, DsrRow, DsrWatch, FieldStage, GuestStatus, HoldRow, PendingCorrection,
    RetentionFacts, SealedGuest, SealedStay, StageFacts, Staging, PLAUSIBLE_HORIZON_DAYS,
};
pub use sqlite::{ReadGate, DEFAULT_WAL_MAX_BYTES, GATE_WAIT};

use crate::crypto::WrappedDek;
use crate::policy::Permit;

/// The handle a unit of work gets: inside [`Writer::execute`] the connection of the group
/// transaction (in a savepoint of its own), inside [`Readers::run`] a read-only connection.
/// Outside `store/` it is opaque: it is only passed on to the seam's operations below, each a
/// `match` over the two backends (no dynamic dispatch).
#[derive(Debug, Clone, Copy)]
pub enum Conn<'a> {
    Sqlite(&'a sqlite::SqliteConn),
    Postgres(&'a postgres::PgConn),
}

impl Conn<'_> {
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

seam! {
    (sqlite), (postgres);
    /// A cheap read that proves a connection answers (readiness).
    fn ping() -> Result<(), StoreError>;
    /// Writes the readiness heartbeat (one small row in `meta`, replaced each time).
    fn write_heartbeat() -> Result<(), StoreError>;
}

// Guests, fields, the blind index, stays.
seam! {
    (sqlite), (postgres::guests);
    fn insert_guest(permit: &Permit, guest_id: &str, now: &str, wrapped: &WrappedDek) -> Result<(), StoreError>;
    fn put_field(permit: &Permit, guest_id: &str, field: &str, ciphertext: &[u8], now: &str) -> Result<(), StoreError>;
    fn delete_field(permit: &Permit, guest_id: &str, field: &str) -> Result<(), StoreError>;
    fn put_index(permit: &Permit, guest_id: &str, field: &str, digest: &[u8]) -> Result<(), StoreError>;
    fn touch_guest(permit: &Permit, guest_id: &str, now: &str) -> Result<Option<GuestStatus>, StoreError>;
    fn guest_status(guest_id: &str) -> Result<Option<GuestStatus>, StoreError>;
    fn load_guest(permit: &Permit, guest_id: &str) -> Result<Option<SealedGuest>, StoreError>;
    fn search_index(permit: &Permit, field: &str, digest: &[u8]) -> Result<Vec<(String, GuestStatus)>, StoreError>;
    fn insert_stay(permit: &Permit, guest_id: &str, stay_id: &str, check_out: &str, now: &str, ciphertext: &[u8]) -> Result<(), StoreError>;
    fn list_stays(permit: &Permit, guest_id: &str) -> Result<Vec<SealedStay>, StoreError>;
    fn count_guests() -> Result<u64, StoreError>;
}

// Retention, erasure and data-subject requests.
seam! {
    (sqlite), (postgres::erasure);
    fn retention_facts(guest_id: &str) -> Result<Option<RetentionFacts>, StoreError>;
    fn guest_ids_after(cursor: &str, limit: usize) -> Result<Vec<String>, StoreError>;
    fn erase_fields(permit: &Permit, guest_id: &str, fields: &[String]) -> Result<(), StoreError>;
    fn erase_stays(permit: &Permit, guest_id: &str, stay_ids: &[String]) -> Result<(), StoreError>;
    fn set_status(permit: &Permit, guest_id: &str, status: GuestStatus) -> Result<(), StoreError>;
    fn shred_guest(permit: &Permit, guest_id: &str) -> Result<(), StoreError>;
    fn insert_dsr(subject: &[u8], row: &DsrRow) -> Result<(), StoreError>;
    fn get_dsr(request_id: &str) -> Result<Option<(DsrRow, Vec<u8>)>, StoreError>;
    fn latest_erasure(subject: &[u8]) -> Result<Option<DsrRow>, StoreError>;
    fn overdue_dsr(today: &str) -> Result<Vec<DsrRow>, StoreError>;
    fn open_dsr(limit: usize) -> Result<Vec<DsrRow>, StoreError>;
    fn recent_dsr(kind: &str, limit: usize) -> Result<Vec<DsrRow>, StoreError>;
    fn dsr_of_subject(subject: &[u8]) -> Result<Vec<DsrRow>, StoreError>;
    fn complete_received(subject: &[u8], kind: &str, now: &str, receipt: &str) -> Result<usize, StoreError>;
    fn complete_erasures(subject: &[u8], now: &str, receipt_fn: impl Fn(&str) -> String) -> Result<(), StoreError>;
    /// The data key and ciphertext of stays about to be anonymized (issue 16 §3).
    fn stays_to_anonymize(permit: &Permit, guest_id: &str, stay_ids: &[String]) -> Result<Option<crate::store::rows::SealedStays>, StoreError>;
    fn insert_anonymized_stay(permit: &Permit, stay: &AnonymizedStay) -> Result<(), StoreError>;
    fn rewrite_receipt(request_id: &str, status: &str, now: &str, receipt: &str) -> Result<(), StoreError>;
}

// Deadlines of data-subject requests (REQ-32, REQ-48): the GDPR clock's extension, and the
// watch behind the 80% escalation and the overdue alert.
seam! {
    (sqlite), (postgres::deadlines);
    fn set_deadlines(request_id: &str, due_at: &str, deadlines: &str) -> Result<bool, StoreError>;
    fn dsr_watch(limit: usize) -> Result<Vec<DsrWatch>, StoreError>;
    fn mark_dsr_alert(request_id: &str, alert: &str, now: &str) -> Result<bool, StoreError>;
}

/// Legal holds (REQ-23): place, list, lift, and re-apply after a restore.
pub mod holds {
    use super::{Conn, StoreError};
    use crate::store::rows::HoldRow;

    seam! {
        (super::sqlite::holds), (super::postgres::holds);
        fn place(hold: &HoldRow) -> Result<bool, StoreError>;
        fn list(guest_id: &str) -> Result<Vec<HoldRow>, StoreError>;
        fn active(guest_id: &str, today: &str) -> Result<Vec<HoldRow>, StoreError>;
        fn lift(guest_id: &str, hold_id: &str, now: &str, by: &str) -> Result<Option<HoldRow>, StoreError>;
        fn replay_lift(hold_id: &str, at: &str, by: &str) -> Result<bool, StoreError>;
    }
}

// Retention stages (issue 16 §3): what the sweeper applied, and pseudonymized fields.
seam! {
    (sqlite), (postgres::stages);
    fn stage_facts(guest_id: &str) -> Result<Option<StageFacts>, StoreError>;
    fn applied_stages(guest_id: &str) -> Result<Vec<(String, String, String)>, StoreError>;
    fn record_stage(permit: &Permit, guest_id: &str, class: &str, action: &str, anchor: &str, now: &str) -> Result<(), StoreError>;
    fn pseudonymize_fields(permit: &Permit, guest_id: &str, fields: &[String], now: &str) -> Result<(), StoreError>;
    fn clear_pseudonymized(guest_id: &str, fields: &[String]) -> Result<(), StoreError>;
}

// Corrections.
seam! {
    (sqlite), (postgres::corrections);
    fn insert_correction(permit: &Permit, subject: &[u8], row: &DsrRow, guest_id: &str, fields: &[String], ciphertext: &[u8]) -> Result<(), StoreError>;
    fn pending_corrections(permit: &Permit) -> Result<Vec<PendingCorrection>, StoreError>;
    fn pending_correction(permit: &Permit, request_id: &str) -> Result<Option<PendingCorrection>, StoreError>;
    fn decide_correction(permit: &Permit, request_id: &str, status: &str, now: &str, receipt: &str) -> Result<bool, StoreError>;
    fn keep_registered(permit: &Permit, guest_id: &str, field: &str, now: &str) -> Result<(), StoreError>;
    fn registered_values(permit: &Permit, guest_id: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    fn get_stay(permit: &Permit, guest_id: &str, stay_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn correct_stay(permit: &Permit, guest_id: &str, stay_id: &str, replacement: Option<(&str, &[u8])>) -> Result<bool, StoreError>;
}

// Key rotation.
seam! {
    (sqlite), (postgres::keys);
    fn dek_counts() -> Result<Vec<(u32, u64)>, StoreError>;
    fn deks_not_under(permit: &Permit, active: u32, limit: usize) -> Result<Vec<(String, WrappedDek)>, StoreError>;
    fn rewrap(permit: &Permit, guest_id: &str, old_version: u32, new: &WrappedDek) -> Result<bool, StoreError>;
}

/// Consents: the current view, the ledger of changes, re-applying a withdrawal after a restore.
pub mod consents {
    use super::{Conn, StoreError};
    use crate::policy::ConsentFacts;
    use crate::store::rows::{ConsentChange, ConsentEvent, ConsentGiver, ConsentRecord};

    seam! {
        (super::sqlite::consents), (super::postgres::consents);
        fn apply(gid: &str, change: &ConsentChange, actor: &str, now: &str) -> Result<(), StoreError>;
        fn ledger(gid: &str) -> Result<(Vec<ConsentRecord>, Vec<ConsentEvent>), StoreError>;
        fn current(gid: &str) -> Result<Vec<ConsentRecord>, StoreError>;
        fn history(gid: &str) -> Result<Vec<ConsentEvent>, StoreError>;
        fn consent_state(guest_id: &str, purpose: &str) -> Result<ConsentFacts, StoreError>;
        fn consent_giver(guest_id: &str, purpose: &str) -> Result<Option<ConsentGiver>, StoreError>;
        fn record_refusal(gid: &str, change: &ConsentChange, actor: &str, now: &str) -> Result<(), StoreError>;
        fn latest_refusal(gid: &str, purpose: &str) -> Result<Option<String>, StoreError>;
        fn consent_notice(gid: &str, purpose: &str) -> Result<Option<String>, StoreError>;
        fn replay_withdrawal(gid: &str, purpose: &str, at: &str) -> Result<bool, StoreError>;
    }
}

/// Coordination between nodes (docs/storage.md, "Coordination between nodes"): one node at a
/// time per background job, the nodes' heartbeats and the rotation gate. On SQLite every
/// operation is a no-op that grants (one server per data dir already); on PostgreSQL they are
/// advisory locks and the `nodes` and `kek_activations` tables.
pub mod coordination {
    use super::{postgres, Conn, Location, StoreError};

    /// A background job that runs on one node at a time.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Job {
        /// The signed checkpoint of the timer and of the shutdown (one writer unit).
        Checkpoint,
        /// A retention sweep, background or `POST /v1/admin/retention/run` (many units).
        RetentionSweep,
        /// A KEK rotation: the gate, then the rewrap in batches (many units).
        KeyRotation,
    }

    impl Job {
        pub fn as_str(self) -> &'static str {
            match self {
                Self::Checkpoint => "checkpoint",
                Self::RetentionSweep => "retention",
                Self::KeyRotation => "rotation",
            }
        }
    }

    /// What a node reports in its heartbeat. No personal data.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct NodeReport {
        pub node_id: String,
        /// The crate version the node runs.
        pub version: String,
        pub keyring_fingerprint: String,
        /// Every KEK version in its keyring, ascending.
        pub kek_versions: Vec<u32>,
        /// The KEK it wraps new DEKs under.
        pub active_kek: u32,
        /// Its `server.listen`.
        pub listen: String,
    }

    /// A live node as the table shows it.
    #[derive(Debug, Clone, PartialEq)]
    pub struct NodeRow {
        pub report: NodeReport,
        /// RFC 3339, UTC, by the database's clock.
        pub started_at: String,
        /// Seconds since its last heartbeat, by the database's clock.
        pub seen_secs_ago: f64,
    }

    seam! {
        (super::sqlite::coordination), (super::postgres::coordination);
        /// Takes `job`'s lock for the rest of the unit's transaction; `false` if another
        /// transaction holds it (its node runs the job now: skip this turn).
        fn try_xact_lock(job: Job) -> Result<bool, StoreError>;
        /// Writes the node's heartbeat; returns the vault's active KEK as the database
        /// records it (`None` on SQLite, where the keyring file decides).
        fn heartbeat(node: &NodeReport) -> Result<Option<u32>, StoreError>;
        /// The active KEK at start, recording `keyring_active` on a database without one; on
        /// a direct connection outside any transaction. `None` on SQLite.
        fn kek_in_force(keyring_active: u32, by: &str) -> Result<Option<u32>, StoreError>;
        fn remove_node(node_id: &str) -> Result<(), StoreError>;
        /// Nodes seen within `live_secs`.
        fn live_nodes(live_secs: f64) -> Result<Vec<NodeRow>, StoreError>;
        /// Activates KEK `version` if every node live within `live_secs` holds it; returns
        /// the ids of those that do not (then nothing is activated).
        fn try_activate_kek(version: u32, live_secs: f64, by: &str) -> Result<Vec<String>, StoreError>;
    }

    /// The right to run a job of many units, held until dropped.
    #[derive(Debug)]
    pub enum JobLock {
        /// SQLite: this server is the only one on its data dir.
        Local,
        /// A session advisory lock on a connection of its own.
        Postgres(postgres::coordination::SessionLock),
    }

    impl JobLock {
        /// Takes `job`'s lock; `None` while another node (or another job of this node) holds
        /// it.
        pub async fn try_take(location: &Location, job: Job) -> Result<Option<Self>, StoreError> {
            match location {
                Location::Sqlite { .. } => Ok(Some(Self::Local)),
                Location::Postgres(settings) => {
                    let settings = settings.clone();
                    tokio::task::spawn_blocking(move || {
                        postgres::coordination::SessionLock::try_take(move || settings.open(), job)
                    })
                    .await
                    .map_err(|_| StoreError::Panicked)?
                    .map(|l| l.map(Self::Postgres))
                }
            }
        }

        /// Whether the lock is still held (a PostgreSQL session can be lost mid-job).
        pub fn is_held(&self) -> bool {
            match self {
                Self::Local => true,
                Self::Postgres(l) => l.is_held(),
            }
        }
    }
}

/// The audit trail: append, read back, checkpoints, the officer's query, export ranges, the
/// trail's purge.
pub mod audit;

/// The console's charts: bounded aggregates of the trail and the data-subject requests.
pub mod charts;

/// `GET /v1/audit/verify`: the whole trail or from the newest checkpoint.
pub mod audit_since {
    use super::{Conn, StoreError};
    use crate::audit::checkpoint::RangeVerification;

    seam! {
        (super::sqlite::audit_since), (super::postgres::audit_since);
        fn full(public_key: &[u8]) -> Result<RangeVerification, StoreError>;
        fn since_checkpoint(public_key: &[u8]) -> Result<RangeVerification, StoreError>;
    }
}

/// Online backup, restore staging and the checks on a backup file (SQLite; a PostgreSQL
/// vault is backed up with the database's own tools, README "Running several nodes").
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

impl StoreError {
    /// Whether the database could not be reached (however deep in a commit or an audit
    /// append): answered 503 `unavailable` rather than `audit_unavailable`, since nothing
    /// about the trail itself failed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Audit(inner) => inner.is_unavailable(),
            Self::Commit(inner) => inner.is_unavailable(),
            _ => false,
        }
    }
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
    /// The database cannot be reached (PostgreSQL: the connection is lost and cannot be
    /// reopened yet). Answered 503 `unavailable`; the connection is reopened by itself.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("an operation panicked")]
    Panicked,
    #[error("{0}")]
    Other(String),
}
