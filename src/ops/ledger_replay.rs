//! `guestvault ledger replay`: the erasure ledger re-applied to the configured database on its
//! own, after a restore this vault did not run (PostgreSQL's `pg_restore` or a point-in-time
//! recovery; a SQLite file put back by hand). `restore` does the same inside its staging.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::Serialize;

use super::ledger_path;
use crate::config::Config;

/// What `guestvault ledger replay` did.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerReplayReport {
    /// The ledger files read, each with its number of entries.
    pub ledgers: Vec<(PathBuf, usize)>,
    pub counts: crate::service::ReplayCounts,
    pub guests_swept: u64,
    /// DEKs wrapped under KEK versions this keyring no longer holds (a restore point older
    /// than a retirement): those guests cannot be read until the old keyring is back.
    pub deks_under_missing_keks: u64,
    pub audit_events_verified: u64,
}

/// Re-applies every erasure and consent withdrawal recorded in `ledgers` (default: this data
/// dir's own) to the configured database, sweeps what expired meanwhile, records the replay
/// in the audit trail and verifies the trail (chain and signed checkpoints). Safe to repeat:
/// an entry already in force changes nothing. For the database restored by PostgreSQL's own
/// tools (`pg_restore`, a point-in-time recovery), run it before the nodes serve, with every
/// node's ledger: each node appends only its own erasures to the file in its data dir.
pub async fn ledger_replay(
    config: &Config,
    ledgers: &[PathBuf],
) -> anyhow::Result<LedgerReplayReport> {
    let files = if ledgers.is_empty() {
        vec![ledger_path(config)]
    } else {
        for f in ledgers {
            // A named ledger that is missing is a mistake, not an empty ledger.
            if !f.is_file() {
                bail!("no erasure ledger at `{}`", f.display());
            }
        }
        ledgers.to_vec()
    };
    let mut entries = Vec::new();
    let mut read = Vec::new();
    for f in &files {
        let these = crate::ledger::read_verified(f)?;
        read.push((f.clone(), these.len()));
        entries.extend(these);
    }
    // Several nodes' ledgers interleave in time; each entry is applied as of its own date.
    entries.sort_by(|a, b| a.erased_at.cmp(&b.erased_at));

    let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
    let (vault, writer_thread) = crate::startup::open_vault(config, clock)?;
    let outcome = replay_ledger_into(&vault, &entries, &read).await;
    drop(vault);
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    let (counts, guests_swept, missing, verified, fingerprint) = outcome?;
    // The vault's own vacuum runs on a thread of its own, which the process does not wait
    // for: vacuum here, on a connection of this command's, before it ends. (A PostgreSQL
    // connection drives a runtime of its own: not on this runtime's thread.)
    if counts.erasures > 0 || guests_swept > 0 {
        let config = config.clone();
        tokio::task::spawn_blocking(move || vacuum_after_shredding(&config, &fingerprint))
            .await??;
    }
    Ok(LedgerReplayReport {
        ledgers: read,
        counts,
        guests_swept,
        deks_under_missing_keks: missing,
        audit_events_verified: verified,
    })
}

async fn replay_ledger_into(
    vault: &crate::service::Vault,
    entries: &[crate::ledger::LedgerEntry],
    read: &[(PathBuf, usize)],
) -> anyhow::Result<(crate::service::ReplayCounts, u64, u64, u64, String)> {
    let counts = vault.replay_ledger(entries).await?;
    let swept = vault.retention_run("ledger-replay", false, |_| {}).await?;
    let keyring = vault.keys().kek_versions();
    let missing: u64 = vault
        .readers()
        .run(crate::store::dek_counts)
        .await?
        .iter()
        .filter(|(v, _)| !keyring.contains(v))
        .map(|(_, n)| n)
        .sum();
    vault
        .record_operation(
            &crate::cli::audit::cli_actor(),
            crate::policy::Action::AdminRestore,
            format!(
                "erasure ledger replayed: {} entries from {} ledger file(s); {} erasure(s) and {} consent withdrawal(s) re-applied, {} already in force; {} guest(s) swept",
                entries.len(),
                read.len(),
                counts.erasures,
                counts.withdrawals,
                counts.unchanged,
                swept.guests_affected
            ),
        )
        .await?;
    let public_key = vault.keys().audit_public_key().to_vec();
    let verified = vault
        .readers()
        .run(move |c| crate::audit::checkpoint::verify_store(c, &public_key))
        .await?;
    if let Some(seq) = verified.first_bad_seq {
        bail!(
            "the ledger was replayed, but the audit trail does not verify (chain and signed \
             checkpoints) at seq {seq}: the restored database's trail is damaged or rewritten"
        );
    }
    Ok((
        counts,
        swept.guests_affected,
        missing,
        verified.events,
        vault.keys().fingerprint().to_string(),
    ))
}

/// Reclaims the dead rows an erasure left (PostgreSQL `VACUUM` of the tables that held
/// them); on SQLite, `secure_delete` overwrote them already and the WAL folds into the file
/// when the last connection closes.
fn vacuum_after_shredding(config: &Config, keyring_fingerprint: &str) -> anyhow::Result<()> {
    let location = crate::store::Location::from_config(config)?;
    if location.backend() != crate::store::Backend::Postgres {
        return Ok(());
    }
    let db = location.open_direct(keyring_fingerprint)?;
    db.vacuum_shredded()
        .context("the erasures were re-applied, but VACUUM of their tables failed: run it again")?;
    Ok(())
}
