//! The PostgreSQL backend (issue 14): several vault nodes on one database. The same
//! operations as `store/sqlite/`, in PostgreSQL's dialect; a writer per node whose group
//! commits append to one shared audit chain under the chain head's row lock; a reader pool
//! per node. See `docs/storage.md`.
//!
//! The client is `tokio-postgres`; it is used only under `src/store/postgres/` (a test in
//! `tests/api/layout.rs` keeps it so).

pub mod audit;
pub mod audit_since;
pub mod charts;
pub mod conn;
pub mod connect;
pub mod consents;
pub mod coordination;
pub mod corrections;
pub mod deadlines;
pub mod erasure;
pub mod guests;
pub mod holds;
pub mod keys;
mod readers;
pub mod stages;
pub mod writer;

pub use conn::PgConn;
pub use connect::PgSettings;
pub use readers::Readers;
pub use writer::{Writer, SHREDDED_TABLES};

/// A cheap read that proves a connection answers (readiness).
pub fn ping(conn: &PgConn) -> Result<(), StoreError> {
    conn.query_one("SELECT 1", &[])?;
    Ok(())
}

/// Writes this node's readiness heartbeat: one small row in `meta`, replaced each time, so a
/// commit that includes it proves a real write reaches the database.
pub fn write_heartbeat(conn: &PgConn) -> Result<(), StoreError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('ready_heartbeat', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&now],
    )?;
    Ok(())
}

/// Opens a connection, applies the migrations (one node at a time) and checks the keyring
/// fingerprint.
pub fn open_migrated(
    settings: &PgSettings,
    keyring_fingerprint: &str,
) -> Result<PgConn, StoreError> {
    let mut conn = settings.open()?;
    conn.migrate(keyring_fingerprint)?;
    Ok(conn)
}

use tokio_postgres::Client;

use super::StoreError;

/// The driver's error, carried by [`StoreError::Postgres`].
pub type PgError = tokio_postgres::Error;

/// The schema, in order: (version, name, SQL). A migration is never edited after release.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "0002_nodes",
        include_str!("../../../migrations/postgres/0002_nodes.sql"),
    ),
    (
        3,
        "0003_minors",
        include_str!("../../../migrations/postgres/0003_minors.sql"),
    ),
    (
        4,
        "0004_holds",
        include_str!("../../../migrations/postgres/0004_holds.sql"),
    ),
    (
        5,
        "0005_retention_stages",
        include_str!("../../../migrations/postgres/0005_retention_stages.sql"),
    ),
    (
        6,
        "0006_notices_refusals",
        include_str!("../../../migrations/postgres/0006_notices_refusals.sql"),
    ),
    (
        7,
        "0007_dsr_deadlines",
        include_str!("../../../migrations/postgres/0007_dsr_deadlines.sql"),
    ),
];

/// The advisory lock that lets one node at a time migrate (an arbitrary constant, the same on
/// every node: "GVMIGRAT" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x4756_4d49_4752_4154;

/// Applies the migrations not yet applied and checks the keyring fingerprint: a new database
/// records it, an existing one must match it. Holds [`MIGRATION_LOCK`] throughout, so nodes
/// starting together migrate one after the other; each migration runs in its own transaction.
pub async fn migrate(client: &mut Client, keyring_fingerprint: &str) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = migrate_locked(client, keyring_fingerprint).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let () = result?;
    unlocked?;
    Ok(())
}

async fn migrate_locked(client: &mut Client, keyring_fingerprint: &str) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS guestvault_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let applied: i32 = client
        .query_one(
            "SELECT COALESCE(max(version), 0) FROM guestvault_migrations",
            &[],
        )
        .await?
        .get(0);
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO guestvault_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tx.commit().await?;
    }
    let stored = client
        .query_opt(
            "SELECT value FROM meta WHERE key = 'keyring_fingerprint'",
            &[],
        )
        .await?
        .map(|r| r.get::<_, String>(0));
    match stored {
        Some(expected) if expected != keyring_fingerprint => Err(StoreError::KeyringMismatch {
            expected,
            actual: keyring_fingerprint.to_string(),
        }),
        Some(_) => Ok(()),
        None => {
            // Two nodes of a new database may race here: the first insert wins, and the loser
            // reads the winner's fingerprint back (it must be its own).
            client
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('keyring_fingerprint', $1)
                     ON CONFLICT (key) DO NOTHING",
                    &[&keyring_fingerprint],
                )
                .await?;
            let expected: String = client
                .query_one(
                    "SELECT value FROM meta WHERE key = 'keyring_fingerprint'",
                    &[],
                )
                .await?
                .get(0);
            if expected == keyring_fingerprint {
                Ok(())
            } else {
                Err(StoreError::KeyringMismatch {
                    expected,
                    actual: keyring_fingerprint.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
