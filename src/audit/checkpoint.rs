//! Signed checkpoints: Ed25519 signatures by the keyring's audit key over one point of the hash
//! chain, so that anyone holding only the public key can check that the chain up to `seq` is
//! what the vault had (REQ-18: "hash-chained and periodically signed").
//!
//! They are made every `audit.checkpoint_every` events (by the writer, in the transaction that
//! crosses the mark), every `audit.checkpoint_interval_secs` seconds when there are new events,
//! at shutdown, at the end of every export, and before a retention purge, where the checkpoint
//! becomes the anchor the remaining chain starts from (PIPL Art. 56, REQ-19).
//!
//! # Signed message
//! `"guestvault/checkpoint/v1" || seq (u64, big-endian) || hash (32 bytes)`, where `hash` is
//! the chain hash of event `seq` (or 32 zero bytes for `seq = 0`, the empty chain).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::crypto::Keyring;
use crate::store::StoreError;

/// Domain separation of checkpoint signatures.
pub const CHECKPOINT_DOMAIN: &[u8] = b"guestvault/checkpoint/v1";

/// The bytes a checkpoint signature covers.
pub fn checkpoint_message(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 8 + 32);
    m.extend_from_slice(CHECKPOINT_DOMAIN);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

/// Whether `signature` is a valid Ed25519 signature of `message` under the raw `public_key`.
pub fn signature_is_valid(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// A signed statement "the chain at `seq` had `hash`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: [u8; 32],
    pub signed_at: String,
    pub key_id: String,
    pub signature: Vec<u8>,
}

impl Checkpoint {
    pub fn sign(keyring: &Keyring, seq: u64, hash: [u8; 32], signed_at: String) -> Self {
        Self {
            seq,
            hash,
            signed_at,
            key_id: keyring.audit_key_id(),
            signature: keyring.audit_sign(&checkpoint_message(seq, &hash)),
        }
    }

    pub fn is_valid_for(&self, public_key: &[u8]) -> bool {
        self.key_id == crate::crypto::key_id(public_key)
            && signature_is_valid(
                public_key,
                &checkpoint_message(self.seq, &self.hash),
                &self.signature,
            )
    }
}

fn to_hash(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Other("corrupt audit hash".into()))
}

/// A checkpoint row as read, before its hash length is checked.
struct CheckpointRow {
    seq: u64,
    hash: Vec<u8>,
    signed_at: String,
    key_id: String,
    signature: Vec<u8>,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointRow> {
    Ok(CheckpointRow {
        seq: r.get::<_, i64>(0)? as u64,
        hash: r.get(1)?,
        signed_at: r.get(2)?,
        key_id: r.get(3)?,
        signature: r.get(4)?,
    })
}

fn assemble(row: CheckpointRow) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        seq: row.seq,
        hash: to_hash(row.hash)?,
        signed_at: row.signed_at,
        key_id: row.key_id,
        signature: row.signature,
    })
}

const COLUMNS: &str = "seq, hash, signed_at, key_id, signature";

/// Records `cp`. The table is append-only: if a checkpoint at that seq exists it is kept, and a
/// different hash there is an error (two signed, contradicting histories).
pub fn store(conn: &Connection, cp: &Checkpoint) -> Result<(), StoreError> {
    if cp.seq == 0 {
        return Ok(()); // the empty chain needs no record
    }
    conn.prepare_cached(
        "INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (seq) DO NOTHING",
    )?
    .execute(params![
        cp.seq as i64,
        cp.hash.as_slice(),
        cp.signed_at,
        cp.key_id,
        cp.signature
    ])?;
    match at(conn, cp.seq)? {
        Some(stored) if stored.hash == cp.hash => Ok(()),
        _ => Err(StoreError::Other(format!(
            "a different checkpoint is already recorded at audit seq {}",
            cp.seq
        ))),
    }
}

/// The checkpoint at `seq`, if one was recorded.
pub fn at(conn: &Connection, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_checkpoints WHERE seq = ?1"
    ))?
    .query_row([seq as i64], read_row)
    .optional()?
    .map(assemble)
    .transpose()
}

/// The newest checkpoint.
pub fn latest(conn: &Connection) -> Result<Option<Checkpoint>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
    ))?
    .query_row([], read_row)
    .optional()?
    .map(assemble)
    .transpose()
}

/// The checkpoints with `from <= seq <= to`, oldest first.
pub fn in_range(conn: &Connection, from: u64, to: u64) -> Result<Vec<Checkpoint>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_checkpoints WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq"
    ))?
    .query_map([from as i64, to as i64], read_row)?
    .map(|r| assemble(r?))
    .collect()
}

/// Signs and records the head of the chain if it is at least `min_new_events` past the newest
/// checkpoint; returns the new checkpoint. Runs inside the caller's (write) transaction.
pub fn checkpoint_head(
    conn: &Connection,
    keyring: &Keyring,
    signed_at: String,
    min_new_events: u64,
) -> Result<Option<Checkpoint>, StoreError> {
    let (seq, hash) = super::head(conn)?;
    let last = latest(conn)?.map_or(0, |c| c.seq);
    if seq == 0 || seq < last.saturating_add(min_new_events.max(1)) {
        return Ok(None);
    }
    let cp = Checkpoint::sign(keyring, seq, hash, signed_at);
    store(conn, &cp)?;
    Ok(Some(cp))
}

/// The result of checking the audit trail in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoreVerification {
    pub intact: bool,
    /// Events whose hash and link were checked (up to the first bad one).
    pub events: u64,
    /// Checkpoints whose signature (and hash, where the event is still stored) was checked.
    pub checkpoints: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
}

/// Checks the whole trail: every event's hash and link from genesis or the purge anchor
/// ([`super::verify_chain`]), and every checkpoint's signature under `public_key` and its hash
/// against the stored event at that seq. A checkpoint above `audit_purge_through` must have its
/// event, so deleting the newest events is found, not just a changed one.
pub fn verify_store(conn: &Connection, public_key: &[u8]) -> Result<StoreVerification, StoreError> {
    let (events, chain_bad) = match super::verify_chain(conn)? {
        Ok(n) => (n, None),
        Err(seq) => {
            let before: i64 = conn.query_row(
                "SELECT count(*) FROM audit_events WHERE seq < ?1",
                [seq as i64],
                |r| r.get(0),
            )?;
            (before as u64, Some(seq))
        }
    };
    let purged = super::purge::purged_through(conn)?;
    let mut checkpoints = 0u64;
    let mut cp_bad = None;
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_checkpoints ORDER BY seq"
    ))?;
    let mut rows = stmt.query([])?;
    let mut event_hash = conn.prepare_cached("SELECT hash FROM audit_events WHERE seq = ?1")?;
    while let Some(row) = rows.next()? {
        let cp = assemble(read_row(row)?)?;
        let stored: Option<Vec<u8>> = event_hash
            .query_row([cp.seq as i64], |r| r.get(0))
            .optional()?;
        // A checkpoint's event may be missing only where a retention purge removed it; above
        // that, a missing event means the trail was cut short (its newest events deleted).
        let matches_event = match stored {
            Some(h) => h.as_slice() == cp.hash.as_slice(),
            None => cp.seq <= purged,
        };
        if !cp.is_valid_for(public_key) || !matches_event {
            cp_bad = Some(cp.seq);
            break;
        }
        checkpoints += 1;
    }
    let first_bad_seq = match (chain_bad, cp_bad) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(StoreVerification {
        intact: first_bad_seq.is_none(),
        events,
        checkpoints,
        first_bad_seq,
    })
}

/// The writer's pre-commit hook: a checkpoint whenever the chain has grown `every` events past
/// the newest one (`audit.checkpoint_every`), in the same transaction as those events.
pub fn every_n_events(
    keyring: std::sync::Arc<Keyring>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    every: u64,
) -> crate::store::PreCommitHook {
    Box::new(move |conn| {
        checkpoint_head(conn, &keyring, crate::clock::timestamp(clock.now()), every).map(|_| ())
    })
}
