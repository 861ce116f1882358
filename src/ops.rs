//! Operations on a whole data dir: a consistent backup while the server runs (SQLite
//! `VACUUM INTO`, no keys in it, with a manifest), a restore that re-applies every erasure
//! in the erasure ledger and verifies the audit chain before the server may serve, and the
//! ledger replay on its own (`guestvault ledger replay`: after a PostgreSQL `pg_restore` or a
//! point-in-time recovery, which this vault does not run itself).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::config::Config;

mod ledger_replay;
pub use ledger_replay::{ledger_replay, LedgerReplayReport};

pub const LOCK_FILE: &str = "guestvault.lock";
pub const BACKUP_FORMAT: &str = "guestvault-backup/v1";

/// Written beside a backup as `<file>.manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created_at: String,
    pub schema_version: i64,
    pub audit_head_seq: u64,
    pub audit_head_hash: String,
    pub keyring_fingerprint: String,
    pub erasure_ledger_seq: u64,
    pub sha256: String,
}

fn manifest_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(crate::crypto::hex(ctx.finish().as_ref()))
}

/// Takes the data-dir lock: held by a running server, and by `restore` while it works.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot open `{}`: the server must write its data dir `{}`. Fix: remount its \
                 file system read-write, or make the data dir writable by the server's user",
                path.display(),
                data_dir.display()
            )
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(_) => bail!(
            "another guestvault process holds `{}`: stop the server on this data dir first",
            path.display()
        ),
    }
}

/// How long `restore` waits for the data-dir lock before it gives up.
const RESTORE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// [`lock_data_dir`], retried for up to `wait`: a server stopping (or a child process it
/// forked, which shares the lock until it execs) releases the lock a moment after it exits.
async fn lock_data_dir_within(
    data_dir: &Path,
    wait: std::time::Duration,
) -> anyhow::Result<std::fs::File> {
    let until = std::time::Instant::now() + wait;
    loop {
        match lock_data_dir(data_dir) {
            // Only a held lock is worth waiting for; a file that cannot be opened is not.
            Err(_) if std::time::Instant::now() < until && data_dir.join(LOCK_FILE).is_file() => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// A consistent snapshot of the database (safe while the server runs). Keys are never in
/// the database, so the backup holds none; keep the keyring backed up separately.
pub fn backup(config: &Config, out: &Path) -> anyhow::Result<Manifest> {
    refuse_on_postgres(config, "backup")?;
    if out.exists() {
        bail!("`{}` already exists", out.display());
    }
    let db = config.database_file();
    // Recorded before the snapshot, so the backup holds its own event (like every operation,
    // as `cli:<user>`). The target is created empty and owner-only first (VACUUM INTO accepts
    // an empty file), so the snapshot is never readable by others, not even while it is
    // written.
    crate::store::backup::snapshot(
        &db,
        out,
        operation_event(
            crate::policy::Action::AdminBackup,
            "backup started (VACUUM INTO): the snapshot holds this event".into(),
        ),
        || create_owner_only(out),
    )?;
    restrict_to_owner(out)?;
    let snap = crate::store::backup::snapshot_facts(out)?;
    let manifest = Manifest {
        format: BACKUP_FORMAT.into(),
        created_at: crate::clock::timestamp(time::OffsetDateTime::now_utc()),
        schema_version: snap.schema_version,
        audit_head_seq: snap.audit_head_seq,
        audit_head_hash: crate::crypto::hex(&snap.audit_head_hash),
        keyring_fingerprint: snap.keyring_fingerprint,
        erasure_ledger_seq: crate::ledger::read_verified(&ledger_path(config))?
            .last()
            .map_or(0, |e| e.seq),
        sha256: file_sha256(out)?,
    };
    std::fs::write(manifest_path(out), serde_json::to_vec_pretty(&manifest)?)?;
    restrict_to_owner(&manifest_path(out))?;
    Ok(manifest)
}

/// An audit event for an operation run from the command line.
fn operation_event(action: crate::policy::Action, reason: String) -> crate::audit::NewEvent {
    crate::audit::NewEvent {
        ts: crate::clock::timestamp(time::OffsetDateTime::now_utc()),
        request_id: uuid::Uuid::new_v4().to_string(),
        actor: crate::cli::audit::cli_actor(),
        role: "operator".into(),
        purpose: Some("administration".into()),
        action: action.as_str().into(),
        guest_id: None,
        fields: vec![],
        outcome: crate::audit::Outcome::Allowed,
        reason: Some(reason),
        rules: vec![],
        justification: None,
        value_hashes: Vec::new(),
    }
}

/// Creates `path` empty with mode 0600; fails if it exists.
fn create_owner_only(path: &Path) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    Ok(())
}

/// Backups hold wrapped keys, the blind index and the audit trail: owner-only, like the data dir.
fn restrict_to_owner(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// `backup` and `restore` work on SQLite's file. A PostgreSQL database is backed up and
/// restored with PostgreSQL's own tools; the erasure ledger stays in each node's data dir and
/// is re-applied afterwards.
fn refuse_on_postgres(config: &Config, command: &str) -> anyhow::Result<()> {
    if crate::store::Backend::parse(&config.storage.backend)
        == Some(crate::store::Backend::Postgres)
    {
        bail!(
            "`guestvault {command}` works on the SQLite backend only (config key \
             `storage.backend` is `postgres`). Back up with `pg_dump -Fc` or base backups and WAL \
             archiving (PITR); restore with `pg_restore` or a point-in-time recovery, then run \
             `guestvault ledger replay --ledger <each node's erasure-ledger.jsonl>` before the \
             nodes serve again, so no erasure or consent withdrawal made after the restore point \
             is undone. Keep the keyring backed up apart from the database"
        );
    }
    Ok(())
}

pub(crate) fn ledger_path(config: &Config) -> PathBuf {
    config.storage.data_dir.join(crate::ledger::LEDGER_FILE)
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub erasures_replayed: u64,
    /// Audit events newer than the snapshot, carried over from the database being replaced so
    /// the trail is not shortened (PIPL Art. 56).
    pub audit_events_carried: u64,
    pub guests_swept: u64,
    pub audit_events_verified: u64,
}

/// Refuses a snapshot with DEKs wrapped under a KEK version the keyring no longer holds: a
/// backup taken before `keys retire` would otherwise restore guests nobody can decrypt.
fn check_kek_versions(counts: &[(u32, u64)], keyring: &[u32]) -> anyhow::Result<()> {
    let missing: Vec<String> = counts
        .iter()
        .filter(|(v, n)| *n > 0 && !keyring.contains(v))
        .map(|(v, n)| format!("v{v} ({n} DEK(s))"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the snapshot's data keys are wrapped under KEK version(s) the keyring no longer holds: {}. \
             They were retired after this backup was taken; restore it only with the keyring file \
             from before the retirement. Nothing was replaced",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The steps that run on the staged database through a vault opened on it: the KEK check,
/// the ledger replay, a retention sweep and the audit check.
async fn replay_into_staging(
    vault: &crate::service::Vault,
    entries: &[crate::ledger::LedgerEntry],
    carried: u64,
) -> anyhow::Result<RestoreReport> {
    let counts = vault.readers().run(crate::store::dek_counts).await?;
    check_kek_versions(&counts, &vault.keys().kek_versions())?;
    let replayed = vault.replay_erasures(entries).await?;
    // Whatever expired since the snapshot goes again before the server serves.
    let swept = vault.retention_run("restore", false, |_| {}).await?;
    vault
        .record_operation(
            &crate::cli::audit::cli_actor(),
            crate::policy::Action::AdminRestore,
            format!(
                "restored a snapshot: {replayed} ledger entries re-applied, {carried} newer audit events carried over, {} guests swept",
                swept.guests_affected
            ),
        )
        .await?;
    // The chain and every signed checkpoint: a trail rewritten with recomputed hashes passes
    // the chain alone, but not the checkpoints signed by the audit key.
    let public_key = vault.keys().audit_public_key().to_vec();
    let verified = vault
        .readers()
        .run(move |c| crate::audit::checkpoint::verify_store(c, &public_key))
        .await?;
    match verified.first_bad_seq {
        None => Ok(RestoreReport {
            erasures_replayed: replayed,
            audit_events_carried: carried,
            guests_swept: swept.guests_affected,
            audit_events_verified: verified.events,
        }),
        Some(seq) => {
            bail!("the restored audit trail does not verify (chain and signed checkpoints) at seq {seq}; nothing was replaced")
        }
    }
}

/// Installs `file` as the database. With the server stopped: checks the manifest (required
/// unless `force`), refuses an erasure ledger older than the one the backup saw, opens the
/// snapshot (refusing one made under another keyring, or with DEKs under a retired KEK),
/// re-applies every erasure in the ledger, verifies the audit chain and its signed
/// checkpoints, and only then replaces the database.
pub async fn restore(config: &Config, file: &Path, force: bool) -> anyhow::Result<RestoreReport> {
    refuse_on_postgres(config, "restore")?;
    // A server that was just stopped may take a moment to let go of the data dir.
    let _lock = lock_data_dir_within(&config.storage.data_dir, RESTORE_LOCK_WAIT).await?;
    let manifest_file = manifest_path(file);
    let manifest = if manifest_file.exists() {
        let m: Manifest = serde_json::from_slice(&std::fs::read(&manifest_file)?)
            .context("manifest is malformed")?;
        if m.sha256 != file_sha256(file)? {
            bail!(
                "`{}` does not match its manifest (sha256 differs)",
                file.display()
            );
        }
        Some(m)
    } else if force {
        None
    } else {
        bail!(
            "no manifest `{}` beside the backup: without it the snapshot cannot be checked, nor \
             the erasure ledger against it. Restore with --force only if you accept that",
            manifest_file.display()
        );
    };
    let entries = crate::ledger::read_verified(&ledger_path(config))?;
    if let Some(m) = &manifest {
        let ledger_seq = entries.last().map_or(0, |e| e.seq);
        if ledger_seq < m.erasure_ledger_seq {
            bail!(
                "the erasure ledger `{}` ends at seq {ledger_seq}, but it was at seq {} when this \
                 backup was taken: it is lost or older, and restoring now could undo erasures. \
                 Put the data dir's own ledger back first; nothing was replaced",
                ledger_path(config).display(),
                m.erasure_ledger_seq
            );
        }
    }
    let db = config.database_file();
    let staging = db.with_extension("db.restoring");
    let _ = std::fs::remove_file(&staging);
    std::fs::copy(file, &staging).with_context(|| format!("cannot copy `{}`", file.display()))?;

    let result = async {
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
        let carried = crate::store::backup::carry_newer_audit_events(&db, &staging)?;
        let (vault, writer_thread) = crate::startup::open_vault_at(config, &staging, clock)?;
        let outcome = replay_into_staging(&vault, &entries, carried).await;
        drop(vault);
        let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
        outcome
    }
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
    };
    // Fold any WAL into the staged file, then swap it in.
    crate::store::backup::fold_wal(&staging)?;
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::rename(&staging, &db)?;
    Ok(report)
}
