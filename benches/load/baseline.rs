//! The limits each vault figure is compared with, measured in the same run on the same disk:
//! raw SQLite inserts (a ciphertext row the size of a guest record plus an audit row, under the
//! vault's pragmas, 1 and 64 rows per transaction), raw primary-key reads on the seeded
//! database, and the HTTP ceiling of a trivial axum route hit by the same client.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use super::data::Rng;

#[derive(Debug, Clone)]
pub struct Rate {
    pub ops: u64,
    pub elapsed: Duration,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The vault's write-connection pragmas (see `store::configure`).
fn vault_pragmas(conn: &Connection) {
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.pragma_update(None, "secure_delete", "ON").unwrap();
}

/// Inserts `rows_per_txn` × (one ciphertext row of `record_bytes` + one audit row of about
/// `event_bytes`) per transaction, for `duration`, on one connection; returns rows/s.
pub fn raw_insert(
    dir: &Path,
    rows_per_txn: usize,
    duration: Duration,
    record_bytes: usize,
    event_bytes: usize,
) -> Rate {
    let path = dir.join(format!("baseline-insert-{rows_per_txn}.db"));
    let conn = Connection::open(&path).unwrap();
    vault_pragmas(&conn);
    conn.execute_batch(
        "CREATE TABLE records (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, ciphertext BLOB NOT NULL) STRICT, WITHOUT ROWID;
         CREATE TABLE audit (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, event TEXT NOT NULL,
                             prev_hash BLOB NOT NULL, hash BLOB NOT NULL) STRICT;",
    )
    .unwrap();
    let mut rng = Rng::new(rows_per_txn as u64);
    let mut blob = vec![0u8; record_bytes];
    let event = "e".repeat(event_bytes.saturating_sub(64));
    let hash = [7u8; 32];
    let mut seq = 0i64;
    let started = Instant::now();
    while started.elapsed() < duration {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for _ in 0..rows_per_txn {
            for b in blob.iter_mut().take(16) {
                *b = rng.next_u64() as u8;
            }
            let id = uuid::Uuid::now_v7().hyphenated().to_string();
            let ts = guestvault::clock::timestamp(time::OffsetDateTime::now_utc());
            conn.prepare_cached(
                "INSERT INTO records (id, created_at, ciphertext) VALUES (?1, ?2, ?3)",
            )
            .unwrap()
            .execute(params![id, ts, blob])
            .unwrap();
            seq += 1;
            conn.prepare_cached(
                "INSERT INTO audit (seq, ts, event, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .unwrap()
            .execute(params![seq, ts, event, hash, hash])
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    let elapsed = started.elapsed();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Rate {
        ops: seq as u64,
        elapsed,
    }
}

/// Primary-key point reads (one field's ciphertext of a random seeded guest) on read-only
/// connections opened as the vault's reader pool opens them, one per core.
pub fn raw_point_read(db: &Path, ids: &Arc<Vec<uuid::Uuid>>, duration: Duration) -> Rate {
    raw_reads(db, ids, duration, |conn, id| {
        let ct: Vec<u8> = conn
            .prepare_cached(
                "SELECT ciphertext FROM guest_fields WHERE guest_id = ?1 AND field = 'mobile'",
            )
            .unwrap()
            .query_row([id], |r| r.get(0))
            .unwrap();
        assert!(!ct.is_empty());
    })
}

/// The SQL of one vault read (`store::load_guest` and the consent lookup): three queries.
pub fn raw_record_load(db: &Path, ids: &Arc<Vec<uuid::Uuid>>, duration: Duration) -> Rate {
    raw_reads(db, ids, duration, |conn, id| {
        let sealed = guestvault::store::load_guest(
            &guestvault::store::Conn::Sqlite(conn),
            read_permit(),
            id,
        )
        .unwrap()
        .expect("a seeded guest");
        assert!(!sealed.fields.is_empty());
        let consent: Option<String> = conn
            .prepare_cached("SELECT status FROM consents WHERE guest_id = ?1 AND purpose = ?2")
            .unwrap()
            .query_row([id, "check_in"], |r| r.get(0))
            .ok();
        assert!(consent.is_none());
    })
}

/// The permit a vault read carries: `pms` reading under `check_in`, granted by the default
/// access policy (the bench goes through the policy like the service does).
pub fn read_permit() -> &'static guestvault::policy::Permit {
    static PERMIT: std::sync::OnceLock<guestvault::policy::Permit> = std::sync::OnceLock::new();
    PERMIT.get_or_init(|| {
        guestvault::policy::Policies::load(None)
            .expect("the embedded policies load")
            .access
            .authorize(
                "pms",
                Some("check_in"),
                guestvault::policy::Action::GuestRead,
            )
            .expect("pms may read under check_in")
            .permit()
    })
}

fn raw_reads(
    db: &Path,
    ids: &Arc<Vec<uuid::Uuid>>,
    duration: Duration,
    read: fn(&Connection, &str),
) -> Rate {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (db, ids) = (db.to_owned(), ids.clone());
            std::thread::spawn(move || {
                let conn = guestvault::store::sqlite::open_reader(&db).unwrap();
                let mut rng = Rng::new(0xB0B0 + t as u64);
                let mut n = 0u64;
                let mut id = String::with_capacity(36);
                while started.elapsed() < duration {
                    for _ in 0..64 {
                        id.clear();
                        let u = ids[rng.below(ids.len() as u64) as usize];
                        id.push_str(
                            u.hyphenated()
                                .encode_lower(&mut uuid::Uuid::encode_buffer()),
                        );
                        read(&conn, &id);
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let ops = handles.into_iter().map(|h| h.join().unwrap()).sum();
    Rate {
        ops,
        elapsed: started.elapsed(),
    }
}

/// An axum server with one route answering `ok`, on its own runtime with as many worker
/// threads as the vault gets by default, served by `axum::serve` as the vault is.
#[derive(Debug)]
pub struct TrivialServer {
    pub base: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TrivialServer {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        while !flag.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            base,
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}
