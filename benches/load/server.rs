//! The vault under test: the `guestvault` binary cargo built for this bench, run as a child
//! process on a fresh data dir, plus what `/proc` tells about it (peak RSS, CPU per thread).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guestvault::config::Config;

/// The binary cargo built alongside this bench (release for `cargo bench`).
pub const BINARY: &str = env!("CARGO_BIN_EXE_guestvault");
const BENCH_BUDGETS: [(&str, &str); 6] = [
    ("GUESTVAULT_BUDGETS_READS_PER_MIN", "60000000"),
    ("GUESTVAULT_BUDGETS_READS_BURST", "1000000"),
    ("GUESTVAULT_BUDGETS_SEARCHES_PER_MIN", "60000000"),
    ("GUESTVAULT_BUDGETS_SEARCHES_BURST", "1000000"),
    ("GUESTVAULT_BUDGETS_WRITES_PER_MIN", "60000000"),
    ("GUESTVAULT_BUDGETS_WRITES_BURST", "1000000"),
];
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A command for the vault binary with a clean environment: no inherited `GUESTVAULT_*`
/// setting, and the data dir's parent as working directory (so no stray `guestvault.toml`).
fn vault_command(work_dir: &Path) -> Command {
    let mut cmd = Command::new(BINARY);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GUESTVAULT_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(work_dir);
    cmd
}

/// `guestvault init --data-dir D`: keyring, token secret, database.
pub fn init(work_dir: &Path, data_dir: &Path) -> Config {
    init_with(work_dir, data_dir, &[])
}

/// [`init`] with extra `GUESTVAULT_*` settings (the PostgreSQL backend and its URL).
pub fn init_with(work_dir: &Path, data_dir: &Path, env: &[(String, String)]) -> Config {
    let out = vault_command(work_dir)
        .arg("init")
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("cannot run the guestvault binary");
    assert!(
        out.status.success(),
        "guestvault init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut config = Config::default();
    config.storage.data_dir = data_dir.to_owned();
    for (k, v) in env {
        match k.as_str() {
            "GUESTVAULT_STORAGE_BACKEND" => config.storage.backend = v.clone(),
            "GUESTVAULT_STORAGE_POSTGRES_URL" => config.storage.postgres_url = Some(v.clone()),
            _ => {}
        }
    }
    config
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[derive(Debug)]
pub struct Server {
    child: Child,
    pub pid: u32,
    pub base: String,
    pub cold_start: Duration,
    pub log_file: PathBuf,
}

impl Server {
    /// Starts `serve` and waits for `/readyz`; `cold_start` is spawn → first 200.
    pub async fn start(work_dir: &Path, data_dir: &Path, log_level: Option<&str>) -> Self {
        Self::start_with(work_dir, data_dir, log_level, &[], "server.log").await
    }

    /// [`start`](Self::start) with extra `GUESTVAULT_*` settings, logging to `log_name` in
    /// `work_dir`.
    pub async fn start_with(
        work_dir: &Path,
        data_dir: &Path,
        log_level: Option<&str>,
        env: &[(String, String)],
        log_name: &str,
    ) -> Self {
        let port = free_port();
        let log_file = work_dir.join(log_name);
        let log = std::fs::File::create(&log_file).unwrap();
        let mut cmd = vault_command(work_dir);
        cmd.arg("serve")
            .env("GUESTVAULT_STORAGE_DATA_DIR", data_dir)
            .env("GUESTVAULT_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            // Budgets on, but far above the load one token per role drives here (the budget
            // check still runs on every request, so its cost is measured).
            .envs(BENCH_BUDGETS.iter().map(|(k, v)| (*k, *v)))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(level) = log_level {
            cmd.env("GUESTVAULT_LOG_LEVEL", level);
        }
        let spawned = Instant::now();
        let mut child = cmd.spawn().expect("cannot start the guestvault server");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the server exited during start-up ({status}); its log:\n{}",
                    std::fs::read_to_string(&log_file).unwrap_or_default()
                );
            }
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                spawned.elapsed() < READY_TIMEOUT,
                "the server was not ready within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let cold_start = spawned.elapsed();
        Self {
            pid: child.id(),
            child,
            base,
            cold_start,
            log_file,
        }
    }

    /// Peak and current resident set size in bytes (`VmHWM`, `VmRSS`).
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        (kb("VmHWM:"), kb("VmRSS:"))
    }

    /// SIGTERM (graceful: drains requests, lets the writer commit), then waits.
    pub fn stop(mut self) -> Duration {
        let asked = Instant::now();
        let termed = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        if !termed {
            eprintln!("cannot send SIGTERM (no `kill` command?); killing the server");
            let _ = self.child.kill();
        }
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return asked.elapsed();
            }
            if asked.elapsed() > STOP_TIMEOUT {
                eprintln!("the server did not stop within {STOP_TIMEOUT:?}; killing it");
                let _ = self.child.kill();
                let _ = self.child.wait();
                return asked.elapsed();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// CPU time of a process: the total (which includes threads that have ended) and per thread
/// name (threads alive at the moment of the snapshot), in clock ticks.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    pub total: u64,
    pub by_thread: BTreeMap<String, u64>,
}

/// utime + stime from a `/proc/.../stat` line, and the thread or process name.
fn parse_stat(line: &str) -> Option<(String, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line[open + 1..close].to_string();
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

pub fn cpu_snapshot(pid: &str) -> CpuSnapshot {
    let mut snap = CpuSnapshot::default();
    if let Some((_, t)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
    {
        snap.total = t;
    }
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for entry in dir.flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if let Some((name, t)) = parse_stat(&stat) {
                *snap.by_thread.entry(name).or_default() += t;
            }
        }
    }
    snap
}

/// Bytes the process caused to be read from and written to storage (`/proc/<pid>/io`
/// `read_bytes`, `write_bytes`): WAL frames, checkpoints and the log file.
pub fn io_bytes(pid: &str) -> (u64, u64) {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let get = |key: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get("read_bytes:"), get("write_bytes:"))
}

/// Number of threads the process has now.
pub fn threads(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on every common Linux).
pub fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU used between two snapshots, in cores (1.0 = one core busy the whole time).
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    pub total: f64,
    pub by_thread: Vec<(String, f64)>,
}

pub fn cpu_use(before: &CpuSnapshot, after: &CpuSnapshot, secs: f64, hz: f64) -> CpuUse {
    let cores = |ticks: u64| ticks as f64 / hz / secs.max(1e-9);
    let mut by_thread: Vec<(String, f64)> = after
        .by_thread
        .iter()
        .map(|(name, t)| {
            let b = before.by_thread.get(name).copied().unwrap_or(0);
            (name.clone(), cores(t.saturating_sub(b)))
        })
        .filter(|(_, c)| *c >= 0.005)
        .collect();
    by_thread.sort_by(|a, b| b.1.total_cmp(&a.1));
    CpuUse {
        total: cores(after.total.saturating_sub(before.total)),
        by_thread,
    }
}
