//! Building and running the server: `App::build(config)` loads policies and keys, opens the
//! database (refusing a keyring that does not match it), starts the writer and readers, and
//! binds the listener (port 0 picks a free port, which the tests use). While serving, a timer
//! signs an audit checkpoint every `audit.checkpoint_interval_secs` when there are new events
//! (and one more at shutdown), the retention sweeper runs, and the keyring file is watched.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::{app, AppState, ScrapeAccess};
use crate::policy::Policies;
use crate::service::Vault;
use crate::store;

#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: AppState,
    max_body_bytes: usize,
    edge: crate::serve::Edge,
    tls: Option<(crate::tls::Tls, crate::tls::Hangup)>,
    sweep_interval: Duration,
    checkpoint_interval: Duration,
    key_schedule: Option<crate::service::KeySchedule>,
    writer_thread: std::thread::JoinHandle<()>,
    /// Held while the server runs: one server per data dir, and no restore under it.
    _lock: std::fs::File,
}

/// Opens everything the vault needs except the listener (also used by offline CLI commands).
pub fn open_vault(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Vault, std::thread::JoinHandle<()>)> {
    open_vault_at(config, &config.database_file(), clock)
}

/// Like [`open_vault`] on another database file (restore stages one).
pub fn open_vault_at(
    config: &Config,
    db: &std::path::Path,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Vault, std::thread::JoinHandle<()>)> {
    // `Config::load` refuses an unknown backend already; a config built in code gets the same
    // answer.
    let location = match store::Backend::parse(&config.storage.backend) {
        Some(store::Backend::Sqlite) => store::Location::Sqlite {
            path: db.to_owned(),
            synchronous: config.storage.synchronous.clone(),
        },
        Some(store::Backend::Postgres) => store::Location::from_config(config)?,
        None => anyhow::bail!("config key `storage.backend`: must be `sqlite` or `postgres`"),
    };
    let sqlite = location.backend() == store::Backend::Sqlite;
    let policies = Policies::load(config.policies.dir.as_deref())?;
    let keyring_file = config.keyring_file();
    if !keyring_file.exists() {
        // After `demo`, the data is in ./demo-data: say so rather than send the user off to
        // create a second, empty vault.
        let demo = std::path::Path::new(crate::cli::DEMO_DATA_DIR);
        if demo.join("keyring.json").exists() && config.storage.data_dir != demo {
            anyhow::bail!(
                "no keyring at `{}`; the demo's vault is in `./{}`: set \
                 GUESTVAULT_STORAGE_DATA_DIR={} (or storage.data_dir) to work on it",
                keyring_file.display(),
                crate::cli::DEMO_DATA_DIR,
                crate::cli::DEMO_DATA_DIR,
            );
        }
        // A database without its keyring: `init` would make a new keyring that cannot open
        // it (and used to leave it behind). The keyring must come back from its backup.
        if sqlite && db.exists() {
            anyhow::bail!(
                "no keyring at `{}`, but `{}` holds a vault: restore `keyring.json` from its \
                 backup into the data dir (or set keys.keyring_file to where it is). Do not run \
                 `guestvault init`: a new keyring cannot open this database",
                keyring_file.display(),
                db.display()
            );
        }
        anyhow::bail!(
            "no keyring at `{}`: run `guestvault init --data-dir {}` first (or set keys.keyring_file)",
            keyring_file.display(),
            config.storage.data_dir.display()
        );
    }
    preflight(config, sqlite.then_some(db), &keyring_file)?;
    let key_source = crate::service::KeySource {
        passphrase: passphrase_for(config, &keyring_file)?,
        path: keyring_file.clone(),
    };
    let keyring = Arc::new(key_source.load()?);
    // The audit signing key never changes with KEK rotation, so the hook may keep this keyring.
    let hook = crate::audit::checkpoint::every_n_events(
        keyring.clone(),
        clock.clone(),
        config.audit.checkpoint_every,
    );
    let ledger = Arc::new(crate::ledger::ErasureLedger::new(
        config.storage.data_dir.join(crate::ledger::LEDGER_FILE),
    ));
    // Ledger lines written by a group are fsynced once, before that group commits.
    let barrier_ledger = ledger.clone();
    let barrier: store::CommitBarrier = Box::new(move || {
        barrier_ledger.sync().map_err(|e| match e {
            // Kept as an I/O error of the same kind, so readiness can say `disk_full`.
            crate::ledger::LedgerError::Io { ref source, .. } => {
                store::StoreError::Io(std::io::Error::new(source.kind(), e.to_string()))
            }
            e => store::StoreError::Other(e.to_string()),
        })
    });
    // PostgreSQL: the database says which KEK is active (the rotation gate), not the file.
    let mut in_force = None;
    let file_active = keyring.active_kek_version();
    let store::Started {
        writer,
        readers,
        writer_thread,
    } = location.start(
        keyring.fingerprint(),
        store::StartOptions {
            max_batch: config.storage.max_batch,
            readers: config.storage.readers,
            wal_max_bytes: config.storage.wal_max_bytes,
            hook: Some(hook),
            barrier: Some(barrier),
        },
        |conn| {
            probe_write(conn, &location)?;
            in_force =
                store::coordination::kek_in_force(conn, file_active, "start").map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read the active KEK from {}: {e}",
                        location.describe()
                    )
                })?;
            Ok(())
        },
    )?;
    let keyring = match in_force {
        Some(v) if v != file_active => {
            let mut k = key_source.load()?;
            k.activate(v).map_err(|_| {
                anyhow::anyhow!(
                    "the keyring `{}` lacks KEK v{v}, the vault's active KEK: copy the current \
                     keyring.json from another node (docs/storage.md, \"Coordination between nodes\")",
                    keyring_file.display()
                )
            })?;
            Arc::new(k)
        }
        _ => keyring,
    };
    let coordination = (location.backend() == store::Backend::Postgres).then(|| {
        crate::service::Coordination::new(location.clone(), &config.server.listen, in_force)
    });
    let vault = Vault::new(
        Arc::new(policies),
        keyring,
        key_source,
        ledger,
        writer,
        readers,
        clock,
    )
    .with_free_text_justification(config.access.allow_free_text_justification)
    .with_stay_limits(config.stays.clone())
    .with_re_ask_after_days(config.consent.re_ask_after_days)
    .with_verify_db(&location);
    let vault = match coordination {
        Some(c) => vault.with_coordination(c),
        None => vault,
    };
    Ok((vault, writer_thread))
}

/// Refuses a start that could not write: a read-only database, `-wal` or `-shm`, a data dir
/// that cannot hold the erasure ledger, a keyring that cannot be read (see
/// [`store::preflight`]).
fn preflight(
    config: &Config,
    db: Option<&std::path::Path>,
    keyring_file: &std::path::Path,
) -> anyhow::Result<()> {
    let ledger = config.storage.data_dir.join(crate::ledger::LEDGER_FILE);
    store::preflight::check_keyring(keyring_file)
        .and_then(|()| db.map_or(Ok(()), store::preflight::check_database_files))
        .and_then(|()| store::preflight::check_ledger(&config.storage.data_dir, &ledger))
        .map_err(anyhow::Error::msg)
}

/// One real write before serving (the readiness heartbeat), so a database that opens but
/// cannot be written (a read-only mount, a full disk) stops the start here, naming the file.
fn probe_write(conn: &store::Conn<'_>, db: &store::Location) -> anyhow::Result<()> {
    store::write_heartbeat(conn).map_err(|e| {
        let fault = match &e {
            store::StoreError::Sqlite(s) => store::Fault::of_sqlite(s),
            _ => None,
        }
        .unwrap_or(store::Fault::AuditUnavailable);
        anyhow::anyhow!(
            "cannot write the database `{}`: {} ({}; reason `{}`). Fix that, then start again",
            db.describe(),
            fault.describe(),
            e,
            fault.code()
        )
    })
}

/// The keyring passphrase, only if the keyring is sealed: from `keys.passphrase_file`
/// (`GUESTVAULT_KEYS_PASSPHRASE_FILE`, owner-only), else asked on the terminal. A keyring file
/// that group or others can read, or one sealed too weakly, is refused first.
pub fn passphrase_for(
    config: &Config,
    keyring_file: &std::path::Path,
) -> anyhow::Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
    // Permissions and the seal's strength are checked before any passphrase is read or asked.
    if !crate::crypto::Keyring::check_file(keyring_file)? {
        return Ok(None);
    }
    if let Some(file) = &config.keys.passphrase_file {
        return Ok(Some(crate::config::read_private_secret_file(
            "keys.passphrase_file",
            file,
        )?));
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "keyring `{}` is sealed: set keys.passphrase_file (GUESTVAULT_KEYS_PASSPHRASE_FILE)",
            keyring_file.display()
        );
    }
    let pass = rpassword::prompt_password("keyring passphrase: ")?;
    Ok(Some(zeroize::Zeroizing::new(pass.into_bytes())))
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let auth = Authenticator::from_config(&config)?;
        // Bad certificate files stop the start, naming their key.
        let tls = match crate::tls::Tls::from_config(&config.server)? {
            Some(tls) => Some((tls, crate::tls::hangup()?)),
            None => None,
        };
        let lock = crate::ops::lock_data_dir(&config.storage.data_dir)?;
        let (vault, writer_thread) = open_vault(&config, clock)?;
        // PostgreSQL: this node's row in `nodes` before it serves; a keyring without the
        // vault's active KEK stops the start here.
        vault
            .node_heartbeat()
            .await
            .context("cannot register this node in the database")?;
        let listener = TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on `{}` (config key server.listen)",
                    config.server.listen
                )
            })?;
        Ok(Self {
            listener,
            state: AppState {
                vault: Arc::new(vault),
                auth: Arc::new(auth),
                scrape: Arc::new(ScrapeAccess::from_config(&config.metrics)),
                limits: Arc::new(crate::http::limits::Limits::from_config(&config)),
                console: Arc::new(crate::console::Console::from_config(&config)),
            },
            max_body_bytes: config.server.max_body_bytes,
            edge: crate::serve::Edge::from_config(&config.server),
            tls,
            sweep_interval: Duration::from_secs(config.retention.sweep_interval_secs),
            checkpoint_interval: Duration::from_secs(config.audit.checkpoint_interval_secs),
            key_schedule: key_schedule_of(&config),
            writer_thread,
            _lock: lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` completes, then drains in-flight requests and lets the writer
    /// commit what it holds before returning.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let metrics = crate::metrics::install();
        let router = app(self.state.clone(), self.max_body_bytes);
        let mut tasks = vec![
            tokio::spawn(checkpoint_timer(
                (*self.state.vault).clone(),
                self.checkpoint_interval,
            )),
            tokio::spawn(watch_keyring((*self.state.vault).clone())),
            tokio::spawn(crate::http::limits::report_forever(self.state.clone())),
        ];
        if self.state.vault.node_id().is_some() {
            tasks.push(tokio::spawn(heartbeat_timer((*self.state.vault).clone())));
        }
        let acceptor = match self.tls {
            Some((tls, hangup)) => {
                tasks.push(tokio::spawn(crate::tls::reload_on_sighup(
                    tls.certs, hangup,
                )));
                Some(tls.acceptor)
            }
            None => None,
        };
        if let Some(handle) = metrics {
            tasks.push(tokio::spawn(metrics_upkeep(handle)));
        }
        if !self.sweep_interval.is_zero() {
            tasks.push(tokio::spawn(sweep_forever(
                (*self.state.vault).clone(),
                self.sweep_interval,
            )));
        }
        if let Some(schedule) = self.key_schedule {
            tasks.push(tokio::spawn(key_schedule_forever(
                (*self.state.vault).clone(),
                schedule,
            )));
        }
        let served = crate::serve::serve(self.listener, router, self.edge, acceptor, signal).await;
        // The background tasks hold writer handles: stop them, or the writer never ends.
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        // What was throttled since the last report is written now, before the last checkpoint.
        crate::http::limits::report_throttled(&self.state).await;
        if let Err(e) = self.state.vault.checkpoint_now().await {
            tracing::error!(error = %e, "could not sign the shutdown audit checkpoint");
        }
        // No rotation waits for a node that has stopped.
        self.state.vault.leave().await;
        served?;
        drop(self.state);
        let thread = self.writer_thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .ok();
        tracing::info!("stopped");
        Ok(())
    }
}

/// Signs a checkpoint every `interval` when there are events since the last one.
async fn checkpoint_timer(vault: Vault, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        match vault.checkpoint_now().await {
            Ok(Some(seq)) => tracing::debug!(seq, "audit checkpoint signed"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not sign the periodic audit checkpoint"),
        }
    }
}

/// PostgreSQL: this node's heartbeat every [`crate::service::HEARTBEAT_INTERVAL`], which also
/// switches it to a KEK the rotation gate activated.
async fn heartbeat_timer(vault: Vault) {
    let mut ticks = tokio::time::interval(crate::service::HEARTBEAT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate, and App::build has just beaten
    loop {
        ticks.tick().await;
        if let Err(e) = vault.node_heartbeat().await {
            tracing::warn!(error = %e, "node heartbeat failed (or this node lacks the vault's active KEK)");
        }
    }
}

/// Reloads the keyring when its file changes (a `guestvault keys rotate` or `retire` run by
/// another process), so new DEKs are wrapped under the new active KEK within seconds.
async fn watch_keyring(vault: Vault) {
    let path = vault.key_path().to_owned();
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = mtime(&path);
    let mut tick = tokio::time::interval(crate::service::KEYRING_POLL_INTERVAL);
    loop {
        tick.tick().await;
        let now = mtime(&path);
        if now != seen {
            seen = now;
            match vault.reload_keyring() {
                Ok(()) => tracing::info!(
                    active = vault.keys().active_kek_version(),
                    "keyring reloaded"
                ),
                Err(e) => tracing::warn!(error = %e, "keyring changed but could not be reloaded"),
            }
        }
    }
}

/// The background retention sweeper: one sweep every `interval` (PIPL Art. 47(1)).
async fn sweep_forever(vault: Vault, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let run_id = format!("retention-{}", uuid::Uuid::new_v4());
        match vault.retention_run(&run_id, false, |_| {}).await {
            Ok(r) => {
                crate::metrics::record_sweep("background", Some(&r));
                tracing::info!(
                    checked = r.guests_checked,
                    affected = r.guests_affected,
                    erased = r.guests_erased,
                    "retention sweep"
                );
            }
            // PostgreSQL: another node is sweeping; this turn is its.
            Err(crate::service::VaultError::Conflict(_)) => {
                tracing::info!("retention sweep skipped: another node is running one");
            }
            Err(e) => {
                crate::metrics::record_sweep("background", None);
                tracing::error!(error = %e, "retention sweep failed");
            }
        }
    }
}

/// `keys.rotate_every_days`; on PostgreSQL, a warning when it is off: an erasure there stays
/// readable in WAL archives and base backups until the KEK of its time is retired.
fn key_schedule_of(config: &Config) -> Option<crate::service::KeySchedule> {
    let schedule = crate::service::KeySchedule::from_config(&config.keys);
    if schedule.is_none()
        && store::Backend::parse(&config.storage.backend) == Some(store::Backend::Postgres)
    {
        tracing::warn!(
            "keys.rotate_every_days is 0: erasures are not final in PostgreSQL's WAL archives \
             and backups until the KEK in force is rotated and retired (`guestvault keys rotate`, \
             `keys retire`); set keys.rotate_every_days (e.g. 30) to schedule it"
        );
    }
    schedule
}

/// Scheduled KEK rotation and retirement (issue 14, requirement 6): one check every
/// [`crate::service::KEY_SCHEDULE_CHECK`]. With several nodes on one database this is the
/// job to run on one node at a time (the cluster's job lock goes around
/// `run_key_schedule`).
async fn key_schedule_forever(vault: Vault, schedule: crate::service::KeySchedule) {
    let mut tick = tokio::time::interval(crate::service::KEY_SCHEDULE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match vault.run_key_schedule(&schedule).await {
            Ok(o) => {
                if let Some(r) = &o.rotation {
                    tracing::info!(
                        version = r.target_version,
                        rewrapped = r.rewrapped,
                        "scheduled key rotation"
                    );
                }
                for v in &o.retired {
                    tracing::info!(version = v, "scheduled KEK retirement");
                }
            }
            Err(e) => tracing::error!(error = %e, "scheduled key rotation or retirement failed"),
        }
    }
}

/// Folds buffered histogram samples into their buckets, so memory stays bounded when nobody
/// scrapes for a while.
async fn metrics_upkeep(handle: &'static metrics_exporter_prometheus::PrometheusHandle) {
    let mut tick = tokio::time::interval(crate::metrics::UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
