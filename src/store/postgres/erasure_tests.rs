//! The erasure operations run side by side on SQLite (the reference) and PostgreSQL: the same
//! seed, the same calls, the same answers and the same table contents afterwards. Skipped
//! with a message when `GUESTVAULT_TEST_POSTGRES_URL` is unset (except the date check, which
//! needs SQLite only).

use std::fmt::Debug;

use crate::policy::{Action, Permit};
use crate::store::postgres::conn::testdb::TestDb;
use crate::store::postgres::PgConn;
use crate::store::sqlite::SqliteConn as LiteConn;
use crate::store::{DsrRow, GuestStatus, StoreError, PLAUSIBLE_HORIZON_DAYS};

/// One SQLite database and one PostgreSQL database, both migrated and empty.
pub(crate) struct Pair {
    pub lite: LiteConn,
    pub pg: PgConn,
    /// The PostgreSQL database, dropped with the pair.
    _db: Box<dyn std::any::Any>,
    _dir: tempfile::TempDir,
}

fn connect(config: &tokio_postgres::Config) -> PgConn {
    let rt = PgConn::runtime().expect("runtime");
    let client = rt.block_on(async {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    });
    PgConn::from_parts(rt, client)
}

/// A migrated database whose default collation is ICU's `en-US` (`_` before `-` before
/// letters, case a tertiary difference: not byte order), dropped with the value.
struct IcuDb {
    admin: PgConn,
    name: String,
    config: tokio_postgres::Config,
}

impl IcuDb {
    fn create() -> Option<Self> {
        let Ok(url) = std::env::var(crate::store::postgres::conn::testdb::URL_VAR) else {
            eprintln!("skipped: no PostgreSQL server to test against");
            return None;
        };
        let admin_config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
        let admin = connect(&admin_config);
        let name = format!("gv_icu_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = admin.batch(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )) {
            eprintln!("skipped: this server cannot create an ICU database: {e}");
            return None;
        }
        let mut config = admin_config;
        config.dbname(&name);
        let db = Self {
            admin,
            name,
            config,
        };
        let rt = PgConn::runtime().expect("runtime");
        rt.block_on(async {
            let (mut client, connection) = db
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(async move {
                let _ = connection.await;
            });
            crate::store::postgres::migrate(&mut client, "fp")
                .await
                .expect("migrate");
        });
        Some(db)
    }
}

impl Drop for IcuDb {
    fn drop(&mut self) {
        let _ = self.admin.batch(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

impl Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair").finish_non_exhaustive()
    }
}

/// How a dumped column is turned into text, the same way on both backends.
#[derive(Clone, Copy)]
enum Col {
    Text(&'static str),
    Int(&'static str),
    Blob(&'static str),
    Bool(&'static str),
}

/// Every table a guest's data lives in, with all its columns (consent events without the id,
/// whose values a backend may skip, but in id order).
const TABLES: &[(&str, &[Col])] = {
    use Col::*;
    &[
        (
            "guests",
            &[
                Text("guest_id"),
                Text("created_at"),
                Text("status"),
                Text("last_activity_at"),
                Text("last_checkout"),
            ],
        ),
        (
            "guest_keys",
            &[Text("guest_id"), Int("kek_version"), Blob("wrapped_dek")],
        ),
        (
            "guest_fields",
            &[
                Text("guest_id"),
                Text("field"),
                Blob("ciphertext"),
                Text("updated_at"),
            ],
        ),
        (
            "blind_index",
            &[Text("field"), Blob("digest"), Text("guest_id")],
        ),
        (
            "stays",
            &[
                Text("stay_id"),
                Text("guest_id"),
                Text("check_out"),
                Text("created_at"),
                Blob("ciphertext"),
            ],
        ),
        (
            "consents",
            &[
                Text("guest_id"),
                Text("purpose"),
                Text("status"),
                Bool("separate"),
                Text("notice_version"),
                Text("channel"),
                Text("granted_at"),
                Text("withdrawn_at"),
                Text("notice_sha256"),
            ],
        ),
        (
            "consent_events",
            &[
                Text("guest_id"),
                Text("purpose"),
                Text("status"),
                Bool("separate"),
                Text("notice_version"),
                Text("channel"),
                Text("actor"),
                Text("at"),
                Text("notice_sha256"),
                Text("initiated_by"),
            ],
        ),
        (
            "consent_refusals",
            &[
                Text("guest_id"),
                Text("purpose"),
                Text("notice_version"),
                Text("notice_sha256"),
                Text("channel"),
                Text("initiated_by"),
                Text("actor"),
                Text("at"),
            ],
        ),
        (
            "dsr_requests",
            &[
                Text("request_id"),
                Blob("subject"),
                Text("kind"),
                Text("status"),
                Text("received_at"),
                Text("completed_at"),
                Text("due_at"),
                Text("receipt"),
            ],
        ),
        (
            "correction_requests",
            &[
                Text("request_id"),
                Text("guest_id"),
                Text("fields"),
                Blob("ciphertext"),
            ],
        ),
        (
            "guest_field_history",
            &[
                Text("guest_id"),
                Text("field"),
                Blob("ciphertext"),
                Text("replaced_at"),
            ],
        ),
    ]
};

fn dump_sql(table: &str, cols: &[Col], pg: bool) -> String {
    let exprs: Vec<String> = cols
        .iter()
        .map(|c| match (*c, pg) {
            (Col::Text(n), _) => format!("coalesce({n}, '<null>')"),
            (Col::Int(n), _) => format!("CAST({n} AS TEXT)"),
            (Col::Blob(n), false) => format!("lower(hex({n}))"),
            (Col::Blob(n), true) => format!("encode({n}, 'hex')"),
            (Col::Bool(n), false) => format!("CAST({n} AS TEXT)"),
            (Col::Bool(n), true) => format!("CAST(CAST({n} AS INTEGER) AS TEXT)"),
        })
        .collect();
    let order = if table == "consent_events" {
        " ORDER BY id"
    } else {
        ""
    };
    format!("SELECT {} FROM {table}{order}", exprs.join(" || '|' || "))
}

/// `X'..'` blob literals (SQLite's) as PostgreSQL `bytea` literals.
fn pg_blobs(sql: &str) -> String {
    let re = regex::Regex::new(r"X'([0-9a-fA-F]*)'").expect("regex");
    re.replace_all(sql, r"'\x$1'::bytea").into_owned()
}

impl Pair {
    pub fn new() -> Option<Self> {
        let db = TestDb::create()?;
        let pg = db.connect();
        Some(Self::with(pg, Box::new(db)))
    }

    /// The same, PostgreSQL's database collating linguistically (ICU `en-US`).
    fn new_icu() -> Option<Self> {
        let db = IcuDb::create()?;
        let pg = connect(&db.config);
        let collation: String = pg
            .query_dyn("SELECT datcollate || '/' || coalesce(daticulocale, '') FROM pg_database WHERE datname = current_database()", &[])
            .expect("collation")[0]
            .get(0);
        assert!(collation.ends_with("/en-US"), "{collation}");
        Some(Self::with(pg, Box::new(db)))
    }

    fn with(pg: PgConn, db: Box<dyn std::any::Any>) -> Self {
        pg.batch("BEGIN").expect("begin");
        let dir = tempfile::tempdir().expect("tempdir");
        let lite = crate::store::sqlite::open_writer(&dir.path().join("g.db"), "full", "fp")
            .expect("open sqlite");
        Self {
            lite,
            pg,
            _db: db,
            _dir: dir,
        }
    }

    /// Runs the same statements on both (blobs written `X'..'`).
    pub fn seed(&self, sql: &str) {
        self.lite.execute_batch(sql).expect("seed sqlite");
        self.pg.batch(&pg_blobs(sql)).expect("seed postgres");
    }

    /// A unit on SQLite, in a savepoint rolled back when it fails (as the writer runs it).
    pub fn unit_lite<T>(
        &self,
        f: impl FnOnce(&LiteConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.lite
            .execute_batch("SAVEPOINT unit")
            .expect("savepoint");
        let out = f(&self.lite);
        if out.is_err() {
            self.lite
                .execute_batch("ROLLBACK TO SAVEPOINT unit")
                .expect("rollback");
        }
        self.lite
            .execute_batch("RELEASE SAVEPOINT unit")
            .expect("release");
        out
    }

    /// The same on PostgreSQL, inside one transaction for the whole test (as in the writer's
    /// group): a failed statement aborts the transaction until the savepoint is rolled back.
    pub fn unit_pg<T>(
        &self,
        f: impl FnOnce(&PgConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.pg.batch("SAVEPOINT unit").expect("savepoint");
        let out = f(&self.pg);
        if out.is_err() {
            self.pg
                .batch("ROLLBACK TO SAVEPOINT unit")
                .expect("rollback");
        }
        self.pg.batch("RELEASE SAVEPOINT unit").expect("release");
        out
    }

    /// Both databases' contents, table by table, as comparable text.
    pub fn dumps(&self) -> (Vec<String>, Vec<String>) {
        let mut lite_all = Vec::new();
        let mut pg_all = Vec::new();
        for (table, cols) in TABLES {
            let mut lite: Vec<String> = self
                .lite
                .prepare(&dump_sql(table, cols, false))
                .expect("dump sqlite")
                .query_map([], |r| r.get(0))
                .expect("dump sqlite")
                .collect::<Result<_, _>>()
                .expect("dump sqlite");
            let mut pg: Vec<String> = self
                .pg
                .query_dyn(&dump_sql(table, cols, true), &[])
                .expect("dump postgres")
                .iter()
                .map(|r| r.get(0))
                .collect();
            if *table != "consent_events" {
                lite.sort();
                pg.sort();
            }
            lite_all.extend(lite.into_iter().map(|r| format!("{table}: {r}")));
            pg_all.extend(pg.into_iter().map(|r| format!("{table}: {r}")));
        }
        (lite_all, pg_all)
    }

    /// Both databases hold the same rows; returns them.
    pub fn assert_same_rows(&self, when: &str) -> Vec<String> {
        let (lite, pg) = self.dumps();
        assert_eq!(lite, pg, "table contents differ {when}");
        lite
    }
}

/// Both backends answered alike: equal values, or both an error (the same message when it is
/// the seam's own). Returns SQLite's answer.
pub(crate) fn same<T: Debug>(
    what: &str,
    lite: Result<T, StoreError>,
    pg: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match (&lite, &pg) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}"),
        (Err(StoreError::Other(a)), Err(StoreError::Other(b))) => assert_eq!(a, b, "{what}"),
        (Err(_), Err(_)) => {}
        _ => panic!("{what}: sqlite {lite:?}, postgres {pg:?}"),
    }
    lite
}

/// Calls the operation of that name on both backends, each in a unit of its own; checks they
/// answered alike and returns SQLite's answer.
macro_rules! both {
    ($p:expr, $f:ident($($a:expr),* $(,)?)) => {{
        let lite = $p.unit_lite(|c| crate::store::sqlite::$f(c, $($a),*));
        let pg = $p.unit_pg(|c| super::$f(c, $($a),*));
        same(stringify!($f($($a),*)), lite, pg)
    }};
}

fn erase_permit() -> Permit {
    Permit::for_tests(Action::GuestErase, "erasure")
}

/// Guests whose ids, field names and dates exercise byte ordering, ties, the plausible
/// horizon (capped, not capped, a month end, a leap day), an unreadable activity date and a
/// missing check-out.
const SEED: &str = "
INSERT INTO guests (guest_id, created_at, status, last_activity_at, last_checkout) VALUES
  ('g-a', '2024-01-05T10:00:00.000000Z', 'active', '2024-01-31T10:00:00.000000Z', '2025-02-01'),
  ('g_a', '2024-01-05T10:00:00.000000Z', 'restricted', '2024-02-29T00:00:00.000000Z', '2099-12-31'),
  ('gA', '2023-03-01T10:00:00.000000Z', 'active', '2023-03-01T10:00:00.000000Z', NULL),
  ('G-b', '2023-03-01T10:00:00.000000Z', 'erased', 'not a date', '2024-01-01'),
  ('ga', '2022-12-31T23:59:59.999999Z', 'active', '2022-12-31T23:59:59.999999Z', '2025-12-31');
INSERT INTO guest_keys (guest_id, kek_version, wrapped_dek) VALUES
  ('g-a', 1, X'0a0b'), ('g_a', 2, X'0c0d'), ('gA', 1, X'00'), ('G-b', 1, X'ff'), ('ga', 3, X'01');
INSERT INTO guest_fields (guest_id, field, ciphertext, updated_at) VALUES
  ('g-a', 'name', X'01', 't1'), ('g-a', 'Name', X'02', 't1'), ('g-a', 'mobile', X'03', 't1'),
  ('g-a', 'id_number', X'04', 't1'), ('g-a', '_x', X'05', 't1'), ('g-a', 'id-number', X'06', 't1'),
  ('g_a', 'name', X'07', 't2'), ('ga', 'name', X'08', 't3');
INSERT INTO blind_index (field, digest, guest_id) VALUES
  ('name', X'aa', 'g-a'), ('mobile', X'bb', 'g-a'), ('name', X'cc', 'g_a'), ('name', X'aa', 'ga');
INSERT INTO guest_field_history (guest_id, field, ciphertext, replaced_at) VALUES
  ('g-a', 'name', X'11', 't0'), ('g-a', 'mobile', X'12', 't0'), ('g_a', 'name', X'13', 't0');
INSERT INTO stays (stay_id, guest_id, check_out, created_at, ciphertext) VALUES
  ('s3', 'g-a', '2024-03-01', '2024-01-05T10:00:00.000000Z', X'21'),
  ('s1', 'g-a', '2024-03-01', '2024-01-05T10:00:00.000000Z', X'22'),
  ('S2', 'g-a', '2024-03-01', '2024-01-05T10:00:00.000000Z', X'23'),
  ('s0', 'g-a', '2030-01-01', '2024-01-31T10:00:00.000000Z', X'24'),
  ('s4', 'g-a', '2023-12-31', '2023-12-01T10:00:00.000000Z', X'25'),
  ('t1', 'g_a', '2099-01-01', '2024-02-29T10:00:00.000000Z', X'26'),
  ('u1', 'ga', '2023-01-02', '2022-12-31T23:59:59.999999Z', X'27');
INSERT INTO correction_requests (request_id, guest_id, fields, ciphertext) VALUES
  ('c1', 'g-a', '[\"name\"]', X'31'), ('c2', 'g_a', '[\"name\"]', X'32');
";

fn consent(purpose: &str, grant: bool, separate: bool) -> crate::store::rows::ConsentChange {
    crate::store::rows::ConsentChange {
        purpose: purpose.to_string(),
        grant,
        separate,
        notice_version: Some("v1".into()),
        channel: Some("front_desk".into()),
        giver: None,
        notice_sha256: None,
        initiated_by: None,
        refused: false,
    }
}

fn seeded() -> Option<Pair> {
    Some(seed(Pair::new()?))
}

fn seed(p: Pair) -> Pair {
    p.seed(SEED);
    for (gid, change, now) in [
        (
            "g-a",
            consent("marketing", true, true),
            "2024-01-06T00:00:00.000000Z",
        ),
        (
            "g-a",
            consent("Analytics", true, false),
            "2024-01-06T00:00:01.000000Z",
        ),
        (
            "g-a",
            consent("b_x", true, true),
            "2024-01-06T00:00:02.000000Z",
        ),
        (
            "g-a",
            consent("marketing", false, true),
            "2024-01-07T00:00:00.000000Z",
        ),
        (
            "ga",
            consent("marketing", true, false),
            "2023-01-01T00:00:00.000000Z",
        ),
    ] {
        let lite =
            p.unit_lite(|c| crate::store::sqlite::consents::apply(c, gid, &change, "staff:1", now));
        let pg = p.unit_pg(|c| super::super::consents::apply(c, gid, &change, "staff:1", now));
        same("apply", lite, pg).expect("consent applied");
    }
    p.assert_same_rows("after the seed");
    p
}

const GUESTS: [&str; 7] = ["g-a", "g_a", "gA", "G-b", "ga", "missing", ""];

#[test]
fn retention_facts_are_the_same_on_both_backends() {
    let Some(p) = seeded() else { return };
    for gid in GUESTS {
        both!(p, retention_facts(gid)).expect("facts");
    }
    // The answers are SQLite's, and they are what the horizon rule says.
    let facts = both!(p, retention_facts("g-a")).unwrap().unwrap();
    assert_eq!(facts.status, GuestStatus::Active);
    assert_eq!(facts.last_checkout.as_deref(), Some("2025-02-01"));
    assert_eq!(
        facts.fields,
        ["Name", "_x", "id-number", "id_number", "mobile", "name"]
    );
    let stays: Vec<(&str, &str)> = facts
        .stays
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    // 2024-01-31 + 1095 days (a leap year in between) = 2027-01-30 caps s0's 2030 check-out; ties keep stay_id order.
    assert_eq!(
        stays,
        [
            ("s4", "2023-12-31"),
            ("S2", "2024-03-01"),
            ("s1", "2024-03-01"),
            ("s3", "2024-03-01"),
            ("s0", "2027-01-30"),
        ]
    );
    let purposes: Vec<&str> = facts.consents.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(purposes, ["Analytics", "b_x", "marketing"]);
    assert_eq!(
        facts.consents[2],
        (
            "marketing".to_string(),
            "withdrawn".to_string(),
            Some("2024-01-07T00:00:00.000000Z".to_string())
        )
    );
    let capped = both!(p, retention_facts("g_a")).unwrap().unwrap();
    assert_eq!(capped.status, GuestStatus::Restricted);
    assert_eq!(capped.last_checkout.as_deref(), Some("2027-02-28"));
    assert_eq!(capped.stays, [("t1".to_string(), "2027-02-28".to_string())]);
    let none = both!(p, retention_facts("gA")).unwrap().unwrap();
    assert_eq!(none.last_checkout, None);
    // An unreadable last activity makes SQLite's min() NULL: no bound, no check-out.
    let unreadable = both!(p, retention_facts("G-b")).unwrap().unwrap();
    assert_eq!(unreadable.status, GuestStatus::Erased);
    assert_eq!(unreadable.last_checkout, None);
    assert!(both!(p, retention_facts("missing")).unwrap().is_none());
}

#[test]
fn a_stay_with_an_unreadable_creation_date_fails_on_both_backends() {
    let Some(p) = seeded() else { return };
    p.seed(
        "INSERT INTO stays (stay_id, guest_id, check_out, created_at, ciphertext)
         VALUES ('bad', 'ga', '2024-01-01', '2024-13-01', X'00')",
    );
    assert!(both!(p, retention_facts("ga")).is_err());
    // The other guests still answer (PostgreSQL's transaction went on past the failure).
    assert!(both!(p, retention_facts("g-a")).unwrap().is_some());
}

#[test]
fn guest_ids_come_in_byte_order_after_the_cursor() {
    let Some(p) = seeded() else { return };
    for cursor in ["", "G", "G-b", "g", "g-a", "gA", "g_a", "ga", "zz"] {
        for limit in [0, 1, 2, 3, 500, usize::MAX] {
            both!(p, guest_ids_after(cursor, limit)).expect("ids");
        }
    }
    let all = both!(p, guest_ids_after("", usize::MAX)).unwrap();
    assert_eq!(all, ["G-b", "g-a", "gA", "g_a", "ga"]);
    assert_eq!(both!(p, guest_ids_after("g-a", 2)).unwrap(), ["gA", "g_a"]);
    assert!(both!(p, guest_ids_after("ga", 5)).unwrap().is_empty());
    assert!(both!(p, guest_ids_after("", 0)).unwrap().is_empty());
}

#[test]
fn only_an_erasure_or_retention_permit_erases() {
    let Some(p) = seeded() else { return };
    let before = p.assert_same_rows("before");
    let fields = vec!["name".to_string()];
    let stays = vec!["s1".to_string()];
    for action in [Action::GuestRead, Action::GuestUpdate, Action::GuestCreate] {
        let permit = Permit::for_tests(action, "x");
        let err = both!(p, erase_fields(&permit, "g-a", &fields)).unwrap_err();
        assert!(err.to_string().contains("cannot erase"), "{err}");
        both!(p, erase_stays(&permit, "g-a", &stays)).unwrap_err();
        both!(p, set_status(&permit, "g-a", GuestStatus::Restricted)).unwrap_err();
        both!(p, shred_guest(&permit, "g-a")).unwrap_err();
    }
    assert_eq!(p.assert_same_rows("after refused erasures"), before);
    let retention = Permit::for_tests(Action::AdminRetention, "retention");
    both!(p, erase_stays(&retention, "g-a", &stays)).unwrap();
    assert_ne!(p.assert_same_rows("after a retention erasure"), before);
}

#[test]
fn erasing_fields_stays_and_whole_guests_leaves_the_same_rows() {
    let Some(p) = seeded() else { return };
    let permit = erase_permit();
    let fields = vec!["name".to_string(), "mobile".to_string(), "nope".to_string()];
    both!(p, erase_fields(&permit, "g-a", &fields)).unwrap();
    let rows = p.assert_same_rows("after erase_fields");
    // The other guest's `name` (field, index entry and history) is untouched.
    assert!(rows.iter().any(|r| r == "guest_fields: g_a|name|07|t2"));
    assert!(rows.iter().any(|r| r == "blind_index: name|aa|ga"));
    assert!(rows
        .iter()
        .any(|r| r == "guest_field_history: g_a|name|13|t0"));
    assert!(!rows
        .iter()
        .any(|r| r.starts_with("guest_field_history: g-a|")));
    assert!(rows.iter().any(|r| r == "guest_fields: g-a|Name|02|t1"));

    both!(p, erase_fields(&permit, "g-a", &[])).unwrap();
    // A stay of another guest is not erased through this one.
    let stays = vec!["s1".to_string(), "t1".to_string(), "s1".to_string()];
    both!(p, erase_stays(&permit, "g-a", &stays)).unwrap();
    let rows = p.assert_same_rows("after erase_stays");
    assert!(rows.iter().any(|r| r.starts_with("stays: t1|")));
    assert!(!rows.iter().any(|r| r.starts_with("stays: s1|")));

    both!(p, set_status(&permit, "g-a", GuestStatus::Restricted)).unwrap();
    both!(p, set_status(&permit, "missing", GuestStatus::Erased)).unwrap();
    p.assert_same_rows("after set_status");
    assert_eq!(
        both!(p, retention_facts("g-a")).unwrap().unwrap().status,
        GuestStatus::Restricted
    );

    both!(p, shred_guest(&permit, "g-a")).unwrap();
    let rows = p.assert_same_rows("after shred_guest");
    assert!(
        !rows
            .iter()
            .any(|r| r.contains("g-a|") || r.ends_with("|g-a")),
        "{rows:#?}"
    );
    assert!(rows.iter().any(|r| r.starts_with("guests: g_a|")));
    assert!(rows.iter().any(|r| r
        == "consents: ga|marketing|granted|0|v1|front_desk|2023-01-01T00:00:00.000000Z|<null>|<null>"));
    assert!(both!(p, retention_facts("g-a")).unwrap().is_none());
    // Shredding again, or a guest that never was, changes nothing.
    both!(p, shred_guest(&permit, "g-a")).unwrap();
    both!(p, shred_guest(&permit, "missing")).unwrap();
    assert_eq!(p.assert_same_rows("after shredding again"), rows);
}

fn dsr(id: &str, kind: &str, status: &str, received: &str, due: &str) -> DsrRow {
    DsrRow {
        request_id: id.to_string(),
        kind: kind.to_string(),
        status: status.to_string(),
        received_at: received.to_string(),
        completed_at: (status == "completed").then(|| received.to_string()),
        due_at: due.to_string(),
        receipt: format!("{{\"request\":\"{id}\"}}"),
        deadlines: None,
    }
}

#[test]
fn data_subject_requests_read_back_alike() {
    let Some(p) = seeded() else { return };
    let alice: &[u8] = b"\x01alice";
    let bob: &[u8] = b"\x02bob";
    let rows = [
        (
            alice,
            dsr(
                "r1",
                "erasure",
                "partially_completed",
                "2024-01-01T00:00:00.000000Z",
                "2024-01-31",
            ),
        ),
        (
            alice,
            dsr(
                "r2",
                "erasure",
                "partially_completed",
                "2024-02-01T00:00:00.000000Z",
                "2024-03-02",
            ),
        ),
        (
            alice,
            dsr(
                "r3",
                "access",
                "received",
                "2024-03-01T00:00:00.000000Z",
                "2024-03-31",
            ),
        ),
        (
            alice,
            dsr(
                "r4",
                "erasure",
                "completed",
                "2023-12-01T00:00:00.000000Z",
                "2023-12-31",
            ),
        ),
        (
            bob,
            dsr(
                "b1",
                "erasure",
                "received",
                "2024-01-15T00:00:00.000000Z",
                "2024-02-14",
            ),
        ),
        (
            bob,
            dsr(
                "b2",
                "correction",
                "pending_verification",
                "2024-01-15T00:00:00.000000Z",
                "2024-02-14",
            ),
        ),
        (
            bob,
            dsr(
                "c1",
                "correction",
                "pending_verification",
                "2024-01-16T00:00:00.000000Z",
                "2024-02-14",
            ),
        ),
        (
            bob,
            dsr(
                "c2",
                "correction",
                "pending_verification",
                "2024-01-16T00:00:00.000000Z",
                "2024-02-13",
            ),
        ),
        (
            bob,
            dsr(
                "b3",
                "access",
                "rejected",
                "2024-01-15T00:00:00.000000Z",
                "2024-01-20",
            ),
        ),
        (
            bob,
            dsr(
                "b4",
                "access",
                "received",
                "2024-01-10T00:00:00.000000Z",
                "2024-02-14",
            ),
        ),
    ];
    for (subject, row) in &rows {
        both!(p, insert_dsr(subject, row)).unwrap();
    }
    // A request id is stored once; the refused insert leaves the rest in place.
    let dup = dsr(
        "r1",
        "access",
        "received",
        "2024-05-01T00:00:00.000000Z",
        "2024-05-31",
    );
    both!(p, insert_dsr(bob, &dup)).unwrap_err();
    p.assert_same_rows("after the requests");

    for id in [
        "r1", "r2", "r3", "r4", "b1", "b2", "c1", "c2", "b3", "nope", "",
    ] {
        both!(p, get_dsr(id)).unwrap();
    }
    let (row, subject) = both!(p, get_dsr("b2")).unwrap().unwrap();
    assert_eq!(subject, bob);
    assert_eq!(row.status, "pending_verification");
    assert!(both!(p, get_dsr("nope")).unwrap().is_none());

    for subject in [alice, bob, b"nobody".as_slice()] {
        both!(p, latest_erasure(subject)).unwrap();
    }
    assert_eq!(
        both!(p, latest_erasure(alice)).unwrap().unwrap().request_id,
        "r2"
    );
    assert_eq!(
        both!(p, latest_erasure(bob)).unwrap().unwrap().request_id,
        "b1"
    );

    for today in [
        "",
        "2024-01-20",
        "2024-01-31",
        "2024-02-01",
        "2024-02-14",
        "2024-02-15",
        "2025-01-01",
    ] {
        both!(p, overdue_dsr(today)).unwrap();
    }
    // Received ones, and corrections whose guest is still there (c1, c2; not b2), by due date.
    let ids: Vec<String> = both!(p, overdue_dsr("2024-12-31"))
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(ids, ["c2", "b1", "b4", "c1", "r3"]);

    both!(
        p,
        complete_erasures(alice, "2024-06-01T00:00:00.000000Z", |r: &str| format!(
            "{r}+done"
        ))
    )
    .unwrap();
    both!(
        p,
        complete_erasures(b"nobody", "2024-06-01T00:00:00.000000Z", |r: &str| format!(
            "{r}!"
        ))
    )
    .unwrap();
    let rows = p.assert_same_rows("after complete_erasures");
    assert!(rows.iter().any(|r| r.starts_with("dsr_requests: r2|") && r.contains("|erasure|completed|2024-02-01T00:00:00.000000Z|2024-06-01T00:00:00.000000Z|2024-03-02|{\"request\":\"r2\"}+done")), "{rows:#?}");
    assert!(rows
        .iter()
        .any(|r| r.starts_with("dsr_requests: r4|") && r.ends_with("|{\"request\":\"r4\"}")));
}

/// PostgreSQL sorts text by the database's collation unless told otherwise: the port says
/// `COLLATE "C"` wherever SQLite's byte order shows, so the lists match here too.
#[test]
fn lists_come_in_byte_order_on_a_database_with_a_linguistic_collation() {
    let Some(p) = Pair::new_icu() else { return };
    // The trap is real: this database's default collation orders the seeded ids otherwise…
    let p = seed(p);
    let linguistic: Vec<String> =
        p.pg.query_dyn(
            "SELECT x FROM unnest(ARRAY['G-b', 'g-a', 'gA', 'g_a', 'ga']) AS x ORDER BY x",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(linguistic, ["g_a", "g-a", "G-b", "ga", "gA"]);
    // …but the schema's columns sort by bytes (COLLATE "C" in 0001_init.sql), as SQLite does.
    let stored: Vec<String> =
        p.pg.query_dyn("SELECT guest_id FROM guests ORDER BY guest_id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(stored, ["G-b", "g-a", "gA", "g_a", "ga"]);
    for gid in GUESTS {
        both!(p, retention_facts(gid)).unwrap();
    }
    for cursor in ["", "G-b", "g-a", "gA", "g_a"] {
        both!(p, guest_ids_after(cursor, 2)).unwrap();
        both!(p, guest_ids_after(cursor, 500)).unwrap();
    }
    assert_eq!(
        both!(p, guest_ids_after("", 500)).unwrap(),
        ["G-b", "g-a", "gA", "g_a", "ga"]
    );
    let current = p
        .unit_pg(|c| super::super::consents::current(c, "g-a"))
        .unwrap();
    let purposes: Vec<&str> = current.iter().map(|c| c.purpose.as_str()).collect();
    assert_eq!(purposes, ["Analytics", "b_x", "marketing"]);
    // Requests due (or received) the same day: PostgreSQL has no insertion order to fall
    // back on as SQLite does, so ties come in request id byte order, whatever the collation.
    let alice: &[u8] = b"alice";
    for id in ["a-1", "a_1", "A1"] {
        let row = dsr(
            id,
            "erasure",
            "received",
            "2024-01-01T00:00:00.000000Z",
            "2024-01-31",
        );
        p.unit_pg(|c| super::insert_dsr(c, alice, &row)).unwrap();
    }
    let ids: Vec<String> = p
        .unit_pg(|c| super::overdue_dsr(c, "2025-01-01"))
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(ids, ["A1", "a-1", "a_1"]);
    let latest = p.unit_pg(|c| super::latest_erasure(c, alice)).unwrap();
    assert_eq!(latest.unwrap().request_id, "a_1");
}

/// SQLite's `date(substr(ts, 1, 10), '+N days')`, which retention relies on, against the
/// port's: every month and day edge of leap and common years, the range's ends, and text
/// that is no date.
#[test]
fn plausible_dates_are_computed_as_sqlite_computes_them() {
    let dir = tempfile::tempdir().unwrap();
    let lite = crate::store::sqlite::open_writer(&dir.path().join("d.db"), "off", "fp").unwrap();
    let mut inputs: Vec<String> = Vec::new();
    for year in [
        0, 1, 4, 99, 100, 400, 1900, 1999, 2000, 2023, 2024, 2100, 9996, 9997, 9999,
    ] {
        for month in 0..=13 {
            for day in [0, 1, 9, 10, 27, 28, 29, 30, 31, 32, 99] {
                inputs.push(format!("{year:04}-{month:02}-{day:02}T12:00:00.000000Z"));
            }
        }
    }
    for odd in [
        "",
        "x",
        "2024-01",
        "2024-01-0",
        "2024-1-01",
        "2024/01/01",
        "2024-01-1a",
        "+2024-01-01",
        " 2024-01-01",
        "-2024-01-01",
        "20240-01-01",
        "2024-01-01 garbage",
        "２０２４-01-01",
        "2024-0１-01",
        "2024-01-01é",
        "not a date",
        "2024_01_01",
    ] {
        inputs.push(odd.to_string());
    }
    for days in [0, 1, 365, PLAUSIBLE_HORIZON_DAYS] {
        for ts in &inputs {
            let expected: Option<String> = lite
                .query_row(
                    "SELECT date(substr(?1, 1, 10), ?2)",
                    [ts.as_str(), format!("+{days} days").as_str()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                super::sqlite_date_plus_days(ts, days),
                expected,
                "{ts} + {days} days"
            );
        }
    }
    assert_eq!(
        super::sqlite_date_plus_days("2023-02-31T00:00:00Z", 0).as_deref(),
        Some("2023-03-03")
    );
}
