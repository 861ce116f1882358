//! The report: machine facts, every figure with its baseline, ratio and target, written as
//! Markdown (`BENCHMARKS.md` for full and quick runs).

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use super::args::{Args, Mode};
use super::baseline::Rate;
use super::driver::{Op, Outcome};
use super::server::CpuUse;

/// Facts about the machine the figures were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory: String,
    pub disk: String,
    pub kernel: String,
    pub load_start: String,
    pub git: String,
    pub rustc: String,
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl Machine {
    pub fn read(data_dir: &std::path::Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or("unknown".into(), |kb| {
                format!("{:.1} GiB", kb / 1024.0 / 1024.0)
            });
        let df = command_output("df", &["-hT", &data_dir.display().to_string()]);
        let disk = df
            .lines()
            .nth(1)
            .map(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                match c.as_slice() {
                    [dev, fs, size, _used, avail, _pct, mount, ..] => {
                        format!("{dev} ({fs}) mounted on {mount}: {size} total, {avail} free")
                    }
                    _ => l.to_string(),
                }
            })
            .unwrap_or_else(|| "unknown".into());
        let manifest = env!("CARGO_MANIFEST_DIR");
        let mut git = command_output("git", &["-C", manifest, "rev-parse", "--short", "HEAD"]);
        let status = command_output("git", &["-C", manifest, "status", "--porcelain"]);
        if !status.is_empty() && status != "unknown" {
            git.push_str(" (with uncommitted changes)");
        }
        Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory,
            disk,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            load_start: loadavg(),
            git,
            rustc: command_output("rustc", &["--version"]),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub op: Op,
    pub outcome: Option<Outcome>,
    /// Why it was not measured.
    pub skipped: Option<String>,
    pub server_cpu: CpuUse,
    pub loadgen_cpu: f64,
    /// Bytes the server wrote to storage during the measured run.
    pub disk_write_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Results {
    pub args: Args,
    pub date: String,
    pub machine: Machine,
    pub seed_elapsed: Duration,
    pub db_bytes_seeded: u64,
    pub record_bytes: usize,
    pub event_bytes: usize,
    pub insert_1: Rate,
    pub insert_64: Rate,
    pub point_read: Rate,
    pub record_load: Rate,
    pub ceiling: Outcome,
    pub ceiling_loadgen_cpu: f64,
    pub cold_start: Duration,
    pub scenarios: Vec<Scenario>,
    pub rss_peak: u64,
    pub rss_end: u64,
    pub server_threads: usize,
    pub stop_time: Duration,
    pub server_log_bytes: u64,
    pub db_bytes_end: u64,
    pub load_end: String,
}

/// `12345.6` → `12,346`.
pub fn int(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

impl Results {
    pub fn errors(&self) -> u64 {
        self.ceiling.errors
            + self
                .scenarios
                .iter()
                .filter_map(|s| s.outcome.as_ref())
                .map(|o| o.errors)
                .sum::<u64>()
    }

    fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    fn command(&self) -> String {
        std::env::var("BENCH_COMMAND").unwrap_or_else(|_| {
            format!("cargo bench --bench load -- {}", self.args.given.join(" "))
                .trim_end()
                .to_string()
        })
    }

    /// One row of the targets table for a throughput scenario.
    fn throughput_row(
        &self,
        out: &mut String,
        name: &str,
        label: &str,
        baseline: Option<(&str, f64)>,
        target: Option<(f64, Option<f64>)>,
    ) {
        let target_text = match target {
            Some((min, Some(r))) => format!("≥ {}/s and ≥ {r}× baseline", int(min)),
            Some((min, None)) => format!("≥ {}/s", int(min)),
            None => "none set".into(),
        };
        let (base_text, base) = match baseline {
            Some((what, v)) => (format!("{what}: {}/s", int(v)), Some(v)),
            None => ("—".into(), None),
        };
        let Some(s) = self.scenario(name) else {
            let _ = writeln!(
                out,
                "| {label} | not run | {base_text} | — | {target_text} | not measured |"
            );
            return;
        };
        let Some(o) = &s.outcome else {
            let why = s.skipped.clone().unwrap_or_default();
            let _ = writeln!(
                out,
                "| {label} | {why} | {base_text} | — | {target_text} | not measured |"
            );
            return;
        };
        let v = o.per_second();
        let ratio = base.map(|b| v / b.max(1e-9));
        let verdict = match target {
            Some((min, Some(r))) => met(v >= min && ratio.is_some_and(|x| x >= r)),
            Some((min, None)) => met(v >= min),
            None => "—",
        };
        let ratio_text = ratio.map_or("—".into(), |r| format!("{r:.2}×"));
        let _ = writeln!(
            out,
            "| {label} | {}/s | {base_text} | {ratio_text} | {target_text} | {verdict} |",
            int(v)
        );
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let a = &self.args;
        let m = &self.machine;
        let _ = writeln!(o, "# Benchmarks\n");
        if a.mode == Mode::Smoke {
            let _ = writeln!(
                o,
                "> **Smoke run** (a tiny data set for CI): these figures say only that the harness works.\n"
            );
        }
        let _ = writeln!(
            o,
            "Written by the load harness (`benches/load.rs`, issue 7) on {}. Every figure below \
             was measured in this one run, on this machine; baselines were measured minutes \
             before the vault figures.\n",
            self.date
        );
        let _ = writeln!(o, "```sh\n{}\n```\n", self.command());
        let _ = writeln!(o, "## Machine\n");
        let _ = writeln!(o, "| | |\n|---|---|");
        let _ = writeln!(o, "| cores | {} (`available_parallelism`) |", m.cores);
        let _ = writeln!(o, "| CPU | {} |", m.cpu_model);
        let _ = writeln!(o, "| memory | {} |", m.memory);
        let _ = writeln!(o, "| disk (data dir) | {} |", m.disk);
        let _ = writeln!(o, "| kernel | {} |", m.kernel);
        let _ = writeln!(
            o,
            "| load average (1, 5, 15 min) | {} at start, {} at end |",
            m.load_start, self.load_end
        );
        let _ = writeln!(o, "| vault commit | {} |", m.git);
        let _ = writeln!(o, "| compiler | {} |", m.rustc);
        let _ = writeln!(
            o,
            "| run | {} mode: {} guests seeded, {} connections, {} s per scenario (after {} s warm-up), {} s per raw baseline |",
            a.mode.as_str(),
            int(a.guests as f64),
            a.connections,
            a.seconds,
            a.warmup.as_secs(),
            a.baseline.as_secs()
        );
        if let Some(note) = &a.note {
            let _ = writeln!(o, "| note | {note} |");
        }

        let _ = writeln!(o, "\n## Targets\n");
        let _ = writeln!(
            o,
            "| figure | value | baseline | ratio | target | |\n|---|---|---|---|---|---|"
        );
        let insert64 = self.insert_64.per_second();
        let point = self.point_read.per_second();
        let ceiling = self.ceiling.per_second();
        self.throughput_row(
            &mut o,
            "create",
            "create (POST /v1/guests)",
            Some(("raw SQLite insert, 64 rows/txn", insert64)),
            Some((5000.0, Some(0.7))),
        );
        self.throughput_row(
            &mut o,
            "read",
            "read (GET /v1/guests/{id})",
            Some(("raw point read", point)),
            Some((15000.0, None)),
        );
        if let Some(r) = self.scenario("read").and_then(|s| s.outcome.as_ref()) {
            let p99 = r.quantile_ms(0.99);
            let _ = writeln!(
                o,
                "| read p99 latency | {} | — | — | ≤ 20 ms | {} |",
                ms(p99),
                met(p99 <= 20.0)
            );
        }
        self.throughput_row(
            &mut o,
            "search_read",
            "search by mobile + read",
            Some(("axum GET ceiling ÷ 2 requests", ceiling / 2.0)),
            Some((12000.0, None)),
        );
        self.throughput_row(
            &mut o,
            "add_stay",
            "add stay",
            Some(("raw SQLite insert, 64 rows/txn", insert64)),
            None,
        );
        self.throughput_row(
            &mut o,
            "erasure",
            "erasure",
            Some(("raw SQLite insert, 64 rows/txn", insert64)),
            Some((5000.0, None)),
        );
        let _ = writeln!(
            o,
            "| server peak RSS (VmHWM) | {} | — | — | ≤ 150 MB | {} |",
            mb(self.rss_peak),
            met(self.rss_peak <= 150_000_000)
        );
        let cold = self.cold_start.as_secs_f64() * 1000.0;
        let _ = writeln!(
            o,
            "| cold start (spawn → `/readyz` 200) | {} | — | — | ≤ 1 s | {} |",
            ms(cold),
            met(cold <= 1000.0)
        );
        let errors = self.errors();
        let _ = writeln!(
            o,
            "| request errors, all scenarios | {errors} | — | — | 0 | {} |",
            met(errors == 0)
        );

        let _ = writeln!(o, "\n## Scenarios\n");
        let _ = writeln!(
            o,
            "{} concurrent connections (tokio tasks sharing one reqwest client), each sending its next \
             request when the previous answer is read. Latency is per operation; a search + read \
             is one operation of two requests. \"vs ceiling\" is HTTP requests/s over the trivial \
             axum ceiling. CPU is in cores (this machine has {}).\n",
            a.connections, m.cores
        );
        let _ = writeln!(
            o,
            "| scenario | ops/s | p50 | p95 | p99 | max | errors | vs ceiling | server CPU | \
             load-generator CPU | server disk writes/op |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        let row = |o: &mut String, name: &str, out: &Outcome, reqs: u64, rest: &str| {
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} | {} | {} | {} | {:.2}× | {rest} |",
                int(out.per_second()),
                ms(out.quantile_ms(0.5)),
                ms(out.quantile_ms(0.95)),
                ms(out.quantile_ms(0.99)),
                ms(out.quantile_ms(1.0)),
                out.errors,
                out.per_second() * reqs as f64 / ceiling.max(1e-9),
            );
        };
        let rest = format!("(in-process) | {:.2} | —", self.ceiling_loadgen_cpu);
        row(
            &mut o,
            "trivial axum GET (ceiling)",
            &self.ceiling,
            1,
            &rest,
        );
        for s in &self.scenarios {
            match &s.outcome {
                Some(out) => {
                    let per_op = s.disk_write_bytes as f64 / out.ok.max(1) as f64 / 1024.0;
                    let rest = format!(
                        "{:.2} | {:.2} | {per_op:.1} KiB",
                        s.server_cpu.total, s.loadgen_cpu
                    );
                    row(&mut o, s.name, out, s.op.requests(), &rest);
                }
                None => {
                    let _ = writeln!(
                        o,
                        "| {} | {} | | | | | | | | | |",
                        s.name,
                        s.skipped.clone().unwrap_or_default()
                    );
                }
            }
        }
        for s in &self.scenarios {
            if let Some(out) = &s.outcome {
                if out.exhausted {
                    let _ = writeln!(
                        o,
                        "\n{} ran out of seeded guests before its time was up.",
                        s.name
                    );
                }
                for e in &out.error_samples {
                    let _ = writeln!(o, "\n- {} error: `{e}`", s.name);
                }
            }
        }
        for e in &self.ceiling.error_samples {
            let _ = writeln!(o, "\n- ceiling error: `{e}`");
        }

        let _ = writeln!(o, "\n### Where the server's CPU went\n");
        let _ = writeln!(o, "Cores used per thread name during each measured run (`/proc/<pid>/task/*/stat`; `tokio-rt-worker` covers both the async workers and the blocking pool that runs SQLite reads; threads that ended during the run are counted in the total only).\n");
        let _ = writeln!(o, "| scenario | total | by thread |\n|---|---|---|");
        for s in &self.scenarios {
            if s.outcome.is_some() {
                let threads: Vec<String> = s
                    .server_cpu
                    .by_thread
                    .iter()
                    .map(|(n, c)| format!("{n} {c:.2}"))
                    .collect();
                let _ = writeln!(
                    o,
                    "| {} | {:.2} | {} |",
                    s.name,
                    s.server_cpu.total,
                    threads.join(", ")
                );
            }
        }

        let _ = writeln!(o, "\n## Baselines\n");
        let _ = writeln!(o, "| baseline | value | how |\n|---|---|---|");
        let _ = writeln!(o, "| raw SQLite insert, 1 row/txn | {}/s | one {}-byte ciphertext row (a seeded guest's fields + wrapped DEK) and one {}-byte audit row per transaction; WAL, `synchronous=FULL`, `secure_delete=ON` as the vault; one connection; {} s |", int(self.insert_1.per_second()), self.record_bytes, self.event_bytes, self.insert_1.elapsed.as_secs());
        let _ = writeln!(o, "| raw SQLite insert, 64 rows/txn | {}/s | the same, 64 rows (and 64 audit rows) per transaction |", int(insert64));
        let _ = writeln!(o, "| raw point read | {}/s | primary-key lookups of one field's ciphertext of a random seeded guest (`guest_fields`, {} guests), one read-only connection per core, as the reader pool opens them |", int(point), int(a.guests as f64));
        let _ = writeln!(o, "| raw record load | {}/s | the SQL of one vault read (`store::load_guest` + the consent lookup: 3 queries), same connections |", int(self.record_load.per_second()));
        let _ = writeln!(o, "| trivial axum GET | {}/s | in-process axum server, one route answering `ok`, same client and {} connections; p99 {} |", int(ceiling), a.connections, ms(self.ceiling.quantile_ms(0.99)));

        let _ = writeln!(o, "\n## Data set\n");
        let _ = writeln!(
            o,
            "{} guests seeded in {:.1} s straight into the database through the vault's own code \
             (validators, per-guest DEK wrapped by the KEK, AES-256-GCM field ciphertext, blind index \
             for mobile and ID number, one hash-chained audit event per guest, 10,000 guests per \
             transaction), then checkpointed: {} on disk. After the run: {}. Each guest is a \
             valid mainland registration (name, gender, birth date, resident ID with a correct check \
             character, unique mobile, address), generated deterministically.",
            int(a.guests as f64),
            self.seed_elapsed.as_secs_f64(),
            mb(self.db_bytes_seeded),
            mb(self.db_bytes_end)
        );

        let _ = writeln!(o, "\n## Notes\n");
        let _ = writeln!(o, "- The load generator runs on the same {} cores as the server; its CPU use is in the scenarios table. The trivial axum ceiling is measured with the same client so the ratios compare like with like.", m.cores);
        let _ = writeln!(
            o,
            "- The server runs with its defaults ({}): `synchronous=FULL`, 4 readers, writer batches of up to 512, and one access-log line per request written to a file ({} in all).",
            match &a.server_log_level {
                Some(l) => format!("except `log.level = {l}`"),
                None => "`log.level = info`".into(),
            },
            mb(self.server_log_bytes)
        );
        let _ = writeln!(o, "- Peak RSS is the server's `VmHWM` just before it was stopped; its resident set at that moment was {}, with {} threads. A graceful stop (SIGTERM) took {:.0} ms.", mb(self.rss_end), self.server_threads, self.stop_time.as_secs_f64() * 1000.0);
        let _ = writeln!(o, "- Server disk writes are `write_bytes` from `/proc/<pid>/io` over the measured run (WAL frames, checkpoints into the database file, the log), divided by successful operations.");
        let _ = writeln!(o, "- Throughput counts successful operations only; errors are listed above when there were any.");
        o
    }
}
