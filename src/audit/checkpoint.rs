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

use serde::Serialize;

use crate::crypto::Keyring;
use crate::store::StoreError;

// Where checkpoints are stored and read: the storage seam ([`crate::store::audit`]).
pub use crate::store::audit::{
    checkpoint_at as at, checkpoint_head, checkpoints_in_range as in_range, every_n_events,
    latest_checkpoint as latest, store_checkpoint as store, verify_store,
};

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

/// Where a group commit has just moved the chain head, as the writer knows it under the head's
/// lock (PostgreSQL): the hook needs no query to decide on a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    /// The seq and hash of the group's last event.
    pub seq: u64,
    pub hash: [u8; 32],
    /// The newest checkpoint's seq as the group saw it when it locked the head (0: none). It
    /// may be older than a checkpoint another node committed while this group waited for the
    /// lock; then one extra checkpoint is signed, which verifies like any other.
    pub last_checkpoint: u64,
}

/// Whether the chain at `seq` is due a checkpoint (`audit.checkpoint_every` = `every` events
/// past the newest one, at `last`). Both backends decide by this.
pub fn due(seq: u64, last: u64, every: u64) -> bool {
    seq != 0 && seq >= last.saturating_add(every.max(1))
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

pub(crate) fn to_hash(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Other("corrupt audit hash".into()))
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

/// What was checked, and the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RangeVerification {
    #[serde(flatten)]
    pub result: StoreVerification,
    /// `full` (the whole trail) or `since_checkpoint`.
    pub mode: &'static str,
    /// The signed checkpoint the check started from (`since_checkpoint` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_seq: Option<u64>,
    /// First and last event seq the chain check covered; `null` when no event was checked.
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
}
