//! Where a vault's database is (`storage.backend` and its keys), and starting the seam's
//! handles on it.

use std::path::PathBuf;
use std::sync::Arc;

use super::{
    postgres, sqlite, CommitBarrier, Conn, Db, PreCommitHook, Readers, StoreError, Writer,
};

/// The database of this vault.
#[derive(Debug, Clone)]
pub enum Location {
    /// `storage.data_dir/guestvault.db`, with `storage.synchronous`.
    Sqlite { path: PathBuf, synchronous: String },
    /// `storage.postgres_*`.
    Postgres(Arc<postgres::PgSettings>),
}

/// The handles [`Location::start`] returns.
#[derive(Debug)]
pub struct Started {
    pub writer: Writer,
    pub readers: Arc<Readers>,
    pub writer_thread: std::thread::JoinHandle<()>,
}

/// What the writer is started with.
#[allow(missing_debug_implementations)] // the hooks are closures
pub struct StartOptions {
    pub max_batch: usize,
    pub readers: usize,
    pub wal_max_bytes: u64,
    pub hook: Option<PreCommitHook>,
    pub barrier: Option<CommitBarrier>,
}

impl Location {
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Self> {
        Ok(match super::Backend::parse(&config.storage.backend) {
            Some(super::Backend::Postgres) => {
                Self::Postgres(Arc::new(postgres::PgSettings::from_config(config)?))
            }
            _ => Self::Sqlite {
                path: config.database_file(),
                synchronous: config.storage.synchronous.clone(),
            },
        })
    }

    pub fn backend(&self) -> super::Backend {
        match self {
            Self::Sqlite { .. } => super::Backend::Sqlite,
            Self::Postgres(_) => super::Backend::Postgres,
        }
    }

    /// The database, for messages: the file, or PostgreSQL's host and database (never a
    /// password).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path, .. } => path.display().to_string(),
            Self::Postgres(s) => format!("PostgreSQL {}", s.describe()),
        }
    }

    /// A direct connection that may write: migrates the schema and records or checks the
    /// keyring fingerprint (a database of another keyring is refused).
    pub fn open_direct(&self, keyring_fingerprint: &str) -> Result<Db, StoreError> {
        match self {
            Self::Sqlite { path, synchronous } => Ok(Db::Sqlite(sqlite::open_writer(
                path,
                synchronous,
                keyring_fingerprint,
            )?)),
            Self::Postgres(s) => Ok(Db::Postgres(postgres::open_migrated(
                s,
                keyring_fingerprint,
            )?)),
        }
    }

    /// A direct read connection (a long verification or export beside the pool).
    pub fn open_read(&self) -> Result<Db, StoreError> {
        match self {
            Self::Sqlite { path, .. } => Ok(Db::Sqlite(sqlite::open_reader(path)?)),
            Self::Postgres(s) => {
                // One snapshot for the whole read (a verification or an export reads page by
                // page; another node's purge must not show up between two pages as a gap).
                let conn = s.open()?;
                conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
                Ok(Db::Postgres(conn))
            }
        }
    }

    /// Opens the database (migrating it, checking the keyring fingerprint), writes one
    /// heartbeat through `probe` before anything else, and starts the writer and the reader
    /// pool.
    pub fn start(
        &self,
        keyring_fingerprint: &str,
        options: StartOptions,
        probe: impl FnOnce(&Conn<'_>) -> anyhow::Result<()> + Send,
    ) -> anyhow::Result<Started> {
        // A PostgreSQL connection blocks its thread on a runtime of its own, which tokio
        // refuses on a thread that drives another runtime (the server's start is async).
        if matches!(self, Self::Postgres(_)) && tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|s| {
                s.spawn(|| self.start_here(keyring_fingerprint, options, probe))
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the storage start-up panicked")))
            });
        }
        self.start_here(keyring_fingerprint, options, probe)
    }

    fn start_here(
        &self,
        keyring_fingerprint: &str,
        options: StartOptions,
        probe: impl FnOnce(&Conn<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Started> {
        let StartOptions {
            max_batch,
            readers,
            wal_max_bytes,
            hook,
            barrier,
        } = options;
        match self {
            Self::Sqlite { path, synchronous } => {
                let conn =
                    sqlite::open_writer(path, synchronous, keyring_fingerprint).map_err(|e| {
                        anyhow::anyhow!("cannot open database `{}`: {e}", path.display())
                    })?;
                probe(&Conn::Sqlite(&conn))?;
                let hook = hook.map(|mut h| -> sqlite::PreCommitHook {
                    Box::new(move |c| h(&Conn::Sqlite(c), None))
                });
                let (writer, writer_thread) = sqlite::Writer::start_with_options(
                    conn,
                    max_batch,
                    hook,
                    barrier,
                    wal_max_bytes,
                )?;
                let readers = sqlite::Readers::open_gated(path, readers, writer.read_gate())?;
                Ok(Started {
                    writer: Writer::Sqlite(writer),
                    readers: Arc::new(Readers::Sqlite(readers)),
                    writer_thread,
                })
            }
            Self::Postgres(settings) => {
                let mut conn = settings.open_at_start()?;
                conn.migrate(keyring_fingerprint).map_err(|e| {
                    anyhow::anyhow!("cannot open the database `{}`: {e}", self.describe())
                })?;
                probe(&Conn::Postgres(&conn))?;
                let hook = hook.map(|mut h| -> postgres::writer::PreCommitHook {
                    Box::new(move |c, tip| h(&Conn::Postgres(c), Some(tip)))
                });
                let s = settings.clone();
                let connect: postgres::writer::Connect = Box::new(move || s.open());
                let s = settings.clone();
                let vacuum: postgres::writer::Connect = Box::new(move || s.open());
                let (writer, writer_thread) = postgres::Writer::start_many(
                    conn,
                    Arc::new(std::sync::Mutex::new(connect)),
                    settings.writers(),
                    max_batch,
                    hook,
                    barrier,
                    Some(vacuum),
                )?;
                let s = settings.clone();
                let pool = settings.pool_size();
                let readers = postgres::Readers::open(Arc::new(move || s.open()), pool)?;
                Ok(Started {
                    writer: Writer::Postgres(writer),
                    readers: Arc::new(Readers::Postgres(readers)),
                    writer_thread,
                })
            }
        }
    }
}
