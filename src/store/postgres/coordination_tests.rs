//! Tests of the coordination between nodes on a real PostgreSQL server: each test makes its own
//! database (`GUESTVAULT_TEST_POSTGRES_URL`, see `conn::testdb`) and is skipped without one.
//! Two connections stand for two nodes.

use std::time::{Duration, Instant};

use super::*;
use crate::store::postgres::conn::testdb::{self, TestDb};

fn node(id: &str, kek_versions: &[u32], active_kek: u32) -> NodeReport {
    NodeReport {
        node_id: id.into(),
        version: "0.0.0-test".into(),
        keyring_fingerprint: "test-fingerprint".into(),
        kek_versions: kek_versions.to_vec(),
        active_kek,
        listen: format!("{id}:8443"),
    }
}

/// A heartbeat in a transaction of its own, as the writer's group would run it.
fn beat(conn: &PgConn, n: &NodeReport) -> Option<u32> {
    conn.batch("BEGIN").unwrap();
    let active = heartbeat(conn, n).unwrap();
    conn.batch("COMMIT").unwrap();
    active
}

fn activate(conn: &PgConn, version: u32, live_secs: f64) -> Vec<String> {
    conn.batch("BEGIN").unwrap();
    let lacking = try_activate_kek(conn, version, live_secs, "node-a").unwrap();
    conn.batch("COMMIT").unwrap();
    lacking
}

fn live_ids(conn: &PgConn) -> Vec<String> {
    live_nodes(conn, 10.0)
        .unwrap()
        .into_iter()
        .map(|n| n.report.node_id)
        .collect()
}

/// Makes `id`'s last heartbeat `secs` old, as if the node had stopped beating then.
fn age(conn: &PgConn, id: &str, secs: f64) {
    conn.execute_dyn(
        "UPDATE nodes SET last_seen = clock_timestamp() - make_interval(secs => $2::FLOAT8)
         WHERE node_id = $1",
        &[&id, &secs],
    )
    .unwrap();
}

/// Polls `f` for up to five seconds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn opener(db: &TestDb) -> impl FnOnce() -> Result<PgConn, StoreError> + Send + 'static {
    let config = db.config.clone();
    move || Ok(testdb::connect(&config))
}

#[test]
fn a_transaction_lock_is_held_by_one_transaction_at_a_time_and_ends_with_it() {
    let Some(db) = TestDb::create() else { return };
    let (a, b) = (db.connect(), db.connect());
    a.batch("BEGIN").unwrap();
    assert!(try_xact_lock(&a, Job::Checkpoint).unwrap());
    b.batch("BEGIN").unwrap();
    assert!(
        !try_xact_lock(&b, Job::Checkpoint).unwrap(),
        "node B must skip its turn"
    );
    // Another job's lock is another lock.
    assert!(try_xact_lock(&b, Job::RetentionSweep).unwrap());
    a.batch("COMMIT").unwrap();
    assert!(try_xact_lock(&b, Job::Checkpoint).unwrap());
    b.batch("ROLLBACK").unwrap();
    // A rolled-back transaction releases it too.
    a.batch("BEGIN").unwrap();
    assert!(try_xact_lock(&a, Job::Checkpoint).unwrap());
    a.batch("ROLLBACK").unwrap();
}

#[test]
fn a_session_lock_excludes_other_nodes_until_it_is_dropped() {
    let Some(db) = TestDb::create() else { return };
    let first = SessionLock::try_take(opener(&db), Job::RetentionSweep)
        .unwrap()
        .expect("a free lock is taken");
    assert!(first.is_held());
    assert!(SessionLock::try_take(opener(&db), Job::RetentionSweep)
        .unwrap()
        .is_none());
    // Another job is not held back.
    let rotation = SessionLock::try_take(opener(&db), Job::KeyRotation).unwrap();
    assert!(rotation.is_some());
    drop(first);
    // At once, not eventually: a job run right after the last one ended (a rotation an
    // operator asks for after the scheduled one) must not be refused as "running elsewhere".
    assert!(
        SessionLock::try_take(opener(&db), Job::RetentionSweep)
            .unwrap()
            .is_some(),
        "the lock was still held right after it was dropped"
    );
}

#[test]
fn a_session_lock_dies_with_its_session_and_another_node_resumes_the_job() {
    let Some(db) = TestDb::create() else { return };
    let held = SessionLock::try_take(opener(&db), Job::KeyRotation)
        .unwrap()
        .expect("a free lock is taken");
    let admin = db.connect();
    let granted: i64 = admin
        .query_dyn(
            "SELECT count(*) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND pid = $1",
            &[&held.backend_pid()],
        )
        .unwrap()[0]
        .get(0);
    assert_eq!(granted, 1, "the lock is the holder's session's");
    assert!(SessionLock::try_take(opener(&db), Job::KeyRotation)
        .unwrap()
        .is_none());
    // The node dies: its session ends (kill -9 of the process, a lost network, the same).
    admin
        .query_dyn("SELECT pg_terminate_backend($1)", &[&held.backend_pid()])
        .unwrap();
    let mut resumed = None;
    eventually("another node can take the job", || {
        resumed = SessionLock::try_take(opener(&db), Job::KeyRotation).unwrap();
        resumed.is_some()
    });
    // The old holder finds out, so a job still running there stops at its next step.
    eventually("the old holder knows it lost the lock", || !held.is_held());
    assert!(resumed.unwrap().is_held());
}

#[test]
fn heartbeats_show_live_nodes_with_their_keys_and_forget_dead_ones() {
    let Some(db) = TestDb::create() else { return };
    let conn = db.connect();
    assert_eq!(beat(&conn, &node("node-a", &[1, 2], 2)), None);
    beat(&conn, &node("node-b", &[1], 1));
    let nodes = live_nodes(&conn, 10.0).unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].report, node("node-a", &[1, 2], 2));
    assert_eq!(nodes[1].report, node("node-b", &[1], 1));
    assert!(nodes[0].seen_secs_ago < 5.0);
    assert!(nodes[0].started_at.ends_with('Z'));
    // The next beat replaces the row: same start, new keys.
    let started = nodes[1].started_at.clone();
    beat(&conn, &node("node-b", &[1, 2], 2));
    let b = &live_nodes(&conn, 10.0).unwrap()[1];
    assert_eq!(b.report.kek_versions, [1, 2]);
    assert_eq!(b.started_at, started);
    // A node that stopped beating is not live, and an hour later it is forgotten.
    age(&conn, "node-b", 30.0);
    assert_eq!(live_ids(&conn), ["node-a"]);
    assert_eq!(live_nodes(&conn, 60.0).unwrap().len(), 2);
    age(&conn, "node-b", 7200.0);
    beat(&conn, &node("node-a", &[1, 2], 2));
    let rows: i64 = conn.query_dyn("SELECT count(*) FROM nodes", &[]).unwrap()[0].get(0);
    assert_eq!(rows, 1);
    // A clean shutdown removes the row at once.
    remove_node(&conn, "node-a").unwrap();
    assert!(live_ids(&conn).is_empty());
}

#[test]
fn the_first_node_records_the_active_kek_and_the_others_read_it() {
    let Some(db) = TestDb::create() else { return };
    let (a, b) = (db.connect(), db.connect());
    assert_eq!(active_kek(&a).unwrap(), None);
    assert_eq!(kek_in_force(&a, 1, "start").unwrap(), Some(1));
    // A node whose file says otherwise gets the database's answer.
    assert_eq!(kek_in_force(&b, 2, "start").unwrap(), Some(1));
    assert_eq!(beat(&b, &node("node-b", &[1, 2], 1)), Some(1));
}

#[test]
fn a_kek_is_not_activated_while_a_live_node_lacks_it() {
    let Some(db) = TestDb::create() else { return };
    let conn = db.connect();
    kek_in_force(&conn, 1, "start").unwrap();
    beat(&conn, &node("node-a", &[1, 2], 1));
    beat(&conn, &node("node-b", &[1], 1));
    assert_eq!(activate(&conn, 2, 10.0), ["node-b"]);
    assert_eq!(active_kek(&conn).unwrap(), Some(1));
    assert_eq!(beat(&conn, &node("node-b", &[1], 1)), Some(1));
    // Node B loads the new keyring: its next beat says so, and the gate opens.
    beat(&conn, &node("node-b", &[1, 2], 1));
    assert!(activate(&conn, 2, 10.0).is_empty());
    assert_eq!(active_kek(&conn).unwrap(), Some(2));
    // Every node learns it at its next beat.
    assert_eq!(beat(&conn, &node("node-b", &[1, 2], 1)), Some(2));
}

#[test]
fn a_kek_is_activated_once_the_node_lacking_it_stops_beating() {
    let Some(db) = TestDb::create() else { return };
    let conn = db.connect();
    kek_in_force(&conn, 1, "start").unwrap();
    beat(&conn, &node("node-a", &[1, 2], 1));
    beat(&conn, &node("node-b", &[1], 1));
    assert_eq!(activate(&conn, 2, 10.0), ["node-b"]);
    age(&conn, "node-b", 11.0);
    assert!(activate(&conn, 2, 10.0).is_empty());
    assert_eq!(active_kek(&conn).unwrap(), Some(2));
}

#[test]
fn the_active_kek_only_moves_forward() {
    let Some(db) = TestDb::create() else { return };
    let conn = db.connect();
    kek_in_force(&conn, 1, "start").unwrap();
    assert!(activate(&conn, 3, 10.0).is_empty());
    assert!(activate(&conn, 2, 10.0).is_empty());
    assert_eq!(active_kek(&conn).unwrap(), Some(3));
    assert_eq!(kek_in_force(&conn, 1, "start").unwrap(), Some(3));
}

#[test]
fn a_node_registering_during_an_activation_waits_and_then_sees_it() {
    let Some(db) = TestDb::create() else { return };
    let a = db.connect();
    kek_in_force(&a, 1, "start").unwrap();
    beat(&a, &node("node-a", &[1, 2], 1));
    a.batch("BEGIN").unwrap();
    assert!(try_activate_kek(&a, 2, 10.0, "node-a").unwrap().is_empty());
    // Node C starts now, with a keyring that lacks KEK 2: its first beat waits for the
    // activation to commit, then reads it (and the node refuses to start without the KEK).
    let c = db.connect();
    let (tx, rx) = std::sync::mpsc::channel();
    let starter = std::thread::spawn(move || {
        let _ = tx.send(beat(&c, &node("node-c", &[1], 1)));
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "the beat waits for the activation");
    a.batch("COMMIT").unwrap();
    let seen = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    starter.join().unwrap();
    assert_eq!(seen, Some(2));
}
