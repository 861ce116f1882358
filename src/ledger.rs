//! The erasure ledger (REQ-27): every completed erasure — and every consent withdrawal, which
//! a restore must not undo either (PIPL Art. 15) — is also appended to a hash-chained JSON
//! Lines file kept apart from the database (`<data_dir>/erasure-ledger.jsonl`), holding only
//! guest ids, what happened (`erasure` or `consent_withdrawn:<purpose>`) and times. A backup
//! restored later is older than some of them; `restore` re-applies every entry before the
//! server serves. Each line: `{"seq","guest_id","event","erased_at","prev_hash","hash"}` with
//! `hash = SHA-256(prev_hash bytes | {"seq","guest_id","event","erased_at"} compact JSON)`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::crypto::{hex, sha256, unhex};

pub const LEDGER_FILE: &str = "erasure-ledger.jsonl";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub guest_id: String,
    /// `erasure` or `consent_withdrawn:<purpose>`.
    pub event: String,
    /// When it happened.
    pub erased_at: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    guest_id: &'a str,
    event: &'a str,
    erased_at: &'a str,
}

pub const ERASURE_EVENT: &str = "erasure";
pub const WITHDRAWAL_PREFIX: &str = "consent_withdrawn:";
/// `legal_hold:<hold_id>:<reason>:<ticket>:<until or empty>`: a legal hold placed (REQ-23).
/// None of the parts holds a `:` (a UUID, a reason code, a ticket `[A-Za-z0-9._-]`, a date).
pub const HOLD_PREFIX: &str = "legal_hold:";
/// `legal_hold_lifted:<hold_id>`.
pub const HOLD_LIFTED_PREFIX: &str = "legal_hold_lifted:";

/// The ledger event of a placed hold.
pub fn hold_event(hold: &crate::store::HoldRow) -> String {
    format!(
        "{HOLD_PREFIX}{}:{}:{}:{}",
        hold.hold_id,
        hold.reason,
        hold.ticket,
        hold.until.as_deref().unwrap_or("")
    )
}

/// The hold a `legal_hold:` event placed, as a restore re-applies it (placed by
/// `system:restore` at the event's time).
pub fn parse_hold(event: &str, guest_id: &str, at: &str) -> Option<crate::store::HoldRow> {
    let rest = event.strip_prefix(HOLD_PREFIX)?;
    let mut parts = rest.split(':');
    let (hold_id, reason, ticket, until) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || hold_id.is_empty() || reason.is_empty() || ticket.is_empty() {
        return None;
    }
    Some(crate::store::HoldRow {
        hold_id: hold_id.to_string(),
        guest_id: guest_id.to_string(),
        reason: reason.to_string(),
        ticket: ticket.to_string(),
        until: (!until.is_empty()).then(|| until.to_string()),
        placed_at: at.to_string(),
        placed_by: "system:restore".to_string(),
        lifted_at: None,
        lifted_by: None,
    })
}

fn entry_hash(prev: &[u8], seq: u64, guest_id: &str, event: &str, erased_at: &str) -> [u8; 32] {
    let body = serde_json::to_vec(&Canonical {
        seq,
        guest_id,
        event,
        erased_at,
    })
    .unwrap_or_default();
    sha256(&[prev, &body])
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("erasure ledger `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("erasure ledger `{path}` is damaged at line {line}: {reason}")]
    Broken {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Appends to the ledger; one process-wide lock keeps lines whole and in order.
#[derive(Debug)]
pub struct ErasureLedger {
    path: PathBuf,
    /// (last seq, last hash), read from the file on first use.
    head: Mutex<Option<(u64, [u8; 32])>>,
    /// Lines written since the last fsync.
    unsynced: std::sync::atomic::AtomicBool,
}

impl ErasureLedger {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            head: Mutex::new(None),
            unsynced: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Makes every line written so far durable. The writer calls it once per group, before
    /// the commit, and fails the group if it fails: so an erasure's line is on disk before the
    /// erasure is (one fsync per group instead of one per erasure).
    pub fn sync(&self) -> Result<(), LedgerError> {
        use std::sync::atomic::Ordering;
        let _head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if !self.unsynced.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let io = |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        };
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        f.sync_data().map_err(|e| {
            self.unsynced.store(true, Ordering::SeqCst);
            io(e)
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry (made durable by [`ErasureLedger::sync`] before the database commit
    /// that records the erasure; an entry for an erasure whose commit then failed only means
    /// the erasure is re-applied after a restore, which errs on the side of the guest).
    pub fn append(&self, guest_id: &str, event: &str, erased_at: &str) -> Result<(), LedgerError> {
        let io = |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        };
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let (seq, prev) = match *head {
            Some(h) => h,
            None => match read_verified(&self.path)?.last() {
                Some(e) => (e.seq, to_hash(&e.hash).unwrap_or([0; 32])),
                None => (0, [0; 32]),
            },
        };
        let seq = seq + 1;
        let hash = entry_hash(&prev, seq, guest_id, event, erased_at);
        let entry = LedgerEntry {
            seq,
            guest_id: guest_id.to_string(),
            event: event.to_string(),
            erased_at: erased_at.to_string(),
            prev_hash: hex(&prev),
            hash: hex(&hash),
        };
        let mut line = serde_json::to_vec(&entry).unwrap_or_default();
        line.push(b'\n');
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&self.path).map_err(io)?;
        f.write_all(&line).map_err(io)?;
        self.unsynced
            .store(true, std::sync::atomic::Ordering::SeqCst);
        *head = Some((seq, hash));
        Ok(())
    }
}

fn to_hash(h: &str) -> Option<[u8; 32]> {
    unhex(h)?.try_into().ok()
}

/// Reads the whole ledger, checking every link; a missing file is an empty ledger.
pub fn read_verified(path: &Path) -> Result<Vec<LedgerEntry>, LedgerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LedgerError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    let mut prev = [0u8; 32];
    for (i, line) in text.lines().enumerate() {
        let broken = |reason: &str| LedgerError::Broken {
            path: path.to_owned(),
            line: i + 1,
            reason: reason.into(),
        };
        let e: LedgerEntry =
            serde_json::from_str(line).map_err(|_| broken("not a ledger entry"))?;
        if e.seq != out.len() as u64 + 1 {
            return Err(broken("out of sequence"));
        }
        if to_hash(&e.prev_hash) != Some(prev) {
            return Err(broken("does not link to the previous entry"));
        }
        let h = entry_hash(&prev, e.seq, &e.guest_id, &e.event, &e.erased_at);
        if to_hash(&e.hash) != Some(h) {
            return Err(broken("hash mismatch"));
        }
        prev = h;
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_chain_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        let l = ErasureLedger::new(path.clone());
        l.append("g1", ERASURE_EVENT, "2026-11-22T00:00:00Z")
            .unwrap();
        l.append("g2", "consent_withdrawn:marketing", "2026-11-23T00:00:00Z")
            .unwrap();
        // A second writer instance continues the same chain.
        ErasureLedger::new(path.clone())
            .append("g3", ERASURE_EVENT, "2026-11-24T00:00:00Z")
            .unwrap();
        let entries = read_verified(&path).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("g2", "g9", 1)).unwrap();
        assert!(matches!(
            read_verified(&path),
            Err(LedgerError::Broken { line: 2, .. })
        ));
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(matches!(
            read_verified(&path),
            Err(LedgerError::Broken { line: 2, .. })
        ));
    }
}
