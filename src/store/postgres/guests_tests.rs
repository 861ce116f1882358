//! The `guests` operations on PostgreSQL against the SQLite ones: the same scenario runs on
//! both backends and every result is compared (and checked against what it must be). Needs
//! `GUESTVAULT_TEST_POSTGRES_URL`; skipped with a message otherwise.

use crate::crypto::WrappedDek;
use crate::policy::Action;
use crate::store::postgres::guests as pg;
use crate::store::sqlite as sq;
use crate::store::GuestStatus;

use super::super::conn::PgConn;
use kit::{permit, show, Backends, Log};

/// What the cross-backend tests of this module's siblings share.
pub(in crate::store::postgres) mod kit {
    use std::fmt::Debug;

    use crate::policy::{Action, Permit};
    use crate::store::postgres::conn::testdb::TestDb;
    use crate::store::postgres::PgConn;
    use crate::store::sqlite::SqliteConn as Conn;
    use crate::store::StoreError;

    /// One empty SQLite database and one empty PostgreSQL database.
    #[derive(Debug)]
    pub struct Backends {
        pub sqlite: Conn,
        pub pg: PgConn,
        db: TestDb,
        _dir: tempfile::TempDir,
    }

    impl Backends {
        /// `None` (with a message) when no PostgreSQL test server is configured.
        pub fn create() -> Option<Self> {
            let db = TestDb::create()?;
            let dir = tempfile::tempdir().expect("temp dir");
            let sqlite = crate::store::sqlite::open_writer(&dir.path().join("g.db"), "full", "fp")
                .expect("open sqlite");
            Some(Self {
                sqlite,
                pg: db.connect(),
                db,
                _dir: dir,
            })
        }
    }

    impl Backends {
        /// Gives every TEXT column of the PostgreSQL database the ICU collation `en-x-icu`,
        /// under which `G9` sorts after `g0` and `guest_c` before `guest-b` (bytewise, as in
        /// SQLite, the other way round): the backend's orderings must not depend on the
        /// database's collation. False (with a message) if the server has no ICU.
        pub fn collate_pg_text_by_icu(&self) -> bool {
            let icu = self
                .pg
                .query_dyn(
                    "SELECT 1 FROM pg_collation WHERE collname = 'en-x-icu'",
                    &[],
                )
                .expect("read collations");
            if icu.is_empty() {
                eprintln!("skipped: the PostgreSQL test server has no `en-x-icu` collation");
                return false;
            }
            self.pg
                .batch(
                    "DO $$ DECLARE c record; BEGIN
                       FOR c IN SELECT table_name, column_name FROM information_schema.columns
                                WHERE table_schema = 'public' AND data_type = 'text' LOOP
                         EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE TEXT COLLATE \"en-x-icu\"',
                                        c.table_name, c.column_name);
                       END LOOP;
                     END $$",
                )
                .expect("collate by ICU");
            true
        }

        /// Another connection to the PostgreSQL database (to see what was committed).
        pub fn connect_pg(&self) -> PgConn {
            self.db.connect()
        }
    }

    pub fn permit(action: Action) -> Permit {
        Permit::for_tests(action, "test")
    }

    /// A result as the scenario records it. The two drivers word their errors differently, so
    /// a database error is recorded as such; the seam's own errors are recorded verbatim.
    pub fn show<T: Debug>(result: &Result<T, StoreError>) -> String {
        match result {
            Ok(v) => format!("Ok({v:?})"),
            Err(StoreError::Other(m)) => format!("Err({m})"),
            Err(StoreError::Sqlite(_) | StoreError::Postgres(_)) => "Err(database)".into(),
            Err(e) => format!("Err(unexpected: {e})"),
        }
    }

    /// Everything one backend answered, in order, each line labelled by its step.
    #[derive(Debug, Default)]
    pub struct Log(pub Vec<String>);

    impl Log {
        /// Records `value` under `step` and hands it back for the scenario's own checks.
        pub fn note<T: Debug>(&mut self, step: &str, value: T) -> T {
            self.0.push(format!("{step}: {value:?}"));
            value
        }

        /// Records a result (see [`show`]) and hands it back.
        pub fn result<T: Debug>(
            &mut self,
            step: &str,
            result: Result<T, StoreError>,
        ) -> Result<T, StoreError> {
            self.0.push(format!("{step}: {}", show(&result)));
            result
        }
    }

    /// The two backends' logs must be the same, line by line.
    pub fn assert_same(sqlite: &Log, postgres: &Log) {
        for (i, (s, p)) in sqlite.0.iter().zip(&postgres.0).enumerate() {
            assert_eq!(s, p, "step {i} differs (left: SQLite, right: PostgreSQL)");
        }
        assert_eq!(
            sqlite.0.len(),
            postgres.0.len(),
            "the logs differ in length"
        );
        assert!(!sqlite.0.is_empty(), "the scenario recorded nothing");
    }

    /// Rows of a query with one text parameter (`$1`), every column read as optional text.
    /// (`$1` is a positional parameter in SQLite too.)
    pub fn sqlite_rows(conn: &Conn, sql: &str, arg: &str) -> Vec<Vec<Option<String>>> {
        let mut stmt = conn.prepare(sql).expect("prepare");
        let n = stmt.column_count();
        stmt.query_map([arg], |r| {
            (0..n)
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
    }

    /// As [`sqlite_rows`], on PostgreSQL.
    pub fn pg_rows(conn: &PgConn, sql: &str, arg: &str) -> Vec<Vec<Option<String>>> {
        conn.query_dyn(sql, &[&arg])
            .expect("query")
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Option<String>>(i).expect("text column"))
                    .collect()
            })
            .collect()
    }

    pub fn sqlite_exec(conn: &Conn, sql: &str) {
        conn.execute_batch(sql).expect("execute");
    }

    pub fn pg_exec(conn: &PgConn, sql: &str) {
        conn.batch(sql).expect("execute");
    }
}

const GUEST_ROW: &str = "SELECT status, created_at, last_activity_at, last_checkout \
                         FROM guests WHERE guest_id = $1";

fn wrapped(version: u32, byte: u8) -> WrappedDek {
    WrappedDek {
        kek_version: version,
        bytes: vec![byte; 28],
    }
}

/// The scenario, written once against the operations of module `$m` on connection `$c`;
/// `$rows` and `$exec` run raw SQL on that backend. Returns the log of every answer.
macro_rules! guests_scenario {
    ($m:ident, $c:expr, $rows:path, $exec:path) => {{
        let c = $c;
        let mut log = Log::default();
        let create = permit(Action::GuestCreate);
        let update = permit(Action::GuestUpdate);
        let read = permit(Action::GuestRead);
        let search = permit(Action::GuestSearch);
        let stay = permit(Action::StayCreate);

        // Permits: a read permit cannot create, a search permit cannot load, and so on.
        let r = log.result(
            "insert with a read permit",
            $m::insert_guest(c, &read, "x", "t0", &wrapped(1, 0)),
        );
        assert!(r.is_err());

        // Mixed case and punctuation: bytewise order is `Guest-a` < `guest-b` < `guest_c`.
        for (gid, v) in [("guest-b", 1), ("Guest-a", 2), ("guest_c", 1)] {
            log.result(
                &format!("insert {gid}"),
                $m::insert_guest(
                    c,
                    &create,
                    gid,
                    "2026-01-01T00:00:00Z",
                    &wrapped(v, v as u8),
                ),
            )
            .unwrap();
        }
        let r = log.result(
            "insert a guest twice",
            $m::insert_guest(c, &create, "guest-b", "t0", &wrapped(1, 9)),
        );
        assert!(r.is_err());
        let r = log.result(
            "field of an unknown guest",
            $m::put_field(c, &update, "nobody", "name", b"x", "t1"),
        );
        assert!(r.is_err());
        let r = log.result(
            "field with a read permit",
            $m::put_field(c, &read, "guest-b", "name", b"x", "t1"),
        );
        assert!(r.is_err());

        for (field, ct) in [
            ("name", &b"n1"[..]),
            ("mobile", b"m1"),
            ("id_number", b"i1"),
        ] {
            $m::put_field(c, &update, "guest-b", field, ct, "t1").unwrap();
        }
        $m::put_field(c, &update, "guest-b", "name", b"n2", "t2").unwrap();
        let loaded = log
            .result("load guest-b", $m::load_guest(c, &read, "guest-b"))
            .unwrap()
            .expect("guest-b exists");
        assert_eq!(loaded.status, GuestStatus::Active);
        assert_eq!(loaded.wrapped_dek, wrapped(1, 1));
        assert_eq!(
            loaded.fields,
            vec![
                ("id_number".to_string(), b"i1".to_vec()),
                ("mobile".to_string(), b"m1".to_vec()),
                ("name".to_string(), b"n2".to_vec()),
            ],
            "fields in name order, the upsert replaced `name`"
        );
        assert!(log
            .result("load unknown", $m::load_guest(c, &read, "nobody"))
            .unwrap()
            .is_none());
        assert!(log
            .result(
                "load with a search permit",
                $m::load_guest(c, &search, "guest-b")
            )
            .is_err());

        // The blind index: one entry per (guest, field), replaced by a second put.
        $m::put_index(c, &update, "guest-b", "mobile", b"d0").unwrap();
        $m::put_index(c, &update, "guest-b", "mobile", b"d1").unwrap();
        $m::put_index(c, &update, "guest_c", "mobile", b"d1").unwrap();
        $m::put_index(c, &update, "Guest-a", "mobile", b"d1").unwrap();
        $m::put_index(c, &update, "Guest-a", "name", b"d1").unwrap();
        let hits = log
            .result("search d1", $m::search_index(c, &search, "mobile", b"d1"))
            .unwrap();
        let ids: Vec<&str> = hits.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(ids, ["Guest-a", "guest-b", "guest_c"]);
        assert!(log
            .result("search d0", $m::search_index(c, &search, "mobile", b"d0"))
            .unwrap()
            .is_empty());
        assert!(log
            .result(
                "search with a read permit",
                $m::search_index(c, &read, "mobile", b"d1")
            )
            .is_err());

        $m::delete_field(c, &update, "guest-b", "mobile").unwrap();
        let fields: Vec<String> = $m::load_guest(c, &read, "guest-b")
            .unwrap()
            .unwrap()
            .fields
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            log.note("fields after delete", fields),
            ["id_number", "name"]
        );
        let hits = log
            .result(
                "search d1 after delete",
                $m::search_index(c, &search, "mobile", b"d1"),
            )
            .unwrap();
        assert_eq!(hits.len(), 2);
        assert!(log
            .result(
                "delete with a search permit",
                $m::delete_field(c, &search, "guest-b", "name")
            )
            .is_err());

        // Touch and status.
        let touched = log
            .result(
                "touch guest-b",
                $m::touch_guest(c, &update, "guest-b", "2026-01-05T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(touched, Some(GuestStatus::Active));
        assert_eq!(
            log.result("touch unknown", $m::touch_guest(c, &update, "nobody", "t9"))
                .unwrap(),
            None
        );
        assert!(log
            .result(
                "touch with a read permit",
                $m::touch_guest(c, &read, "guest-b", "t9")
            )
            .is_err());
        $exec(
            c,
            "UPDATE guests SET status = 'restricted' WHERE guest_id = 'guest_c'",
        );
        $exec(
            c,
            "UPDATE guests SET status = 'erased' WHERE guest_id = 'Guest-a'",
        );
        assert_eq!(
            log.result("status guest_c", $m::guest_status(c, "guest_c"))
                .unwrap(),
            Some(GuestStatus::Restricted)
        );
        assert_eq!(
            log.result("status Guest-a", $m::guest_status(c, "Guest-a"))
                .unwrap(),
            Some(GuestStatus::Erased)
        );
        assert_eq!(
            log.result("status unknown", $m::guest_status(c, "nobody"))
                .unwrap(),
            None
        );
        assert_eq!(
            log.result(
                "touch an erased guest",
                $m::touch_guest(c, &update, "Guest-a", "t8")
            )
            .unwrap(),
            Some(GuestStatus::Erased)
        );
        let statuses: Vec<GuestStatus> = $m::search_index(c, &search, "mobile", b"d1")
            .unwrap()
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            log.note("statuses in search", statuses),
            [GuestStatus::Erased, GuestStatus::Restricted],
            "guest-b left the index with its field; the search reports statuses, not filters"
        );
        assert_eq!(log.result("count", $m::count_guests(c)).unwrap(), 2);

        // Stays: last_checkout only moves forward; listed by check-out, then stay id.
        for (sid, out) in [
            ("s2", "2026-03-05"),
            ("s3", "2026-03-05"),
            ("s1", "2026-03-01"),
        ] {
            log.result(
                &format!("stay {sid}"),
                $m::insert_stay(
                    c,
                    &stay,
                    "guest-b",
                    sid,
                    out,
                    "2026-01-06T00:00:00Z",
                    sid.as_bytes(),
                ),
            )
            .unwrap();
        }
        assert!(log
            .result(
                "stay twice",
                $m::insert_stay(c, &stay, "guest-b", "s1", "2026-04-01", "t", b"x")
            )
            .is_err());
        assert!(log
            .result(
                "stay of an unknown guest",
                $m::insert_stay(c, &stay, "nobody", "s9", "2026-04-01", "t", b"x")
            )
            .is_err());
        assert!(log
            .result(
                "stay with an update permit",
                $m::insert_stay(c, &update, "guest-b", "s9", "2026-04-01", "t", b"x")
            )
            .is_err());
        let stays: Vec<(String, Vec<u8>)> = log
            .result("list stays", $m::list_stays(c, &read, "guest-b"))
            .unwrap()
            .into_iter()
            .map(|s| (s.stay_id, s.ciphertext))
            .collect();
        assert_eq!(
            stays,
            [
                ("s1".to_string(), b"s1".to_vec()),
                ("s2".to_string(), b"s2".to_vec()),
                ("s3".to_string(), b"s3".to_vec()),
            ]
        );
        assert!(log
            .result("list stays of unknown", $m::list_stays(c, &read, "nobody"))
            .unwrap()
            .is_empty());
        assert!(log
            .result(
                "list stays with a search permit",
                $m::list_stays(c, &search, "guest-b")
            )
            .is_err());
        let row = log.note("guest-b row", $rows(c, GUEST_ROW, "guest-b"));
        assert_eq!(
            row,
            vec![vec![
                Some("active".to_string()),
                Some("2026-01-01T00:00:00Z".to_string()),
                Some("2026-01-05T00:00:00Z".to_string()),
                Some("2026-03-05".to_string()),
            ]]
        );
        let row = log.note("guest_c row", $rows(c, GUEST_ROW, "guest_c"));
        assert_eq!(row[0][3], None, "no stay, no last_checkout");
        log
    }};
}

fn compare(b: &Backends) {
    let sqlite = guests_scenario!(sq, &b.sqlite, kit::sqlite_rows, kit::sqlite_exec);
    let postgres = guests_scenario!(pg, &b.pg, kit::pg_rows, kit::pg_exec);
    kit::assert_same(&sqlite, &postgres);
}

#[test]
fn guests_fields_index_and_stays_behave_as_on_sqlite() {
    if let Some(b) = Backends::create() {
        compare(&b);
    }
}

#[test]
fn guests_come_in_bytewise_order_whatever_the_collation() {
    if let Some(b) = Backends::create().filter(|b| b.collate_pg_text_by_icu()) {
        compare(&b);
    }
}

/// Inside one transaction, the way the writer runs a unit: repeated puts replace rather than
/// fail, so nothing aborts the transaction and everything commits.
#[test]
fn repeated_puts_do_not_abort_a_postgres_transaction() {
    let Some(b) = Backends::create() else {
        return;
    };
    let c: &PgConn = &b.pg;
    let update = permit(Action::GuestUpdate);
    c.batch("BEGIN").unwrap();
    c.batch("SAVEPOINT unit").unwrap();
    pg::insert_guest(c, &permit(Action::GuestCreate), "g", "t0", &wrapped(1, 1)).unwrap();
    for round in 0..3u8 {
        pg::put_field(c, &update, "g", "mobile", &[round], "t1").unwrap();
        pg::put_index(c, &update, "g", "mobile", &[round]).unwrap();
        pg::touch_guest(c, &update, "g", "t2").unwrap();
    }
    pg::delete_field(c, &update, "g", "name").unwrap();
    c.batch("RELEASE SAVEPOINT unit").unwrap();
    c.batch("COMMIT").unwrap();
    let other = b.connect_pg();
    let g = pg::load_guest(&other, &permit(Action::GuestRead), "g")
        .unwrap()
        .unwrap();
    assert_eq!(g.fields, vec![("mobile".to_string(), vec![2])]);
    let hits = pg::search_index(&other, &permit(Action::GuestSearch), "mobile", &[2]).unwrap();
    assert_eq!(hits, vec![("g".to_string(), GuestStatus::Active)]);
    assert!(
        pg::search_index(&other, &permit(Action::GuestSearch), "mobile", &[0])
            .unwrap()
            .is_empty()
    );
}

/// A stored version out of `u32` range is refused, not truncated (SQLite refuses it too).
#[test]
fn a_kek_version_out_of_range_is_an_error() {
    let Some(b) = Backends::create() else {
        return;
    };
    let c = &b.pg;
    pg::insert_guest(c, &permit(Action::GuestCreate), "g", "t0", &wrapped(1, 1)).unwrap();
    kit::pg_exec(c, "UPDATE guest_keys SET kek_version = 4294967296");
    let err = pg::load_guest(c, &permit(Action::GuestRead), "g").unwrap_err();
    assert_eq!(
        show::<()>(&Err(err)),
        "Err(a stored `kek_version` is out of range)"
    );
    sq::insert_guest(
        &b.sqlite,
        &permit(Action::GuestCreate),
        "g",
        "t0",
        &wrapped(1, 1),
    )
    .unwrap();
    kit::sqlite_exec(&b.sqlite, "UPDATE guest_keys SET kek_version = 4294967296");
    assert!(sq::load_guest(&b.sqlite, &permit(Action::GuestRead), "g").is_err());
}
