//! The audit trail: one event per touch of personal data, allowed or denied (PIPL Art. 51, 54,
//! 55; REQ-18). Events carry field *names* only, never values, and reference guests by their
//! opaque id so they survive erasure.
//!
//! # Hash chain
//! Each event stores `prev_hash` and `hash = SHA-256(prev_hash || canonical)`, where
//! `prev_hash` is the previous event's 32-byte hash (32 zero bytes before the first event) and
//! `canonical` is the event serialized as compact JSON (UTF-8, no whitespace, serde_json
//! escaping) with exactly these keys in this order:
//! `seq, ts, request_id, actor, role, purpose, action, guest_id, fields, outcome, reason,
//! rules, justification` (absent optional values are `null`), then `value_hashes` only when
//! the event has any (a correction, REQ-30): a list of `{"field","before_hash","after_hash"}`
//! objects, so every event written before it existed hashes exactly as before. The writer assigns `seq` and
//! the hashes inside the same transaction as the change the event records, so commit order and
//! chain order are the same.
//!
//! # Modules
//! - [`checkpoint`]: Ed25519-signed checkpoints and the database check behind `/v1/audit/verify`.
//! - [`query`]: the compliance officer's filter, strict parameter parsing, SQL, export ranges.
//! - [`export`]: the JSON Lines and CSV export format (documented there) and its encoder.
//! - [`verify`]: the offline verifier of an export (`guestvault audit verify`).
//! - [`purge`]: retention of the trail itself (3-year floor, PIPL Art. 56).

pub mod checkpoint;
pub mod export;
pub mod purge;
pub mod query;
pub mod verify;

use serde::{Deserialize, Serialize};

use crate::crypto::sha256;
use crate::store::StoreError;

// The trail's storage operations are the storage seam's ([`crate::store::audit`]); they are
// re-exported here so the use cases keep calling `audit::append` and friends.
pub use crate::store::audit::{anchor_hash, append, head, read_after, verify_chain};

pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// A corrected field's keyed hashes (REQ-30): HMAC-SHA256 of the value before and after the
/// correction under a per-field key derived from the keyring (`Keyring::value_hasher`), hex;
/// `null` where the field had no value (before) or was removed (after). Never the values: the
/// key stays in the vault, so the trail alone does not reveal them, yet a value held by an
/// investigator can be checked against it through the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueHash {
    pub field: String,
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allowed,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "allowed" => Self::Allowed,
            "denied" => Self::Denied,
            _ => Self::Error,
        }
    }
}

/// An event before the writer numbers and chains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub ts: String,
    pub request_id: String,
    pub actor: String,
    pub role: String,
    pub purpose: Option<String>,
    pub action: String,
    pub guest_id: Option<String>,
    pub fields: Vec<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub rules: Vec<String>,
    pub justification: Option<String>,
    pub value_hashes: Vec<ValueHash>,
}

/// A stored event; also the canonical form (field order is the hash contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub seq: u64,
    pub ts: String,
    pub request_id: String,
    pub actor: String,
    pub role: String,
    pub purpose: Option<String>,
    pub action: String,
    pub guest_id: Option<String>,
    pub fields: Vec<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub rules: Vec<String>,
    pub justification: Option<String>,
    /// Only on corrections; absent from the canonical form when empty (old events hash as
    /// they always did).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_hashes: Vec<ValueHash>,
}

impl Event {
    /// The canonical bytes the hash covers.
    pub fn canonical(&self) -> Vec<u8> {
        // INVARIANT: serializing a struct of strings, numbers and vectors cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn chain_hash(&self, prev_hash: &[u8]) -> [u8; 32] {
        sha256(&[prev_hash, &self.canonical()])
    }
}

/// A stored event with its chain links.
#[derive(Debug, Clone)]
pub struct ChainedEvent {
    pub event: Event,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Links `event` to the chain after (`last_seq`, `prev_hash`): the stored event with the next
/// seq and its hash. Every backend appends through this, so they hash alike.
pub fn link(event: NewEvent, last_seq: u64, prev_hash: &[u8; 32]) -> (Event, [u8; 32]) {
    let event = Event {
        seq: last_seq + 1,
        ts: event.ts,
        request_id: event.request_id,
        actor: event.actor,
        role: event.role,
        purpose: event.purpose,
        action: event.action,
        guest_id: event.guest_id,
        fields: event.fields,
        outcome: event.outcome,
        reason: event.reason,
        rules: event.rules,
        justification: event.justification,
        value_hashes: event.value_hashes,
    };
    let hash = event.chain_hash(prev_hash);
    (event, hash)
}

/// Recomputes a chain read in pages: `read_after(seq, n)` returns up to `n` stored events after
/// `seq`, oldest first; `anchor(seq)` the hash the event after `seq` links to when `seq` itself
/// is not stored (genesis, or a purge's checkpoint). Returns the number of events checked, or
/// the first seq whose link or hash is wrong. The oldest stored event must link to genesis or
/// to the purge anchor, so history cannot be cut off silently.
pub fn check_chain(
    mut read_after: impl FnMut(u64, usize) -> Result<Vec<ChainedEvent>, StoreError>,
    mut anchor: impl FnMut(u64) -> Result<Option<[u8; 32]>, StoreError>,
) -> Result<Result<u64, u64>, StoreError> {
    let mut after = 0u64;
    let mut prev: Option<Vec<u8>> = None;
    let mut checked = 0u64;
    loop {
        let batch = read_after(after, 10_000)?;
        if batch.is_empty() {
            return Ok(Ok(checked));
        }
        for e in batch {
            let seq = e.event.seq;
            let expected_prev = match prev.take() {
                Some(p) if seq == after + 1 => p,
                Some(_) => return Ok(Err(after + 1)),
                None if seq == 0 => return Ok(Err(0)),
                None => match anchor(seq - 1)? {
                    Some(h) => h.to_vec(),
                    None => return Ok(Err(seq)),
                },
            };
            if e.prev_hash != expected_prev || e.event.chain_hash(&e.prev_hash).as_slice() != e.hash
            {
                return Ok(Err(seq));
            }
            after = seq;
            prev = Some(e.hash);
            checked += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u64) -> NewEvent {
        NewEvent {
            ts: format!("2026-11-22T00:00:{i:02}.000000Z"),
            request_id: format!("r{i}"),
            actor: "a".into(),
            role: "front_desk".into(),
            purpose: Some("check_in".into()),
            action: "guest.read".into(),
            guest_id: None,
            fields: vec!["mobile".into()],
            outcome: Outcome::Allowed,
            reason: None,
            rules: vec!["roles.front_desk.views.mobile".into()],
            justification: None,
            value_hashes: Vec::new(),
        }
    }

    #[test]
    fn appended_events_form_a_verifiable_chain() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::Sqlite(
            crate::store::sqlite::open_writer(&dir.path().join("a.db"), "full", "fp").unwrap(),
        );
        let conn = db.conn();
        for i in 0..5 {
            append(&conn, ev(i)).unwrap();
            assert_eq!(head(&conn).unwrap().0, i + 1);
        }
        assert_eq!(verify_chain(&conn).unwrap(), Ok(5));
        let events = read_after(&conn, 0, 100).unwrap();
        assert_eq!(events[0].prev_hash, GENESIS_HASH.to_vec());
        assert_eq!(events[1].prev_hash, events[0].hash);
    }

    #[test]
    fn canonical_form_has_the_documented_key_order() {
        let e = Event {
            seq: 1,
            ts: "t".into(),
            request_id: "r".into(),
            actor: "a".into(),
            role: "x".into(),
            purpose: None,
            action: "guest.read".into(),
            guest_id: None,
            fields: vec![],
            outcome: Outcome::Denied,
            reason: None,
            rules: vec![],
            justification: None,
            value_hashes: Vec::new(),
        };
        assert_eq!(
            String::from_utf8(e.canonical()).unwrap(),
            r#"{"seq":1,"ts":"t","request_id":"r","actor":"a","role":"x","purpose":null,"action":"guest.read","guest_id":null,"fields":[],"outcome":"denied","reason":null,"rules":[],"justification":null}"#
        );
        // A correction's value hashes come last, only when present (REQ-30).
        let mut c = e.clone();
        c.value_hashes = vec![ValueHash {
            field: "mobile".into(),
            before_hash: None,
            after_hash: Some("ab".into()),
        }];
        assert!(String::from_utf8(c.canonical()).unwrap().ends_with(
            r#""justification":null,"value_hashes":[{"field":"mobile","before_hash":null,"after_hash":"ab"}]}"#
        ));
        assert_ne!(c.chain_hash(&GENESIS_HASH), e.chain_hash(&GENESIS_HASH));
    }
}
