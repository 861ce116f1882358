//! The harness's command line. `cargo bench` appends `--bench` to the arguments of a
//! `harness = false` target, so that flag is accepted and ignored.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Quick,
    Smoke,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Quick => "quick",
            Self::Smoke => "smoke",
        }
    }
}

/// The scenarios, in the order they run.
pub const SCENARIOS: [&str; 5] = ["create", "read", "search_read", "add_stay", "erasure"];

#[derive(Debug, Clone)]
pub struct Args {
    pub mode: Mode,
    pub guests: u64,
    pub seconds: u64,
    pub connections: usize,
    /// Unmeasured run before each measured one (connections warm, caches filled).
    pub warmup: Duration,
    /// Length of each raw baseline run.
    pub baseline: Duration,
    pub scenarios: Vec<String>,
    pub out: PathBuf,
    pub note: Option<String>,
    pub keep_data: bool,
    /// `log.level` for the server; `None` keeps the vault's default (`info`, one access-log
    /// line per request).
    pub server_log_level: Option<String>,
    /// The arguments as given (without cargo's `--bench`), for the report.
    pub given: Vec<String>,
    /// `--soak SECS`: one mixed-load run of SECS seconds instead of the scenarios.
    pub soak: Option<u64>,
    /// `--backend postgres`: the PostgreSQL run (its own section of BENCHMARKS.md).
    pub postgres: bool,
    /// `--nodes N` (PostgreSQL): vault nodes on the one database, 1 or 2.
    pub nodes: usize,
    /// `--postgres-url URL`: the server the run creates its database on (no database name).
    pub postgres_url: String,
    /// `--rounds N` (PostgreSQL): each scenario's targets measured N times, interleaved; the
    /// targets are judged on the median of the rounds.
    pub rounds: usize,
}

/// Where `--backend postgres` creates its database unless `--postgres-url` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";

pub const USAGE: &str = "\
usage: bench/run.sh [--quick|--smoke|--soak SECS] [--guests N] [--seconds S] [--connections C]
                    [--scenarios create,read,search_read,add_stay,erasure]
                    [--out FILE] [--note TEXT] [--server-log-level LEVEL] [--keep-data]
                    [--backend sqlite|postgres] [--nodes 1|2] [--rounds N] [--warmup SECS]
                    [--postgres-url URL]

  (default)      1,000,000 guests, 64 connections, 30 s per scenario -> BENCHMARKS.md
  --quick        100,000 guests                                      -> BENCHMARKS.md
  --smoke        200 guests, 8 connections, 2 s (CI)                 -> target/BENCHMARKS-smoke.md
  --soak SECS    mixed read/create/search/erasure for SECS s (100,000 guests unless --guests):
                 throughput per 10 s, WAL size and RSS over time -> a section of BENCHMARKS.md
  --out FILE     write the report here instead
  --note TEXT    a line of context for the report (e.g. what else the machine was doing)
  --keep-data    keep the temporary data dir (its path is printed)
  --backend postgres
                 a fresh database on the PostgreSQL server at --postgres-url (default
                 postgres://postgres@127.0.0.1:5432), PostgreSQL baselines, create, read,
                 search_read and erasure, the chain head's lock hold time -> the PostgreSQL
                 section of BENCHMARKS.md (the SQLite report around it is kept)
  --nodes 2      (postgres) two nodes on that database: each alone, then both behind the client
  --warmup SECS  unmeasured load before each measured phase (default: a tenth of the phase, 1 to
                 3 s; none with --smoke)
  --rounds N     (postgres) each scenario's targets N times over, interleaved (A, A+B, B, then
                 B, A+B, A, ...); the targets table takes each target's median round
  BENCH_NODE_X=v (postgres; environment) the nodes run with GUESTVAULT_X=v, to compare node
                 settings (e.g. BENCH_NODE_STORAGE_POSTGRES_WRITERS=4); listed in the report
Exits non-zero if any request errored.";

fn text(flag: &str, v: Option<String>) -> Result<String, String> {
    v.ok_or_else(|| format!("`{flag}` needs a value"))
}

/// A number; `1_000_000` and `1,000,000` are accepted.
fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = text(flag, v)?;
    v.replace(['_', ','], "")
        .parse()
        .map_err(|_| format!("`{flag}`: `{v}` is not a valid number"))
}

impl Args {
    pub fn parse(raw: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let given: Vec<String> = raw.into_iter().filter(|a| a != "--bench").collect();
        let mut mode = Mode::Full;
        let (mut guests, mut seconds, mut connections) = (None, None, None);
        let mut scenarios: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
        let mut out = None;
        let mut note = None;
        let mut keep_data = false;
        let mut server_log_level = None;
        let mut soak = None;
        let mut postgres = false;
        let mut nodes = 1usize;
        let mut rounds = 1usize;
        let mut warmup_secs: Option<u64> = None;
        let mut postgres_url = DEFAULT_POSTGRES_URL.to_string();
        let mut scenarios_given = false;
        let mut it = given.clone().into_iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => mode = Mode::Quick,
                "--smoke" => mode = Mode::Smoke,
                "--guests" => guests = Some(number::<u64>(&arg, it.next())?),
                "--seconds" => seconds = Some(number::<u64>(&arg, it.next())?),
                "--connections" => connections = Some(number::<usize>(&arg, it.next())?),
                "--out" => out = Some(PathBuf::from(text(&arg, it.next())?)),
                "--note" => note = Some(text(&arg, it.next())?),
                "--server-log-level" => server_log_level = Some(text(&arg, it.next())?),
                "--keep-data" => keep_data = true,
                "--soak" => soak = Some(number::<u64>(&arg, it.next())?),
                "--backend" => match text(&arg, it.next())?.as_str() {
                    "sqlite" => postgres = false,
                    "postgres" => postgres = true,
                    other => {
                        return Err(format!(
                            "`--backend`: `{other}` is not `sqlite` or `postgres`"
                        ))
                    }
                },
                "--nodes" => nodes = number::<usize>(&arg, it.next())?,
                "--rounds" => rounds = number::<usize>(&arg, it.next())?,
                "--warmup" => warmup_secs = Some(number::<u64>(&arg, it.next())?),
                "--postgres-url" => postgres_url = text(&arg, it.next())?,
                "--scenarios" => {
                    scenarios_given = true;
                    let list = text(&arg, it.next())?;
                    scenarios = list
                        .split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    if let Some(bad) = scenarios.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
                        return Err(format!("unknown scenario `{bad}`"));
                    }
                }
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let (g, s, c) = match mode {
            Mode::Full => (1_000_000, 30, 64),
            Mode::Quick => (100_000, 30, 64),
            Mode::Smoke => (200, 2, 8),
        };
        let g = if soak.is_some() { 100_000 } else { g };
        if !(1..=2).contains(&nodes) {
            return Err("--nodes must be 1 or 2".into());
        }
        if nodes > 1 && !postgres {
            return Err("--nodes needs --backend postgres (SQLite is one node)".into());
        }
        if !(1..=9).contains(&rounds) {
            return Err("--rounds must be between 1 and 9".into());
        }
        if rounds > 1 && !postgres {
            return Err("--rounds needs --backend postgres".into());
        }
        if postgres && soak.is_some() {
            return Err("--soak runs on SQLite only".into());
        }
        if postgres && !scenarios_given {
            // The scenarios issue 14 names; add_stay is in SQLite's report only.
            scenarios.retain(|s| s != "add_stay");
        }
        if soak == Some(0) {
            return Err("--soak must be positive".into());
        }
        let guests = guests.unwrap_or(g);
        let seconds = seconds.unwrap_or(s);
        let connections = connections.unwrap_or(c);
        if guests == 0 || seconds == 0 || connections == 0 {
            return Err("--guests, --seconds and --connections must be positive".into());
        }
        if guests >= 90_000_000 {
            return Err("--guests must be below 90,000,000 (unique mobile numbers)".into());
        }
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = out.unwrap_or_else(|| match mode {
            Mode::Smoke => manifest.join("target").join("BENCHMARKS-smoke.md"),
            _ => manifest.join("BENCHMARKS.md"),
        });
        let smoke = mode == Mode::Smoke;
        Ok(Self {
            mode,
            guests,
            seconds,
            connections,
            warmup: if let Some(w) = warmup_secs {
                Duration::from_secs(w)
            } else if smoke {
                Duration::ZERO
            } else {
                Duration::from_secs(seconds.clamp(1, 30) / 10).max(Duration::from_secs(1))
            },
            baseline: Duration::from_secs(if smoke { 1 } else { seconds.min(5) }),
            scenarios,
            out,
            note,
            keep_data,
            server_log_level,
            given,
            soak,
            postgres,
            nodes,
            rounds,
            postgres_url: postgres_url.trim_end_matches('/').to_string(),
        })
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    pub fn runs(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }
}
