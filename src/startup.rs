//! Building and running the server: `App::build(config)` loads policies and keys, opens the
//! database (refusing a keyring that does not match it), starts the writer and readers, and
//! binds the listener (port 0 picks a free port, which the tests use).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::Keyring;
use crate::http::{app, AppState};
use crate::policy::Policies;
use crate::service::Vault;
use crate::store::{self, Readers, Writer};

#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: AppState,
    max_body_bytes: usize,
    sweep_interval: std::time::Duration,
    writer_thread: std::thread::JoinHandle<()>,
}

/// Opens everything the vault needs except the listener (also used by offline CLI commands).
pub fn open_vault(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Vault, std::thread::JoinHandle<()>)> {
    let policies = Policies::load(config.policies.dir.as_deref())?;
    let keyring_file = config.keyring_file();
    if !keyring_file.exists() {
        anyhow::bail!(
            "no keyring at `{}`: run `guestvault init --data-dir {}` first (or set keys.keyring_file)",
            keyring_file.display(),
            config.storage.data_dir.display()
        );
    }
    let keyring = Keyring::load(&keyring_file)?;
    let db = config.database_file();
    let conn = store::open_writer(&db, &config.storage.synchronous, keyring.fingerprint())
        .with_context(|| format!("cannot open database `{}`", db.display()))?;
    let (writer, writer_thread) = Writer::start(conn, config.storage.max_batch)?;
    let readers = Readers::open(&db, config.storage.readers)?;
    let vault = Vault::new(
        Arc::new(policies),
        Arc::new(keyring),
        writer,
        readers,
        clock,
    );
    Ok((vault, writer_thread))
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let auth = Authenticator::from_config(&config)?;
        let (vault, writer_thread) = open_vault(&config, clock)?;
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
                vault,
                auth: Arc::new(auth),
            },
            max_body_bytes: config.server.max_body_bytes,
            sweep_interval: std::time::Duration::from_secs(config.retention.sweep_interval_secs),
            writer_thread,
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
        let router = app(self.state.clone(), self.max_body_bytes);
        let sweeper = (!self.sweep_interval.is_zero())
            .then(|| tokio::spawn(sweep_forever(self.state.vault.clone(), self.sweep_interval)));
        axum::serve(self.listener, router)
            .with_graceful_shutdown(signal)
            .await?;
        if let Some(s) = sweeper {
            s.abort();
        }
        drop(self.state);
        let thread = self.writer_thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .ok();
        tracing::info!("stopped");
        Ok(())
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
            Ok(r) => tracing::info!(
                checked = r.guests_checked,
                affected = r.guests_affected,
                erased = r.guests_erased,
                "retention sweep"
            ),
            Err(e) => tracing::error!(error = %e, "retention sweep failed"),
        }
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
