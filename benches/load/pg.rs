//! The PostgreSQL run (`bench/run.sh --backend postgres [--nodes 2]`, issue 14): a fresh
//! database on the local server, one or two vault nodes on it (each with its own data dir
//! holding the same keyring copy), the raw PostgreSQL baselines measured in the same run, and
//! create, read, search + read and erasure against each node alone and, with two nodes, both
//! behind one client. The chain head's lock hold time and events per commit come from the
//! nodes' `/metrics`, scraped before and after each phase. Written as a section of
//! BENCHMARKS.md between markers, so the SQLite report around it stays.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::args::Args;
use super::baseline::Rate;
use super::data::Rng;
use super::driver::{self, Ctx, Op, Outcome};
use super::report::{self, int, Machine};
use super::{seed, server};

pub const START: &str = "<!-- postgres:start -->";
pub const END: &str = "<!-- postgres:end -->";

/// Connects to `url` with the vault's durability (`synchronous_commit = on`).
async fn connect(url: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.options("-c synchronous_commit=on");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Creates a fresh database on the server at `base` (a URL without database name); returns
/// its name and URL.
/// The nodes' own settings from the harness's environment: `BENCH_NODE_X=v` sets
/// `GUESTVAULT_X=v` for the nodes only (to compare node settings, e.g.
/// `BENCH_NODE_STORAGE_POSTGRES_WRITERS=4`); the report lists them.
fn node_settings() -> Vec<(String, String)> {
    std::env::vars()
        .filter_map(|(k, v)| {
            k.strip_prefix("BENCH_NODE_")
                .map(|r| (format!("GUESTVAULT_{r}"), v))
        })
        .collect()
}

pub async fn create_database(base: &str) -> (String, String) {
    let admin = connect(&format!("{base}/postgres")).await;
    let name = format!(
        "guestvault_bench_{}_{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp()
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{base}/{name}");
    (name, url)
}

pub async fn drop_database(base: &str, name: &str) {
    let admin = connect(&format!("{base}/postgres")).await;
    if let Err(e) = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
    {
        eprintln!("cannot drop the bench database {name}: {e}");
    }
}

/// Facts about the database server.
pub async fn server_facts(url: &str) -> Vec<(String, String)> {
    let c = connect(url).await;
    let mut out = Vec::new();
    for setting in [
        "server_version",
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "wal_level",
        "max_connections",
    ] {
        let v: String = c
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .map_or_else(|_| "unknown".into(), |r| r.get(0));
        out.push((setting.to_string(), v));
    }
    out
}

/// Inserts `rows_per_txn` × (one ciphertext row of `record_bytes` + one audit row of about
/// `event_bytes`) per transaction, for `duration`, on one connection with
/// `synchronous_commit = on`, one statement per row as the SQLite baseline does; rows/s.
pub async fn raw_insert(
    url: &str,
    rows_per_txn: usize,
    duration: Duration,
    record_bytes: usize,
    event_bytes: usize,
) -> Rate {
    let c = connect(url).await;
    let (records, audit) = (
        format!("bench_records_{rows_per_txn}"),
        format!("bench_audit_{rows_per_txn}"),
    );
    c.batch_execute(&format!(
        "CREATE TABLE {records} (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, ciphertext BYTEA NOT NULL);
         CREATE TABLE {audit} (seq BIGINT PRIMARY KEY, ts TEXT NOT NULL, event TEXT NOT NULL,
                               prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL);"
    ))
    .await
    .unwrap();
    let insert_record = c
        .prepare(&format!(
            "INSERT INTO {records} (id, created_at, ciphertext) VALUES ($1, $2, $3)"
        ))
        .await
        .unwrap();
    let insert_audit = c
        .prepare(&format!(
            "INSERT INTO {audit} (seq, ts, event, prev_hash, hash) VALUES ($1, $2, $3, $4, $5)"
        ))
        .await
        .unwrap();
    let mut rng = Rng::new(rows_per_txn as u64);
    let mut blob = vec![0u8; record_bytes];
    let event = "e".repeat(event_bytes.saturating_sub(64));
    let hash = vec![7u8; 32];
    let mut seq = 0i64;
    let started = Instant::now();
    while started.elapsed() < duration {
        c.batch_execute("BEGIN").await.unwrap();
        for _ in 0..rows_per_txn {
            for b in blob.iter_mut().take(16) {
                *b = rng.next_u64() as u8;
            }
            let id = uuid::Uuid::now_v7().hyphenated().to_string();
            let ts = guestvault::clock::timestamp(time::OffsetDateTime::now_utc());
            c.execute(&insert_record, &[&id, &ts, &blob]).await.unwrap();
            seq += 1;
            c.execute(&insert_audit, &[&seq, &ts, &event, &hash, &hash])
                .await
                .unwrap();
        }
        c.batch_execute("COMMIT").await.unwrap();
    }
    let elapsed = started.elapsed();
    c.batch_execute(&format!("DROP TABLE {records}; DROP TABLE {audit}"))
        .await
        .unwrap();
    Rate {
        ops: seq as u64,
        elapsed,
    }
}

/// Primary-key point reads (one field's ciphertext of a random seeded guest), autocommit, one
/// connection per core.
pub async fn raw_point_read(url: &str, ids: &Arc<Vec<uuid::Uuid>>, duration: Duration) -> Rate {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..threads {
        let (url, ids) = (url.to_string(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let c = connect(&url).await;
            let stmt = c
                .prepare(
                    "SELECT ciphertext FROM guest_fields WHERE guest_id = $1 AND field = 'mobile'",
                )
                .await
                .unwrap();
            let mut rng = Rng::new(0xB0B0 + t as u64);
            let mut n = 0u64;
            while started.elapsed() < duration {
                let id = ids[rng.below(ids.len() as u64) as usize]
                    .hyphenated()
                    .to_string();
                let ct: Vec<u8> = c.query_one(&stmt, &[&id]).await.unwrap().get(0);
                assert!(!ct.is_empty());
                n += 1;
            }
            n
        }));
    }
    let mut ops = 0;
    for t in tasks {
        ops += t.await.unwrap();
    }
    Rate {
        ops,
        elapsed: started.elapsed(),
    }
}

/// The SQL of one vault read as a reader runs it: `BEGIN ISOLATION LEVEL REPEATABLE READ READ
/// ONLY`, `store::load_guest`, the consent lookup, `COMMIT`, on the vault's own connection type,
/// one connection per core (the audit event a read also writes is not in it).
pub fn raw_record_load(
    config: &guestvault::config::Config,
    ids: &Arc<Vec<uuid::Uuid>>,
    duration: Duration,
) -> Rate {
    let settings = Arc::new(guestvault::store::postgres::PgSettings::from_config(config).unwrap());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (settings, ids) = (settings.clone(), ids.clone());
            std::thread::spawn(move || {
                let conn = settings.open().unwrap();
                let c = guestvault::store::Conn::Postgres(&conn);
                let mut rng = Rng::new(0xB0B0 + t as u64);
                let mut n = 0u64;
                while started.elapsed() < duration {
                    let id = ids[rng.below(ids.len() as u64) as usize]
                        .hyphenated()
                        .to_string();
                    conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        .unwrap();
                    let sealed =
                        guestvault::store::load_guest(&c, super::baseline::read_permit(), &id)
                            .unwrap()
                            .expect("a seeded guest");
                    assert!(!sealed.fields.is_empty());
                    let consent = conn
                        .query_opt(
                            "SELECT status FROM consents WHERE guest_id = $1 AND purpose = $2",
                            &[&id, &"check_in"],
                        )
                        .unwrap();
                    assert!(consent.is_none());
                    conn.batch("COMMIT").unwrap();
                    n += 1;
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

/// What a node's `/metrics` counts of its writer and the chain head (cumulative).
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterCounters {
    pub head_holds: f64,
    pub head_hold_seconds: f64,
    pub head_events: f64,
    pub commits: f64,
    pub commit_ops: f64,
    pub commit_seconds: f64,
}

impl WriterCounters {
    fn minus(self, b: Self) -> Self {
        Self {
            head_holds: self.head_holds - b.head_holds,
            head_hold_seconds: self.head_hold_seconds - b.head_hold_seconds,
            head_events: self.head_events - b.head_events,
            commits: self.commits - b.commits,
            commit_ops: self.commit_ops - b.commit_ops,
            commit_seconds: self.commit_seconds - b.commit_seconds,
        }
    }

    fn plus(self, b: Self) -> Self {
        Self {
            head_holds: self.head_holds + b.head_holds,
            head_hold_seconds: self.head_hold_seconds + b.head_hold_seconds,
            head_events: self.head_events + b.head_events,
            commits: self.commits + b.commits,
            commit_ops: self.commit_ops + b.commit_ops,
            commit_seconds: self.commit_seconds + b.commit_seconds,
        }
    }

    /// Mean hold of the head's lock, in milliseconds.
    pub fn hold_ms(&self) -> f64 {
        self.head_hold_seconds / self.head_holds.max(1.0) * 1000.0
    }

    pub fn events_per_hold(&self) -> f64 {
        self.head_events / self.head_holds.max(1.0)
    }
}

/// Scrapes one node's `/metrics` (the loopback is allowed by default).
pub async fn scrape(client: &reqwest::Client, base: &str) -> WriterCounters {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let rest = l.strip_prefix(name)?;
                let rest = rest.strip_prefix(' ')?;
                rest.trim().parse::<f64>().ok()
            })
            .unwrap_or(0.0)
    };
    WriterCounters {
        head_holds: value("guestvault_audit_head_hold_seconds_count"),
        head_hold_seconds: value("guestvault_audit_head_hold_seconds_sum"),
        head_events: value("guestvault_audit_head_events_total"),
        commits: value("guestvault_writer_batch_size_count"),
        commit_ops: value("guestvault_writer_batch_size_sum"),
        commit_seconds: value("guestvault_writer_commit_duration_seconds_sum"),
    }
}

async fn scrape_all(client: &reqwest::Client, bases: &[String]) -> WriterCounters {
    let mut total = WriterCounters::default();
    for b in bases {
        total = total.plus(scrape(client, b).await);
    }
    total
}

/// CPU ticks of every process named `postgres*` (the server and its backends).
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut ticks = 0;
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.starts_with("postgres") {
            ticks += server::cpu_snapshot(pid).total;
        }
    }
    ticks
}

/// One measured phase: a scenario against one node or both.
#[derive(Debug)]
pub struct Phase {
    pub scenario: &'static str,
    pub op: Op,
    pub target: String,
    /// 1-based; see `--rounds`.
    pub round: usize,
    pub nodes: usize,
    pub outcome: Outcome,
    pub vault_cpu: f64,
    pub postgres_cpu: f64,
    pub loadgen_cpu: f64,
    pub writer: WriterCounters,
}

struct Node {
    server: server::Server,
    name: &'static str,
}

/// Copies a data dir (keyring, token secret) for a second node.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// The whole `--backend postgres` run; writes its section and returns the request errors.
pub fn run(args: &Args) -> u64 {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("guestvault-bench-pg-")
        .tempdir()
        .unwrap();
    let work = tmp.path().to_owned();
    let machine = Machine::read(&work);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (db_name, db_url) = rt.block_on(create_database(&args.postgres_url));
    eprintln!(
        "guestvault load benchmark on PostgreSQL: database {db_name}, {} node(s), {} guests, {} connections, {} s per scenario; work dir {}",
        args.nodes,
        args.guests,
        args.connections,
        args.seconds,
        work.display()
    );
    let facts = rt.block_on(server_facts(&db_url));
    let env = vec![
        (
            "GUESTVAULT_STORAGE_BACKEND".to_string(),
            "postgres".to_string(),
        ),
        (
            "GUESTVAULT_STORAGE_POSTGRES_URL".to_string(),
            db_url.clone(),
        ),
    ];
    let node_env: Vec<(String, String)> = env.iter().cloned().chain(node_settings()).collect();
    let data_dirs: Vec<_> = ["node-a", "node-b"][..args.nodes]
        .iter()
        .map(|n| work.join(n).join("data"))
        .collect();
    super::step("init + seed");
    let config = server::init_with(&work, &data_dirs[0], &env);
    for d in &data_dirs[1..] {
        copy_dir(&data_dirs[0], d);
    }
    let seeded = seed::seed(&config, args.guests);
    eprintln!(
        "  {} guests in {:.1} s, database {} bytes",
        args.guests,
        seeded.elapsed.as_secs_f64(),
        seeded.db_bytes
    );
    let ids = Arc::new(seeded.ids.clone());

    super::step("baseline: raw PostgreSQL point reads and record loads");
    let point_read = rt.block_on(raw_point_read(&db_url, &ids, args.baseline));
    eprintln!("  {:.0}/s", point_read.per_second());
    let record_load = raw_record_load(&config, &ids, args.baseline);
    eprintln!("  record load: {:.0}/s", record_load.per_second());
    super::step("baseline: raw PostgreSQL inserts (ciphertext row + audit row)");
    let insert_1 = rt.block_on(raw_insert(
        &db_url,
        1,
        args.baseline,
        seeded.record_bytes,
        seeded.event_bytes,
    ));
    eprintln!("  1 row/txn: {:.0}/s", insert_1.per_second());
    let insert_64 = rt.block_on(raw_insert(
        &db_url,
        64,
        args.baseline,
        seeded.record_bytes,
        seeded.event_bytes,
    ));
    eprintln!("  64 rows/txn: {:.0}/s", insert_64.per_second());

    let hz = server::ticks_per_second();
    let self_pid = std::process::id().to_string();
    let (phases, nodes_info) = rt.block_on(async {
        super::step("start the vault node(s)");
        let mut nodes = Vec::new();
        for (i, d) in data_dirs.iter().enumerate() {
            let name = ["A", "B"][i];
            let srv = server::Server::start_with(
                &work,
                d,
                args.server_log_level.as_deref(),
                &node_env,
                &format!("server-{name}.log"),
            )
            .await;
            eprintln!(
                "  node {name} ready in {:.0} ms (pid {})",
                srv.cold_start.as_secs_f64() * 1000.0,
                srv.pid
            );
            nodes.push(Node { server: srv, name });
        }
        let mint = |role: &str| {
            driver::bearer(
                &guestvault::auth::mint_with_config(
                    &config,
                    role,
                    &format!("bench-{role}"),
                    super::TOKEN_TTL,
                )
                .unwrap(),
            )
        };
        let (pms, front_desk, dsr) = (mint("pms"), mint("front_desk"), mint("dsr_officer"));
        let next_create = Arc::new(AtomicU64::new(args.guests));
        let next_erase = Arc::new(AtomicU64::new(0));
        let scrape_client = reqwest::Client::new();
        // Node A alone, then (two nodes) both behind the one client, then node B alone: the
        // two-node phase sits between the single-node ones, not always last on a database
        // that every phase makes larger (creates add rows, erasures leave dead tuples).
        let mut targets: Vec<(String, Vec<usize>)> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("node {}", n.name), vec![i]))
            .collect();
        if nodes.len() > 1 {
            targets.insert(1, ("nodes A+B".into(), (0..nodes.len()).collect()));
        }
        let mut phases = Vec::new();
        for name in super::args::SCENARIOS {
            if !args.runs(name) {
                continue;
            }
            let op = Op::parse(name);
            // Rounds alternate the order (A, A+B, B, then B, A+B, A), so that neither single
            // node is always measured on the smaller database or the cooler machine.
            let order: Vec<(usize, &(String, Vec<usize>))> = (1..=args.rounds)
                .flat_map(|round| {
                    let mut ts: Vec<_> = targets.iter().collect();
                    if round % 2 == 0 {
                        ts.reverse();
                    }
                    ts.into_iter().map(move |t| (round, t))
                })
                .collect();
            for (round, (label, which)) in order {
                if args.rounds > 1 {
                    super::step(&format!("scenario: {name} on {label}, round {round} of {}", args.rounds));
                } else {
                    super::step(&format!("scenario: {name} on {label}"));
                }
                let bases: Vec<String> = which.iter().map(|&i| nodes[i].server.base.clone()).collect();
                let ctx = Arc::new(Ctx {
                    client: driver::client(args.connections),
                    bases: bases.clone(),
                    turn: Default::default(),
                    pms: pms.clone(),
                    front_desk: front_desk.clone(),
                    dsr: dsr.clone(),
                    ids: ids.clone(),
                    next_create: AtomicU64::new(next_create.load(std::sync::atomic::Ordering::SeqCst)),
                    next_erase: AtomicU64::new(next_erase.load(std::sync::atomic::Ordering::SeqCst)),
                });
                if op == Op::Erasure && phases.iter().all(|p: &Phase| p.op != Op::Erasure) {
                    if let Some(why) = driver::erasure_missing(&ctx).await {
                        panic!("the erasure route is missing ({why})");
                    }
                }
                if !args.warmup.is_zero() {
                    driver::drive(&ctx, op, args.connections, args.warmup).await;
                }
                let pids: Vec<String> = which.iter().map(|&i| nodes[i].server.pid.to_string()).collect();
                let vault_ticks = || pids.iter().map(|p| server::cpu_snapshot(p).total).sum::<u64>();
                let w0 = scrape_all(&scrape_client, &bases).await;
                let (v0, p0, c0) = (vault_ticks(), postgres_ticks(), server::cpu_snapshot(&self_pid).total);
                let out = driver::drive(&ctx, op, args.connections, args.duration()).await;
                let (v1, p1, c1) = (vault_ticks(), postgres_ticks(), server::cpu_snapshot(&self_pid).total);
                let w1 = scrape_all(&scrape_client, &bases).await;
                next_create.store(ctx.next_create.load(std::sync::atomic::Ordering::SeqCst), std::sync::atomic::Ordering::SeqCst);
                next_erase.store(ctx.next_erase.load(std::sync::atomic::Ordering::SeqCst), std::sync::atomic::Ordering::SeqCst);
                let secs = out.elapsed.as_secs_f64();
                let cores = |t0: u64, t1: u64| t1.saturating_sub(t0) as f64 / hz / secs.max(1e-9);
                let writer = w1.minus(w0);
                let phase = Phase {
                    scenario: name,
                    op,
                    target: label.clone(),
                    round,
                    nodes: which.len(),
                    vault_cpu: cores(v0, v1),
                    postgres_cpu: cores(p0, p1),
                    loadgen_cpu: cores(c0, c1),
                    writer,
                    outcome: out,
                };
                eprintln!(
                    "  {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; vault {:.2} cores, postgres {:.2}, load generator {:.2}; head held {:.3} ms × {:.0} holds, {:.1} events/hold",
                    phase.outcome.per_second(),
                    phase.outcome.quantile_ms(0.5),
                    phase.outcome.quantile_ms(0.99),
                    phase.outcome.errors,
                    phase.vault_cpu,
                    phase.postgres_cpu,
                    phase.loadgen_cpu,
                    writer.hold_ms(),
                    writer.head_holds,
                    writer.events_per_hold()
                );
                for e in &phase.outcome.error_samples {
                    eprintln!("    error: {e}");
                }
                phases.push(phase);
            }
        }
        let mut info = Vec::new();
        super::step("stop the vault node(s)");
        for n in nodes {
            let (peak, _) = n.server.memory();
            let cold = n.server.cold_start;
            n.server.stop();
            info.push((n.name, peak, cold));
        }
        (phases, info)
    });
    let db_bytes_end: i64 = rt.block_on(async {
        let c = connect(&db_url).await;
        c.query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .map_or(0, |r| r.get(0))
    });
    if args.keep_data {
        let kept = tmp.keep();
        eprintln!(
            "data kept in {} and database {db_name} kept",
            kept.display()
        );
    } else {
        rt.block_on(drop_database(&args.postgres_url, &db_name));
    }
    let report = Report {
        args,
        date,
        machine,
        facts,
        load_end: report::loadavg(),
        seeded: &seeded,
        db_bytes_end: db_bytes_end as u64,
        insert_1,
        insert_64,
        point_read,
        record_load,
        phases: &phases,
        nodes: &nodes_info,
    };
    let section = report.markdown();
    let old = std::fs::read_to_string(&args.out).unwrap_or_default();
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&args.out, splice(&old, START, END, &section)).unwrap();
    println!("{section}");
    eprintln!("PostgreSQL section written to {}", args.out.display());
    phases.iter().map(|p| p.outcome.errors).sum()
}

/// Puts `section` (which starts with `start` and ends with `end`) into `report` in place of an
/// earlier one, or at its end.
pub fn splice(report: &str, start: &str, end: &str, section: &str) -> String {
    match (report.find(start), report.find(end)) {
        (Some(a), Some(b)) if b > a => format!(
            "{}{}{}",
            &report[..a],
            section,
            &report[b + end.len()..].trim_start_matches('\n')
        ),
        _ => format!("{}\n\n{section}", report.trim_end()),
    }
}

/// The section between `start` and `end` in `report`, markers included.
pub fn section_of<'a>(report: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let a = report.find(start)?;
    let b = report[a..].find(end)? + a;
    Some(&report[a..b + end.len()])
}

struct Report<'a> {
    args: &'a Args,
    date: String,
    machine: Machine,
    facts: Vec<(String, String)>,
    load_end: String,
    seeded: &'a seed::Seeded,
    db_bytes_end: u64,
    insert_1: Rate,
    insert_64: Rate,
    point_read: Rate,
    record_load: Rate,
    phases: &'a [Phase],
    nodes: &'a [(&'static str, u64, Duration)],
}

/// The middle value (the mean of the middle two for an even count); `None` if empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

impl Report<'_> {
    /// The rates of every round of `scenario` on `target`, in round order.
    fn rates(&self, scenario: &str, target: &str) -> Vec<f64> {
        self.phases
            .iter()
            .filter(|p| p.scenario == scenario && p.target == target)
            .map(|p| p.outcome.per_second())
            .collect()
    }

    /// The median round's rate of `scenario` on `target` (the mean of the middle two for an
    /// even number of rounds), with the rounds' rates when there are several.
    fn rate(&self, scenario: &str, target: &str) -> Option<(f64, String)> {
        let rates = self.rates(scenario, target);
        let v = median(&rates)?;
        let detail = if rates.len() > 1 {
            let each: Vec<String> = rates.iter().map(|r| int(*r)).collect();
            format!(" (median of {})", each.join(", "))
        } else {
            String::new()
        };
        Some((v, detail))
    }

    fn markdown(&self) -> String {
        let mut o = String::new();
        let (a, m) = (self.args, &self.machine);
        let _ = writeln!(o, "{START}\n## PostgreSQL backend (issue 14)\n");
        let _ = writeln!(
            o,
            "Written by the load harness on {}. Every figure in this section was measured in this \
             one run; the raw PostgreSQL baselines minutes before the vault figures, on the same \
             database server.\n",
            self.date
        );
        let command = std::env::var("BENCH_COMMAND")
            .unwrap_or_else(|_| format!("bench/run.sh {}", a.given.join(" ")));
        let _ = writeln!(o, "```sh\n{command}\n```\n");
        let _ = writeln!(o, "### Machine and database\n");
        let _ = writeln!(o, "| | |\n|---|---|");
        let _ = writeln!(
            o,
            "| machine | {} cores ({}), {}, {} |",
            m.cores, m.cpu_model, m.memory, m.disk
        );
        let _ = writeln!(o, "| kernel | {} |", m.kernel);
        let _ = writeln!(
            o,
            "| load average (1, 5, 15 min) | {} at start, {} at end |",
            m.load_start, self.load_end
        );
        let _ = writeln!(o, "| vault commit | {} |", m.git);
        let facts: Vec<String> = self
            .facts
            .iter()
            .map(|(k, v)| format!("`{k}` = {v}"))
            .collect();
        let _ = writeln!(
            o,
            "| PostgreSQL | on this machine (127.0.0.1:5432, same 2 cores and disk): {} |",
            facts.join(", ")
        );
        let _ = writeln!(
            o,
            "| run | {} node(s) on one fresh database, {} guests seeded, {} connections, {} s per phase (after {} s warm-up){}, {} s per raw baseline |",
            a.nodes,
            int(a.guests as f64),
            a.connections,
            a.seconds,
            a.warmup.as_secs(),
            if a.rounds > 1 {
                format!(", {} rounds per scenario", a.rounds)
            } else {
                String::new()
            },
            a.baseline.as_secs()
        );
        for (name, peak, cold) in self.nodes {
            let _ = writeln!(
                o,
                "| node {name} | peak RSS {:.1} MB, cold start {} |",
                *peak as f64 / 1e6,
                ms(cold.as_secs_f64() * 1000.0)
            );
        }
        let node_settings: Vec<String> = node_settings()
            .into_iter()
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect();
        if !node_settings.is_empty() {
            let _ = writeln!(o, "| node settings | {} |", node_settings.join(", "));
        }
        if let Some(note) = &a.note {
            let _ = writeln!(o, "| note | {note} |");
        }

        let _ = writeln!(o, "\n### Targets\n");
        let _ = writeln!(o, "| figure | value | target | |\n|---|---|---|---|");
        let rate = |s: &str, t: &str| self.rate(s, t);
        let met = |ok: bool| if ok { "met" } else { "**not met**" };
        for (scenario, label, min) in [
            ("create", "create, one node", 2500.0),
            ("read", "read, one node", 4000.0),
        ] {
            if let Some((v, detail)) = rate(scenario, "node A") {
                let _ = writeln!(
                    o,
                    "| {label} (node A) | {}/s{detail} | ≥ {}/s | {} |",
                    int(v),
                    int(min),
                    met(v >= min)
                );
            }
        }
        if a.nodes > 1 {
            for scenario in ["create", "read", "search_read", "erasure"] {
                let (Some((one, one_detail)), Some((b, b_detail)), Some((both, both_detail))) = (
                    rate(scenario, "node A"),
                    rate(scenario, "node B"),
                    rate(scenario, "nodes A+B"),
                ) else {
                    continue;
                };
                let (single, single_detail) = if one >= b {
                    (one, one_detail)
                } else {
                    (b, b_detail)
                };
                let ratio = both / single.max(1e-9);
                let _ = writeln!(
                    o,
                    "| {scenario}, two nodes vs one | {}/s{both_detail} vs {}/s{single_detail}: {ratio:.2}× | ≥ 0.9× | {} |",
                    int(both),
                    int(single),
                    met(ratio >= 0.9)
                );
            }
        }
        let errors: u64 = self.phases.iter().map(|p| p.outcome.errors).sum();
        let _ = writeln!(
            o,
            "| request errors, all phases | {errors} | 0 | {} |",
            met(errors == 0)
        );

        let _ = writeln!(o, "\n### Phases\n");
        let _ = writeln!(
            o,
            "{} concurrent connections (tokio tasks sharing one reqwest client); with two nodes \
             behind the client, requests alternate between them. Per scenario, node A alone is \
             measured first, then both nodes, then node B alone{}; two nodes are compared with \
             the better single node{}. CPU is in cores (this machine has {}): the vault node(s) under \
             load, every `postgres` process, and the load generator. \"head hold\" is the mean \
             time a group commit held the chain head's row lock (granted to committed), from the \
             nodes' `guestvault_audit_head_hold_seconds`; \"events/hold\" is events per such \
             commit (`guestvault_audit_head_events_total` over the hold count); \"ops/commit\" is \
             writer units per group transaction.\n",
            a.connections,
            if a.rounds > 1 {
                format!(
                    ", in {} rounds that alternate the order (A, A+B, B, then B, A+B, A)",
                    a.rounds
                )
            } else {
                String::new()
            },
            if a.rounds > 1 {
                ", each target by its median round"
            } else {
                ""
            },
            m.cores
        );
        let _ = writeln!(
            o,
            "| scenario | target | ops/s | p50 | p99 | max | errors | vault CPU | postgres CPU | load-gen CPU | commits/s | ops/commit | head hold | events/hold | head held (share of time) |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for p in self.phases {
            let out = &p.outcome;
            let secs = out.elapsed.as_secs_f64().max(1e-9);
            let w = &p.writer;
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.1} | {} | {:.1} | {:.0}% |",
                p.scenario,
                if a.rounds > 1 {
                    format!("{}, round {}", p.target, p.round)
                } else {
                    p.target.clone()
                },
                int(out.per_second()),
                ms(out.quantile_ms(0.5)),
                ms(out.quantile_ms(0.99)),
                ms(out.quantile_ms(1.0)),
                out.errors,
                p.vault_cpu,
                p.postgres_cpu,
                p.loadgen_cpu,
                int(w.commits / secs),
                w.commit_ops / w.commits.max(1.0),
                ms(w.hold_ms()),
                w.events_per_hold(),
                w.head_hold_seconds / secs * 100.0,
            );
            let _ = p.nodes;
        }
        for p in self.phases {
            for e in &p.outcome.error_samples {
                let _ = writeln!(o, "\n- {} on {} error: `{e}`", p.scenario, p.target);
            }
            if p.outcome.exhausted {
                let _ = writeln!(
                    o,
                    "\n- {} on {} ran out of seeded guests before its time was up.",
                    p.scenario, p.target
                );
            }
        }

        let _ = writeln!(o, "\n### Baselines (raw PostgreSQL, same run)\n");
        let _ = writeln!(o, "| baseline | value | how |\n|---|---|---|");
        let _ = writeln!(o, "| raw insert, 1 row/txn | {}/s | one {}-byte ciphertext row and one {}-byte audit row per transaction, one `INSERT` each (prepared), `synchronous_commit = on`, one connection (tokio-postgres); {} s |", int(self.insert_1.per_second()), self.seeded.record_bytes, self.seeded.event_bytes, self.insert_1.elapsed.as_secs());
        let _ = writeln!(o, "| raw insert, 64 rows/txn | {}/s | the same, 64 rows (and 64 audit rows) per transaction |", int(self.insert_64.per_second()));
        let _ = writeln!(o, "| raw point read | {}/s | `SELECT ciphertext FROM guest_fields WHERE guest_id = $1 AND field = 'mobile'` of a random seeded guest, autocommit, prepared, one connection per core |", int(self.point_read.per_second()));
        let _ = writeln!(o, "| raw record load | {}/s | the SQL of one vault read as a reader runs it: `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`, `store::load_guest`, the consent lookup, `COMMIT`, on the vault's `PgConn`, one connection per core (without the read's audit event) |", int(self.record_load.per_second()));

        let _ = writeln!(o, "\n### Chain head: hold time and ceiling\n");
        let mut holds = WriterCounters::default();
        for p in self.phases.iter().filter(|p| p.writer.head_holds > 0.0) {
            holds = holds.plus(p.writer);
        }
        let _ = writeln!(
            o,
            "Over all phases: {} group commits held the head, {:.0} events, {:.1} events per \
             commit, mean hold {}. A single chain head serialises every node's commits, so the \
             chain's ceiling is about events per commit ÷ hold time = {}/s at the measured \
             figures (on this machine, where the hold includes waits for the 2 shared cores).",
            int(holds.head_holds),
            holds.head_events,
            holds.events_per_hold(),
            ms(holds.hold_ms()),
            int(holds.events_per_hold() / (holds.hold_ms() / 1000.0).max(1e-9)),
        );
        let _ = writeln!(o, "\n### Data set\n");
        let _ = writeln!(
            o,
            "{} guests seeded in {:.1} s through the vault's own code on the PostgreSQL backend \
             (`store::insert_guest`, `put_field`, `put_index`, `audit::append`; 2,000 guests per \
             transaction on each of 4 connections, their events linked under the head at each commit), then `VACUUM \
             ANALYZE`: database {:.1} MB; after the run: {:.1} MB.",
            int(a.guests as f64),
            self.seeded.elapsed.as_secs_f64(),
            self.seeded.db_bytes as f64 / 1e6,
            self.db_bytes_end as f64 / 1e6
        );
        let _ = writeln!(o, "\n{END}");
        o
    }
}
