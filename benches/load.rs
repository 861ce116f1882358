//! The load benchmark (issue 7): seeds a fresh vault with N guests, measures raw SQLite and
//! HTTP baselines, starts the release `guestvault` binary, drives each scenario with C
//! connections for S seconds, and writes `BENCHMARKS.md`.
//!
//! Run it with `bench/run.sh [--quick|--smoke] [--guests N] [--seconds S] [--connections C]`
//! (that is `cargo bench --bench load -- ...`). It exits non-zero if any request errored.
//!
//! # Layout
//! - `args`: the command line.
//! - `data`: deterministic, valid Chinese guest records and stays.
//! - `seed`: writes N guests into the database through the vault's own code paths.
//! - `baseline`: raw SQLite insert and point read, and a trivial axum server.
//! - `server`: the vault as a child process; `/proc` readings (RSS, CPU per thread).
//! - `driver`: the HTTP load generator and the scenarios.
//! - `report`: machine facts and the Markdown report.
//! - `pg`: the `--backend postgres [--nodes 2]` run, its baselines and its section.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "load/args.rs"]
mod args;
#[path = "load/baseline.rs"]
mod baseline;
#[path = "load/data.rs"]
mod data;
#[path = "load/driver.rs"]
mod driver;
#[path = "load/pg.rs"]
mod pg;
#[path = "load/report.rs"]
mod report;
#[path = "load/seed.rs"]
mod seed;
#[path = "load/server.rs"]
mod server;
#[path = "load/soak.rs"]
mod soak;

use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use args::Args;
use driver::{Ctx, Op};
use report::{Machine, Results, Scenario};

const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    if let Some(secs) = args.soak {
        return run_soak(&args, secs);
    }
    if args.postgres {
        let errors = pg::run(&args);
        if errors > 0 {
            eprintln!("FAILED: {errors} request(s) errored");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    let results = run(args);
    let mut report = results.markdown();
    // The sections other runs wrote (PostgreSQL, soak) stay.
    let old = std::fs::read_to_string(&results.args.out).unwrap_or_default();
    for (start, end) in [(pg::START, pg::END), (soak::START, soak::END)] {
        if let Some(section) = pg::section_of(&old, start, end) {
            report = format!("{}\n\n{section}\n", report.trim_end());
        }
    }
    if let Some(dir) = results.args.out.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&results.args.out, &report).unwrap();
    println!("{report}");
    eprintln!("report written to {}", results.args.out.display());
    let errors = results.errors();
    if errors > 0 {
        eprintln!("FAILED: {errors} request(s) errored");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `--soak SECS`: seed, start the release server, run the mixed load, write the section.
fn run_soak(args: &Args, secs: u64) -> ExitCode {
    let tmp = tempfile::Builder::new()
        .prefix("guestvault-soak-")
        .tempdir()
        .unwrap();
    let work = tmp.path().to_owned();
    let data_dir = work.join("data");
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    step("init + seed");
    let config = server::init(&work, &data_dir);
    let seeded = seed::seed(&config, args.guests);
    eprintln!(
        "  {} guests in {:.1} s",
        args.guests,
        seeded.elapsed.as_secs_f64()
    );
    let ids = Arc::new(seeded.ids);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (samples, kinds) = rt.block_on(async {
        step("start the vault");
        let srv = server::Server::start(&work, &data_dir, args.server_log_level.as_deref()).await;
        let mint = |role: &str| {
            driver::bearer(
                &guestvault::auth::mint_with_config(
                    &config,
                    role,
                    &format!("soak-{role}"),
                    TOKEN_TTL,
                )
                .unwrap(),
            )
        };
        let ctx = Arc::new(Ctx {
            client: driver::client(args.connections),
            bases: vec![srv.base.clone()],
            turn: Default::default(),
            pms: mint("pms"),
            front_desk: mint("front_desk"),
            dsr: mint("dsr_officer"),
            ids: ids.clone(),
            next_create: AtomicU64::new(args.guests),
            next_erase: AtomicU64::new(0),
        });
        step(&format!(
            "soak: {secs} s at {} connections",
            args.connections
        ));
        let out = soak::run(
            &ctx,
            args.connections,
            Duration::from_secs(secs),
            &data_dir,
            srv.pid,
        )
        .await;
        drop(ctx);
        srv.stop();
        out
    });
    let head = format!(
        "Run {date} with `{}`: {} seeded guests, {} connections, {secs} s, release build; \
         mix per operation: 40% read, 30% create, 20% search+read, 10% erasure (of guests the \
         soak created: reads never touch an erased guest). Load average at the start: {}.{}",
        std::env::var("BENCH_COMMAND").unwrap_or_else(|_| "bench/run.sh".into()),
        args.guests,
        args.connections,
        report::loadavg(),
        args.note
            .as_deref()
            .map(|n| format!(" Note: {n}"))
            .unwrap_or_default()
    );
    let section = soak::markdown(&samples, kinds, &head, config.storage.wal_max_bytes);
    let old = std::fs::read_to_string(&args.out).unwrap_or_default();
    std::fs::write(&args.out, soak::splice(&old, &section)).unwrap();
    println!("{section}");
    eprintln!("soak section written to {}", args.out.display());
    let errors: u64 = samples.iter().map(|s| s.errors).sum();
    if errors > 0 {
        eprintln!("FAILED: {errors} request(s) errored");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn step(what: &str) {
    eprintln!("== {what}");
}

fn run(args: Args) -> Results {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("guestvault-bench-")
        .tempdir()
        .unwrap();
    let work = tmp.path().to_owned();
    let data_dir = work.join("data");
    let machine = Machine::read(&work);
    eprintln!(
        "guestvault load benchmark: {} mode, {} guests, {} connections, {} s per scenario; work dir {}",
        args.mode.as_str(),
        args.guests,
        args.connections,
        args.seconds,
        work.display()
    );
    eprintln!("server binary: {}", server::BINARY);

    step("init + seed");
    let config = server::init(&work, &data_dir);
    let seeded = seed::seed(&config, args.guests);
    eprintln!(
        "  {} guests in {:.1} s, database {} bytes",
        args.guests,
        seeded.elapsed.as_secs_f64(),
        seeded.db_bytes
    );
    let ids = Arc::new(seeded.ids);

    step("baseline: raw point reads on the seeded database");
    let db = config.database_file();
    let point_read = baseline::raw_point_read(&db, &ids, args.baseline);
    eprintln!("  {:.0}/s", point_read.per_second());
    let record_load = baseline::raw_record_load(&db, &ids, args.baseline);
    eprintln!("  record load: {:.0}/s", record_load.per_second());

    step("baseline: raw SQLite inserts (ciphertext row + audit row)");
    let insert_1 = baseline::raw_insert(
        &work,
        1,
        args.baseline,
        seeded.record_bytes,
        seeded.event_bytes,
    );
    eprintln!("  1 row/txn: {:.0}/s", insert_1.per_second());
    let insert_64 = baseline::raw_insert(
        &work,
        64,
        args.baseline,
        seeded.record_bytes,
        seeded.event_bytes,
    );
    eprintln!("  64 rows/txn: {:.0}/s", insert_64.per_second());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let hz = server::ticks_per_second();
    let self_pid = std::process::id().to_string();
    let mut results = rt.block_on(async {
        step("baseline: trivial axum GET ceiling");
        let trivial = baseline::TrivialServer::start();
        let ceiling_ctx = Arc::new(Ctx {
            client: driver::client(args.connections),
            bases: vec![trivial.base.clone()],
            turn: Default::default(),
            pms: driver::bearer("-"),
            front_desk: driver::bearer("-"),
            dsr: driver::bearer("-"),
            ids: ids.clone(),
            next_create: AtomicU64::new(0),
            next_erase: AtomicU64::new(0),
        });
        if !args.warmup.is_zero() {
            driver::drive(&ceiling_ctx, Op::Trivial, args.connections, args.warmup).await;
        }
        let before = server::cpu_snapshot(&self_pid);
        let ceiling = driver::drive(&ceiling_ctx, Op::Trivial, args.connections, args.baseline).await;
        let after = server::cpu_snapshot(&self_pid);
        // In-process: the total is server and client together.
        let ceiling_loadgen_cpu =
            server::cpu_use(&before, &after, ceiling.elapsed.as_secs_f64(), hz).total;
        drop(ceiling_ctx);
        trivial.stop();
        eprintln!("  {:.0}/s", ceiling.per_second());

        step("start the vault");
        let srv = server::Server::start(&work, &data_dir, args.server_log_level.as_deref()).await;
        eprintln!("  ready in {:.0} ms (pid {})", srv.cold_start.as_secs_f64() * 1000.0, srv.pid);
        let mint = |role: &str| {
            driver::bearer(
                &guestvault::auth::mint_with_config(&config, role, &format!("bench-{role}"), TOKEN_TTL)
                    .unwrap(),
            )
        };
        let ctx = Arc::new(Ctx {
            client: driver::client(args.connections),
            bases: vec![srv.base.clone()],
            turn: Default::default(),
            pms: mint("pms"),
            front_desk: mint("front_desk"),
            dsr: mint("dsr_officer"),
            ids: ids.clone(),
            next_create: AtomicU64::new(args.guests),
            next_erase: AtomicU64::new(0),
        });
        let server_pid = srv.pid.to_string();
        let mut scenarios = Vec::new();
        for name in args::SCENARIOS {
            if !args.runs(name) {
                continue;
            }
            let op = Op::parse(name);
            step(&format!("scenario: {name}"));
            let mut scenario = Scenario {
                name,
                op,
                outcome: None,
                skipped: None,
                server_cpu: Default::default(),
                loadgen_cpu: 0.0,
                disk_write_bytes: 0,
            };
            if op == Op::Erasure {
                if let Some(why) = driver::erasure_missing(&ctx).await {
                    eprintln!("  not implemented yet (the route answers {why})");
                    scenario.skipped = Some(format!("not implemented yet (route answers {why})"));
                    scenarios.push(scenario);
                    continue;
                }
            }
            if !args.warmup.is_zero() {
                driver::drive(&ctx, op, args.connections, args.warmup).await;
            }
            let (s0, c0) = (server::cpu_snapshot(&server_pid), server::cpu_snapshot(&self_pid));
            let io0 = server::io_bytes(&server_pid);
            let out = driver::drive(&ctx, op, args.connections, args.duration()).await;
            let (s1, c1) = (server::cpu_snapshot(&server_pid), server::cpu_snapshot(&self_pid));
            let io1 = server::io_bytes(&server_pid);
            scenario.disk_write_bytes = io1.1.saturating_sub(io0.1);
            let secs = out.elapsed.as_secs_f64();
            scenario.server_cpu = server::cpu_use(&s0, &s1, secs, hz);
            scenario.loadgen_cpu = server::cpu_use(&c0, &c1, secs, hz).total;
            eprintln!(
                "  {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {} errors; server {:.2} cores, load generator {:.2}; server wrote {:.1} KiB/op",
                out.per_second(),
                out.quantile_ms(0.5),
                out.quantile_ms(0.99),
                out.errors,
                scenario.server_cpu.total,
                scenario.loadgen_cpu,
                scenario.disk_write_bytes as f64 / out.ok.max(1) as f64 / 1024.0
            );
            for e in &out.error_samples {
                eprintln!("    error: {e}");
            }
            scenario.outcome = Some(out);
            scenarios.push(scenario);
        }
        let (rss_peak, rss_end) = srv.memory();
        let server_threads = server::threads(&server_pid);
        let log_file = srv.log_file.clone();
        drop(ctx);
        step("stop the vault");
        let cold_start = srv.cold_start;
        let stop_time = srv.stop();
        Results {
            args: args.clone(),
            date,
            machine,
            seed_elapsed: seeded.elapsed,
            db_bytes_seeded: seeded.db_bytes,
            record_bytes: seeded.record_bytes,
            event_bytes: seeded.event_bytes,
            insert_1,
            insert_64,
            point_read,
            record_load,
            ceiling,
            ceiling_loadgen_cpu,
            cold_start,
            scenarios,
            rss_peak,
            rss_end,
            server_threads,
            stop_time,
            server_log_bytes: seed::file_size(&log_file),
            db_bytes_end: 0,
            load_end: String::new(),
        }
    });
    results.db_bytes_end = seed::file_size(&config.database_file())
        + seed::file_size(&data_dir.join("guestvault.db-wal"));
    results.load_end = report::loadavg();
    if args.keep_data {
        let kept = tmp.keep();
        eprintln!("data kept in {}", kept.display());
    }
    results
}
