//! The trail in the database: checkpoints, the store check, rewritten rows, the retention purge
//! with a manual clock (REQ-19), queries, and the throughput benchmark.

use super::audit_tamper_tests::{fixture, new_event, verify, Fixture, GUEST, T0};
use crate::audit::checkpoint::{self, verify_store};
use crate::audit::export::Export;
use crate::audit::purge::{self, run_purge, PurgeError};
use crate::audit::query::{parse_export, parse_query, Filter};
use crate::audit::verify::verify_export;
use crate::audit::*;
use crate::clock::{timestamp, ManualClock};
use crate::crypto::Keyring;

#[test]
fn checkpoints_are_made_every_n_events_and_verify_in_the_store() {
    let f = fixture(25);
    for _ in 0..3 {
        checkpoint::checkpoint_head(&f.c(), &f.keyring, timestamp(T0), 10).unwrap();
    }
    assert_eq!(checkpoint::latest(&f.c()).unwrap().unwrap().seq, 25);
    assert!(
        checkpoint::checkpoint_head(&f.c(), &f.keyring, timestamp(T0), 1)
            .unwrap()
            .is_none()
    );
    append(&f.c(), new_event(26, T0)).unwrap();
    assert!(
        checkpoint::checkpoint_head(&f.c(), &f.keyring, timestamp(T0), 10)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        checkpoint::checkpoint_head(&f.c(), &f.keyring, timestamp(T0), 1)
            .unwrap()
            .unwrap()
            .seq,
        26
    );
    let v = verify_store(&f.c(), f.keyring.audit_public_key()).unwrap();
    assert_eq!(
        (v.intact, v.events, v.checkpoints, v.first_bad_seq),
        (true, 26, 2, None)
    );
    let other = Keyring::generate().unwrap();
    let v = verify_store(&f.c(), other.audit_public_key()).unwrap();
    assert_eq!((v.intact, v.first_bad_seq), (false, Some(25)));
}

#[test]
fn a_rewritten_row_in_the_store_is_found() {
    let f = fixture(12);
    f.conn.execute_batch("DROP TRIGGER audit_events_no_update; UPDATE audit_events SET actor = 'someone-else' WHERE seq = 7;").unwrap();
    let v = verify_store(&f.c(), f.keyring.audit_public_key()).unwrap();
    assert_eq!((v.intact, v.events, v.first_bad_seq), (false, 6, Some(7)));
    // And an export refuses to sign it.
    let mut ex = Export::plan(
        &f.c(),
        &parse_export(None).unwrap(),
        f.keyring.audit_public_key(),
    )
    .unwrap();
    ex.header().unwrap();
    assert!(matches!(
        ex.next_page(&f.c(), 100),
        Err(crate::audit::export::ExportError::Broken(7))
    ));
}

#[test]
fn a_rewritten_and_rehashed_chain_contradicts_its_checkpoint_and_is_not_signed_again() {
    let f = fixture(12);
    checkpoint::checkpoint_head(&f.c(), &f.keyring, timestamp(T0), 1).unwrap();
    append(&f.c(), new_event(13, T0)).unwrap();
    // Someone with the database but not the key rewrites event 7 and recomputes every hash.
    f.conn
        .execute_batch("DROP TRIGGER audit_events_no_update;")
        .unwrap();
    let mut prev = read_after(&f.c(), 5, 1).unwrap().remove(0).hash;
    for mut e in read_after(&f.c(), 6, 100).unwrap() {
        if e.event.seq == 7 {
            e.event.actor = "someone-else".into();
        }
        let hash = e.event.chain_hash(&prev);
        f.conn
            .execute(
                "UPDATE audit_events SET actor = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                rusqlite::params![e.event.actor, prev, hash.as_slice(), e.event.seq as i64],
            )
            .unwrap();
        prev = hash.to_vec();
    }
    assert_eq!(
        verify_chain(&f.c()).unwrap(),
        Ok(13),
        "the chain alone looks fine"
    );
    let v = verify_store(&f.c(), f.keyring.audit_public_key()).unwrap();
    assert_eq!((v.intact, v.first_bad_seq), (false, Some(12)));
    let mut ex = Export::plan(
        &f.c(),
        &parse_export(None).unwrap(),
        f.keyring.audit_public_key(),
    )
    .unwrap();
    ex.header().unwrap();
    let stopped = loop {
        match ex.next_page(&f.c(), 5) {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(
        matches!(stopped, Err(crate::audit::export::ExportError::Broken(12))),
        "{stopped:?}"
    );
}

#[test]
fn purge_keeps_three_years_and_the_chain_verifies_from_its_checkpoint() {
    // REQ-19 time travel: one event a day for ten days from T0, then jump 1096 days past the
    // fifth day: days 1..=4 are due, day 5 is exactly at the cutoff and stays.
    let f = fixture(0);
    let mut db = crate::store::Db::Sqlite(f.conn);
    for day in 1..=10u64 {
        append(
            &db.conn(),
            new_event(day, T0 + time::Duration::days(day as i64)),
        )
        .unwrap();
    }
    let clock = ManualClock::new(T0 + time::Duration::days(5 + 1096));
    assert!(matches!(
        run_purge(&mut db, &f.keyring, &clock, 30, false),
        Err(PurgeError::BelowFloor(30))
    ));
    let dry = run_purge(&mut db, &f.keyring, &clock, 1096, true).unwrap();
    assert_eq!((dry.through_seq, dry.events), (Some(4), 4));
    assert_eq!(
        read_after(&db.conn(), 0, 100).unwrap().len(),
        10,
        "a dry run changes nothing"
    );
    let done = run_purge(&mut db, &f.keyring, &clock, 1096, false).unwrap();
    assert_eq!(done, dry);
    let left = read_after(&db.conn(), 0, 100).unwrap();
    assert_eq!(left.first().unwrap().event.seq, 5);
    // The purge is itself audited, after the kept events.
    let last = &left.last().unwrap().event;
    assert_eq!((last.seq, last.action.as_str()), (11, "admin.retention"));
    assert!(last.reason.as_deref().unwrap().contains("removed=4"));
    assert_eq!(purge::purged_through(&db.conn()).unwrap(), 4);
    let v = verify_store(&db.conn(), f.keyring.audit_public_key()).unwrap();
    assert_eq!((v.intact, v.events), (true, 7), "{v:?}");
    let crate::store::Db::Sqlite(conn) = db else {
        unreachable!("a SQLite fixture")
    };
    let f2 = Fixture {
        _dir: f._dir,
        conn,
        keyring: f.keyring,
    };
    let report = verify(&f2.jsonl(""), &f2.key()).unwrap();
    assert_eq!((report.anchor_seq, report.last_seq), (4, 11));
    // Nothing more is due; a second run is a no-op.
    let mut db = crate::store::Db::Sqlite(f2.conn);
    assert_eq!(
        run_purge(&mut db, &f2.keyring, &clock, 1096, false)
            .unwrap()
            .through_seq,
        None
    );
    // Rows at or below the anchor cannot come back, and rows above it still cannot be deleted.
    let crate::store::Db::Sqlite(conn) = &db else {
        unreachable!("a SQLite fixture")
    };
    assert!(conn
        .execute("DELETE FROM audit_events WHERE seq = 6", [])
        .is_err());
}

#[test]
fn purging_everything_leaves_the_checkpoint_as_the_head() {
    let f = fixture(3);
    let mut db = crate::store::Db::Sqlite(f.conn);
    let clock = ManualClock::new(T0 + time::Duration::days(2000));
    assert_eq!(
        run_purge(&mut db, &f.keyring, &clock, 1096, false)
            .unwrap()
            .through_seq,
        Some(3)
    );
    let left = read_after(&db.conn(), 0, 10).unwrap();
    assert_eq!((left.len(), left[0].event.seq), (1, 4));
    assert!(
        verify_store(&db.conn(), f.keyring.audit_public_key())
            .unwrap()
            .intact
    );
}

#[test]
fn queries_filter_and_page_with_a_cursor() {
    let f = fixture(30);
    let p = parse_query(Some("actor=staff-a&limit=4")).unwrap();
    let page = query::query(&f.c(), &p.filter, p.after_seq, p.limit).unwrap();
    assert_eq!(
        page.iter().map(|e| e.event.seq).collect::<Vec<_>>(),
        [2, 4, 6, 8]
    );
    let page = query::query(&f.c(), &p.filter, 8, p.limit).unwrap();
    assert_eq!(page[0].event.seq, 10);
    let p = parse_query(Some(&format!("guest_id={GUEST}&outcome=denied"))).unwrap();
    let page = query::query(&f.c(), &p.filter, 0, 100).unwrap();
    assert_eq!(page.iter().map(|e| e.event.seq).collect::<Vec<_>>(), [20]);
    assert_eq!(p.filter.names(), ["guest_id", "outcome"]);
    let since = "2026-01-01T08:10:00%2B08:00";
    let p = parse_query(Some(&format!("since={since}&until=2026-01-02"))).unwrap();
    assert_eq!(
        p.filter.since.as_deref(),
        Some("2026-01-01T00:10:00.000000Z")
    );
    assert_eq!(query::query(&f.c(), &p.filter, 0, 100).unwrap().len(), 21);
}

#[test]
fn bad_query_parameters_are_named_and_never_echoed() {
    let err = parse_query(Some(
        "since=13812345678&limit=5000&guest_id=bob&actor=&colour=red&limit=1",
    ))
    .unwrap_err();
    let got: Vec<(&str, &str)> = err.iter().map(|e| (e.field.as_str(), e.code)).collect();
    assert_eq!(
        got,
        [
            ("since", "invalid_timestamp"),
            ("guest_id", "invalid_guest_id"),
            ("actor", "invalid_length"),
            ("colour", "unknown_parameter"),
            ("limit", "duplicate_parameter"),
            ("limit", "out_of_range"),
        ]
    );
    assert!(!format!("{err:?}").contains("13812345678"));
    let err = parse_export(Some("format=xml&since=2026-02-01&until=2026-01-01")).unwrap_err();
    let got: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(got, ["until", "format"]);
    assert_eq!(parse_query(Some("%zz=1")).unwrap_err()[0].code, "malformed");
    assert_eq!(Filter::default().names(), Vec::<String>::new());
}

/// Found by schemathesis: a seq past i64::MAX wrapped to a negative SQL bound and paged from
/// the start of the trail instead of being refused.
#[test]
fn an_after_seq_beyond_what_sqlite_stores_is_refused() {
    let max = i64::MAX.to_string();
    assert_eq!(
        parse_query(Some(&format!("after_seq={max}")))
            .unwrap()
            .after_seq,
        i64::MAX as u64
    );
    for bad in ["9223372036854775808", "18446744073709551615", "-1"] {
        let err = parse_query(Some(&format!("after_seq={bad}"))).unwrap_err();
        assert_eq!(
            (err[0].field.as_str(), err[0].code),
            ("after_seq", "invalid_number")
        );
    }
}

/// Resident memory in KiB (Linux), to show that an export's memory does not grow with its size.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

#[test]
#[ignore = "benchmark: GV_BENCH_EVENTS=1000000 cargo test --release --lib audit_throughput -- --ignored --nocapture"]
fn audit_throughput() {
    use std::io::Write;
    let n: u64 = std::env::var("GV_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let f = fixture(0);
    f.conn.execute_batch("BEGIN").unwrap();
    for i in 1..=n {
        append(&f.c(), new_event(i, T0 + time::Duration::seconds(i as i64))).unwrap();
    }
    f.conn.execute_batch("COMMIT").unwrap();
    let path = f._dir.path().join("export.jsonl");
    let rss_before = rss_kib();
    let started = std::time::Instant::now();
    let mut ex = Export::plan(
        &f.c(),
        &parse_export(None).unwrap(),
        f.keyring.audit_public_key(),
    )
    .unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(&ex.header().unwrap()).unwrap();
    while let Some(page) = ex
        .next_page(&f.c(), crate::audit::export::PAGE_EVENTS)
        .unwrap()
    {
        out.write_all(&page).unwrap();
    }
    let cp = ex.checkpoint(&f.keyring, timestamp(T0));
    out.write_all(&ex.finish(&f.keyring, &cp).unwrap()).unwrap();
    out.flush().unwrap();
    let export_secs = started.elapsed().as_secs_f64();
    let rss_growth = rss_kib().saturating_sub(rss_before);
    let started = std::time::Instant::now();
    let report = verify_export(std::fs::File::open(&path).unwrap(), &f.key()).unwrap();
    let verify_secs = started.elapsed().as_secs_f64();
    assert_eq!(report.events, n);
    let size_mib = std::fs::metadata(&path).unwrap().len() as f64 / 1_048_576.0;
    println!(
        "{n} events, {size_mib:.0} MiB: export {:.0} events/s (RSS +{rss_growth} KiB), verify {:.0} events/s",
        n as f64 / export_secs,
        n as f64 / verify_secs
    );
}

#[test]
fn deleting_the_newest_events_under_a_checkpoint_is_found() {
    let f = fixture(12);
    checkpoint::checkpoint_head(&f.c(), &f.keyring, timestamp(T0), 1).unwrap();
    assert!(
        verify_store(&f.c(), f.keyring.audit_public_key())
            .unwrap()
            .intact
    );
    // Someone with the database cuts the trail short (the trigger would refuse it).
    f.conn
        .execute_batch(
            "DROP TRIGGER audit_events_no_delete; DELETE FROM audit_events WHERE seq >= 11;",
        )
        .unwrap();
    assert_eq!(
        verify_chain(&f.c()).unwrap(),
        Ok(10),
        "the chain alone looks fine"
    );
    let v = verify_store(&f.c(), f.keyring.audit_public_key()).unwrap();
    assert_eq!(
        (v.intact, v.events, v.checkpoints, v.first_bad_seq),
        (false, 10, 0, Some(12))
    );
}
