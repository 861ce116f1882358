//! The PostgreSQL audit trail against a real server (`GUESTVAULT_TEST_POSTGRES_URL`; every test
//! returns early with a message when it is unset). Most tests run the same operations on a
//! SQLite database and on PostgreSQL and compare: the two backends must build the same chain
//! (hashes included), sign the same checkpoints, answer queries, ranges and verifications
//! alike and purge alike. The rest are PostgreSQL's own: queued appends linked at the flush, a
//! failed flush, the guard triggers, and several nodes appending to one chain at once.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::audit::query::{parse_export, parse_query};
use crate::clock::ManualClock;
use crate::store::postgres::audit_since;
use crate::store::postgres::conn::testdb::TestDb;
use crate::store::sqlite::{audit as lite, audit_since as lite_since};

const T0: time::OffsetDateTime = time::macros::datetime!(2026-01-01 00:00 UTC);
const GUEST: &str = "0191a1d2-0000-7000-8000-000000000001";

/// The SQLite tests' event `i` (`store/sqlite/audit_tamper_tests.rs`): actors, actions, guests,
/// outcomes, justifications and value hashes vary with `i`, so filters have something to find.
fn new_event(i: u64, at: time::OffsetDateTime) -> NewEvent {
    NewEvent {
        ts: timestamp(at),
        request_id: format!("req-{i}"),
        actor: if i.is_multiple_of(2) {
            "staff-a"
        } else {
            "staff-b"
        }
        .into(),
        role: "front_desk".into(),
        purpose: Some("check_in".into()),
        action: if i.is_multiple_of(3) {
            "guest.reveal"
        } else {
            "guest.read"
        }
        .into(),
        guest_id: i.is_multiple_of(4).then(|| GUEST.to_string()),
        fields: vec!["mobile".into(), "id_number".into()],
        outcome: if i.is_multiple_of(5) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        reason: (i.is_multiple_of(5)).then(|| "purpose_not_allowed".to_string()),
        rules: vec!["roles.front_desk.actions".into()],
        justification: (i.is_multiple_of(3))
            .then(|| "guest at the desk, \"ID\" check, 登记".to_string()),
        value_hashes: if i.is_multiple_of(7) {
            vec![ValueHash {
                field: "mobile".into(),
                before_hash: (i.is_multiple_of(2)).then(|| "ab".repeat(32)),
                after_hash: Some("cd".repeat(32)),
            }]
        } else {
            Vec::new()
        },
    }
}

/// The same trail in both backends.
struct Both {
    lite: crate::store::sqlite::SqliteConn,
    _dir: tempfile::TempDir,
    pg: PgConn,
    _db: TestDb,
    keyring: Keyring,
}

/// `n` events one minute apart from T0 in both backends, or `None` without a test server.
fn both(n: u64) -> Option<Both> {
    let db = TestDb::create()?;
    let dir = tempfile::tempdir().unwrap();
    let b = Both {
        lite: crate::store::sqlite::open_writer(&dir.path().join("a.db"), "normal", "fp").unwrap(),
        _dir: dir,
        pg: db.connect(),
        _db: db,
        keyring: Keyring::generate().unwrap(),
    };
    b.append(1..=n);
    Some(b)
}

/// (event, prev_hash, hash) of each event, to compare.
fn links(events: Vec<ChainedEvent>) -> Vec<(Event, Vec<u8>, Vec<u8>)> {
    events
        .into_iter()
        .map(|e| (e.event, e.prev_hash, e.hash))
        .collect()
}

impl Both {
    /// Events `seqs` (one minute apart from T0), each in a transaction of its own.
    fn append(&self, seqs: impl IntoIterator<Item = u64>) {
        for i in seqs {
            let e = new_event(i, T0 + time::Duration::minutes(i as i64));
            lite::append(&self.lite, e.clone()).unwrap();
            append_alone(&self.pg, e).unwrap();
        }
    }

    fn key(&self) -> &[u8] {
        self.keyring.audit_public_key()
    }

    /// Both backends' whole trail, checked to be equal.
    fn same_trail(&self) -> Vec<(Event, Vec<u8>, Vec<u8>)> {
        let pg = links(read_after(&self.pg, 0, 100_000).unwrap());
        assert_eq!(pg, links(lite::read_after(&self.lite, 0, 100_000).unwrap()));
        pg
    }

    /// `sql` run on both (tampering, with the guard triggers dropped first where needed).
    fn tamper(&self, sqlite_sql: &str, pg_sql: &str) {
        self.lite.execute_batch(sqlite_sql).unwrap();
        self.pg.batch(pg_sql).unwrap();
    }
}

fn seqs(events: &[ChainedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.event.seq).collect()
}

#[test]
fn appended_events_form_the_same_chain_as_in_sqlite() {
    let Some(b) = both(30) else { return };
    assert_eq!(verify_chain(&b.pg).unwrap(), Ok(30));
    let trail = b.same_trail();
    assert_eq!(trail[0].1, GENESIS_HASH.to_vec());
    assert_eq!(trail[1].1, trail[0].2);
    assert_eq!(head(&b.pg).unwrap(), lite::head(&b.lite).unwrap());
    assert_eq!(head(&b.pg).unwrap().0, 30);
    assert_eq!(count_and_head(&b.pg).unwrap(), (30, Some(30)));
    // Several events of one group in one flush link exactly as one by one.
    b.pg.batch("BEGIN").unwrap();
    for i in 31..=35 {
        let e = new_event(i, T0 + time::Duration::minutes(i as i64));
        append(&b.pg, e.clone()).unwrap();
        lite::append(&b.lite, e).unwrap();
    }
    let flushed = flush_pending(&b.pg).unwrap();
    b.pg.batch("COMMIT").unwrap();
    assert_eq!((flushed.events, flushed.last_seq), (5, 35));
    assert_eq!(b.same_trail().len(), 35);
    assert_eq!(verify_chain(&b.pg).unwrap(), Ok(35));
    assert_eq!(read_after(&b.pg, 33, 1).unwrap()[0].event.seq, 34);
    assert!(read_after(&b.pg, 35, 10).unwrap().is_empty());
    assert!(read_after(&b.pg, u64::MAX, 10).unwrap().is_empty());
}

#[test]
fn an_append_is_queued_until_the_flush_and_rolls_back_with_its_group() {
    let Some(db) = TestDb::create() else { return };
    let conn = db.connect();
    append(&conn, new_event(1, T0)).unwrap();
    assert_eq!(conn.pending_len(), 1);
    assert!(read_after(&conn, 0, 10).unwrap().is_empty());
    assert_eq!(head(&conn).unwrap(), (0, GENESIS_HASH));
    conn.batch("BEGIN").unwrap();
    let flushed = flush_pending(&conn).unwrap();
    assert_eq!((flushed.events, flushed.last_seq), (1, 1));
    assert!(flushed.locked_at.is_some());
    assert_eq!(head(&conn).unwrap().0, 1, "the group sees its own head");
    conn.batch("ROLLBACK").unwrap();
    assert_eq!(head(&conn).unwrap(), (0, GENESIS_HASH));
    assert_eq!(count_and_head(&conn).unwrap(), (0, None));
    assert_eq!(conn.pending_len(), 0, "the flush took the queue");
    // The next group starts at seq 1 again: a rolled-back group leaves no gap.
    conn.batch("BEGIN").unwrap();
    append(&conn, new_event(2, T0)).unwrap();
    append(&conn, new_event(3, T0)).unwrap();
    assert_eq!(flush_pending(&conn).unwrap().last_seq, 2);
    conn.batch("COMMIT").unwrap();
    let stored = read_after(&conn, 0, 10).unwrap();
    assert_eq!(seqs(&stored), [1, 2]);
    assert_eq!(stored[0].event.request_id, "req-2");
    assert_eq!(verify_chain(&conn).unwrap(), Ok(2));
}

#[test]
fn a_flush_with_nothing_queued_does_not_touch_the_head() {
    let Some(db) = TestDb::create() else { return };
    let other = db.connect();
    other.batch("BEGIN").unwrap();
    other
        .query_one("SELECT seq FROM audit_head WHERE id FOR UPDATE", &[])
        .unwrap();
    let conn = db.connect();
    // Were the flush to take the head, it would wait for `other`: fail instead of hanging.
    conn.batch("SET lock_timeout = '2s'").unwrap();
    conn.batch("BEGIN").unwrap();
    let flushed = flush_pending(&conn).unwrap();
    assert_eq!((flushed.events, flushed.last_seq), (0, 0));
    assert!(flushed.locked_at.is_none());
    conn.batch("COMMIT").unwrap();
    // And a flush that has events does wait for the head.
    append(&conn, new_event(1, T0)).unwrap();
    conn.batch("BEGIN").unwrap();
    assert!(matches!(flush_pending(&conn), Err(StoreError::Audit(_))));
    conn.batch("ROLLBACK").unwrap();
    other.batch("ROLLBACK").unwrap();
}

#[test]
fn a_failed_flush_is_an_audit_error_and_appends_nothing() {
    let Some(b) = both(3) else { return };
    // A head moved back by someone with the database: the next seq is already taken.
    b.pg.batch("UPDATE audit_head SET seq = 1").unwrap();
    b.pg.batch("BEGIN").unwrap();
    append(&b.pg, new_event(4, T0)).unwrap();
    assert!(matches!(flush_pending(&b.pg), Err(StoreError::Audit(_))));
    b.pg.batch("ROLLBACK").unwrap();
    assert!(matches!(
        append_alone(&b.pg, new_event(4, T0)),
        Err(StoreError::Audit(_))
    ));
    assert_eq!(count_and_head(&b.pg).unwrap(), (3, Some(3)));
    assert_eq!(
        head(&b.pg).unwrap().0,
        1,
        "the failed appends moved nothing"
    );
    assert_eq!(verify_chain(&b.pg).unwrap(), Ok(3));
}

#[test]
fn checkpoints_are_made_every_n_events_and_verify_in_the_store() {
    let Some(b) = both(25) else { return };
    for _ in 0..3 {
        let pg = checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 10).unwrap();
        let sq = lite::checkpoint_head(&b.lite, &b.keyring, timestamp(T0), 10).unwrap();
        assert_eq!(pg, sq);
    }
    assert_eq!(latest_checkpoint(&b.pg).unwrap().unwrap().seq, 25);
    assert!(checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 1)
        .unwrap()
        .is_none());
    b.append([26]);
    assert!(checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 10)
        .unwrap()
        .is_none());
    let cp = checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 1)
        .unwrap()
        .unwrap();
    assert_eq!(cp.seq, 26);
    lite::store_checkpoint(&b.lite, &cp).unwrap();
    assert_eq!(checkpoint_at(&b.pg, 26).unwrap(), Some(cp.clone()));
    assert_eq!(checkpoint_at(&b.pg, 24).unwrap(), None);
    assert_eq!(
        checkpoints_in_range(&b.pg, 1, 100).unwrap(),
        lite::checkpoints_in_range(&b.lite, 1, 100).unwrap()
    );
    assert_eq!(
        checkpoints_in_range(&b.pg, 26, 26).unwrap(),
        std::slice::from_ref(&cp),
        "both bounds are inclusive"
    );
    assert_eq!(anchor_hash(&b.pg, 26).unwrap(), Some(cp.hash));
    assert_eq!(anchor_hash(&b.pg, 0).unwrap(), Some(GENESIS_HASH));
    assert_eq!(anchor_hash(&b.pg, 3).unwrap(), None);
    // Storing the same checkpoint again is fine; a contradicting one is refused.
    store_checkpoint(&b.pg, &cp).unwrap();
    let forged = Checkpoint::sign(&b.keyring, 26, [7u8; 32], timestamp(T0));
    assert!(store_checkpoint(&b.pg, &forged).is_err());
    assert_eq!(checkpoint_at(&b.pg, 26).unwrap(), Some(cp));
    let v = verify_store(&b.pg, b.key()).unwrap();
    assert_eq!(
        (v.intact, v.events, v.checkpoints, v.first_bad_seq),
        (true, 26, 2, None)
    );
    assert_eq!(v, lite::verify_store(&b.lite, b.key()).unwrap());
    let other = Keyring::generate().unwrap();
    let v = verify_store(&b.pg, other.audit_public_key()).unwrap();
    assert_eq!((v.intact, v.first_bad_seq), (false, Some(25)));
}

#[test]
fn a_rewritten_row_in_the_store_is_found() {
    let Some(b) = both(12) else { return };
    b.tamper(
        "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET actor = 'someone-else' WHERE seq = 7;",
        "DROP TRIGGER audit_events_no_update ON audit_events; UPDATE audit_events SET actor = 'someone-else' WHERE seq = 7;",
    );
    let v = verify_store(&b.pg, b.key()).unwrap();
    assert_eq!((v.intact, v.events, v.first_bad_seq), (false, 6, Some(7)));
    assert_eq!(v, lite::verify_store(&b.lite, b.key()).unwrap());
    assert_eq!(verify_chain(&b.pg).unwrap(), Err(7));
    let full = audit_since::full(&b.pg, b.key()).unwrap();
    assert_eq!(full, lite_since::full(&b.lite, b.key()).unwrap());
    assert_eq!((full.from_seq, full.to_seq), (Some(1), Some(12)));
}

#[test]
fn a_rewritten_and_rehashed_chain_contradicts_its_checkpoint() {
    let Some(b) = both(12) else { return };
    checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 1).unwrap();
    b.append([13]);
    // Someone with the database but not the key rewrites event 7 and recomputes every hash.
    b.pg.batch("DROP TRIGGER audit_events_no_update ON audit_events")
        .unwrap();
    let mut prev = read_after(&b.pg, 5, 1).unwrap().remove(0).hash;
    for mut e in read_after(&b.pg, 6, 100).unwrap() {
        if e.event.seq == 7 {
            e.event.actor = "someone-else".into();
        }
        let hash = e.event.chain_hash(&prev);
        b.pg.execute_dyn(
            "UPDATE audit_events SET actor = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
            &[
                &e.event.actor,
                &prev,
                &hash.as_slice(),
                &(e.event.seq as i64),
            ],
        )
        .unwrap();
        prev = hash.to_vec();
    }
    assert_eq!(
        verify_chain(&b.pg).unwrap(),
        Ok(13),
        "the chain alone looks fine"
    );
    let v = verify_store(&b.pg, b.key()).unwrap();
    assert_eq!((v.intact, v.first_bad_seq), (false, Some(12)));
    let since = audit_since::since_checkpoint(&b.pg, b.key()).unwrap();
    assert_eq!(
        (
            since.result.intact,
            since.result.first_bad_seq,
            since.checkpoint_seq
        ),
        (false, Some(12), Some(12))
    );
}

#[test]
fn deleting_the_newest_events_under_a_checkpoint_is_found() {
    let Some(b) = both(12) else { return };
    checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 1).unwrap();
    lite::checkpoint_head(&b.lite, &b.keyring, timestamp(T0), 1).unwrap();
    assert!(verify_store(&b.pg, b.key()).unwrap().intact);
    b.tamper(
        "DROP TRIGGER audit_events_no_delete; DELETE FROM audit_events WHERE seq >= 11;",
        "DROP TRIGGER audit_events_no_delete ON audit_events; DELETE FROM audit_events WHERE seq >= 11;",
    );
    assert_eq!(
        verify_chain(&b.pg).unwrap(),
        Ok(10),
        "the chain alone looks fine"
    );
    let v = verify_store(&b.pg, b.key()).unwrap();
    assert_eq!(
        (v.intact, v.events, v.checkpoints, v.first_bad_seq),
        (false, 10, 0, Some(12))
    );
    assert_eq!(v, lite::verify_store(&b.lite, b.key()).unwrap());
    assert_eq!(
        audit_since::since_checkpoint(&b.pg, b.key()).unwrap(),
        lite_since::since_checkpoint(&b.lite, b.key()).unwrap()
    );
}

/// Checks `since_checkpoint` and `full` agree between the backends and returns PostgreSQL's.
fn since_both(b: &Both) -> RangeVerificationPair {
    let since = audit_since::since_checkpoint(&b.pg, b.key()).unwrap();
    assert_eq!(
        since,
        lite_since::since_checkpoint(&b.lite, b.key()).unwrap()
    );
    let full = audit_since::full(&b.pg, b.key()).unwrap();
    assert_eq!(full, lite_since::full(&b.lite, b.key()).unwrap());
    (since, full)
}

type RangeVerificationPair = (
    crate::audit::checkpoint::RangeVerification,
    crate::audit::checkpoint::RangeVerification,
);

/// (intact, events, checkpoints, first_bad_seq, from_seq, to_seq).
fn summary(
    r: &crate::audit::checkpoint::RangeVerification,
) -> (bool, u64, u64, Option<u64>, Option<u64>, Option<u64>) {
    (
        r.result.intact,
        r.result.events,
        r.result.checkpoints,
        r.result.first_bad_seq,
        r.from_seq,
        r.to_seq,
    )
}

#[test]
fn verification_from_the_newest_checkpoint_matches_sqlite() {
    // Without a checkpoint, the whole trail.
    let Some(b) = both(10) else { return };
    let (since, full) = since_both(&b);
    assert_eq!(since, full);
    assert_eq!(summary(&full), (true, 10, 0, None, Some(1), Some(10)));
    // From a checkpoint at 10 to the head at 15.
    let cp = checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 1)
        .unwrap()
        .unwrap();
    lite::store_checkpoint(&b.lite, &cp).unwrap();
    let (since, _) = since_both(&b);
    assert_eq!(summary(&since), (true, 0, 1, None, None, None));
    b.append(11..=15);
    let (since, _) = since_both(&b);
    assert_eq!(summary(&since), (true, 5, 1, None, Some(11), Some(15)));
    assert_eq!(
        (since.mode, since.checkpoint_seq),
        ("since_checkpoint", Some(10))
    );
    // A gap in the middle: found at the missing seq, after the events before it.
    b.tamper(
        "DROP TRIGGER audit_events_no_delete; DELETE FROM audit_events WHERE seq = 13;",
        "DROP TRIGGER audit_events_no_delete ON audit_events; DELETE FROM audit_events WHERE seq = 13;",
    );
    let (since, _) = since_both(&b);
    assert_eq!(summary(&since), (false, 2, 1, Some(13), Some(11), Some(15)));
    // A gap right after the checkpoint: found at the seq after it.
    b.tamper(
        "DELETE FROM audit_events WHERE seq IN (11, 12);",
        "DELETE FROM audit_events WHERE seq IN (11, 12);",
    );
    let (since, _) = since_both(&b);
    assert_eq!(summary(&since), (false, 0, 1, Some(11), Some(11), Some(15)));

    // A rewritten event after the checkpoint.
    let Some(b) = both(10) else { return };
    let cp = checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 1)
        .unwrap()
        .unwrap();
    lite::store_checkpoint(&b.lite, &cp).unwrap();
    b.append(11..=15);
    b.tamper(
        "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET actor = 'x' WHERE seq = 14;",
        "DROP TRIGGER audit_events_no_update ON audit_events; UPDATE audit_events SET actor = 'x' WHERE seq = 14;",
    );
    let (since, full) = since_both(&b);
    assert_eq!(summary(&since), (false, 3, 1, Some(14), Some(11), Some(15)));
    assert_eq!(summary(&full), (false, 13, 1, Some(14), Some(1), Some(15)));
    // A checkpoint signed by another key is not a starting point.
    let other = Keyring::generate().unwrap();
    let since = audit_since::since_checkpoint(&b.pg, other.audit_public_key()).unwrap();
    assert_eq!(
        since,
        lite_since::since_checkpoint(&b.lite, other.audit_public_key()).unwrap()
    );
    assert_eq!(summary(&since), (false, 0, 0, Some(10), Some(11), Some(15)));
}

#[test]
fn purge_keeps_three_years_and_the_chain_verifies_from_its_checkpoint() {
    // REQ-19 time travel: one event a day for ten days from T0, then jump 1096 days past the
    // fifth day: days 1..=4 are due, day 5 is exactly at the cutoff and stays.
    let Some(b) = both(0) else { return };
    let mut lite_conn = b.lite;
    let key = b.keyring.audit_public_key();
    for day in 1..=10u64 {
        let e = new_event(day, T0 + time::Duration::days(day as i64));
        lite::append(&lite_conn, e.clone()).unwrap();
        append_alone(&b.pg, e).unwrap();
    }
    let clock = ManualClock::new(T0 + time::Duration::days(5 + 1096));
    assert!(matches!(
        run_purge(&b.pg, &b.keyring, &clock, 30, false),
        Err(PurgeError::BelowFloor(30))
    ));
    let dry = run_purge(&b.pg, &b.keyring, &clock, 1096, true).unwrap();
    assert_eq!((dry.through_seq, dry.events), (Some(4), 4));
    assert_eq!(
        dry,
        lite::run_purge(&mut lite_conn, &b.keyring, &clock, 1096, true).unwrap()
    );
    assert_eq!(
        read_after(&b.pg, 0, 100).unwrap().len(),
        10,
        "a dry run changes nothing"
    );
    let done = run_purge(&b.pg, &b.keyring, &clock, 1096, false).unwrap();
    assert_eq!(done, dry);
    assert_eq!(
        done,
        lite::run_purge(&mut lite_conn, &b.keyring, &clock, 1096, false).unwrap()
    );
    let left = read_after(&b.pg, 0, 100).unwrap();
    assert_eq!(seqs(&left), (5..=11).collect::<Vec<_>>());
    // The purge is itself audited, after the kept events.
    let last = &left.last().unwrap().event;
    assert_eq!((last.seq, last.action.as_str()), (11, "admin.retention"));
    assert!(last.reason.as_deref().unwrap().contains("removed=4"));
    assert_eq!(head(&b.pg).unwrap().0, 11);
    assert_eq!(purged_through(&b.pg).unwrap(), 4);
    assert_eq!(
        purged_through(&b.pg).unwrap(),
        lite::purged_through(&lite_conn).unwrap()
    );
    // The anchor is the signed checkpoint at 4, with the hash SQLite's event 4 had too.
    let anchor = checkpoint_at(&b.pg, 4).unwrap().unwrap();
    assert!(anchor.is_valid_for(key));
    assert_eq!(
        Some(anchor.hash),
        lite::checkpoint_at(&lite_conn, 4).unwrap().map(|c| c.hash)
    );
    let v = verify_store(&b.pg, key).unwrap();
    assert_eq!((v.intact, v.events, v.checkpoints), (true, 7, 1), "{v:?}");
    assert_eq!(v, lite::verify_store(&lite_conn, key).unwrap());
    let since = audit_since::since_checkpoint(&b.pg, key).unwrap();
    assert_eq!(summary(&since), (true, 7, 1, None, Some(5), Some(11)));
    assert_eq!(
        since,
        lite_since::since_checkpoint(&lite_conn, key).unwrap()
    );
    let range = resolve_range(&b.pg, &parse_export(None).unwrap().filter).unwrap();
    assert_eq!(
        (range.first, range.last, range.anchor_hash),
        (5, 11, anchor.hash)
    );
    // Nothing more is due; a second run is a no-op.
    assert_eq!(
        run_purge(&b.pg, &b.keyring, &clock, 1096, false)
            .unwrap()
            .through_seq,
        None
    );
    assert_eq!(count_and_head(&b.pg).unwrap(), (7, Some(11)));
    // Rows at or below the anchor cannot come back, and rows above it still cannot be deleted.
    assert!(b
        .pg
        .execute_dyn("DELETE FROM audit_events WHERE seq = 6", &[])
        .is_err());
    assert!(b
        .pg
        .execute_dyn(
            "UPDATE meta SET value = '3' WHERE key = 'audit_purge_through'",
            &[]
        )
        .is_err());
}

#[test]
fn purging_everything_leaves_the_checkpoint_as_the_anchor_and_the_head_in_place() {
    let Some(b) = both(3) else { return };
    let clock = ManualClock::new(T0 + time::Duration::days(2000));
    assert_eq!(
        run_purge(&b.pg, &b.keyring, &clock, 1096, false)
            .unwrap()
            .through_seq,
        Some(3)
    );
    let left = read_after(&b.pg, 0, 10).unwrap();
    assert_eq!(seqs(&left), [4]);
    assert_eq!(
        head(&b.pg).unwrap(),
        (4, to_hash(left[0].hash.clone()).unwrap())
    );
    assert!(verify_store(&b.pg, b.key()).unwrap().intact);
    let range = resolve_range(&b.pg, &Filter::default()).unwrap();
    let anchor = checkpoint_at(&b.pg, 3).unwrap().unwrap().hash;
    assert_eq!((range.first, range.last, range.anchor_hash), (4, 4, anchor));
    // The next append links after the purge's event.
    append_alone(&b.pg, new_event(5, T0 + time::Duration::days(2000))).unwrap();
    assert_eq!(verify_chain(&b.pg).unwrap(), Ok(2));
}

#[test]
fn the_guards_refuse_to_rewrite_the_trail() {
    let Some(b) = both(5) else { return };
    checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 1).unwrap();
    let refused = |sql: &str, why: &str| {
        let err = b.pg.batch(sql).unwrap_err();
        let text = match &err {
            StoreError::Postgres(e) => e.as_db_error().map(|d| d.message().to_string()),
            _ => None,
        };
        assert!(
            text.as_deref().is_some_and(|t| t.contains(why)),
            "{sql}: {err:?}"
        );
    };
    refused(
        "UPDATE audit_events SET actor = 'x' WHERE seq = 2",
        "append-only",
    );
    refused("DELETE FROM audit_events WHERE seq = 1", "append-only");
    refused("DELETE FROM audit_events", "append-only");
    refused("TRUNCATE audit_events", "append-only");
    refused(
        "UPDATE audit_checkpoints SET signed_at = 'x' WHERE seq = 5",
        "append-only",
    );
    refused("DELETE FROM audit_checkpoints", "append-only");
    refused("TRUNCATE audit_checkpoints", "append-only");
    // The purge mark moves only to a signed checkpoint.
    refused(
        "INSERT INTO meta (key, value) VALUES ('audit_purge_through', '3')",
        "signed checkpoint",
    );
    assert_eq!(purged_through(&b.pg).unwrap(), 0);
    assert_eq!(verify_chain(&b.pg).unwrap(), Ok(5));
    assert_eq!(count_and_head(&b.pg).unwrap(), (5, Some(5)));
    assert!(verify_store(&b.pg, b.key()).unwrap().intact);
}

#[test]
fn queries_filter_and_page_with_a_cursor_as_in_sqlite() {
    let Some(b) = both(30) else { return };
    let query = |q: &str, after: Option<u64>| {
        let p = parse_query(Some(q)).unwrap();
        let after = after.unwrap_or(p.after_seq);
        let pg = query_events(&b.pg, &p.filter, after, p.limit).unwrap();
        let sq = lite::query_events(&b.lite, &p.filter, after, p.limit).unwrap();
        assert_eq!(seqs(&pg), seqs(&sq), "{q}");
        assert_eq!(links(pg.clone()), links(sq), "{q}");
        seqs(&pg)
    };
    assert_eq!(query("actor=staff-a&limit=4", None), [2, 4, 6, 8]);
    assert_eq!(query("actor=staff-a&limit=4", Some(8))[0], 10);
    assert_eq!(
        query(&format!("guest_id={GUEST}&outcome=denied"), None),
        [20]
    );
    let since = "2026-01-01T08:10:00%2B08:00";
    assert_eq!(
        query(&format!("since={since}&until=2026-01-02"), None).len(),
        21
    );
    assert_eq!(
        query(
            "since=2026-01-01T00:10:00Z&until=2026-01-01T00:20:00Z",
            None
        ),
        (10..20).collect::<Vec<_>>()
    );
    assert_eq!(
        query("action=guest.reveal&limit=3&after_seq=10", None),
        [12, 15, 18]
    );
    assert_eq!(query("outcome=allowed&limit=1000", None).len(), 24);
    assert!(query("outcome=error", None).is_empty());
    assert!(query("actor=nobody", None).is_empty());
    assert_eq!(query("", None).len(), 30);
    assert!(query(&format!("after_seq={}", i64::MAX), None).is_empty());
    // Every filter at once.
    let all = format!(
        "since=2026-01-01&until=2026-01-02&actor=staff-a&guest_id={GUEST}&action=guest.read&outcome=allowed"
    );
    assert_eq!(query(&all, None), [4, 8, 16, 28]);
}

#[test]
fn export_ranges_match_sqlite() {
    let Some(b) = both(30) else { return };
    let range = |q: Option<&str>| {
        let filter = parse_export(q).unwrap().filter;
        let pg = resolve_range(&b.pg, &filter).unwrap();
        assert_eq!(pg, lite::resolve_range(&b.lite, &filter).unwrap(), "{q:?}");
        (pg.first, pg.last)
    };
    let trail = b.same_trail();
    let whole = resolve_range(&b.pg, &Filter::default()).unwrap();
    assert_eq!(
        (whole.first, whole.last, whole.anchor_hash),
        (1, 30, GENESIS_HASH)
    );
    assert_eq!(range(None), (1, 30));
    let window = resolve_range(
        &b.pg,
        &parse_export(Some(
            "since=2026-01-01T00:10:00Z&until=2026-01-01T00:20:00Z",
        ))
        .unwrap()
        .filter,
    )
    .unwrap();
    assert_eq!((window.first, window.last), (10, 19));
    assert_eq!(window.anchor_hash.to_vec(), trail[8].2, "linked to event 9");
    assert_eq!(
        range(Some(
            "since=2026-01-01T00:10:00Z&until=2026-01-01T00:20:00Z"
        )),
        (10, 19)
    );
    assert_eq!(range(Some("since=2026-01-01T00:25:00Z")), (25, 30));
    assert_eq!(range(Some("until=2026-01-01T00:03:00Z")), (1, 2));
    // No event in the window: empty, anchored at the head.
    assert_eq!(range(Some("since=2027-01-01")), (31, 30));
    assert_eq!(range(Some("until=2025-01-01")), (31, 30));
}

/// One node's run: each group's last seq and request ids, the head lock's hold and wait times.
type NodeRun = (Vec<(u64, Vec<String>)>, Duration, Duration);

#[test]
fn nodes_appending_at_once_share_one_chain_without_gaps() {
    const NODES: usize = 4;
    const GROUPS: usize = 40;
    const PER_GROUP: usize = 5;
    let Some(db) = TestDb::create() else { return };
    let nodes: Vec<PgConn> = (0..NODES).map(|_| db.connect()).collect();
    let start = std::sync::Barrier::new(NODES);
    let results: Vec<NodeRun> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .into_iter()
            .enumerate()
            .map(|(node, conn)| {
                let start = &start;
                s.spawn(move || {
                    let (mut groups, mut held, mut waited) =
                        (Vec::new(), Duration::ZERO, Duration::ZERO);
                    start.wait();
                    for g in 0..GROUPS {
                        conn.batch("BEGIN").unwrap();
                        let mut ids = Vec::new();
                        for e in 0..PER_GROUP {
                            let mut event = new_event(e as u64, T0);
                            event.request_id = format!("n{node}-g{g}-e{e}");
                            ids.push(event.request_id.clone());
                            append(&conn, event).unwrap();
                        }
                        let flushed = flush_pending(&conn).unwrap();
                        conn.batch("COMMIT").unwrap();
                        held += flushed.locked_at.unwrap().elapsed();
                        waited += flushed.lock_wait;
                        assert_eq!(flushed.events, PER_GROUP as u64);
                        groups.push((flushed.last_seq, ids));
                    }
                    (groups, held, waited)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = (NODES * GROUPS * PER_GROUP) as u64;
    let conn = db.connect();
    let trail = read_after(&conn, 0, 100_000).unwrap();
    assert_eq!(
        seqs(&trail),
        (1..=total).collect::<Vec<_>>(),
        "no gap, no fork"
    );
    assert_eq!(verify_chain(&conn).unwrap(), Ok(total));
    assert_eq!(head(&conn).unwrap().0, total);
    let stored: BTreeSet<&str> = trail.iter().map(|e| e.event.request_id.as_str()).collect();
    assert_eq!(stored.len() as u64, total, "every event once");
    // Each group's events are consecutive, in the order they were appended.
    for (groups, _, _) in &results {
        for (last_seq, ids) in groups {
            let first = (*last_seq as usize) - PER_GROUP;
            let got: Vec<&str> = trail[first..first + PER_GROUP]
                .iter()
                .map(|e| e.event.request_id.as_str())
                .collect();
            assert_eq!(got, *ids);
        }
    }
    let flushes = (NODES * GROUPS) as u32;
    let held: Duration = results.iter().map(|r| r.1).sum();
    let waited: Duration = results.iter().map(|r| r.2).sum();
    eprintln!(
        "{NODES} nodes x {GROUPS} groups x {PER_GROUP} events: head lock held {:?} per flush on average (SELECT ... FOR UPDATE answered to COMMIT answered), lock wait {:?} per flush",
        held / flushes,
        waited / flushes
    );
}

#[test]
fn the_pre_commit_checkpoint_signs_the_head_the_flush_just_moved() {
    let Some(b) = both(3) else { return };
    b.pg.batch("BEGIN").unwrap();
    for i in 4..=6 {
        append(&b.pg, new_event(i, T0)).unwrap();
    }
    assert_eq!(
        checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 1)
            .unwrap()
            .map(|c| c.seq),
        Some(3),
        "before the flush, the committed head"
    );
    flush_pending(&b.pg).unwrap();
    let cp = checkpoint_head(&b.pg, &b.keyring, timestamp(T0), 1)
        .unwrap()
        .unwrap();
    b.pg.batch("COMMIT").unwrap();
    assert_eq!(cp.seq, 6);
    assert_eq!(cp.hash, head(&b.pg).unwrap().1);
    let v = verify_store(&b.pg, b.key()).unwrap();
    assert_eq!((v.intact, v.events, v.checkpoints), (true, 6, 2));
}

#[test]
fn a_purge_holds_the_head_and_leaves_queued_events_to_the_flush() {
    let Some(b) = both(5) else { return };
    let cutoff = timestamp(T0 + time::Duration::minutes(3));
    let now = timestamp(T0 + time::Duration::days(2000));
    b.pg.batch("BEGIN").unwrap();
    append(&b.pg, new_event(6, T0 + time::Duration::days(2000))).unwrap();
    let plan = purge_audit_before(&b.pg, &b.keyring, &cutoff, &now).unwrap();
    assert_eq!((plan.through_seq, plan.events), (Some(2), 2));
    assert_eq!(
        b.pg.pending_len(),
        1,
        "the unit's own event is still queued"
    );
    // Another node cannot append until the purge's transaction ends.
    let node = b._db.connect();
    node.batch("SET lock_timeout = '1s'").unwrap();
    assert!(matches!(
        append_alone(&node, new_event(7, T0)),
        Err(StoreError::Audit(_))
    ));
    assert_eq!(flush_pending(&b.pg).unwrap().last_seq, 7);
    b.pg.batch("COMMIT").unwrap();
    let left = read_after(&b.pg, 0, 100).unwrap();
    assert_eq!(seqs(&left), [3, 4, 5, 6, 7]);
    assert_eq!(left[3].event.action, "admin.retention");
    assert_eq!(left[4].event.request_id, "req-6");
    assert!(verify_store(&b.pg, b.key()).unwrap().intact);
    append_alone(&node, new_event(7, T0)).unwrap();
    assert_eq!(verify_chain(&b.pg).unwrap(), Ok(6));
}

#[test]
fn a_broken_chain_is_not_purged() {
    let Some(b) = both(10) else { return };
    let mut lite_conn = b.lite;
    let key = b.keyring.audit_public_key();
    lite_conn
        .execute_batch(
            "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET actor = 'x' WHERE seq = 7;",
        )
        .unwrap();
    b.pg.batch(
        "DROP TRIGGER audit_events_no_update ON audit_events; UPDATE audit_events SET actor = 'x' WHERE seq = 7;",
    )
    .unwrap();
    let clock = ManualClock::new(T0 + time::Duration::days(2000));
    assert!(matches!(
        run_purge(&b.pg, &b.keyring, &clock, 1096, false),
        Err(PurgeError::Broken(7))
    ));
    assert!(matches!(
        lite::run_purge(&mut lite_conn, &b.keyring, &clock, 1096, false),
        Err(PurgeError::Broken(7))
    ));
    assert_eq!(purged_through(&b.pg).unwrap(), 0);
    assert_eq!(count_and_head(&b.pg).unwrap(), (10, Some(10)));
    assert_eq!(
        latest_checkpoint(&b.pg).unwrap(),
        None,
        "nothing was signed"
    );
    assert_eq!(head(&b.pg).unwrap().0, 10);
    assert_eq!(
        verify_store(&b.pg, key).unwrap(),
        lite::verify_store(&lite_conn, key).unwrap()
    );
}
