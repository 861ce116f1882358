//! Building and running the server: `App::build(config)` loads policies and keys, opens the
//! database (refusing a keyring that does not match it), starts the writer and readers, and
//! binds the listener (port 0 picks a free port, which the tests use). While serving, a timer
//! signs an audit checkpoint every `audit.checkpoint_interval_secs` when there are new events,
//! and one more is signed at shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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
    checkpoint_interval: Duration,
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
    let keyring = Arc::new(Keyring::load(&keyring_file)?);
    let db = config.database_file();
    let conn = store::open_writer(&db, &config.storage.synchronous, keyring.fingerprint())
        .with_context(|| format!("cannot open database `{}`", db.display()))?;
    let hook = crate::audit::checkpoint::every_n_events(
        keyring.clone(),
        clock.clone(),
        config.audit.checkpoint_every,
    );
    let (writer, writer_thread) =
        Writer::start_with_hook(conn, config.storage.max_batch, Some(hook))?;
    let readers = Readers::open(&db, config.storage.readers)?;
    let vault = Vault::new(Arc::new(policies), keyring, writer, readers, clock);
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
            checkpoint_interval: Duration::from_secs(config.audit.checkpoint_interval_secs),
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

    /// Serves until `signal` completes, then drains in-flight requests, signs a last audit
    /// checkpoint and lets the writer commit what it holds before returning.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = app(self.state.clone(), self.max_body_bytes);
        let timer = tokio::spawn(checkpoint_timer(
            self.state.vault.clone(),
            self.checkpoint_interval,
        ));
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(signal)
            .await;
        // The timer holds a writer handle: stop it, or the writer thread would never end.
        timer.abort();
        let _ = timer.await;
        if let Err(e) = self.state.vault.checkpoint_now().await {
            tracing::error!(error = %e, "could not sign the shutdown audit checkpoint");
        }
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
