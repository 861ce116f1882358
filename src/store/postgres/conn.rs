//! [`PgConn`]: one PostgreSQL connection driven synchronously from the thread that owns it.
//!
//! The seam's units of work are synchronous closures run on a thread that owns a connection
//! (docs/storage.md). For PostgreSQL that thread owns a small current-thread tokio runtime and
//! a `tokio-postgres` client on it; every statement blocks that thread (never a request
//! handler) until the server answers. Statements given as `&'static str` are prepared once per
//! connection and cached, like SQLite's `prepare_cached`.

use std::cell::RefCell;
use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use crate::audit::NewEvent;
use crate::store::StoreError;

/// A statement parameter.
pub type Param<'a> = &'a (dyn ToSql + Sync);

/// One connection and the runtime that drives it. Not `Sync`: it belongs to one thread.
pub struct PgConn {
    /// Always `Some` until drop (see the `Drop` impl).
    rt: Option<tokio::runtime::Runtime>,
    client: Client,
    cache: RefCell<HashMap<&'static str, Statement>>,
    /// Audit events appended by the unit running now, not yet in the table: the writer links
    /// them into the chain (seq, prev_hash, hash) and inserts them just before its group
    /// commits, under the chain head's row lock (docs/storage.md, "Group commit across
    /// nodes"). Empty on a reader.
    pending: RefCell<Vec<NewEvent>>,
    /// How long one call may wait for the server (`None`: as long as it takes). A call that
    /// times out marks the connection broken: its state is unknown, so its owner opens a new
    /// one. This catches a database host that stops answering without resetting the
    /// connection, which TCP keepalives notice only after about 30 s.
    call_timeout: Option<std::time::Duration>,
    broken: std::cell::Cell<bool>,
    /// Whether [`PgConn::execute_deferred`] may queue (the writer, while a unit runs; see
    /// [`PgConn::deferring`]). Elsewhere it runs the statement at once.
    defer: std::cell::Cell<bool>,
    /// Writes queued by [`PgConn::execute_deferred`], sent together (pipelined, one round
    /// trip) before the next statement of any kind, or by [`PgConn::flush_deferred`].
    deferred: RefCell<Vec<Deferred>>,
}

/// A statement parameter owned by a queued write.
pub type OwnedParam = Box<dyn ToSql + Send + Sync>;

/// One queued write: its cached statement text and owned parameters.
struct Deferred {
    sql: &'static str,
    params: Vec<OwnedParam>,
}

impl Drop for PgConn {
    /// tokio refuses to drop a runtime on a thread that drives another one (a direct
    /// connection closed in async code): there it is shut down without waiting.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            }
        }
    }
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

impl PgConn {
    /// Wraps a connected client; `rt` must be the runtime its connection task was spawned on.
    pub fn from_parts(rt: tokio::runtime::Runtime, client: Client) -> Self {
        Self {
            rt: Some(rt),
            client,
            cache: RefCell::new(HashMap::new()),
            pending: RefCell::new(Vec::new()),
            call_timeout: None,
            broken: std::cell::Cell::new(false),
            defer: std::cell::Cell::new(false),
            deferred: RefCell::new(Vec::new()),
        }
    }

    /// Lets [`PgConn::execute_deferred`] queue writes (`true`) or makes it run them at once
    /// (`false`, the default). The writer turns it on while a unit runs and calls
    /// [`PgConn::flush_deferred`] before it decides whether the unit succeeded, so a queued
    /// write's error still fails its own unit. Turning it off does not flush.
    pub fn deferring(&self, on: bool) {
        self.defer.set(on);
    }

    /// Runs a cached statement whose row count nobody needs, later if the connection is
    /// [`deferring`](PgConn::deferring): queued writes go out together, in order, with the
    /// next statement of any kind (or at [`PgConn::flush_deferred`]), in one round trip. Its
    /// error, if any, is the error of that later call. A create's dozen inserts (guest, key,
    /// fields, blind-index entries) cost one round trip instead of one each.
    pub fn execute_deferred(
        &self,
        sql: &'static str,
        params: Vec<OwnedParam>,
    ) -> Result<(), StoreError> {
        if !self.defer.get() {
            return self.execute_owned(sql, params).map(|_| ());
        }
        self.pipeline(sql, params);
        Ok(())
    }

    /// Queues a statement whatever [`PgConn::deferring`] says: it goes out with the next
    /// statement of any kind, or at [`PgConn::flush_deferred`]. For the writer's own
    /// statements (savepoints, the audit insert), whose caller flushes before it relies on
    /// them.
    pub fn pipeline(&self, sql: &'static str, params: Vec<OwnedParam>) {
        self.deferred.borrow_mut().push(Deferred { sql, params });
    }

    /// [`PgConn::execute`] with owned parameters.
    pub fn execute_owned(
        &self,
        sql: &'static str,
        params: Vec<OwnedParam>,
    ) -> Result<u64, StoreError> {
        let refs: Vec<Param<'_>> = params.iter().map(|p| p.as_ref() as Param<'_>).collect();
        self.execute(sql, &refs)
    }

    /// Sends every queued write (see [`PgConn::execute_deferred`]) and waits for all of them.
    /// On an error the rest of the queue is dropped too: the transaction is aborted anyway.
    pub fn flush_deferred(&self) -> Result<(), StoreError> {
        self.after_deferred(std::future::ready(Ok::<(), tokio_postgres::Error>(())))
    }

    /// Runs `fut` (one driver call) after every queued write, all in one round trip: the
    /// queued statements and then `fut`'s go out back to back, and the answers come back in
    /// that order. A queued statement's error is the result (the transaction is aborted
    /// then, so `fut`'s own answer says nothing); the queue is empty afterwards either way.
    fn after_deferred<T, F>(&self, fut: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send,
        T: Send,
    {
        let queued = std::mem::take(&mut *self.deferred.borrow_mut());
        if queued.is_empty() {
            return self.call(fut);
        }
        let mut statements = Vec::with_capacity(queued.len());
        for d in &queued {
            statements.push(self.statement(d.sql)?);
        }
        let client = &self.client;
        self.call(async move {
            // Each future sends its request when first polled; `try_join_all` polls them in
            // order, and `try_join` polls it before `fut`, so the server gets them back to back
            // before anyone waits.
            let calls = queued.iter().zip(&statements).map(|(d, s)| {
                let refs: Vec<Param<'_>> =
                    d.params.iter().map(|p| p.as_ref() as Param<'_>).collect();
                async move { client.execute(s, &refs).await }
            });
            let queued = futures_util::future::try_join_all(calls);
            futures_util::future::try_join(queued, fut)
                .await
                .map(|(_, out)| out)
        })
    }

    /// Drops the queued writes unsent (the unit failed before they went out).
    pub fn discard_deferred(&self) {
        self.deferred.borrow_mut().clear();
    }

    /// Sets how long one call may wait for the server (see the `call_timeout` field).
    pub fn with_call_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }

    /// Runs one driver call on this connection's runtime, within the call timeout.
    fn call<T, F>(&self, fut: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send,
        T: Send,
    {
        if self.broken.get() {
            return Err(StoreError::Unavailable(
                "the connection timed out before".into(),
            ));
        }
        let Some(limit) = self.call_timeout else {
            return drive(self.rt(), fut).map_err(classify);
        };
        // The timer must be made inside the runtime.
        match drive(
            self.rt(),
            async move { tokio::time::timeout(limit, fut).await },
        ) {
            Ok(r) => r.map_err(classify),
            Err(_) => {
                self.broken.set(true);
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {} ms",
                    limit.as_millis()
                )))
            }
        }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the runtime lives until drop")
    }

    /// A runtime for one connection's thread.
    pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }

    /// Whether the connection is gone (the server closed it, a network error): the owner opens
    /// a new one.
    pub fn is_closed(&self) -> bool {
        self.broken.get() || self.client.is_closed()
    }

    /// Applies the schema's migrations and checks the keyring fingerprint ([`super::migrate`]).
    pub fn migrate(&mut self, keyring_fingerprint: &str) -> Result<(), StoreError> {
        let rt = self.rt.as_ref().expect("the runtime lives until drop");
        drive(rt, super::migrate(&mut self.client, keyring_fingerprint))
    }

    /// Runs `fut` to completion on this connection's runtime (and drives the connection).
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        drive(self.rt(), fut)
    }

    /// The client, for code in this module that needs more than the helpers below (COPY,
    /// transactions in tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn statement(&self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(s) = self.cache.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.call(self.client.prepare(sql))?;
        self.cache.borrow_mut().insert(sql, s.clone());
        Ok(s)
    }

    /// Runs a cached statement; returns the rows it changed.
    pub fn execute(&self, sql: &'static str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        self.after_deferred(self.client.execute(&s, params))
    }

    /// Runs a cached query; returns every row.
    pub fn query(&self, sql: &'static str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        self.after_deferred(self.client.query(&s, params))
    }

    /// Runs a cached query that returns at most one row.
    pub fn query_opt(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, StoreError> {
        let s = self.statement(sql)?;
        self.after_deferred(self.client.query_opt(&s, params))
    }

    /// Runs a cached query that returns exactly one row.
    pub fn query_one(&self, sql: &'static str, params: &[Param<'_>]) -> Result<Row, StoreError> {
        let s = self.statement(sql)?;
        self.after_deferred(self.client.query_one(&s, params))
    }

    /// Runs a statement built at run time (not cached); returns the rows it changed.
    pub fn execute_dyn(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        self.after_deferred(self.client.execute(sql, params))
    }

    /// Runs a query built at run time (not cached).
    pub fn query_dyn(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        self.after_deferred(self.client.query(sql, params))
    }

    /// Runs one or more statements without parameters (transaction control, DDL).
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.after_deferred(self.client.batch_execute(sql))
    }

    /// Queues an audit event of the running unit (see the `pending` field).
    pub fn queue_event(&self, event: NewEvent) {
        self.pending.borrow_mut().push(event);
    }

    /// How many events the running unit has queued so far (to roll a failed unit's back).
    pub fn pending_len(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Drops the events queued after the first `len` (a unit that failed: its savepoint was
    /// rolled back, and so are its events).
    pub fn truncate_pending(&self, len: usize) {
        self.pending.borrow_mut().truncate(len);
    }

    /// Takes every queued event, in append order.
    pub fn take_pending(&self) -> Vec<NewEvent> {
        std::mem::take(&mut *self.pending.borrow_mut())
    }
}

/// Runs `fut` on `rt`, blocking this thread. The writer's and readers' threads run no other
/// runtime, so this is a plain `block_on`; on a thread that drives one (the CLI's or a test's
/// async code opening a direct connection), tokio refuses a nested `block_on`, so the call
/// runs on a short-lived thread of its own instead.
pub fn drive<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(fut);
    }
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(fut))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A driver error as the seam reports it: a lost connection (closed, or an I/O error on its
/// socket) is [`StoreError::Unavailable`], which the API answers with 503 `unavailable`
/// and the owner of the connection reopens; anything else keeps the driver's error.
pub fn classify(e: tokio_postgres::Error) -> StoreError {
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    // Class 08 (connection exception) and 57P (operator intervention: shutdown, crash,
    // terminated backend): the server ended the session.
    let ended = e
        .code()
        .is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P"));
    if e.is_closed() || io || ended {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Postgres(e)
    }
}

/// A fresh database on the test server for a test, dropped with the value: used by the
/// backend's unit tests when `GUESTVAULT_TEST_POSTGRES_URL` is set.
#[cfg(test)]
pub mod testdb {
    use super::*;

    pub const URL_VAR: &str = "GUESTVAULT_TEST_POSTGRES_URL";

    /// Runs `f` on a thread of its own: a [`PgConn`] blocks on its own runtime, which tokio
    /// refuses inside another runtime (an async test).
    pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| s.spawn(f).join().expect("no panic"))
    }

    /// A database of its own, migrated, with a [`PgConn`] on it.
    #[derive(Debug)]
    pub struct TestDb {
        admin: Option<PgConn>,
        pub name: String,
        pub config: tokio_postgres::Config,
    }

    /// [`connect`] as a writer's reconnect wants it (a `Result`; from a writer thread).
    pub fn connect_checked(config: &tokio_postgres::Config) -> PgConn {
        connect(config)
    }

    /// A connection with `config`, plain TCP (call it outside a runtime).
    pub fn connect(config: &tokio_postgres::Config) -> PgConn {
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

    impl TestDb {
        /// `None` (with a message) when no test server is configured.
        pub fn create() -> Option<Self> {
            off_runtime(Self::create_here)
        }

        fn create_here() -> Option<Self> {
            let Ok(url) = std::env::var(URL_VAR) else {
                eprintln!("skipped: {URL_VAR} is not set (a PostgreSQL server to test against)");
                return None;
            };
            let admin_config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
            let admin = connect(&admin_config);
            let name = format!("gv_unit_{}", uuid::Uuid::new_v4().simple());
            admin
                .batch(&format!("CREATE DATABASE {name}"))
                .expect("create database");
            let mut config = admin_config.clone();
            config.dbname(&name);
            let db = Self {
                admin: Some(admin),
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
                super::super::migrate(&mut client, "test-fingerprint")
                    .await
                    .expect("migrate");
            });
            Some(db)
        }

        /// A new connection to this database.
        pub fn connect(&self) -> PgConn {
            let config = self.config.clone();
            off_runtime(move || connect(&config))
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Some(admin) = self.admin.take() {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                off_runtime(move || {
                    let _ = admin.batch(&sql);
                });
            }
        }
    }
}
