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
pub mod since;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tamper_tests;
pub mod verify;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::crypto::sha256;
use crate::store::StoreError;

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

    fn parse(s: &str) -> Self {
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

/// The last (seq, hash) of the chain, or the purge anchor, or genesis.
pub fn head(conn: &Connection) -> Result<(u64, [u8; 32]), StoreError> {
    let last = conn
        .prepare_cached("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
        })
        .optional()?;
    let (seq, hash) = match last {
        Some(v) => v,
        None => {
            // After a purge removed every event, the newest checkpoint is the anchor.
            match conn
                .prepare_cached(
                    "SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
                )?
                .query_row([], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
                })
                .optional()?
            {
                Some(v) => v,
                None => return Ok((0, GENESIS_HASH)),
            }
        }
    };
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| StoreError::Other("corrupt audit hash".into()))?;
    Ok((seq, hash))
}

/// Appends `event` to the chain inside the caller's transaction; returns its seq. A failure is
/// reported as [`StoreError::Audit`] so the request fails with `audit_unavailable`.
pub fn append(conn: &Connection, event: NewEvent) -> Result<u64, StoreError> {
    append_inner(conn, event).map_err(|e| StoreError::Audit(Box::new(e)))
}

fn append_inner(conn: &Connection, event: NewEvent) -> Result<u64, StoreError> {
    let (last_seq, prev_hash) = head(conn)?;
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
    let hash = event.chain_hash(&prev_hash);
    let fields = serde_json::to_string(&event.fields).unwrap_or_else(|_| "[]".into());
    let rules = serde_json::to_string(&event.rules).unwrap_or_else(|_| "[]".into());
    // NULL when empty: the column (migration 0005) holds the JSON list only for corrections.
    let value_hashes = (!event.value_hashes.is_empty())
        .then(|| serde_json::to_string(&event.value_hashes).unwrap_or_else(|_| "[]".into()));
    conn.prepare_cached(
        "INSERT INTO audit_events (seq, ts, request_id, actor, role, purpose, action, guest_id, fields,
           outcome, reason, rules, justification, prev_hash, hash, value_hashes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        event.seq as i64,
        event.ts,
        event.request_id,
        event.actor,
        event.role,
        event.purpose,
        event.action,
        event.guest_id,
        fields,
        event.outcome.as_str(),
        event.reason,
        rules,
        event.justification,
        prev_hash.as_slice(),
        hash.as_slice(),
        value_hashes,
    ])?;
    Ok(event.seq)
}

/// A stored event with its chain links.
#[derive(Debug, Clone)]
pub struct ChainedEvent {
    pub event: Event,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// The columns [`chained_from_row`] reads, in order.
pub(crate) const EVENT_COLUMNS: &str =
    "seq, ts, request_id, actor, role, purpose, action, guest_id, \
     fields, outcome, reason, rules, justification, prev_hash, hash, value_hashes";

/// Maps a row selected with [`EVENT_COLUMNS`].
pub(crate) fn chained_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChainedEvent> {
    let fields: String = r.get(8)?;
    let rules: String = r.get(11)?;
    let value_hashes: Option<String> = r.get(15)?;
    Ok(ChainedEvent {
        event: Event {
            seq: r.get::<_, i64>(0)? as u64,
            ts: r.get(1)?,
            request_id: r.get(2)?,
            actor: r.get(3)?,
            role: r.get(4)?,
            purpose: r.get(5)?,
            action: r.get(6)?,
            guest_id: r.get(7)?,
            fields: serde_json::from_str(&fields).unwrap_or_default(),
            outcome: Outcome::parse(&r.get::<_, String>(9)?),
            reason: r.get(10)?,
            rules: serde_json::from_str(&rules).unwrap_or_default(),
            justification: r.get(12)?,
            // A stored list that does not parse recomputes to a different hash: verify
            // reports the event as tampered rather than dropping the member silently.
            value_hashes: match value_hashes {
                None => Vec::new(),
                Some(v) => serde_json::from_str(&v).unwrap_or_else(|_| {
                    vec![ValueHash {
                        field: "(unreadable)".into(),
                        before_hash: None,
                        after_hash: None,
                    }]
                }),
            },
        },
        prev_hash: r.get(13)?,
        hash: r.get(14)?,
    })
}

/// Reads events with `seq > after_seq`, oldest first.
pub fn read_after(
    conn: &Connection,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<ChainedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![after_seq as i64, limit as i64], chained_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The hash the event after `seq` must link to when event `seq` itself is not stored: genesis
/// before the first event, else the signed checkpoint a retention purge left as the anchor.
pub fn anchor_hash(conn: &Connection, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
    if seq == 0 {
        return Ok(Some(GENESIS_HASH));
    }
    Ok(checkpoint::at(conn, seq)?.map(|c| c.hash))
}

/// Recomputes the whole chain in the database; returns the number of events checked, or the
/// first seq whose link or hash is wrong. The oldest stored event must link to genesis or to
/// the purge anchor (a signed checkpoint), so history cannot be cut off silently.
pub fn verify_chain(conn: &Connection) -> Result<Result<u64, u64>, StoreError> {
    let mut after = 0u64;
    let mut prev: Option<Vec<u8>> = None;
    let mut checked = 0u64;
    loop {
        let batch = read_after(conn, after, 10_000)?;
        if batch.is_empty() {
            return Ok(Ok(checked));
        }
        for e in batch {
            let seq = e.event.seq;
            let expected_prev = match prev.take() {
                Some(p) if seq == after + 1 => p,
                Some(_) => return Ok(Err(after + 1)),
                None if seq == 0 => return Ok(Err(0)),
                None => match anchor_hash(conn, seq - 1)? {
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
        let conn = crate::store::open_writer(&dir.path().join("a.db"), "full", "fp").unwrap();
        for i in 0..5 {
            assert_eq!(append(&conn, ev(i)).unwrap(), i + 1);
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
