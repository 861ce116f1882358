//! Seeding N guests straight into a fresh vault database, before the server starts, through the
//! library's own code paths: the same validators, `Dek::generate`, `Keyring::wrap_dek`,
//! `FieldCipher`, blind index, `store::*` functions and `audit::append` that `create_guest` uses,
//! under the permit the policy grants `pms` for `check_in`. So the rows are exactly what the
//! vault would have written for N HTTP creates (one audit event each, hash-chained), only
//! committed 10,000 guests per transaction instead of one request at a time.
//!
//! Sealing (validation, AES-GCM, HMAC) runs on worker threads; one thread writes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use guestvault::audit::{NewEvent, Outcome};
use guestvault::config::Config;
use guestvault::crypto::{Dek, FieldCipher, Keyring, WrappedDek};
use guestvault::domain::{validate_fields, GuestId};
use guestvault::policy::{Action, FieldScope, Policies};

use super::data;

const CHUNK: u64 = 500;
const GUESTS_PER_TRANSACTION: usize = 10_000;

/// One guest, sealed and ready to insert.
struct Sealed {
    index: u64,
    guest_id: String,
    wrapped: WrappedDek,
    /// (field, ciphertext, blind-index digest for searchable fields)
    fields: Vec<(String, Vec<u8>, Option<Vec<u8>>)>,
    event: NewEvent,
}

#[derive(Debug)]
pub struct Seeded {
    /// `ids[i]` is guest `i`'s id (whose mobile is `data::mobile(i)`).
    pub ids: Vec<uuid::Uuid>,
    pub elapsed: Duration,
    /// Bytes a guest's record occupies as ciphertext (fields + wrapped DEK), for the baseline.
    pub record_bytes: usize,
    /// Bytes of one create's audit event (canonical JSON), for the baseline.
    pub event_bytes: usize,
    pub db_bytes: u64,
}

fn seal_one(
    i: u64,
    policies: &Policies,
    keyring: &Keyring,
    rules: &[String],
    today: time::Date,
    now: &str,
) -> Sealed {
    let input = data::guest_fields(i);
    let validated = validate_fields(
        &policies.catalog,
        FieldScope::Guest,
        &input,
        &BTreeMap::new(),
        false,
        today,
    )
    .unwrap_or_else(|e| panic!("generated guest {i} is invalid: {e:?}"));
    let guest_id = GuestId::generate().as_str().to_string();
    let dek = Dek::generate().unwrap();
    let wrapped = keyring.wrap_dek(&dek, &guest_id).unwrap();
    let cipher = FieldCipher::new(&dek, &guest_id);
    let mut fields = Vec::with_capacity(validated.len());
    for (name, value) in &validated {
        let value = value.as_ref().expect("a create has no nulls");
        let searchable = policies
            .catalog
            .get(FieldScope::Guest, name)
            .is_some_and(|s| s.searchable);
        let ct = cipher.seal(name, value.expose().as_bytes()).unwrap();
        let digest = searchable.then(|| keyring.indexer().digest(name, value.expose()));
        fields.push((name.clone(), ct, digest));
    }
    let event = NewEvent {
        ts: now.to_string(),
        request_id: uuid::Uuid::new_v4().to_string(),
        actor: "bench-seed".into(),
        role: "pms".into(),
        purpose: Some("check_in".into()),
        action: Action::GuestCreate.as_str().into(),
        guest_id: Some(guest_id.clone()),
        fields: input.keys().cloned().collect(),
        outcome: Outcome::Allowed,
        reason: None,
        rules: rules.to_vec(),
        justification: None,
        value_hashes: Vec::new(),
    };
    Sealed {
        index: i,
        guest_id,
        wrapped,
        fields,
        event,
    }
}

/// Seeds `n` guests into the (initialized, not running) vault at `config`'s data dir, or into
/// its PostgreSQL database when `config.storage.backend` is `postgres`.
pub fn seed(config: &Config, n: u64) -> Seeded {
    if config.storage.backend == "postgres" {
        return seed_postgres(config, n);
    }
    let started = Instant::now();
    let keyring = Arc::new(Keyring::load(&config.keyring_file()).unwrap());
    let conn = guestvault::store::sqlite::open_writer(
        &config.database_file(),
        &config.storage.synchronous,
        keyring.fingerprint(),
    )
    .unwrap();
    // A bigger page cache for this connection only: the random blind-index keys otherwise
    // make seeding 1M guests needlessly slow. The server runs with its own settings.
    conn.pragma_update(None, "cache_size", -262_144).unwrap();
    let sealer = Sealer::start(keyring, n);
    let c = guestvault::store::Conn::Sqlite(&conn);
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let ids = Mutex::new(vec![uuid::Uuid::nil(); n as usize]);
    let record_bytes = write_all(&c, &sealer, &ids, started, GUESTS_PER_TRANSACTION, || {
        conn.execute_batch("COMMIT; BEGIN IMMEDIATE").unwrap();
    });
    let ids = ids.into_inner().unwrap();
    conn.execute_batch("COMMIT").unwrap();
    sealer.join();
    // The stored columns of the last create event, plus its two 32-byte hashes.
    let event_bytes = conn
        .query_row(
            "SELECT length(ts) + length(request_id) + length(actor) + length(role) + length(purpose)
                    + length(action) + length(guest_id) + length(fields) + length(rules) + 64
             FROM audit_events ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize;
    // Start the server from a checkpointed database with an empty WAL, as after a clean stop.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    Seeded {
        ids,
        elapsed: started.elapsed(),
        record_bytes,
        event_bytes,
        db_bytes: file_size(&config.database_file()),
    }
}

/// The same guests through the PostgreSQL backend's functions: each transaction's audit
/// events are linked into the chain at its commit, as the writer does.
fn seed_postgres(config: &Config, n: u64) -> Seeded {
    use guestvault::store::postgres;
    let started = Instant::now();
    let keyring = Arc::new(Keyring::load(&config.keyring_file()).unwrap());
    let settings = postgres::PgSettings::from_config(config).unwrap();
    let pg = postgres::open_migrated(&settings, keyring.fingerprint()).unwrap();
    let sealer = Sealer::start(keyring, n);
    let ids = Mutex::new(vec![uuid::Uuid::nil(); n as usize]);
    // Several connections, each its own transactions: round trips, not the server's CPU,
    // bound one connection (the chain stays one: each commit links under the head's lock).
    let record_bytes = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..PG_SEED_CONNECTIONS)
            .map(|_| {
                let (settings, sealer, ids) = (&settings, &sealer, &ids);
                scope.spawn(move || {
                    let pg = settings.open().unwrap();
                    let c = guestvault::store::Conn::Postgres(&pg);
                    pg.batch("BEGIN").unwrap();
                    let commit = || {
                        postgres::audit::flush_pending(&pg).unwrap();
                        pg.batch("COMMIT; BEGIN").unwrap();
                    };
                    let bytes =
                        write_all(&c, sealer, ids, started, PG_GUESTS_PER_TRANSACTION, commit);
                    postgres::audit::flush_pending(&pg).unwrap();
                    pg.batch("COMMIT").unwrap();
                    bytes
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .unwrap_or(0)
    });
    sealer.join();
    let ids = ids.into_inner().unwrap();
    pg.batch("VACUUM ANALYZE").unwrap();
    let event_bytes: i32 = pg
        .query_one(
            "SELECT octet_length(ts) + octet_length(request_id) + octet_length(actor)
                    + octet_length(role) + octet_length(purpose) + octet_length(action)
                    + octet_length(guest_id) + octet_length(fields) + octet_length(rules) + 64
             FROM audit_events ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let db_bytes: i64 = pg
        .query_one("SELECT pg_database_size(current_database())", &[])
        .unwrap()
        .get(0);
    Seeded {
        ids,
        elapsed: started.elapsed(),
        record_bytes,
        event_bytes: event_bytes as usize,
        db_bytes: db_bytes as u64,
    }
}

/// PostgreSQL: connections seeding in parallel.
const PG_SEED_CONNECTIONS: usize = 4;
/// PostgreSQL: guests per seeding transaction (its audit events go in one `UNNEST` insert).
const PG_GUESTS_PER_TRANSACTION: usize = 2_000;

/// Worker threads sealing guests (validation, AES-GCM, HMAC) in chunks, in any order.
struct Sealer {
    rx: Mutex<mpsc::Receiver<Vec<Sealed>>>,
    n: u64,
    written: AtomicU64,
    handles: Vec<std::thread::JoinHandle<()>>,
    permit: guestvault::policy::Permit,
    now: String,
}

impl Sealer {
    fn start(keyring: Arc<Keyring>, n: u64) -> Self {
        let policies = Arc::new(Policies::load(None).unwrap());
        let grant = policies
            .access
            .authorize("pms", Some("check_in"), Action::GuestCreate)
            .expect("pms may create under check_in");
        let permit = grant.permit();
        let rules = grant.rules().to_vec();
        let today = time::OffsetDateTime::now_utc().date();
        let now = guestvault::clock::timestamp(time::OffsetDateTime::now_utc());
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let next_chunk = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::sync_channel::<Vec<Sealed>>(workers * 4);
        let mut handles = Vec::new();
        for _ in 0..workers {
            let (tx, next_chunk, policies, keyring) = (
                tx.clone(),
                next_chunk.clone(),
                policies.clone(),
                keyring.clone(),
            );
            let (rules, now) = (rules.clone(), now.clone());
            handles.push(std::thread::spawn(move || loop {
                let start = next_chunk.fetch_add(CHUNK, Ordering::Relaxed);
                if start >= n {
                    break;
                }
                let chunk = (start..(start + CHUNK).min(n))
                    .map(|i| seal_one(i, &policies, &keyring, &rules, today, &now))
                    .collect();
                if tx.send(chunk).is_err() {
                    break;
                }
            }));
        }
        drop(tx);
        Self {
            rx: Mutex::new(rx),
            n,
            written: AtomicU64::new(0),
            handles,
            permit,
            now,
        }
    }

    /// Waits for the sealing threads; every guest must have been written.
    fn join(self) {
        assert_eq!(
            self.written.load(Ordering::Relaxed),
            self.n,
            "every guest was written"
        );
        drop(self.rx);
        for h in self.handles {
            h.join().expect("a seeding worker panicked");
        }
    }
}

/// Writes sealed guests through the seam's functions until the sealers are done (other
/// writers may share them), calling `commit` every `per_transaction` guests; records each id
/// at its index in `ids`. Returns one record's ciphertext bytes.
fn write_all(
    c: &guestvault::store::Conn<'_>,
    sealer: &Sealer,
    ids: &Mutex<Vec<uuid::Uuid>>,
    started: Instant,
    per_transaction: usize,
    mut commit: impl FnMut(),
) -> usize {
    let (permit, now) = (&sealer.permit, &sealer.now);
    let mut record_bytes = 0;
    let mut in_transaction = 0usize;
    let mut last_progress = Instant::now();
    loop {
        let next = sealer.rx.lock().unwrap().recv();
        let Ok(chunk) = next else { break };
        for g in chunk {
            if record_bytes == 0 {
                record_bytes =
                    g.wrapped.bytes.len() + g.fields.iter().map(|f| f.1.len()).sum::<usize>();
            }
            guestvault::store::insert_guest(c, permit, &g.guest_id, now, &g.wrapped).unwrap();
            for (name, ct, digest) in &g.fields {
                guestvault::store::put_field(c, permit, &g.guest_id, name, ct, now).unwrap();
                if let Some(d) = digest {
                    guestvault::store::put_index(c, permit, &g.guest_id, name, d).unwrap();
                }
            }
            guestvault::audit::append(c, g.event).unwrap();
            ids.lock().unwrap()[g.index as usize] = uuid::Uuid::parse_str(&g.guest_id).unwrap();
            sealer.written.fetch_add(1, Ordering::Relaxed);
            in_transaction += 1;
            if in_transaction == per_transaction {
                commit();
                in_transaction = 0;
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            let written = sealer.written.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "  seeded {written:>10} / {} guests ({:.0}/s)",
                sealer.n,
                written as f64 / secs
            );
        }
    }
    record_bytes
}

pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
