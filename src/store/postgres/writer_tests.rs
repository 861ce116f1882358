//! The PostgreSQL writer against a real server (`GUESTVAULT_TEST_POSTGRES_URL`); skipped with
//! a message when it is unset.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::super::conn::testdb::{off_runtime, TestDb};
use super::*;

fn writer(db: &TestDb, barrier: Option<CommitBarrier>) -> Writer {
    writer_with_hook(db, None, barrier)
}

fn writer_with_hook(
    db: &TestDb,
    hook: Option<PreCommitHook>,
    barrier: Option<CommitBarrier>,
) -> Writer {
    let config = db.config.clone();
    let connect: Connect = Box::new(move || {
        let rt = PgConn::runtime()?;
        let client = rt.block_on(async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(super::super::conn::classify)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok::<_, StoreError>(client)
        })?;
        Ok(PgConn::from_parts(rt, client))
    });
    let first = db.config.clone();
    let conn = off_runtime(move || super::super::conn::testdb::connect(&first));
    Writer::start(conn, connect, 64, hook, barrier, None)
        .unwrap()
        .0
}

fn count(db: &TestDb, like: &'static str) -> i64 {
    let c = db.connect();
    off_runtime(move || {
        c.query_one("SELECT count(*) FROM meta WHERE key LIKE $1", &[&like])
            .unwrap()
            .get(0)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_unit_rolls_back_only_itself() {
    let Some(db) = TestDb::create() else { return };
    let w = writer(&db, None);
    let ok = w.execute(|c| {
        c.execute("INSERT INTO meta (key, value) VALUES ('a', '1')", &[])?;
        Ok(())
    });
    let bad = w.execute(|c| {
        c.execute("INSERT INTO meta (key, value) VALUES ('b', '1')", &[])?;
        Err::<(), _>(StoreError::Other("refused".into()))
    });
    // A statement error aborts only the unit's savepoint, not the group.
    let failing_sql = w.execute(|c| {
        c.execute("INSERT INTO meta (key, value) VALUES ('a', 'dup')", &[])?;
        Ok(())
    });
    let (ok, bad, failing_sql) = tokio::join!(ok, bad, failing_sql);
    assert!(ok.is_ok());
    assert!(bad.is_err());
    assert!(failing_sql.is_err());
    assert_eq!(count(&db, "a"), 1);
    assert_eq!(count(&db, "b"), 0);
}

/// A unit's deferred (pipelined) writes run in the order issued, are seen by the unit's own
/// later reads, and a deferred write that fails fails its own unit only, even though its error
/// arrives after the unit's closure returned.
#[tokio::test(flavor = "multi_thread")]
async fn deferred_writes_keep_their_order_and_fail_their_own_unit() {
    let Some(db) = TestDb::create() else { return };
    let w = writer(&db, None);
    let insert = "INSERT INTO meta (key, value) VALUES ($1, $2)";
    let ordered = w.execute(move |c| {
        c.execute_deferred(
            insert,
            vec![Box::new("d1".to_string()), Box::new("1".to_string())],
        )?;
        c.execute_deferred(
            "UPDATE meta SET value = $2 WHERE key = $1",
            vec![Box::new("d1".to_string()), Box::new("2".to_string())],
        )?;
        // A read flushes the queue first, so it sees both writes.
        let v: String = c
            .query_one("SELECT value FROM meta WHERE key = 'd1'", &[])?
            .get(0);
        c.execute_deferred(insert, vec![Box::new("d2".to_string()), Box::new(v)])?;
        Ok(())
    });
    // Its duplicate key is only found when the queue is flushed, after the closure returned.
    let failing = w.execute(move |c| {
        c.execute_deferred(
            insert,
            vec![Box::new("d3".to_string()), Box::new("1".to_string())],
        )?;
        c.execute_deferred(
            insert,
            vec![Box::new("d3".to_string()), Box::new("1".to_string())],
        )?;
        Ok(())
    });
    let after = w.execute(move |c| {
        c.execute_deferred(
            insert,
            vec![Box::new("d4".to_string()), Box::new("1".to_string())],
        )?;
        Ok(())
    });
    let (ordered, failing, after) = tokio::join!(ordered, failing, after);
    ordered.unwrap();
    assert!(failing.is_err(), "the duplicate fails its own unit");
    after.unwrap();
    let c = db.connect();
    let rows: Vec<(String, String)> = off_runtime(move || {
        c.query(
            "SELECT key, value FROM meta WHERE key LIKE 'd%' ORDER BY key",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    });
    let want: Vec<(String, String)> = [("d1", "2"), ("d2", "2"), ("d4", "1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(rows, want, "d3 rolled back whole; the others in order");
    // Outside a writer unit nothing is queued: the statement runs at once.
    let c = db.connect();
    off_runtime(move || {
        c.execute_deferred(
            insert,
            vec![Box::new("d5".to_string()), Box::new("1".to_string())],
        )
        .unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM meta WHERE key = 'd5'", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_unit_fails_alone() {
    let Some(db) = TestDb::create() else { return };
    let w = writer(&db, None);
    let r = w
        .execute(|_| -> Result<(), StoreError> { panic!("boom") })
        .await;
    assert!(matches!(r, Err(StoreError::Panicked)));
    assert_eq!(w.execute(|_| Ok(1)).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_concurrent_writes_all_commit_in_groups() {
    let Some(db) = TestDb::create() else { return };
    let w = writer(&db, None);
    let mut handles = Vec::new();
    for i in 0..200 {
        let w = w.clone();
        handles.push(tokio::spawn(async move {
            w.execute(move |c| {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, 'v')",
                    &[&format!("n{i}")],
                )?;
                Ok(())
            })
            .await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(count(&db, "n%"), 200);
    assert!(w.stats().batches.load(Ordering::Relaxed) < 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_barrier_rolls_back_the_whole_group() {
    let Some(db) = TestDb::create() else { return };
    let fail = Arc::new(AtomicBool::new(true));
    let f = fail.clone();
    let barrier: CommitBarrier = Box::new(move || {
        if f.load(Ordering::SeqCst) {
            Err(StoreError::Other("disk full".into()))
        } else {
            Ok(())
        }
    });
    let w = writer(&db, Some(barrier));
    let r = w
        .execute(|c| {
            c.execute("INSERT INTO meta (key, value) VALUES ('x', '1')", &[])?;
            Ok(())
        })
        .await;
    assert!(r.is_err(), "the caller is told its write failed");
    fail.store(false, Ordering::SeqCst);
    w.execute(|_| Ok(())).await.unwrap();
    assert_eq!(
        count(&db, "x"),
        0,
        "nothing of the failed group was committed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_connection_fails_its_group_and_the_next_one_reconnects() {
    let Some(db) = TestDb::create() else { return };
    let w = writer(&db, None);
    let pid: i32 = w
        .execute(|c| Ok(c.query_one("SELECT pg_backend_pid()", &[])?.get(0)))
        .await
        .unwrap();
    let admin = db.connect();
    off_runtime(move || {
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
    });
    // The killed connection is noticed by the next group at the latest; whatever answered
    // before, within a few groups writes commit again on a new connection.
    let mut failures = 0;
    let mut committed = false;
    for i in 0..5 {
        let r = w
            .execute(move |c| {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, 'v')",
                    &[&format!("r{i}")],
                )?;
                Ok(())
            })
            .await;
        match r {
            Ok(()) => {
                committed = true;
                break;
            }
            Err(e) => {
                failures += 1;
                assert!(
                    matches!(Fault::of_store(&e), Fault::DatabaseUnavailable),
                    "{e}"
                );
            }
        }
    }
    assert!(committed, "the writer did not reconnect");
    assert!(failures <= 1, "{failures} groups failed");
    assert_eq!(w.health().current(), None);
    let new_pid: i32 = w
        .execute(|c| Ok(c.query_one("SELECT pg_backend_pid()", &[])?.get(0)))
        .await
        .unwrap();
    assert_ne!(pid, new_pid);
}

/// A TCP proxy to the test server that can stop forwarding (a database host that hangs
/// without resetting its connections).
struct FreezingProxy {
    port: u16,
    frozen: Arc<AtomicBool>,
}

impl FreezingProxy {
    fn start(target: (String, u16)) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect((target.0.as_str(), target.1)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let f = f.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            let Ok(n) = from.read(&mut buf) else { return };
                            if n == 0 {
                                return;
                            }
                            while f.load(Ordering::SeqCst) {
                                std::thread::sleep(std::time::Duration::from_millis(20));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self { port, frozen }
    }
}

#[test]
fn a_host_that_stops_answering_is_unavailable_within_the_call_timeout() {
    let Some(db) = TestDb::create() else { return };
    let host = match db.config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = db.config.get_ports().first().copied().unwrap_or(5432);
    let proxy = FreezingProxy::start((host, port));
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(proxy.port)
        .user(db.config.get_user().unwrap_or("postgres"))
        .dbname(&db.name);
    if let Some(p) = db.config.get_password() {
        config.password(p);
    }
    let conn = super::super::conn::testdb::connect(&config)
        .with_call_timeout(std::time::Duration::from_millis(500));
    assert_eq!(
        conn.query_one("SELECT 40 + 2", &[])
            .unwrap()
            .get::<_, i32>(0),
        42
    );
    proxy.frozen.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let err = conn.query_one("SELECT 1", &[]).unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        waited < std::time::Duration::from_secs(3),
        "waited {waited:?}"
    );
    assert!(conn.is_closed(), "a timed-out connection is not reused");
    // And it stays refused at once, not waiting again.
    let started = std::time::Instant::now();
    assert!(conn.execute("SELECT 1", &[]).is_err());
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
    proxy.frozen.store(false, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread")]
async fn several_writer_connections_commit_at_once_into_one_gapless_chain() {
    let Some(db) = TestDb::create() else { return };
    let config = db.config.clone();
    let connect: Connect =
        Box::new(move || Ok(super::super::conn::testdb::connect_checked(&config)));
    let first = db.config.clone();
    let conn = off_runtime(move || super::super::conn::testdb::connect(&first));
    let (w, _) = Writer::start_many(
        conn,
        Arc::new(std::sync::Mutex::new(connect)),
        4,
        8,
        None,
        None,
        None,
    )
    .unwrap();
    let mut handles = Vec::new();
    for i in 0..300u64 {
        handles.push(spawn_unit(&w, format!("m{i}"), i));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(count(&db, "m%"), 300);
    let c = db.connect();
    let (verified, seqs) = off_runtime(move || {
        let seqs: Vec<i64> = c
            .query_dyn("SELECT seq FROM audit_events ORDER BY seq", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        (super::super::audit::verify_chain(&c).unwrap(), seqs)
    });
    assert_eq!(verified, Ok(300));
    assert_eq!(seqs, (1..=300).collect::<Vec<i64>>());
    // More than one connection did the work (groups of at most 8).
    assert!(w.stats().batches.load(Ordering::Relaxed) >= 300 / 8);
}

/// Runs a unit that writes meta row `key` and appends `event(i)`, on a task of its own.
fn spawn_unit(w: &Writer, key: String, i: u64) -> tokio::task::JoinHandle<Result<(), StoreError>> {
    let w = w.clone();
    tokio::spawn(async move {
        w.execute(move |c| {
            c.execute("INSERT INTO meta (key, value) VALUES ($1, 'v')", &[&key])?;
            super::super::audit::append(c, event(i))
        })
        .await
    })
}

fn event(i: u64) -> crate::audit::NewEvent {
    crate::audit::NewEvent {
        ts: format!("2026-01-01T00:00:{:02}.000000Z", i % 60),
        request_id: format!("read-{i}"),
        actor: "a".into(),
        role: "pms".into(),
        purpose: Some("check_in".into()),
        action: "guest.read".into(),
        guest_id: None,
        fields: vec![],
        outcome: crate::audit::Outcome::Allowed,
        reason: None,
        rules: vec![],
        justification: None,
        value_hashes: Vec::new(),
    }
}

/// Issue 14 (two nodes on one chain head): events that belong to no unit wait in the node's
/// pool and join whichever group next locks the head, together with that group's own events.
/// Every caller is answered only after a commit that holds its event; the chain has no gap;
/// and holds carry many events each (late binding), not one group per event.
#[tokio::test(flavor = "multi_thread")]
async fn pooled_events_join_the_next_group_to_lock_the_head() {
    let Some(db) = TestDb::create() else { return };
    let config = db.config.clone();
    let connect: Connect =
        Box::new(move || Ok(super::super::conn::testdb::connect_checked(&config)));
    let first = db.config.clone();
    let conn = off_runtime(move || super::super::conn::testdb::connect(&first));
    let (w, _) = Writer::start_many(
        conn,
        Arc::new(std::sync::Mutex::new(connect)),
        4,
        64,
        None,
        None,
        None,
    )
    .unwrap();
    let mut handles = Vec::new();
    for i in 0..400u64 {
        let w = w.clone();
        handles.push(tokio::spawn(async move {
            if i % 10 == 0 {
                // A unit with an event of its own, in the same groups.
                w.execute(move |c| {
                    c.execute(
                        "INSERT INTO meta (key, value) VALUES ($1, 'v')",
                        &[&format!("p{i}")],
                    )?;
                    super::super::audit::append(c, event(i))
                })
                .await
            } else {
                w.append_event(event(i)).await
            }
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(count(&db, "p%"), 40);
    let c = db.connect();
    let (verified, ids) = off_runtime(move || {
        let ids: Vec<String> = c
            .query_dyn("SELECT request_id FROM audit_events ORDER BY seq", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        (super::super::audit::verify_chain(&c).unwrap(), ids)
    });
    assert_eq!(verified, Ok(400));
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 400, "each event exactly once");
    let holds = w.stats().head_holds.load(Ordering::Relaxed);
    assert!(holds < 400, "{holds} holds for 400 events");
}

/// A pooled event whose group cannot commit is answered with the error, and none of it is
/// written; the next one commits (fail closed: a read whose record is not durable fails).
#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_event_of_a_failed_group_fails_its_caller() {
    let Some(db) = TestDb::create() else { return };
    let fail = Arc::new(AtomicBool::new(true));
    let f = fail.clone();
    let barrier: CommitBarrier = Box::new(move || {
        if f.load(Ordering::SeqCst) {
            Err(StoreError::Other("disk full".into()))
        } else {
            Ok(())
        }
    });
    let w = writer(&db, Some(barrier));
    assert!(w.append_event(event(1)).await.is_err());
    fail.store(false, Ordering::SeqCst);
    w.append_event(event(2)).await.unwrap();
    let c = db.connect();
    let ids: Vec<String> = off_runtime(move || {
        c.query_dyn("SELECT request_id FROM audit_events ORDER BY seq", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    });
    assert_eq!(ids, ["read-2"]);
}

/// Makes every insert of an audit event whose actor is `boom` fail, as a full disk or a broken
/// trigger would, under the head's lock.
fn fail_inserts_by_boom(db: &TestDb) {
    let c = db.connect();
    off_runtime(move || {
        c.batch(
            "CREATE FUNCTION test_boom() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'audit insert refused'; END $$;
             CREATE TRIGGER test_boom BEFORE INSERT ON audit_events FOR EACH ROW
               WHEN (NEW.actor = 'boom') EXECUTE FUNCTION test_boom();",
        )
        .unwrap();
    });
}

fn boom(i: u64) -> crate::audit::NewEvent {
    crate::audit::NewEvent {
        actor: "boom".into(),
        ..event(i)
    }
}

/// The events' insert goes out with the `COMMIT` (one round trip under the head's lock), so
/// its failure must still fail the group: the unit's write is not committed, its caller and a
/// pooled event's caller are told (`audit_unavailable`), and the next group commits. Tried
/// without a hook (the insert rides on the `COMMIT`) and with one whose checkpoint is due at
/// every event (it rides on the hook's statement).
#[tokio::test(flavor = "multi_thread")]
async fn an_audit_insert_that_fails_under_the_lock_fails_the_whole_group() {
    for with_hook in [false, true] {
        let Some(db) = TestDb::create() else { return };
        fail_inserts_by_boom(&db);
        let hook: Option<PreCommitHook> = with_hook.then(|| -> PreCommitHook {
            Box::new(|c, tip| {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, 'hook')",
                    &[&format!("hook-{}", tip.seq)],
                )
                .map(|_| ())
            })
        });
        let w = writer_with_hook(&db, hook, None);
        let unit = w.execute(|c| {
            c.execute("INSERT INTO meta (key, value) VALUES ('x', '1')", &[])?;
            super::super::audit::append(c, boom(1))
        });
        let r = unit.await;
        assert!(
            matches!(&r, Err(StoreError::Commit(e)) if matches!(**e, StoreError::Audit(_))),
            "hook {with_hook}: {r:?}"
        );
        // The next group commits, with its own event first in the chain.
        w.execute(|c| {
            c.execute("INSERT INTO meta (key, value) VALUES ('y', '1')", &[])?;
            super::super::audit::append(c, event(2))
        })
        .await
        .unwrap();
        assert_eq!(
            count(&db, "x"),
            0,
            "hook {with_hook}: the failed unit's write"
        );
        assert_eq!(count(&db, "y"), 1);
        assert_eq!(
            count(&db, "hook-%"),
            i64::from(with_hook),
            "hook {with_hook}"
        );
        let c = db.connect();
        let (verified, ids) = off_runtime(move || {
            let ids: Vec<String> = c
                .query_dyn("SELECT request_id FROM audit_events ORDER BY seq", &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            (super::super::audit::verify_chain(&c).unwrap(), ids)
        });
        assert_eq!(verified, Ok(1));
        assert_eq!(ids, ["read-2"]);
    }
}

/// The hook gets the head its group moved to and the newest checkpoint's seq, read with the
/// head's lock: it signs a checkpoint every N events with no statement of its own otherwise,
/// and a failing hook rolls back only itself.
#[tokio::test(flavor = "multi_thread")]
async fn the_hook_sees_the_head_its_group_moved_to_and_may_fail_alone() {
    let Some(db) = TestDb::create() else { return };
    let keyring = Arc::new(crate::crypto::Keyring::generate().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::<ChainTip>::new()));
    let (k, s) = (keyring.clone(), seen.clone());
    let hook: PreCommitHook = Box::new(move |c, tip| {
        s.lock().unwrap().push(*tip);
        let cp = crate::store::audit::checkpoint_tip(
            &crate::store::Conn::Postgres(c),
            &k,
            || "2026-01-01T00:00:00.000000Z".into(),
            3,
            tip,
        )?;
        // A checkpoint at seq 6 is signed, then its hook fails: only the checkpoint is undone.
        match cp {
            Some(cp) if cp.seq == 6 => Err(StoreError::Other("hook failed".into())),
            _ => Ok(()),
        }
    });
    let w = writer_with_hook(&db, Some(hook), None);
    for i in 1..=7u64 {
        w.execute(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, 'v')",
                &[&format!("u{i}")],
            )?;
            super::super::audit::append(c, event(i))
        })
        .await
        .unwrap();
    }
    assert_eq!(count(&db, "u%"), 7, "a failing hook spares its group");
    let c = db.connect();
    let (head, checkpoints) = off_runtime(move || {
        let seqs: Vec<i64> = c
            .query_dyn("SELECT seq FROM audit_checkpoints ORDER BY seq", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        (super::super::audit::head(&c).unwrap(), seqs)
    });
    // Due at 3 (3 past none); 6 was signed and rolled back, so 7 is due (3 + 3 <= 7).
    assert_eq!(checkpoints, [3, 7]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 7, "one call per group that appended");
    let last = seen.last().unwrap();
    assert_eq!((last.seq, last.hash), head, "the tip is the committed head");
    assert_eq!(
        seen.iter().map(|t| t.last_checkpoint).collect::<Vec<_>>(),
        [0, 0, 0, 3, 3, 3, 3]
    );
}

/// Issue 14 (no collapse from contention): while the node's head slot is taken (here by a
/// group held up in its barrier, as by another node holding the head), the node's other
/// connections do not seal one-unit groups and queue them at the head: they keep taking the
/// units that arrive into their open groups. 22 units arriving one by one during the hold
/// commit in at most four groups (the held one and one per waiting connection).
#[tokio::test(flavor = "multi_thread")]
async fn connections_waiting_for_a_head_slot_take_more_units_into_their_group() {
    let Some(db) = TestDb::create() else { return };
    let config = db.config.clone();
    let connect: Connect =
        Box::new(move || Ok(super::super::conn::testdb::connect_checked(&config)));
    let first = db.config.clone();
    let conn = off_runtime(move || super::super::conn::testdb::connect(&first));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let barrier: CommitBarrier = Box::new(move || {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
        Ok(())
    });
    let (w, _) = Writer::start_many(
        conn,
        Arc::new(std::sync::Mutex::new(connect)),
        4,
        64,
        None,
        Some(barrier),
        None,
    )
    .unwrap();
    // All four connections open before the test starts to count.
    let mut warm = Vec::new();
    for _ in 0..4 {
        warm.push(w.execute(|_| Ok(())));
    }
    futures_util::future::join_all(warm).await;
    calls.store(0, Ordering::SeqCst);
    let before = w.stats().batches.load(Ordering::Relaxed);
    let mut handles = Vec::new();
    for i in 0..22u64 {
        handles.push(spawn_unit(&w, format!("s{i}"), i));
        tokio::time::sleep(std::time::Duration::from_millis(8)).await;
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(count(&db, "s%"), 22);
    let groups = w.stats().batches.load(Ordering::Relaxed) - before;
    assert!(groups <= 4, "{groups} groups for 22 units");
    let c = db.connect();
    let verified = off_runtime(move || super::super::audit::verify_chain(&c).unwrap());
    assert_eq!(verified, Ok(22));
}

/// Issue 14 (erasure on two nodes): vacuums after erasures are spaced by the database's clock
/// across nodes. A second node's vacuum right after the first one's waits until
/// `VACUUM_SPACING` has passed since that one started, then runs (its own erasures are
/// reclaimed too, only later).
#[test]
fn vacuums_after_erasures_are_spaced_across_nodes() {
    let Some(db) = TestDb::create() else { return };
    let (a, b) = (db.connect(), db.connect());
    let t0 = std::time::Instant::now();
    let mut started = 0;
    vacuum_when_due(&a, &mut || started += 1).unwrap();
    let first = t0.elapsed();
    assert!(
        first < VACUUM_SPACING,
        "the first vacuum runs at once ({first:?})"
    );
    vacuum_when_due(&b, &mut || started += 1).unwrap();
    let second = t0.elapsed();
    assert_eq!(started, 2);
    assert!(
        second >= VACUUM_SPACING - std::time::Duration::from_millis(100),
        "the second node's vacuum waited for the spacing ({second:?})"
    );
    let vacuumed: bool = b
        .query_one(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'guest_keys'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(vacuumed);
    // Neither node keeps the lock.
    let free: bool = a
        .query_one("SELECT pg_try_advisory_lock($1)", &[&VACUUM_LOCK])
        .unwrap()
        .get(0);
    assert!(free);
}

/// Issue 14 (two nodes ≥ 0.9× one): a node knows the chain is contended only once at least
/// half of its last 16 commits found the head moved on by another writer; then its next group
/// may lock the head no sooner than `CONTENDED_SPACING` after its last commit ended.
#[test]
fn the_spacing_applies_only_once_other_writers_move_the_head_between_commits() {
    let t0 = std::time::Instant::now();
    let mut c = Contention::default();
    // Alone on the chain: every commit starts where this node's last one ended.
    let mut seq = 0;
    for _ in 0..20 {
        c.note_commit(seq, seq + 3, t0);
        seq += 3;
    }
    assert!(!c.contended());
    assert_eq!(c.hold_open_until(), None);
    // Another node appends before the last 7 of the next 16: still not contended.
    for i in 0..16 {
        let before = if i >= 9 { seq + 2 } else { seq };
        c.note_commit(before, before + 3, t0);
        seq = before + 3;
    }
    assert!(!c.contended());
    // One more such commit makes 8 of the last 16.
    c.note_commit(seq + 1, seq + 4, t0);
    seq += 4;
    assert!(c.contended());
    assert_eq!(c.hold_open_until(), Some(t0 + CONTENDED_SPACING));
    // And once the other writer stops, 16 commits of its own end the spacing.
    for _ in 0..16 {
        c.note_commit(seq, seq + 1, t0);
        seq += 1;
    }
    assert!(!c.contended());
}

/// Issue 14: two nodes (two writers) appending to one chain under a steady stream of units.
/// Once a node sees the other's commits between its own, its commits come at least
/// `CONTENDED_SPACING` apart (each group collecting the units that arrived meanwhile), and
/// every unit still commits, into one gapless chain. The same stream on one writer alone
/// commits more often than that, so the spacing is what the first half measures.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_shares_the_head_commits_at_most_once_per_spacing() {
    let Some(db) = TestDb::create() else { return };
    // The instant each of node A's groups locked the head (its hook runs under the lock).
    let stamps = |times: &Arc<std::sync::Mutex<Vec<std::time::Instant>>>| -> PreCommitHook {
        let times = times.clone();
        Box::new(move |_c: &PgConn, _tip: &ChainTip| {
            times.lock().unwrap().push(std::time::Instant::now());
            Ok(())
        })
    };
    let gaps = |times: &[std::time::Instant]| -> Vec<std::time::Duration> {
        times.windows(2).map(|w| w[1] - w[0]).collect()
    };
    async fn stream(w: Vec<Writer>, prefix: &str, units: u64) {
        let mut handles = Vec::new();
        for i in 0..units {
            for (n, w) in w.iter().enumerate() {
                handles.push(spawn_unit(w, format!("{prefix}{n}-{i}"), i));
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        for h in handles {
            h.await.unwrap().unwrap();
        }
    }

    // One writer alone: a unit every 2 ms commits in groups far more often than the spacing.
    let alone = Arc::new(std::sync::Mutex::new(Vec::new()));
    let w = writer_with_hook(&db, Some(stamps(&alone)), None);
    stream(vec![w.clone()], "alone", 120).await;
    let alone_gaps = gaps(&alone.lock().unwrap());
    assert!(
        alone_gaps.iter().any(|g| *g < CONTENDED_SPACING),
        "alone: {alone_gaps:?}"
    );
    drop(w);

    // Two nodes on the same chain, a unit every 2 ms each.
    let a_times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = writer_with_hook(&db, Some(stamps(&a_times)), None);
    let b = writer(&db, None);
    stream(vec![a.clone(), b.clone()], "pair", 200).await;
    let a_gaps = gaps(&a_times.lock().unwrap());
    // The first commits teach node A that the head is shared (8 of its last 16).
    let settled = &a_gaps[16.min(a_gaps.len())..];
    assert!(!settled.is_empty(), "{a_gaps:?}");
    assert!(
        settled.iter().all(|g| *g >= CONTENDED_SPACING),
        "node A's commits once contended: {settled:?}"
    );
    assert_eq!(count(&db, "pair%"), 400);
    let c = db.connect();
    let verified = off_runtime(move || super::super::audit::verify_chain(&c).unwrap());
    assert_eq!(verified, Ok(120 + 400));
}
