//! The seam's handles: the writer and reader pool of whichever backend the vault runs on, and
//! a direct connection for the CLI. Each is an enum of the two backends' own handles; a unit
//! of work given to them receives a [`Conn`] of its backend.

use std::sync::Arc;

use super::{postgres, sqlite, CommitHealth, Conn, StoreError, WriterStats};
use crate::audit::checkpoint::ChainTip;

/// Runs in every group transaction after its units (and, on PostgreSQL, after their audit
/// events were appended) and before the commit, in its own savepoint; a failure is logged and
/// does not fail the group. The audit checkpoint every N events uses it. On PostgreSQL it gets
/// the [`ChainTip`] the group moved the head to (and runs only for a group that appended), so
/// it need not read the head while holding its lock; SQLite passes `None`.
pub type PreCommitHook =
    Box<dyn FnMut(&Conn<'_>, Option<&ChainTip>) -> Result<(), StoreError> + Send>;
/// Runs in every group transaction just before the commit; its failure fails the whole group
/// (the erasure ledger's fsync: an erasure never commits before its ledger line is durable).
pub type CommitBarrier = Box<dyn FnMut() -> Result<(), StoreError> + Send>;

/// The node's writer (cheap to clone).
#[derive(Debug, Clone)]
pub enum Writer {
    Sqlite(sqlite::Writer),
    Postgres(postgres::Writer),
}

impl Writer {
    /// Runs `op` inside a savepoint of the next group transaction and returns its result once
    /// that transaction has committed.
    pub async fn execute<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        match self {
            Self::Sqlite(w) => w.execute(move |c| op(&Conn::Sqlite(c))).await,
            Self::Postgres(w) => w.execute(move |c| op(&Conn::Postgres(c))).await,
        }
    }

    /// Like [`execute`](Self::execute) without the savepoint, for a unit of at most one
    /// statement (one audit append: the hot path of every read).
    pub async fn execute_atomic<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        match self {
            Self::Sqlite(w) => w.execute_atomic(move |c| op(&Conn::Sqlite(c))).await,
            Self::Postgres(w) => w.execute_atomic(move |c| op(&Conn::Postgres(c))).await,
        }
    }

    /// Appends one audit event in the next group transaction (the record of a read or a
    /// refusal) and returns once it has committed. On PostgreSQL the event joins whichever
    /// group next locks the chain head (`postgres::Writer::append_event`).
    pub async fn append_event(&self, event: crate::audit::NewEvent) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(w) => {
                w.execute_atomic(move |c| crate::audit::append(&Conn::Sqlite(c), event))
                    .await
            }
            Self::Postgres(w) => w.append_event(event).await,
        }
    }

    pub fn stats(&self) -> &WriterStats {
        match self {
            Self::Sqlite(w) => w.stats(),
            Self::Postgres(w) => w.stats(),
        }
    }

    /// The outcome of the last group commits (readiness).
    pub fn health(&self) -> &CommitHealth {
        match self {
            Self::Sqlite(w) => w.health(),
            Self::Postgres(w) => w.health(),
        }
    }

    /// Call after a committed write that deleted personal data (erasure, retention purge):
    /// SQLite empties its WAL, PostgreSQL vacuums the tables that held the rows.
    pub fn note_shredded(&self) {
        match self {
            Self::Sqlite(w) => w.note_shredded(),
            Self::Postgres(w) => w.note_shredded(),
        }
    }
}

/// The node's pool of read connections.
#[derive(Debug)]
pub enum Readers {
    Sqlite(Arc<sqlite::Readers>),
    Postgres(Arc<postgres::Readers>),
}

impl Readers {
    /// Runs `f` on the next free reader connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        match self {
            Self::Sqlite(r) => r.run(move |c| f(&Conn::Sqlite(c))).await,
            Self::Postgres(r) => r.run(move |c| f(&Conn::Postgres(c))).await,
        }
    }

    /// The SQLite database file, to tell a full disk from a read-only one; `None` on
    /// PostgreSQL.
    pub fn database_path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Sqlite(r) => Some(r.database_path()),
            Self::Postgres(_) => None,
        }
    }
}

/// A direct connection outside the writer (the CLI, long verifications), owned by its caller.
/// (One per command or verification: the size difference of the variants does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Db {
    Sqlite(sqlite::SqliteConn),
    Postgres(postgres::PgConn),
}

impl Db {
    /// Reclaims the dead rows an erasure left, now: PostgreSQL vacuums the tables that held
    /// shredded rows. On SQLite nothing is left to do here (`secure_delete` overwrote the
    /// rows; the writer empties the WAL).
    pub fn vacuum_shredded(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(_) => Ok(()),
            Self::Postgres(c) => postgres::writer::vacuum_shredded(c),
        }
    }

    /// The handle the seam's operations take.
    pub fn conn(&self) -> Conn<'_> {
        match self {
            Self::Sqlite(c) => Conn::Sqlite(c),
            Self::Postgres(c) => Conn::Postgres(c),
        }
    }
}
