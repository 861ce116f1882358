//! The fault suite (issue 13), run against the real `guestvault` binary as a child process so
//! a fault can be as hard as an operator's: `kill -9`, SIGTERM, a full or read-only file system
//! (a small tmpfs: tests run as root in CI; where `mount` is not permitted those tests print
//! why and pass without running), files left read-only, a missing or unreadable keyring.
//! Each test is bounded (seconds, not minutes).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guestvault::config::Config;
use reqwest::StatusCode;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_guestvault");
const READY_WITHIN: Duration = Duration::from_secs(30);
/// A refused start must end by then (the reported bug looped forever).
const REFUSED_WITHIN: Duration = Duration::from_secs(20);

/// Mobile numbers unique across every test of this process.
static NEXT_MOBILE: AtomicU64 = AtomicU64::new(0);

/// The binary in `cwd` with no inherited `GUESTVAULT_*` setting. `FAULTS_BIN` runs the suite
/// against another build (how it was checked that each test fails on the code before issue 13).
fn command(cwd: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("FAULTS_BIN").unwrap_or_else(|_| BIN.to_string()));
    cmd.current_dir(cwd).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("GUESTVAULT_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn config_for(data_dir: &Path) -> Config {
    let mut c = Config::default();
    c.storage.data_dir = data_dir.to_owned();
    c
}

fn init(data_dir: &Path) -> Config {
    let c = config_for(data_dir);
    guestvault::cli::init(&c).unwrap();
    c
}

/// [`init`] on the backend under test (a PostgreSQL database of its own when the suite runs
/// on PostgreSQL), for the faults that are not about SQLite's files: kills and signals.
fn init_on_test_backend(data_dir: &Path) -> Config {
    let c = crate::helpers::test_config(data_dir);
    guestvault::cli::init(&c).unwrap();
    c
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Server {
    child: Child,
    base: String,
    log: PathBuf,
    config: Config,
    client: reqwest::Client,
    _logdir: tempfile::TempDir,
}

impl Server {
    /// `serve` on `config`'s storage, once `/readyz` answers 200.
    async fn start(config: &Config) -> Self {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let mut child = crate::helpers::storage_env(&mut command(logdir.path()), config)
            .arg("serve")
            .env("GUESTVAULT_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the server exited during start-up ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status() == StatusCode::OK {
                    break;
                }
            }
            assert!(started.elapsed() < READY_WITHIN, "not ready in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            base,
            log,
            config: config.clone(),
            client,
            _logdir: logdir,
        }
    }

    fn token(&self, role: &str) -> String {
        guestvault::auth::mint_with_config(
            &self.config,
            role,
            &format!("faults-{role}"),
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str, token: &str, purpose: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("X-Purpose", purpose)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn readyz(&self) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls `/readyz` until it answers `want` (readiness is cached for a second).
    async fn readyz_becomes(&self, want: StatusCode) -> Value {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.readyz().await;
            if status == want {
                return body;
            }
            assert!(
                Instant::now() < until,
                "/readyz stayed {status} {body}, wanted {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

/// What [`create`] returns for a write refused because its audit event cannot commit.
const AUDIT_UNAVAILABLE: &str = "503 Service Unavailable \"audit_unavailable\"";

/// One create; `Ok(id)` only when acknowledged (201).
async fn create(client: &reqwest::Client, base: &str, token: &str) -> Result<String, String> {
    let i = NEXT_MOBILE.fetch_add(1, Ordering::Relaxed);
    let body = json!({"fields": {"mobile": format!("137{:08}", i), "full_name": "李四"}});
    let r = client
        .post(format!("{base}/v1/guests"))
        .bearer_auth(token)
        .header("X-Purpose", "check_in")
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| format!("body: {e}"))?;
    if status == StatusCode::CREATED {
        Ok(body["guest_id"].as_str().unwrap().to_string())
    } else {
        Err(format!("{status} {}", body["code"]))
    }
}

/// Creates on `tasks` connections until `stop`; the acknowledged ids and every failure.
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    failed: Arc<Mutex<Vec<(Instant, String)>>>,
    answered_after: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(server: &Server, tasks: usize) -> Self {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let answered_after = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let token = server.token("pms");
        let handles = (0..tasks)
            .map(|_| {
                let (acked, failed, answered, stop) = (
                    acked.clone(),
                    failed.clone(),
                    answered_after.clone(),
                    stop.clone(),
                );
                let (client, base, token) =
                    (server.client.clone(), server.base.clone(), token.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        match create(&client, &base, &token).await {
                            Ok(id) => {
                                acked.lock().unwrap().push(id);
                                answered.lock().unwrap().push(Instant::now());
                            }
                            Err(e) => {
                                let transport = e.starts_with("transport");
                                failed.lock().unwrap().push((Instant::now(), e));
                                if transport {
                                    return;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            acked,
            failed,
            answered_after,
            stop,
            tasks: handles,
        }
    }

    async fn finish(self) -> (Vec<String>, Vec<(Instant, String)>, Vec<Instant>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            take(&self.acked),
            take(&self.failed),
            take(&self.answered_after),
        )
    }
}

fn take<T>(m: &Mutex<Vec<T>>) -> Vec<T> {
    std::mem::take(&mut *m.lock().unwrap())
}

/// Ids of `ids` missing from the database, and the number of audit events verified (chain and
/// signed checkpoints); panics if the trail does not verify.
fn check_data_dir(config: &Config, ids: &[String]) -> (Vec<String>, u64) {
    let mut missing = Vec::new();
    for id in ids {
        let n = crate::helpers::sql::rows_on(
            config,
            "SELECT count(*) FROM guests WHERE guest_id = ?1",
            &[id],
        );
        if n[0][0].as_deref() != Some("1") {
            missing.push(id.clone());
        }
    }
    let keyring = guestvault::service::KeySource {
        path: config.keyring_file(),
        passphrase: None,
    }
    .load()
    .unwrap();
    let v = crate::helpers::with_store(config, |conn| {
        guestvault::audit::checkpoint::verify_store(conn, keyring.audit_public_key()).unwrap()
    });
    assert_eq!(v.first_bad_seq, None, "the audit trail does not verify");
    (missing, v.events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_write_load_loses_no_acknowledged_write_in_five_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_on_test_backend(dir.path());
    let mut all = Vec::new();
    let mut events = 0;
    for round in 0..5 {
        let server = Server::start(&config).await;
        let load = Load::start(&server, 24);
        tokio::time::sleep(Duration::from_millis(600 + 100 * round)).await;
        server.kill9();
        let (acked, _, _) = load.finish().await;
        assert!(!acked.is_empty(), "round {round}: nothing was acknowledged");
        all.extend(acked);
        let (missing, verified) = check_data_dir(&config, &all);
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} acknowledged writes lost",
            missing.len(),
            all.len()
        );
        assert!(verified >= events, "the trail shrank");
        events = verified;
    }
    eprintln!(
        "5 rounds of kill -9: {} acknowledged writes, all present; {events} audit events verify",
        all.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_rotation_resumes_without_an_extra_kek_version() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_on_test_backend(dir.path());
    let server = Server::start(&config).await;
    let load = Load::start(&server, 32);
    let until = Instant::now() + Duration::from_secs(30);
    while load.acked.lock().unwrap().len() < 5000 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (acked, _, _) = load.finish().await;
    let admin = server.token("admin");
    let r = server
        .client
        .post(format!("{}/v1/admin/keys/rotate", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Killed as soon as the rotation has rewrapped something, or at once if it already ended.
    let stage = loop {
        let (_, s) = server.get("/v1/admin/keys", &admin, "administration").await;
        let done = s["rotation"]["done"].as_u64().unwrap_or(0);
        if s["rotation"]["running"] == false {
            break format!("after it ended ({done} rewrapped)");
        }
        if done > 0 {
            break format!("mid-way ({done} of {} rewrapped)", s["rotation"]["total"]);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    server.kill9();
    eprintln!("killed the rotation {stage}");
    let server = Server::start(&config).await;
    let r = server
        .client
        .post(format!("{}/v1/admin/keys/rotate", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let (_, s) = server.get("/v1/admin/keys", &admin, "administration").await;
        if s["rotation"]["running"] == false && s["rotation"]["target_version"].as_u64() > Some(0) {
            break s;
        }
        assert!(Instant::now() < until, "the rerun did not end: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["rotation"]["error"], Value::Null, "{status}");
    let versions: Vec<u64> = status["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    // Killed mid-way, the rerun resumes the rotation to v2: a v3 would be an extra version.
    // (Had the first rotation ended before the kill, the rerun is a new rotation, to v3.)
    let expected: Vec<u64> = if stage.starts_with("mid") {
        vec![1, 2]
    } else {
        vec![1, 2, 3]
    };
    assert_eq!(versions, expected, "{status}");
    let active = status["active_version"].as_u64().unwrap();
    for v in status["versions"].as_array().unwrap() {
        let deks = v["deks"].as_u64().unwrap();
        if v["version"].as_u64() != Some(active) {
            assert_eq!(deks, 0, "DEKs left under an old KEK: {status}");
        }
    }
    server.kill9();
    let (missing, _) = check_data_dir(&config, &acked);
    assert!(missing.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_answers_the_requests_in_flight_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = init_on_test_backend(dir.path());
    let mut server = Server::start(&config).await;
    let load = Load::start(&server, 32);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let signalled = Instant::now();
    server.sigterm();
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < until,
            "the server did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (acked, failed, answered) = load.finish().await;
    assert!(status.success(), "exit {status}:\n{}", server.log());
    // Requests in flight at the signal were answered, not cut off.
    let after = answered.iter().filter(|t| **t >= signalled).count();
    assert!(after > 0, "no request was answered after the signal");
    let refused: Vec<_> = failed
        .iter()
        .filter(|(_, e)| !e.starts_with("transport"))
        .collect();
    assert!(
        refused.is_empty(),
        "requests answered with an error: {refused:?}"
    );
    // Each connection may lose at most the one request it sent as the listener closed.
    assert!(failed.len() <= 32, "{} requests failed", failed.len());
    let (missing, _) = check_data_dir(&config, &acked);
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost",
        missing.len()
    );
}

/// A tmpfs of `size` (e.g. `"8m"`) mounted on a fresh temp dir, unmounted on drop; `None`
/// (with a message) where `mount` is not permitted.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root and mount rights)");
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(ok.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Grows `filler` until its file system has no byte left (again: space the vault frees, such
/// as a truncated WAL, is taken back, as on a disk that other writers keep full).
fn fill(filler: &Path) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(filler)
        .unwrap();
    let block = vec![0xA5u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_not_ready_with_disk_full_and_recovers_without_a_restart() {
    let Some(fs) = Tmpfs::mount("24m") else {
        return;
    };
    let data = fs.path().join("data");
    let config = init(&data);
    let server = Server::start(&config).await;
    let pms = server.token("pms");
    let mut acked = Vec::new();
    for _ in 0..20 {
        acked.push(create(&server.client, &server.base, &pms).await.unwrap());
    }
    let filler = fs.path().join("filler");
    fill(&filler);
    // Every write fails now, once the WAL has used up the space it already had.
    let mut refused = None;
    for _ in 0..3000 {
        match create(&server.client, &server.base, &pms).await {
            Ok(id) => acked.push(id),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        fill(&filler);
    }
    let refused = refused.expect("nothing failed on a full disk");
    // The create's transaction carries its audit event (DESIGN.md principle 1): that event
    // is what could not be written.
    assert_eq!(refused, AUDIT_UNAVAILABLE, "create on a full disk");
    fill(&filler);
    let again = create(&server.client, &server.base, &pms).await;
    assert_eq!(again, Err(AUDIT_UNAVAILABLE.to_string()), "a second create");
    // Reads too: their audit event cannot commit. A read may still be answered when its
    // event fits in WAL space the file already had (SQLite reuses a reset WAL's frames from
    // its start, which takes no new block): then the event must be durable, which the check
    // after the kill -9 below counts. Sooner or later the reads meet the full disk.
    let mut read_while_full = 0;
    let body = loop {
        fill(&filler);
        let (status, body) = server
            .get(
                &format!("/v1/guests/{}", acked[0]),
                &server.token("front_desk"),
                "check_in",
            )
            .await;
        if status == StatusCode::OK {
            read_while_full += 1;
            assert!(read_while_full < 50, "reads kept succeeding on a full disk");
            continue;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        break body;
    };
    assert_eq!(body["code"], "audit_unavailable", "{body}");
    let until = Instant::now() + Duration::from_secs(10);
    let body = loop {
        fill(&filler);
        let (status, body) = server.readyz().await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(
            Instant::now() < until,
            "/readyz stayed {status} on a full disk"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["reason"], "disk_full", "{body}");
    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("guestvault_ready{reason=\"disk_full\"} 1"),
        "{metrics}"
    );

    std::fs::remove_file(&filler).unwrap();
    server.readyz_becomes(StatusCode::OK).await;
    acked.push(create(&server.client, &server.base, &pms).await.unwrap());
    let (status, _) = server
        .get(
            &format!("/v1/guests/{}", acked[0]),
            &server.token("front_desk"),
            "check_in",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.kill9();
    let (missing, _) = check_data_dir(&config, &acked);
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    // No access without audit: every read answered, on the full disk or after it, left its
    // allowed `guest.read` event.
    let reads = crate::helpers::sql::rows_on(
        &config,
        "SELECT count(*) FROM audit_events WHERE action = 'guest.read' AND guest_id = ?1 \
         AND outcome = 'allowed'",
        &[&acked[0]],
    );
    assert_eq!(
        reads[0][0].as_deref(),
        Some((read_while_full + 1).to_string().as_str()),
        "{read_while_full} reads answered on the full disk"
    );
}

/// A small ext4 file system on a loop device (an image file in a temp dir), mounted with
/// `errors=remount-ro` as a data disk usually is; unmounted on drop. `None` (with a message)
/// where `mkfs.ext4` or a loop mount is not available. Unlike a tmpfs, ext4 can turn
/// read-only under open files (a remount cannot: Linux refuses `remount,ro` with `EBUSY`
/// while a file is open for writing, which the server's always are) and honours the
/// immutable flag on files already open.
struct Ext4 {
    dir: tempfile::TempDir,
}

impl Ext4 {
    fn mount(size_mb: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(size_mb << 20)
            .unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let quiet = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let ok = quiet(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))
            && quiet(
                Command::new("mount")
                    .args(["-o", "loop,errors=remount-ro"])
                    .arg(&image)
                    .arg(dir.path().join("mnt")),
            );
        if !ok {
            eprintln!("SKIPPED: cannot make and loop-mount an ext4 image here (needs root, mkfs.ext4 and loop devices)");
            return None;
        }
        let fs = Self { dir };
        chmod(&fs.path(), 0o700);
        Some(fs)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn image(&self) -> PathBuf {
        self.dir.path().join("fs.img")
    }

    /// `/sys/fs/ext4/<loopN>`: the kernel's knobs for this file system.
    fn sysfs(&self) -> PathBuf {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(self.path())
            .output()
            .unwrap();
        let source = String::from_utf8(out.stdout).unwrap();
        let dev = Path::new(source.trim()).file_name().unwrap().to_owned();
        Path::new("/sys/fs/ext4").join(dev)
    }

    fn umount(&self) {
        let ok = Command::new("umount").arg(self.path()).status().unwrap();
        assert!(ok.success(), "umount");
    }

    /// Checks the unmounted image (as an operator would after an error) and mounts it again.
    fn fsck_and_mount(&self) {
        let fsck = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(self.image())
            .output()
            .unwrap();
        // 0: clean, 1: errors corrected (the error flag that was raised, for one).
        assert!(
            matches!(fsck.status.code(), Some(0 | 1)),
            "e2fsck: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        let ok = Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(self.image())
            .arg(self.path())
            .status()
            .unwrap();
        assert!(ok.success(), "mount after fsck");
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn chattr(flag: &str, files: &[PathBuf]) {
    let ok = Command::new("chattr")
        .arg(flag)
        .args(files)
        .status()
        .unwrap();
    assert!(ok.success(), "chattr {flag}");
}

async fn metrics(server: &Server) -> String {
    server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Creates and reads refused with `audit_unavailable`, `/readyz` 503 `storage_read_only` and
/// the metric saying so: what a server whose storage turned read-only must answer.
async fn assert_read_only_answers(server: &Server, guest: &str) {
    let pms = server.token("pms");
    for _ in 0..2 {
        let refused = create(&server.client, &server.base, &pms).await;
        assert_eq!(refused, Err(AUDIT_UNAVAILABLE.to_string()), "create");
    }
    let (status, body) = server
        .get(
            &format!("/v1/guests/{guest}"),
            &server.token("front_desk"),
            "check_in",
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "read: {body}");
    assert_eq!(body["code"], "audit_unavailable", "{body}");
    let body = server.readyz_becomes(StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["reason"], "storage_read_only", "{body}");
    let metrics = metrics(server).await;
    assert!(
        metrics.contains("guestvault_ready{reason=\"storage_read_only\"} 1"),
        "{metrics}"
    );
}

/// The file system turns read-only under the running server, as ext4 does by itself after an
/// I/O error with `errors=remount-ro` (triggered here through the kernel's own
/// `trigger_fs_error` knob, which runs the same error path). Such a file system does not come
/// back read-write while mounted (its journal is aborted; `mount -o remount,rw` is refused),
/// so recovery is a restart after `umount` and `e2fsck`: nothing acknowledged is lost.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_system_turning_read_only_at_runtime_is_not_ready_with_storage_read_only() {
    let Some(fs) = Ext4::mount(64) else {
        return;
    };
    let trigger = fs.sysfs().join("trigger_fs_error");
    if !trigger.exists() {
        eprintln!("SKIPPED: no {} on this kernel", trigger.display());
        return;
    }
    let data = fs.path().join("data");
    let config = init(&data);
    let server = Server::start(&config).await;
    let pms = server.token("pms");
    let mut acked = Vec::new();
    for _ in 0..20 {
        acked.push(create(&server.client, &server.base, &pms).await.unwrap());
    }
    std::fs::write(&trigger, "guestvault fault suite").unwrap();
    let probe = std::fs::write(fs.path().join("probe"), b"x").unwrap_err();
    assert_eq!(
        probe.kind(),
        std::io::ErrorKind::ReadOnlyFilesystem,
        "the kernel did not remount read-only: {probe}"
    );
    assert_read_only_answers(&server, &acked[0]).await;
    assert!(
        server.log().contains("group commit failed"),
        "{}",
        server.log()
    );

    server.kill9();
    fs.umount();
    fs.fsck_and_mount();
    let server = Server::start(&config).await;
    acked.push(create(&server.client, &server.base, &pms).await.unwrap());
    let (status, _) = server
        .get(
            &format!("/v1/guests/{}", acked[0]),
            &server.token("front_desk"),
            "check_in",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.kill9();
    let (missing, _) = check_data_dir(&config, &acked);
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
}

/// The database and its WAL become immutable (`chattr +i`) under the running server: writes
/// through the files it already has open fail (`EPERM`), which is what a database that has
/// lost its write permission looks like to the process holding it. Unlike a file system gone
/// read-only, this is undone while the server runs (`chattr -i`), and the server recovers
/// without a restart. The `-shm` file is left alone: it is mapped, and a write fault on an
/// immutable mapping is a SIGBUS, not an error SQLite could report.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_made_immutable_at_runtime_is_not_ready_and_recovers_without_a_restart() {
    let Some(fs) = Ext4::mount(64) else {
        return;
    };
    let data = fs.path().join("data");
    let config = init(&data);
    let server = Server::start(&config).await;
    let pms = server.token("pms");
    let mut acked = Vec::new();
    for _ in 0..20 {
        acked.push(create(&server.client, &server.base, &pms).await.unwrap());
    }
    let db = config.database_file();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    assert!(wal.exists(), "no WAL beside {}", db.display());
    let files = [db, wal];
    chattr("+i", &files);
    assert_read_only_answers(&server, &acked[0]).await;

    chattr("-i", &files);
    server.readyz_becomes(StatusCode::OK).await;
    acked.push(create(&server.client, &server.base, &pms).await.unwrap());
    let (status, _) = server
        .get(
            &format!("/v1/guests/{}", acked[0]),
            &server.token("front_desk"),
            "check_in",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics(&server)
        .await
        .contains("guestvault_ready{reason=\"ok\"} 1"));
    server.kill9();
    let (missing, _) = check_data_dir(&config, &acked);
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
}

/// `serve` that must be refused: non-zero exit within [`REFUSED_WITHIN`]; its stderr.
fn refused_start(data_dir: &Path) -> String {
    let logdir = tempfile::tempdir().unwrap();
    let err = logdir.path().join("stderr");
    let mut child = command(logdir.path())
        .arg("serve")
        .env("GUESTVAULT_STORAGE_DATA_DIR", data_dir)
        .env(
            "GUESTVAULT_SERVER_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > REFUSED_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the start was not refused within {REFUSED_WITHIN:?}:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(!status.success(), "the start succeeded:\n{stderr}");
    stderr
}

#[cfg(unix)]
fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
#[test]
fn a_read_only_database_wal_or_shm_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = init(dir.path());
    let db = config.database_file();
    for suffix in ["-shm", "-wal", ""] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        if !file.exists() {
            // What a crashed server on read-only media leaves behind.
            std::fs::write(&file, vec![0u8; if suffix == "-shm" { 32768 } else { 0 }]).unwrap();
        }
        chmod(&file, 0o444);
        let stderr = refused_start(dir.path());
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(stderr.contains("chmod 600"), "{stderr}");
        chmod(&file, 0o600);
        if suffix == "-shm" {
            std::fs::remove_file(&file).unwrap();
        }
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mount_stops_the_start_naming_the_file() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let data = fs.path().join("data");
    let config = init(&data);
    fs.remount("ro");
    let stderr = refused_start(&data);
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert!(
        stderr.contains("remount its file system read-write"),
        "{stderr}"
    );
    fs.remount("rw");
    Server::start(&config).await.kill9();
}

#[cfg(unix)]
#[test]
fn a_data_dir_that_cannot_hold_the_erasure_ledger_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let ledger = dir.path().join(guestvault::ledger::LEDGER_FILE);
    std::fs::write(&ledger, b"").unwrap();
    chmod(&ledger, 0o444);
    let stderr = refused_start(dir.path());
    assert!(stderr.contains("erasure ledger"), "{stderr}");
    assert!(stderr.contains(&ledger.display().to_string()), "{stderr}");
    chmod(&ledger, 0o600);
    std::fs::remove_file(&ledger).unwrap();
    // A directory in its place cannot be appended to, even by root.
    std::fs::create_dir(&ledger).unwrap();
    let stderr = refused_start(dir.path());
    assert!(
        stderr.contains("cannot hold the erasure ledger"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn a_missing_or_unreadable_keyring_stops_the_start_and_init_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = init(dir.path());
    let keyring = config.keyring_file();
    let saved = std::fs::read(&keyring).unwrap();
    std::fs::remove_file(&keyring).unwrap();
    let stderr = refused_start(dir.path());
    assert!(stderr.contains("keyring.json` from its backup"), "{stderr}");
    assert!(stderr.contains("Do not run `guestvault init`"), "{stderr}");

    // `init` on this data dir refuses and writes nothing (it used to leave a wrong keyring).
    let listing = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing(dir.path());
    let db_before = std::fs::read(config.database_file()).unwrap();
    let out = command(dir.path())
        .arg("init")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("already holds a vault"), "{stderr}");
    assert!(stderr.contains("from its backup"), "{stderr}");
    assert_eq!(listing(dir.path()), before, "init wrote a file");
    assert_eq!(std::fs::read(config.database_file()).unwrap(), db_before);

    // Unreadable: not a file, or without its owner-read bit (refused even for root).
    std::fs::create_dir(&keyring).unwrap();
    let stderr = refused_start(dir.path());
    assert!(stderr.contains(&keyring.display().to_string()), "{stderr}");
    assert!(stderr.contains("not a file"), "{stderr}");
    std::fs::remove_dir(&keyring).unwrap();
    std::fs::write(&keyring, &saved).unwrap();
    chmod(&keyring, 0o200);
    let stderr = refused_start(dir.path());
    assert!(stderr.contains("not readable"), "{stderr}");
    chmod(&keyring, 0o600);
}

/// Issue 13: a background rotation that fails (keyring unreadable) used to show nothing but
/// its 202. Now `GET /v1/admin/keys`, the audit trail, the metrics and `/readyz` say so, and
/// all clear once the keyring is back.
#[tokio::test]
async fn a_failed_background_rotation_is_reported_and_readiness_recovers() {
    use crate::helpers::spawn_app;
    use reqwest::Method;
    let app = spawn_app().await;
    app.create_guest(json!({"mobile": "13900002222"})).await;
    let keyring = app.config.keyring_file();
    let saved = std::fs::read(&keyring).unwrap();
    std::fs::remove_file(&keyring).unwrap();
    std::fs::create_dir(&keyring).unwrap();
    let r = app
        .call(
            Method::POST,
            "/v1/admin/keys/rotate",
            Some("admin"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let s = app
            .call(Method::GET, "/v1/admin/keys", Some("admin"), None, None)
            .await
            .body;
        if s["rotation"]["running"] == false && !s["rotation"]["error"].is_null() {
            break s;
        }
        assert!(Instant::now() < until, "no rotation error reported: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        status["rotation"]["error"]["code"], "keyring_unreadable",
        "{status}"
    );
    assert_eq!(status["active_version"], 1);
    let row = app.sql_rows(
        "SELECT outcome, reason FROM audit_events WHERE action = 'admin.keys' ORDER BY seq DESC LIMIT 1",
        &[],
    );
    let (outcome, reason) = (row[0][0].clone().unwrap(), row[0][1].clone().unwrap());
    assert_eq!(outcome, "error");
    assert_eq!(reason, "key rotation failed: keyring_unreadable");
    let r = app.call(Method::GET, "/readyz", None, None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.body["reason"], "keyring_unreadable");
    let metrics = app
        .call(Method::GET, "/metrics", None, None, None)
        .await
        .text;
    assert!(
        metrics.contains("guestvault_key_rotation_failures_total"),
        "{metrics}"
    );

    std::fs::remove_dir(&keyring).unwrap();
    std::fs::write(&keyring, saved).unwrap();
    #[cfg(unix)]
    chmod(&keyring, 0o600);
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let r = app.call(Method::GET, "/readyz", None, None, None).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < until, "still not ready: {}", r.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = app
        .call(
            Method::POST,
            "/v1/admin/keys/rotate",
            Some("admin"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = app
            .call(Method::GET, "/v1/admin/keys", Some("admin"), None, None)
            .await
            .body;
        if s["active_version"] == 2 && s["rotation"]["running"] == false {
            assert!(s["rotation"]["error"].is_null(), "{s}");
            break;
        }
        assert!(Instant::now() < until, "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Crypto-shredding under load: with reads and writes never pausing, the erased guest's
/// wrapped key leaves every file of the data dir (the WAL included) within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erasure_under_concurrent_load_leaves_the_wal_within_a_second() {
    use crate::helpers::spawn_app;
    use reqwest::Method;
    if crate::helpers::skip_on_postgres(
        "scans the files of the data dir, the SQLite WAL included, for the erased key's bytes; \
         on PostgreSQL the database is not in the data dir",
    ) {
        return;
    }
    let app = Arc::new(spawn_app().await);
    let mut others = Vec::new();
    for i in 0..20 {
        others.push(
            app.create_guest(json!({"mobile": format!("1360000{i:04}")}))
                .await,
        );
    }
    let id = app.create_guest(json!({"mobile": "13900003333"})).await;
    let dek: Vec<u8> = app
        .db()
        .query_row(
            "SELECT wrapped_dek FROM guest_keys WHERE guest_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    let on_disk = |dir: &Path| {
        std::fs::read_dir(dir).unwrap().any(|e| {
            let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
            bytes.windows(dek.len()).any(|w| w == &dek[..])
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (app, stop, others) = (app.clone(), stop.clone(), others.clone());
        tasks.push(tokio::spawn(async move {
            let (reader, writer) = (app.token("front_desk"), app.token("pms"));
            let mut i = t;
            while !stop.load(Ordering::SeqCst) {
                if i % 2 == 0 {
                    let _ = create(&app.client, &app.addr, &writer).await;
                } else {
                    let _ = app
                        .client
                        .get(format!(
                            "{}/v1/guests/{}",
                            app.addr,
                            others[i % others.len()]
                        ))
                        .bearer_auth(&reader)
                        .header("X-Purpose", "check_in")
                        .send()
                        .await;
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/erasure"),
            Some("dsr_officer"),
            Some("data_subject_request"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.body["status"], "completed", "{}", r.text);
    let erased = Instant::now();
    let mut gone = false;
    while erased.elapsed() < Duration::from_secs(1) {
        if !on_disk(app.dir.path()) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = erased.elapsed();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        gone,
        "the wrapped key was still on disk 1 s after the erasure"
    );
    eprintln!("wrapped key gone from disk {took:?} after the erasure, under load");
}
