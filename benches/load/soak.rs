//! `bench/run.sh --soak SECS` (issue 13): mixed read / create / search+read / erasure on C
//! connections for SECS seconds against the release server, with a sample every 10 s of the
//! throughput in that window, the WAL's largest size (looked at every 250 ms), the database
//! size and the server's RSS. Written as a section of BENCHMARKS.md (between markers, so the
//! rest of the report stays), or of `--out`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::data::{self, Rng};
use super::driver::{expect, send, Ctx};

pub const START: &str = "<!-- soak:start -->";
pub const END: &str = "<!-- soak:end -->";
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub at_s: u64,
    pub ops: u64,
    pub errors: u64,
    pub wal_max: u64,
    pub db: u64,
    pub rss: u64,
}

#[derive(Debug, Default)]
struct Counters {
    ok: AtomicU64,
    errors: AtomicU64,
    reads: AtomicU64,
    creates: AtomicU64,
    searches: AtomicU64,
    erasures: AtomicU64,
    /// Guests this soak created, erased later: the mix stays the same for any length of run.
    created: std::sync::Mutex<Vec<String>>,
}

/// How many created guests wait for their erasure at most.
const MAX_PENDING_ERASURES: usize = 100_000;

/// Reads and searches use the seeded guests; erasures take guests the soak itself created,
/// so nothing reads an erased guest and the mix never runs out of guests to erase.
async fn one(ctx: &Ctx, rng: &mut Rng, c: &Counters) -> Result<(), String> {
    let seeded = ctx.ids.len() as u64;
    let pick = rng.below(100);
    let read = |i: u64| ctx.ids[i as usize].hyphenated().to_string();
    if pick < 10 {
        let next = c.created.lock().unwrap().pop();
        if let Some(id) = next {
            let path = format!("/v1/guests/{id}/erasure");
            let body = json!({ "reason": "soak: guest asked for erasure" });
            let got = send(
                ctx,
                Method::POST,
                &path,
                &ctx.dsr,
                "data_subject_request",
                Some(&body),
            )
            .await?;
            if !got.0.is_success() {
                expect("POST", &path, StatusCode::OK, got)?;
            }
            c.erasures.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    }
    if pick < 40 {
        let i = ctx.next_create.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "fields": data::guest_fields(i) });
        let got = send(
            ctx,
            Method::POST,
            "/v1/guests",
            &ctx.pms,
            "check_in",
            Some(&body),
        )
        .await?;
        let body = expect("POST", "/v1/guests", StatusCode::CREATED, got)?;
        c.creates.fetch_add(1, Ordering::Relaxed);
        // Kept for a later erasure (creates outnumber erasures 3:1, so the list is capped).
        let id = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["guest_id"].as_str().map(str::to_owned))
            .ok_or("POST /v1/guests: 201 without a guest_id")?;
        let mut created = c.created.lock().unwrap();
        if created.len() < MAX_PENDING_ERASURES {
            created.push(id);
        }
    } else if pick < 60 {
        let i = rng.below(seeded.max(1));
        let body = json!({ "field": "mobile", "value": data::mobile_spelled(i, rng.next_u64()) });
        let path = "/v1/guests/search";
        let got = send(
            ctx,
            Method::POST,
            path,
            &ctx.front_desk,
            "check_in",
            Some(&body),
        )
        .await?;
        expect("POST", path, StatusCode::OK, got)?;
        let path = format!("/v1/guests/{}", read(i));
        let got = send(ctx, Method::GET, &path, &ctx.front_desk, "check_in", None).await?;
        expect("GET", &path, StatusCode::OK, got)?;
        c.searches.fetch_add(1, Ordering::Relaxed);
    } else {
        let path = format!("/v1/guests/{}", read(rng.below(seeded.max(1))));
        let got = send(ctx, Method::GET, &path, &ctx.front_desk, "check_in", None).await?;
        expect("GET", &path, StatusCode::OK, got)?;
        c.reads.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Runs the soak; the samples, and the operations by kind.
pub async fn run(
    ctx: &Arc<Ctx>,
    connections: usize,
    duration: Duration,
    data_dir: &Path,
    pid: u32,
) -> (Vec<Sample>, [u64; 4]) {
    let counters = Arc::new(Counters::default());
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|t| {
            let (ctx, c) = (ctx.clone(), counters.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(0x50A4 ^ ((t as u64) << 32));
                while Instant::now() < deadline {
                    match one(&ctx, &mut rng, &c).await {
                        Ok(()) => c.ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if c.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("    error: {e}");
                            }
                            1
                        }
                    };
                }
            })
        })
        .collect();
    let wal = data_dir.join("guestvault.db-wal");
    let db = data_dir.join("guestvault.db");
    let started = Instant::now();
    let mut samples = Vec::new();
    let (mut last_ok, mut last_err) = (0, 0);
    let mut window_start = started;
    let mut wal_max = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        wal_max = wal_max.max(size(&wal));
        if window_start.elapsed() >= WINDOW || Instant::now() >= deadline {
            let secs = window_start.elapsed().as_secs_f64();
            let (ok, err) = (
                counters.ok.load(Ordering::Relaxed),
                counters.errors.load(Ordering::Relaxed),
            );
            let s = Sample {
                at_s: started.elapsed().as_secs_f64().round() as u64,
                ops: ((ok - last_ok) as f64 / secs).round() as u64,
                errors: err - last_err,
                wal_max,
                db: size(&db),
                rss: rss(pid),
            };
            eprintln!(
                "  t={:>4} s  {:>6} ops/s  {} errors  WAL max {:.1} MiB  DB {:.0} MiB  RSS {:.0} MiB",
                s.at_s,
                s.ops,
                s.errors,
                s.wal_max as f64 / 1048576.0,
                s.db as f64 / 1048576.0,
                s.rss as f64 / 1048576.0
            );
            samples.push(s);
            (last_ok, last_err, wal_max) = (ok, err, 0);
            window_start = Instant::now();
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let c = &counters;
    let kinds = [&c.reads, &c.creates, &c.searches, &c.erasures].map(|a| a.load(Ordering::Relaxed));
    (samples, kinds)
}

/// The Markdown section: the table and the three figures the "done when" asks for.
pub fn markdown(samples: &[Sample], kinds: [u64; 4], head: &str, wal_limit: u64) -> String {
    let mib = |b: u64| format!("{:.1}", b as f64 / 1048576.0);
    let mut out = format!("{START}\n## Soak: mixed load over time\n\n{head}\n\n");
    out += &format!(
        "Operations: {} reads, {} creates, {} search+read, {} erasures.\n\n",
        kinds[0], kinds[1], kinds[2], kinds[3]
    );
    let first: Vec<&Sample> = samples.iter().filter(|s| s.at_s <= 60).collect();
    let base = first.iter().map(|s| s.ops as f64).sum::<f64>() / first.len().max(1) as f64;
    let wal_max = samples.iter().map(|s| s.wal_max).max().unwrap_or(0);
    let rss_first = samples.first().map_or(0, |s| s.rss);
    let rss_max = samples.iter().map(|s| s.rss).max().unwrap_or(0);
    let worst = samples
        .iter()
        .map(|s| (s.ops as f64 - base) / base.max(1.0) * 100.0)
        .fold(0.0f64, |a, d| if d.abs() > a.abs() { d } else { a });
    let errors: u64 = samples.iter().map(|s| s.errors).sum();
    out += &format!(
        "- WAL: largest {} MiB (limit `storage.wal_max_bytes` {} MiB): {}\n",
        mib(wal_max),
        mib(wal_limit),
        if wal_max < wal_limit {
            "met"
        } else {
            "NOT met"
        }
    );
    out += &format!(
        "- RSS: {} MiB in the first window, at most {} MiB ({:+.0}%; target within 20%)\n",
        mib(rss_first),
        mib(rss_max),
        (rss_max as f64 - rss_first as f64) / (rss_first.max(1) as f64) * 100.0
    );
    out += &format!(
        "- Throughput: first-minute mean {:.0} ops/s; the window furthest from it is {:+.0}% (target ±15%)\n- Errors: {errors}\n\n",
        base, worst
    );
    out += "| t (s) | ops/s | errors | WAL max (MiB) | DB (MiB) | RSS (MiB) | ops/s |\n|---:|---:|---:|---:|---:|---:|:---|\n";
    let peak = samples.iter().map(|s| s.ops).max().unwrap_or(1).max(1);
    for s in samples {
        let bar = "#".repeat((s.ops * 30 / peak) as usize);
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | `{bar}` |\n",
            s.at_s,
            s.ops,
            s.errors,
            mib(s.wal_max),
            mib(s.db),
            mib(s.rss)
        );
    }
    out + "\n" + END + "\n"
}

/// Puts `section` into `report` in place of an earlier soak section, or at its end.
pub fn splice(report: &str, section: &str) -> String {
    match (report.find(START), report.find(END)) {
        (Some(a), Some(b)) if b > a => {
            format!(
                "{}{}{}",
                &report[..a],
                section,
                &report[b + END.len()..].trim_start_matches('\n')
            )
        }
        _ => format!("{}\n\n{section}", report.trim_end()),
    }
}
