//! Against a real server: `GUESTVAULT_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); skipped with a message when it is unset. Each
//! test creates its own database and drops it.

use tokio_postgres::{Client, NoTls};

use super::*;

const URL_VAR: &str = "GUESTVAULT_TEST_POSTGRES_URL";

async fn connect(config: &tokio_postgres::Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A fresh database on the test server, dropped by [`TestDb::drop_now`].
struct TestDb {
    admin: Client,
    name: String,
    config: tokio_postgres::Config,
}

impl TestDb {
    async fn create() -> Option<Self> {
        let Ok(url) = std::env::var(URL_VAR) else {
            eprintln!("skipped: {URL_VAR} is not set (a PostgreSQL server to test against)");
            return None;
        };
        let admin_config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
        let admin = connect(&admin_config).await;
        let name = format!("gv_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let mut config = admin_config.clone();
        config.dbname(&name);
        Some(Self {
            admin,
            name,
            config,
        })
    }

    async fn drop_now(self) {
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .expect("drop database");
    }
}

#[tokio::test]
async fn the_schema_applies_once_and_keeps_the_keyring_fingerprint() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut c = connect(&db.config).await;
    migrate(&mut c, "aaaa").await.unwrap();
    migrate(&mut c, "aaaa").await.unwrap();
    let versions: i64 = c
        .query_one("SELECT count(*) FROM guestvault_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, MIGRATIONS.len() as i64);
    let err = migrate(&mut c, "bbbb").await.unwrap_err();
    assert!(matches!(err, StoreError::KeyringMismatch { .. }), "{err}");
    // The fingerprint row cannot be rewritten behind the check's back.
    let err = c
        .execute(
            "UPDATE meta SET value = 'bbbb' WHERE key = 'keyring_fingerprint'",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("keyring_fingerprint") || format!("{err:?}").contains("keyring"),
        "{err:?}"
    );
    // The lock was released: another session can take it.
    let other = connect(&db.config).await;
    let got: bool = other
        .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .unwrap()
        .get(0);
    assert!(got);
    drop((c, other));
    db.drop_now().await;
}

#[tokio::test]
async fn nodes_starting_together_migrate_one_after_the_other() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut a = connect(&db.config).await;
    let mut b = connect(&db.config).await;
    let (ra, rb) = tokio::join!(migrate(&mut a, "fp"), migrate(&mut b, "fp"));
    ra.unwrap();
    rb.unwrap();
    let n: i64 = a
        .query_one("SELECT count(*) FROM guestvault_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, MIGRATIONS.len() as i64);
    drop((a, b));
    db.drop_now().await;
}

/// The message of a refused statement (the server's, not the driver's wrapper).
async fn refused(c: &Client, sql: &str) -> String {
    let err = c.batch_execute(sql).await.expect_err(sql);
    err.as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| err.to_string())
}

#[tokio::test]
async fn audit_rows_cannot_be_updated_or_deleted() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut c = connect(&db.config).await;
    migrate(&mut c, "fp").await.unwrap();
    c.batch_execute(
        "INSERT INTO audit_events (seq, ts, request_id, actor, role, action, fields, outcome, rules, prev_hash, hash)
           SELECT g, 't', 'r', 'a', 'x', 'guest.read', '[]', 'allowed', '[]', '\\x00', '\\x00'
           FROM generate_series(1, 3) g;
         INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature)
           VALUES (1, '\\x00', 't', 'k', '\\x00'), (2, '\\x00', 't', 'k', '\\x00');",
    )
    .await
    .unwrap();
    for sql in [
        "UPDATE audit_events SET actor = 'b'",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE seq = 1",
        "TRUNCATE audit_events",
        "UPDATE audit_checkpoints SET signature = '\\x01'",
        "UPDATE audit_checkpoints SET seq = 9 WHERE seq = 2",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_checkpoints",
        "TRUNCATE meta",
    ] {
        let msg = refused(&c, sql).await;
        assert!(msg.contains("append-only"), "{sql}: {msg}");
    }
    // The purge mark only moves forward, and only to a signed checkpoint.
    for sql in [
        "INSERT INTO meta (key, value) VALUES ('audit_purge_through', '3')",
        "INSERT INTO meta (key, value) VALUES ('audit_purge_through', '0')",
        "INSERT INTO meta (key, value) VALUES ('audit_purge_through', '01')",
        "INSERT INTO meta (key, value) VALUES ('audit_purge_through', 'x')",
    ] {
        let msg = refused(&c, sql).await;
        assert!(msg.contains("audit_purge_through"), "{sql}: {msg}");
    }
    c.batch_execute(
        "INSERT INTO meta (key, value) VALUES ('audit_purge_through', '1')
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .await
    .unwrap();
    let removed = c
        .execute("DELETE FROM audit_events WHERE seq <= 1", &[])
        .await
        .unwrap();
    assert_eq!(removed, 1, "the purge path still works");
    for sql in [
        "DELETE FROM audit_events WHERE seq = 2",
        "UPDATE meta SET value = '3' WHERE key = 'audit_purge_through'",
        "UPDATE meta SET value = '0' WHERE key = 'audit_purge_through'",
        "UPDATE meta SET key = 'x' WHERE key = 'audit_purge_through'",
        "UPDATE meta SET key = 'audit_purge_through' WHERE key = 'keyring_fingerprint'",
        "DELETE FROM meta WHERE key = 'audit_purge_through'",
        "UPDATE meta SET key = 'x' WHERE key = 'keyring_fingerprint'",
        "DELETE FROM meta WHERE key = 'keyring_fingerprint'",
    ] {
        let msg = refused(&c, sql).await;
        assert!(
            msg.contains("append-only")
                || msg.contains("audit_purge_through")
                || msg.contains("keyring_fingerprint"),
            "{sql}: {msg}"
        );
    }
    c.batch_execute("UPDATE meta SET value = '2' WHERE key = 'audit_purge_through'")
        .await
        .unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM audit_checkpoints", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    drop(c);
    db.drop_now().await;
}
