//! The SQLite backend: connection setup, migrations, one writer thread with group commit, a
//! pool of read-only connections, the WAL checkpointer, and the SQL for each table. This is
//! the only place `rusqlite` is used (a test in `tests/api/layout.rs` keeps it so); the rest
//! of the vault reaches it through the storage seam, [`crate::store`]. Functions that read or
//! write personal data take a [`Permit`](crate::policy::Permit), which only the policy module
//! mints.

pub mod audit;
pub mod audit_since;
#[cfg(test)]
mod audit_tamper_tests;
#[cfg(test)]
mod audit_tests;
pub mod backup;
pub mod charts;
mod checkpoint;
pub mod consents;
pub mod coordination;
mod corrections;
mod deadlines;
mod erasure;
mod guests;
pub mod holds;
mod keys;
mod readers;
mod stages;
mod writer;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};

// The shared parts, named here so this backend's modules find them as `super::…`.
use super::health;
use super::rows::{
    DsrRow, GuestStatus, PendingCorrection, RetentionFacts, SealedGuest, SealedStay,
    PLAUSIBLE_HORIZON_DAYS,
};
use super::{Fault, StoreError};

pub use checkpoint::{ReadGate, GATE_WAIT};
pub use corrections::*;
pub use deadlines::*;
pub use erasure::*;
pub use guests::*;
pub use keys::*;
pub use readers::Readers;
pub use stages::*;
pub use writer::{CommitBarrier, PreCommitHook, Writer, DEFAULT_WAL_MAX_BYTES};

/// The handle a unit of work gets: inside [`Writer::execute`] the connection of the group
/// transaction (in a savepoint of its own), inside [`Readers::run`] a read-only connection.
/// Outside this module it is opaque by convention: it is only passed on to the seam's
/// operations (a test in `tests/api/layout.rs` finds SQL anywhere else).
pub type SqliteConn = Connection;

/// The driver's error, carried by [`StoreError::Sqlite`].
pub type SqliteError = rusqlite::Error;
/// A failed migration, carried by [`StoreError::Migration`].
pub type MigrationError = rusqlite_migration::Error;

impl Fault {
    /// The fault behind a failed SQLite call; `None` for an error that is not about storage
    /// (a constraint, a busy lock that a retry resolves).
    pub fn of_sqlite(e: &rusqlite::Error) -> Option<Self> {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code()? {
            ErrorCode::DiskFull => Some(Self::DiskFull),
            ErrorCode::ReadOnly => Some(Self::ReadOnly),
            ErrorCode::CannotOpen if is_read_only_open(e) => Some(Self::ReadOnly),
            ErrorCode::SystemIoFailure | ErrorCode::CannotOpen | ErrorCode::DatabaseCorrupt => {
                Some(Self::AuditUnavailable)
            }
            _ => None,
        }
    }
}

fn is_read_only_open(e: &rusqlite::Error) -> bool {
    e.to_string().contains("readonly")
}

/// A cheap read that proves a reader connection answers (readiness).
pub fn ping(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
    Ok(())
}

/// How long a write connection waits for SQLite's locks (another process on the data dir).
pub(super) const WRITER_BUSY: std::time::Duration = std::time::Duration::from_secs(10);

/// Applies the pragmas every connection needs. `synchronous=FULL` by default: an acknowledged
/// write survives power loss; `secure_delete` overwrites deleted content (crypto-shredding).
fn configure(conn: &Connection, synchronous: &str) -> Result<(), StoreError> {
    conn.busy_timeout(WRITER_BUSY)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    // Savepoints' statement journals stay in memory: on disk they were most of the writer's
    // I/O (measured: 72% of its pwrite calls went to SQLite temp files).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../../migrations/0001_init.sql")),
        M::up(include_str!("../../../migrations/0002_dsr.sql")),
        M::up(include_str!("../../../migrations/0003_audit_guards.sql")),
        M::up(include_str!("../../../migrations/0004_dsr_corrections.sql")),
        M::up(include_str!("../../../migrations/0005_corrections.sql")),
        M::up(include_str!("../../../migrations/0006_minors.sql")),
        M::up(include_str!("../../../migrations/0007_holds.sql")),
        M::up(include_str!(
            "../../../migrations/0008_retention_stages.sql"
        )),
        M::up(include_str!(
            "../../../migrations/0009_notices_refusals.sql"
        )),
        M::up(include_str!("../../../migrations/0010_dsr_deadlines.sql")),
    ])
}

/// Opens (creating if needed) the database, applies migrations and checks the keyring
/// fingerprint: a new database records it, an existing one must match it.
pub fn open_writer(
    path: &Path,
    synchronous: &str,
    keyring_fingerprint: &str,
) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    configure(&conn, synchronous)?;
    // 16 MiB of page cache (SQLite's default is 2 MiB): the audit trail's by-guest index takes
    // one insert at a random place per event, and with the default cache most of those leaf
    // pages had to be read back from the OS on every group commit.
    conn.pragma_update(None, "cache_size", -16384)?;
    migrations().to_latest(&mut conn)?;
    let stored: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'keyring_fingerprint'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match stored {
        Some(expected) if expected != keyring_fingerprint => Err(StoreError::KeyringMismatch {
            expected,
            actual: keyring_fingerprint.to_string(),
        }),
        Some(_) => Ok(conn),
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('keyring_fingerprint', ?1)",
                [keyring_fingerprint],
            )?;
            Ok(conn)
        }
    }
}

/// Writes the readiness heartbeat: one small row in `meta`, replaced each time, so a commit
/// that includes it proves a real write reaches the disk.
pub fn write_heartbeat(conn: &Connection) -> Result<(), StoreError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('ready_heartbeat', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([now.to_string()])?;
    Ok(())
}

/// A read-only connection for the reader pool.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "query_only", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn a_different_keyring_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("g.db");
        drop(open_writer(&db, "full", "aaaa").unwrap());
        drop(open_writer(&db, "full", "aaaa").unwrap());
        let err = open_writer(&db, "full", "bbbb").unwrap_err();
        assert!(matches!(err, StoreError::KeyringMismatch { .. }));
        assert!(err.to_string().contains("keyring does not match"));
    }

    #[test]
    fn audit_rows_cannot_be_updated_or_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("g.db"), "full", "fp").unwrap();
        for seq in 1..=3 {
            conn.execute(
                "INSERT INTO audit_events (seq, ts, request_id, actor, role, action, fields, outcome, rules, prev_hash, hash)
                 VALUES (?1, 't', 'r', 'a', 'x', 'guest.read', '[]', 'allowed', '[]', x'00', x'00')",
                [seq],
            )
            .unwrap();
        }
        for seq in [1, 2] {
            conn.execute(
                "INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature)
                 VALUES (?1, x'00', 't', 'k', x'00')",
                [seq],
            )
            .unwrap();
        }
        let fails = |sql: &str| {
            let err = conn.execute(sql, []).unwrap_err().to_string();
            assert!(
                err.contains("append-only") || err.contains("audit_purge_through"),
                "{sql}: {err}"
            );
        };
        fails("UPDATE audit_events SET actor = 'b'");
        fails("DELETE FROM audit_events");
        fails("DELETE FROM audit_events WHERE seq = 1");
        fails("UPDATE audit_checkpoints SET signature = x'01'");
        fails("UPDATE audit_checkpoints SET seq = 9 WHERE seq = 2");
        fails("DELETE FROM audit_checkpoints");
        fails("DELETE FROM audit_checkpoints WHERE seq = 2");
        // The purge marker only moves forward, and only to a signed checkpoint.
        fails("INSERT INTO meta (key, value) VALUES ('audit_purge_through', '3')");
        fails("INSERT INTO meta (key, value) VALUES ('audit_purge_through', '0')");
        fails("INSERT INTO meta (key, value) VALUES ('audit_purge_through', '01')");
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('audit_purge_through', '1')
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [],
        )
        .unwrap();
        assert_eq!(
            conn.execute("DELETE FROM audit_events WHERE seq <= 1", [])
                .unwrap(),
            1,
            "the purge path still works"
        );
        fails("DELETE FROM audit_events WHERE seq = 2");
        fails("UPDATE meta SET value = '3' WHERE key = 'audit_purge_through'");
        fails("UPDATE meta SET value = '0' WHERE key = 'audit_purge_through'");
        fails("UPDATE meta SET key = 'x' WHERE key = 'audit_purge_through'");
        fails("UPDATE meta SET key = 'audit_purge_through' WHERE key = 'keyring_fingerprint'");
        fails("INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_purge_through', '1')");
        fails("DELETE FROM meta WHERE key = 'audit_purge_through'");
        conn.execute(
            "UPDATE meta SET value = '2' WHERE key = 'audit_purge_through'",
            [],
        )
        .unwrap();
        assert_eq!(
            conn.query_row("SELECT count(*) FROM audit_checkpoints", [], |r| r
                .get::<_, i64>(0))
                .unwrap(),
            2
        );
    }
}
