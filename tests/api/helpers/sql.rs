//! Backend-neutral looks at (and tampering with) a test vault's database, for tests that check
//! what was stored or what a rewritten row does: one SQL text serves both backends.
//!
//! - Placeholders are SQLite's `?1`, `?2` (or bare `?`); on PostgreSQL they become `$1`, `$2`.
//! - Arguments are [`Arg`]s: text, integers and blobs, bound with their own type on both
//!   backends (on PostgreSQL as TEXT, BIGINT and BYTEA), so `seq > ?1` with an integer and
//!   `subject = ?1` with bytes mean the same everywhere. Blob literals (`x'00'`) do not exist
//!   on PostgreSQL: pass bytes as an argument.
//! - Results come back as text: integers in decimal, booleans as `1`/`0` (SQLite stores them
//!   so), blobs as lowercase hex, NULL as `None`. A PostgreSQL type with no text form here
//!   (NUMERIC from `sum()`, JSON) panics asking for a `CAST(... AS BIGINT)` or `TEXT`.
//! - Tampering that needs each dialect's own statements (triggers) has its own helper below,
//!   with one branch per backend.

use guestvault::config::Config;
use guestvault::store::postgres::{PgConn, PgSettings};
use tokio_postgres::types::{ToSql, Type};

use super::TestApp;

/// One bound argument.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
    Null,
}

/// What a test may pass as an argument: `&"x"`, `&id` (a `String`), `&5`, `&seq` (an `i64`),
/// `&vec![0u8]`, `&None::<String>`.
pub trait ToArg {
    fn to_arg(&self) -> Arg;
}

impl ToArg for str {
    fn to_arg(&self) -> Arg {
        Arg::Text(self.to_string())
    }
}
impl ToArg for &str {
    fn to_arg(&self) -> Arg {
        Arg::Text((*self).to_string())
    }
}
impl ToArg for String {
    fn to_arg(&self) -> Arg {
        Arg::Text(self.clone())
    }
}
impl ToArg for i64 {
    fn to_arg(&self) -> Arg {
        Arg::Int(*self)
    }
}
impl ToArg for i32 {
    fn to_arg(&self) -> Arg {
        Arg::Int(i64::from(*self))
    }
}
impl ToArg for u64 {
    fn to_arg(&self) -> Arg {
        Arg::Int(i64::try_from(*self).unwrap())
    }
}
impl ToArg for usize {
    fn to_arg(&self) -> Arg {
        Arg::Int(i64::try_from(*self).unwrap())
    }
}
impl ToArg for Vec<u8> {
    fn to_arg(&self) -> Arg {
        Arg::Blob(self.clone())
    }
}
impl ToArg for [u8] {
    fn to_arg(&self) -> Arg {
        Arg::Blob(self.to_vec())
    }
}
impl<T: ToArg> ToArg for Option<T> {
    fn to_arg(&self) -> Arg {
        self.as_ref().map_or(Arg::Null, ToArg::to_arg)
    }
}

/// Rows as text (see the module docs).
pub type Rows = Vec<Vec<Option<String>>>;

/// `sql` with SQLite's placeholders (`?1`, or bare `?` numbered in order) written as
/// PostgreSQL's `$1`; quoted literals and identifiers are left alone.
pub fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut next = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    next += 1;
                    digits = next.to_string();
                }
                out.push('$');
                out.push_str(&digits);
            }
            None => out.push(c),
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `f` on a store connection to `config`'s database (`store::Conn`, as the vault's own
/// functions take it): a SQLite connection, or a PostgreSQL session opened the way
/// the vault opens its own.
pub fn with_store<T: Send>(
    config: &Config,
    f: impl FnOnce(&guestvault::store::Conn) -> T + Send,
) -> T {
    if is_postgres(config) {
        // A PgConn has a runtime of its own: open, use and drop it off the test's runtime.
        std::thread::scope(|s| {
            s.spawn(|| {
                let conn = pg_conn(config);
                f(&guestvault::store::Conn::Postgres(&conn))
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    } else {
        // Read-write, as the vault opens it: a database left by a killed server may need its
        // WAL recovered first.
        let conn = sqlite(config, true);
        f(&guestvault::store::Conn::Sqlite(&conn))
    }
}

/// `(table, column, is a blob)` of every column of `config`'s database, by table and
/// position.
pub fn columns_on(config: &Config) -> Vec<(String, String, bool)> {
    let (sql, blob_type) = if is_postgres(config) {
        (
            "SELECT table_name::TEXT, column_name::TEXT, data_type::TEXT \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             ORDER BY table_name, ordinal_position",
            "bytea",
        )
    } else {
        (
            "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
            "BLOB",
        )
    };
    rows_on(config, sql, &[])
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter().map(Option::unwrap);
            let (t, c, ty) = (r.next().unwrap(), r.next().unwrap(), r.next().unwrap());
            (t, c, ty == blob_type)
        })
        .collect()
}

/// Everything stored in `config`'s database, one `(table, bytes)` per table: each value's
/// text, or its raw bytes for a blob, one per line. For scans of what the database holds
/// where it is not a file of the data dir (PostgreSQL).
#[allow(dead_code, reason = "only some tests use it")]
pub fn dump_on(config: &Config) -> Vec<(String, Vec<u8>)> {
    let columns = columns_on(config);
    let mut tables: Vec<&str> = columns.iter().map(|(t, ..)| t.as_str()).collect();
    tables.dedup();
    tables
        .into_iter()
        .map(|t| {
            let cols: Vec<&(String, String, bool)> =
                columns.iter().filter(|(table, ..)| table == t).collect();
            // Non-blob columns as text: PostgreSQL has types with no text form here.
            let list: Vec<String> = cols
                .iter()
                .map(|(_, c, blob)| {
                    if *blob {
                        c.clone()
                    } else {
                        format!("CAST({c} AS TEXT)")
                    }
                })
                .collect();
            let mut bytes = Vec::new();
            for row in rows_on(config, &format!("SELECT {} FROM {t}", list.join(", ")), &[]) {
                for (v, (_, _, blob)) in row.into_iter().zip(&cols) {
                    let v = v.unwrap_or_default();
                    bytes.extend(if *blob { unhex(&v) } else { v.into_bytes() });
                    bytes.push(b'\n');
                }
            }
            (t.to_string(), bytes)
        })
        .collect()
}

/// Whether `config` is on PostgreSQL (a test may build a SQLite config of its own even when
/// the suite runs on PostgreSQL).
fn is_postgres(config: &Config) -> bool {
    config.storage.backend == "postgres"
}

fn pg_conn(config: &Config) -> PgConn {
    PgSettings::from_config(config).unwrap().open().unwrap()
}

fn sqlite(config: &Config, write: bool) -> rusqlite::Connection {
    let flags = if write {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
    } else {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
    };
    let conn = rusqlite::Connection::open_with_flags(config.database_file(), flags).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

/// Every row of `sql` on `config`'s database, as text.
pub fn rows_on(config: &Config, sql: &str, args: &[&dyn ToArg]) -> Rows {
    let args: Vec<Arg> = args.iter().map(|a| a.to_arg()).collect();
    if is_postgres(config) {
        return on_pg(config, |conn| {
            let (stmt, params) = pg_prepare(conn, sql, &args);
            let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            let rows = conn
                .block_on(conn.client().query(&stmt, &params))
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.iter().map(pg_row).collect()
        });
    }
    let conn = sqlite(config, false);
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    let params = sqlite_params(&args);
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                        rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                        rusqlite::types::ValueRef::Text(t) => {
                            Some(String::from_utf8(t.to_vec()).unwrap())
                        }
                        rusqlite::types::ValueRef::Blob(b) => Some(hex(b)),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap();
    rows.collect::<rusqlite::Result<_>>()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `sql` (with `args`), or a batch of parameterless statements, read-write on `config`'s
/// database, bypassing the vault: someone with direct access to the database. Returns the
/// rows changed (0 for a batch).
pub fn exec_on(config: &Config, sql: &str, args: &[&dyn ToArg]) -> u64 {
    let args: Vec<Arg> = args.iter().map(|a| a.to_arg()).collect();
    if is_postgres(config) {
        return on_pg(config, |conn| {
            if args.is_empty() {
                conn.block_on(conn.client().batch_execute(sql))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                return 0;
            }
            let (stmt, params) = pg_prepare(conn, sql, &args);
            let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            conn.block_on(conn.client().execute(&stmt, &params))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        });
    }
    let conn = sqlite(config, true);
    if args.is_empty() {
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        return 0;
    }
    let params = sqlite_params(&args);
    conn.execute(sql, rusqlite::params_from_iter(params.iter()))
        .unwrap_or_else(|e| panic!("{sql}: {e}")) as u64
}

fn on_pg<T: Send>(config: &Config, f: impl FnOnce(&PgConn) -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| f(&pg_conn(config)))
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

type PgParam = Box<dyn ToSql + Sync>;

fn pg_prepare(conn: &PgConn, sql: &str, args: &[Arg]) -> (tokio_postgres::Statement, Vec<PgParam>) {
    let mut types = Vec::new();
    let mut params: Vec<PgParam> = Vec::new();
    for a in args {
        match a {
            Arg::Text(s) => {
                types.push(Type::TEXT);
                params.push(Box::new(s.clone()));
            }
            Arg::Int(i) => {
                types.push(Type::INT8);
                params.push(Box::new(*i));
            }
            Arg::Blob(b) => {
                types.push(Type::BYTEA);
                params.push(Box::new(b.clone()));
            }
            Arg::Null => {
                types.push(Type::TEXT);
                params.push(Box::new(None::<String>));
            }
        }
    }
    let pg_sql = pg_placeholders(sql);
    let stmt = conn
        .block_on(conn.client().prepare_typed(&pg_sql, &types))
        .unwrap_or_else(|e| panic!("{pg_sql}: {e}"));
    (stmt, params)
}

fn sqlite_params(args: &[Arg]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|a| match a {
            Arg::Text(s) => rusqlite::types::Value::Text(s.clone()),
            Arg::Int(i) => rusqlite::types::Value::Integer(*i),
            Arg::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
            Arg::Null => rusqlite::types::Value::Null,
        })
        .collect()
}

fn pg_row(row: &tokio_postgres::Row) -> Vec<Option<String>> {
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            match *ty {
                Type::BOOL => row
                    .get::<_, Option<bool>>(i)
                    .map(|b| if b { "1" } else { "0" }.to_string()),
                Type::INT2 => row.get::<_, Option<i16>>(i).map(|v| v.to_string()),
                Type::INT4 => row.get::<_, Option<i32>>(i).map(|v| v.to_string()),
                Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
                Type::FLOAT4 => row.get::<_, Option<f32>>(i).map(|v| v.to_string()),
                Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(|v| v.to_string()),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    row.get::<_, Option<String>>(i)
                }
                Type::BYTEA => row.get::<_, Option<Vec<u8>>>(i).map(|b| hex(&b)),
                _ => panic!(
                    "column {i} is of PostgreSQL type {ty}: cast it to BIGINT or TEXT in the \
                     test's SQL"
                ),
            }
        })
        .collect()
}

impl TestApp {
    /// Every row of `sql` (SQLite placeholders, see [`self`]) as text.
    pub fn sql_rows(&self, sql: &str, args: &[&dyn ToArg]) -> Rows {
        rows_on(&self.config, sql, args)
    }

    /// The first column of every row of `sql`; NULL is `None`.
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn sql_column(&self, sql: &str, args: &[&dyn ToArg]) -> Vec<Option<String>> {
        self.sql_rows(sql, args)
            .into_iter()
            .map(|mut r| r.swap_remove(0))
            .collect()
    }

    /// The first row of `sql` (panics if there is none), as `rusqlite`'s `query_row` takes it.
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn sql_row(&self, sql: &str, args: &[&dyn ToArg]) -> Vec<Option<String>> {
        let rows = self.sql_rows(sql, args);
        assert!(!rows.is_empty(), "no row from {sql}");
        rows.into_iter().next().unwrap()
    }

    /// [`TestApp::sql_row`] with every value non-NULL.
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn sql_texts(&self, sql: &str, args: &[&dyn ToArg]) -> Vec<String> {
        self.sql_row(sql, args)
            .into_iter()
            .map(|v| v.unwrap_or_else(|| panic!("NULL from {sql}")))
            .collect()
    }

    /// The one value of `sql`'s one row (panics if there is no row); NULL is `None`.
    pub fn sql_opt(&self, sql: &str, args: &[&dyn ToArg]) -> Option<String> {
        let rows = self.sql_rows(sql, args);
        assert!(!rows.is_empty(), "no row from {sql}");
        rows.into_iter().next().unwrap().swap_remove(0)
    }

    /// The one text value of `sql`'s one row (panics on NULL).
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn sql_text(&self, sql: &str, args: &[&dyn ToArg]) -> String {
        self.sql_opt(sql, args)
            .unwrap_or_else(|| panic!("NULL from {sql}"))
    }

    /// The one integer of `sql`'s one row (`count(*)`, a seq); panics on NULL.
    pub fn sql_i64(&self, sql: &str, args: &[&dyn ToArg]) -> i64 {
        let v = self.sql_text(sql, args);
        v.parse()
            .unwrap_or_else(|_| panic!("not an integer from {sql}: {v}"))
    }

    /// [`exec_on`] on this app's database.
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn sql_exec(&self, sql: &str, args: &[&dyn ToArg]) -> u64 {
        exec_on(&self.config, sql, args)
    }

    /// [`with_store`] on this app's database.
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn with_store<T: Send>(&self, f: impl FnOnce(&guestvault::store::Conn) -> T + Send) -> T {
        with_store(&self.config, f)
    }

    /// `table.column` of every column, in the tables `tables` accepts, holding `needle`
    /// somewhere in a row: in its text, or in its raw bytes for a blob.
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn columns_containing(&self, needle: &str, tables: impl Fn(&str) -> bool) -> Vec<String> {
        let columns = columns_on(&self.config);
        let mut hits = Vec::new();
        for (t, c, blob) in columns.iter().filter(|(t, ..)| tables(t)) {
            // SQLite's CAST of a blob to TEXT is its bytes; PostgreSQL's is hex, so a blob is
            // searched for the needle's bytes there.
            let sql = if *blob && is_postgres(&self.config) {
                format!(
                    "SELECT count(*) FROM {t} WHERE position(convert_to(?1, 'UTF8') IN {c}) > 0"
                )
            } else {
                format!("SELECT count(*) FROM {t} WHERE CAST({c} AS TEXT) LIKE '%' || ?1 || '%'")
            };
            if self.sql_i64(&sql, &[&needle]) > 0 {
                hits.push(format!("{t}.{c}"));
            }
        }
        hits
    }

    /// Someone with direct access to the database rewrites `set` (an SQL assignment such as
    /// `actor = 'nobody'`) in audit event `seq`, past the append-only trigger: SQLite drops
    /// the trigger, PostgreSQL disables the table's user triggers for the statement.
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn tamper_audit_row(&self, seq: i64, set: &str) {
        let update = format!("UPDATE audit_events SET {set} WHERE seq = {seq}");
        let batch = if is_postgres(&self.config) {
            format!(
                "BEGIN; ALTER TABLE audit_events DISABLE TRIGGER USER; {update}; \
                 ALTER TABLE audit_events ENABLE TRIGGER USER; COMMIT;"
            )
        } else {
            format!("DROP TRIGGER IF EXISTS audit_events_no_update; {update};")
        };
        exec_on(&self.config, &batch, &[]);
    }

    /// Makes every insert into `audit_events` fail (a trail that cannot be written), until
    /// [`TestApp::let_audit_be_written`].
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn refuse_audit_writes(&self) {
        let sql = if is_postgres(&self.config) {
            "CREATE FUNCTION test_fail_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'x'; END $$; \
             CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION test_fail_audit();"
        } else {
            "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'x'); END;"
        };
        exec_on(&self.config, sql, &[]);
    }

    /// Undoes [`TestApp::refuse_audit_writes`].
    #[allow(dead_code, reason = "only some tests use it")]
    pub fn let_audit_be_written(&self) {
        let sql = if is_postgres(&self.config) {
            "DROP TRIGGER fail_audit ON audit_events; DROP FUNCTION test_fail_audit();"
        } else {
            "DROP TRIGGER fail_audit;"
        };
        exec_on(&self.config, sql, &[]);
    }
}

/// Points a CLI command at `config`'s storage (data dir, and on PostgreSQL the backend, URL
/// and password file), as `GUESTVAULT_STORAGE_*` variables.
#[allow(dead_code, reason = "only some tests use it")]
pub fn storage_env<'c>(
    cmd: &'c mut std::process::Command,
    config: &Config,
) -> &'c mut std::process::Command {
    cmd.env("GUESTVAULT_STORAGE_DATA_DIR", &config.storage.data_dir);
    if is_postgres(config) {
        cmd.env("GUESTVAULT_STORAGE_BACKEND", "postgres");
        if let Some(url) = &config.storage.postgres_url {
            cmd.env("GUESTVAULT_STORAGE_POSTGRES_URL", url);
        }
        if let Some(file) = &config.storage.postgres_password_file {
            cmd.env("GUESTVAULT_STORAGE_POSTGRES_PASSWORD_FILE", file);
        }
    }
    cmd
}

#[test]
fn placeholders_are_numbered_for_postgres_outside_quotes() {
    assert_eq!(
        pg_placeholders("SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b = ?12"),
        "SELECT '?1', \"a?\" FROM t WHERE a = $1 AND b = $12"
    );
    assert_eq!(pg_placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
}

/// The bytes of a blob as [`rows_on`] renders it (lowercase hex).
#[allow(dead_code, reason = "only some tests use it")]
pub fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn the_sql_helpers_read_and_tamper_alike_on_both_backends() {
    let app = super::spawn_app().await;
    let id = app.create_guest(super::zhang_san()).await;
    assert_eq!(app.sql_i64("SELECT count(*) FROM guests", &[]), 1);
    assert_eq!(
        app.sql_text("SELECT guest_id FROM guests WHERE guest_id = ?1", &[&id]),
        id
    );
    assert!(app.columns_containing(&id, |t| t == "guests") == ["guests.guest_id"]);
    // A blob goes in as bytes and comes back as hex, and is found by its bytes.
    app.sql_exec(
        "INSERT INTO dsr_requests (request_id, subject, kind, status, received_at, due_at, receipt)
         VALUES ('0191a1d2-0000-7000-8000-00000000abcd', ?1, 'erasure', 'received', ?2, '2026-09-22', '{}')",
        &[&b"needle".to_vec(), &"2026-09-01T00:00:00.000000Z"],
    );
    assert_eq!(
        app.sql_text("SELECT subject FROM dsr_requests", &[]),
        "6e6565646c65"
    );
    assert_eq!(
        app.columns_containing("needle", |_| true),
        ["dsr_requests.subject"]
    );
    assert!(dump_on(&app.config)
        .iter()
        .any(|(t, b)| t == "dsr_requests" && b.windows(6).any(|w| w == b"needle")));
    // Booleans read as SQLite stores them; NULL is None.
    app.call(
        reqwest::Method::PUT,
        &format!("/v1/guests/{id}/consents/marketing"),
        Some("pms"),
        Some("check_in"),
        Some(serde_json::json!({"notice_version":"2026-11","channel":"app"})),
    )
    .await;
    assert_eq!(
        app.sql_row(
            "SELECT separate, NULL FROM consents WHERE guest_id = ?1",
            &[&id]
        ),
        [Some("0".to_string()), None]
    );
    // A rewritten audit row is found by the chain check.
    assert_eq!(
        app.with_store(|c| guestvault::audit::verify_chain(c).unwrap()),
        Ok(app.audit_count() as u64)
    );
    app.tamper_audit_row(1, "actor = 'nobody'");
    assert_eq!(
        app.sql_text("SELECT actor FROM audit_events WHERE seq = 1", &[]),
        "nobody"
    );
    assert_eq!(
        app.with_store(|c| guestvault::audit::verify_chain(c).unwrap()),
        Err(1)
    );
}
