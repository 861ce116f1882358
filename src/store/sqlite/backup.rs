//! Backup and restore of the SQLite file: a consistent snapshot while the server runs
//! (`VACUUM INTO`), the facts a manifest records, carrying newer audit events into a staged
//! restore, and folding its WAL before the swap. The manifest, the ledger checks and the order
//! of the steps are the backend-independent part, in [`crate::ops`].

use std::path::Path;

use anyhow::{bail, Context};

use super::audit::append_alone;
use crate::audit::NewEvent;

/// Records `event` (the backup's own, so the snapshot holds it), runs `prepare_target` (which
/// creates `out` empty and owner-only), then snapshots the database at `db` into `out`. On a
/// failed snapshot `out` is removed.
pub fn snapshot(
    db: &Path,
    out: &Path,
    event: NewEvent,
    prepare_target: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .with_context(|| format!("cannot open `{}`", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    append_alone(&mut conn, event).context("cannot record the backup in the audit trail")?;
    let target = out.to_str().context("backup path must be UTF-8")?;
    prepare_target()?;
    if let Err(e) = conn.execute("VACUUM INTO ?1", [target]) {
        let _ = std::fs::remove_file(out);
        return Err(anyhow::Error::new(e).context("snapshot failed"));
    }
    Ok(())
}

/// What a manifest records about a snapshot file.
#[derive(Debug, Clone)]
pub struct SnapshotFacts {
    pub schema_version: i64,
    pub audit_head_seq: u64,
    pub audit_head_hash: [u8; 32],
    pub keyring_fingerprint: String,
}

/// Reads [`SnapshotFacts`] from the snapshot at `file`.
pub fn snapshot_facts(file: &Path) -> anyhow::Result<SnapshotFacts> {
    let snap =
        rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let (seq, hash) = super::audit::head(&snap)?;
    Ok(SnapshotFacts {
        schema_version: snap.query_row("PRAGMA user_version", [], |r| r.get(0))?,
        audit_head_seq: seq,
        audit_head_hash: hash,
        keyring_fingerprint: snap.query_row(
            "SELECT value FROM meta WHERE key = 'keyring_fingerprint'",
            [],
            |r| r.get(0),
        )?,
    })
}

/// Folds the staged database's WAL into it and leaves it in rollback-journal mode, ready to be
/// renamed over the live file.
pub fn fold_wal(staging: &Path) -> anyhow::Result<()> {
    let c = rusqlite::Connection::open(staging)?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    c.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// The snapshot's audit chain is a prefix of the live database's (same events, same hashes),
/// so the live events after the snapshot's head link onto it unchanged: copy them (and their
/// checkpoints) into the staged database. Refuses if the live chain does not descend from the
/// snapshot's head (another vault's backup, or history rewritten).
pub fn carry_newer_audit_events(live: &Path, staging: &Path) -> anyhow::Result<u64> {
    if !live.exists() {
        return Ok(0);
    }
    let conn = rusqlite::Connection::open(staging)?;
    let (head_seq, head_hash) = super::audit::head(&conn)?;
    conn.execute(
        "ATTACH DATABASE ?1 AS live",
        [live.to_str().context("database path must be UTF-8")?],
    )?;
    let live_hash: Option<Vec<u8>> = conn
        .query_row(
            "SELECT hash FROM live.audit_events WHERE seq = ?1",
            [head_seq as i64],
            |r| r.get(0),
        )
        .ok();
    let newer: i64 = conn.query_row(
        "SELECT count(*) FROM live.audit_events WHERE seq > ?1",
        [head_seq as i64],
        |r| r.get(0),
    )?;
    if newer == 0 {
        return Ok(0);
    }
    if head_seq > 0 && live_hash.as_deref() != Some(head_hash.as_slice()) {
        bail!("the live audit trail does not continue the snapshot's (seq {head_seq}); refusing to drop its newer events");
    }
    conn.execute(
        "INSERT INTO main.audit_events SELECT * FROM live.audit_events WHERE seq > ?1",
        [head_seq as i64],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO main.audit_checkpoints SELECT * FROM live.audit_checkpoints WHERE seq > ?1",
        [head_seq as i64],
    )?;
    conn.execute("DETACH DATABASE live", [])?;
    Ok(newer as u64)
}
