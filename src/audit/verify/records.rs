//! Parsing the records of an export, JSON Lines or CSV, into one shape the checker walks.
//! Strict: unknown keys, missing keys and stubs carrying more than `seq` and `hash` are
//! refused, so nothing can ride along that the hashes do not cover.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;

use crate::audit::export::{CSV_HEADER, FORMAT_ID};
use crate::audit::{Event, Outcome};
use crate::crypto::unhex;

/// One parsed record of either encoding.
#[derive(Debug)]
pub(super) enum Record {
    Anchor {
        seq: u64,
        hash: [u8; 32],
    },
    Event {
        event: Box<Event>,
        prev_hash: [u8; 32],
        hash: [u8; 32],
    },
    Stub {
        seq: u64,
        hash: [u8; 32],
    },
    Checkpoint {
        seq: u64,
        hash: [u8; 32],
        key_id: String,
        signature: Vec<u8>,
        export_digest: [u8; 32],
        export_signature: Vec<u8>,
    },
}

/// The keys any JSONL record may have; which are present decides the record's kind.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    #[serde(rename = "type")]
    kind: Option<String>,
    format: Option<String>,
    seq: Option<u64>,
    ts: Option<String>,
    request_id: Option<String>,
    actor: Option<String>,
    role: Option<String>,
    purpose: Option<String>,
    action: Option<String>,
    guest_id: Option<String>,
    fields: Option<Vec<String>>,
    outcome: Option<String>,
    reason: Option<String>,
    rules: Option<Vec<String>>,
    justification: Option<String>,
    prev_hash: Option<String>,
    hash: Option<String>,
    key_id: Option<String>,
    signature: Option<String>,
    export_digest: Option<String>,
    export_signature: Option<String>,
}

pub(super) fn json_record(line: &[u8]) -> Result<Record, String> {
    let raw: RawRecord = serde_json::from_slice(line).map_err(|e| {
        // The error's own text can quote values; say only what kind of problem and where.
        let what = match e.classify() {
            serde_json::error::Category::Data => "unexpected key or value type",
            _ => "not valid JSON",
        };
        format!("{what} at column {}", e.column())
    })?;
    let kind = match raw.kind.clone() {
        Some(k) => k,
        None if raw.ts.is_none() => "stub".to_string(),
        None => "event".to_string(),
    };
    if kind == "anchor" && raw.format.as_deref() != Some(FORMAT_ID) {
        return Err(format!("the anchor must name format `{FORMAT_ID}`"));
    }
    build(&kind, raw)
}

pub(super) fn csv_record(row: &csv::ByteRecord) -> Result<Record, String> {
    if row.len() != CSV_HEADER.len() {
        return Err(format!(
            "expected {} cells, found {}",
            CSV_HEADER.len(),
            row.len()
        ));
    }
    let cell =
        |i: usize| std::str::from_utf8(&row[i]).map_err(|_| "a cell is not UTF-8".to_string());
    let text = |i: usize| -> Result<Option<String>, String> {
        let v = cell(i)?;
        Ok((!v.is_empty()).then(|| v.to_string()))
    };
    let list = |i: usize| -> Result<Option<Vec<String>>, String> {
        text(i)?
            .map(|v| {
                serde_json::from_str(&v)
                    .map_err(|_| format!("`{}` is not a JSON array", CSV_HEADER[i]))
            })
            .transpose()
    };
    let kind = cell(0)?;
    let event = kind == "event";
    // Required text columns of an event are never null, so an empty cell is an empty string.
    let required = |i: usize| -> Result<Option<String>, String> {
        Ok(if event {
            Some(cell(i)?.to_string())
        } else {
            text(i)?
        })
    };
    let raw = RawRecord {
        kind: Some(kind.to_string()),
        format: None,
        seq: text(1)?
            .map(|s| s.parse().map_err(|_| "`seq` is not a number".to_string()))
            .transpose()?,
        ts: required(2)?,
        request_id: required(3)?,
        actor: required(4)?,
        role: required(5)?,
        purpose: text(6)?,
        action: required(7)?,
        guest_id: text(8)?,
        fields: list(9)?,
        outcome: text(10)?,
        reason: text(11)?,
        rules: list(12)?,
        justification: text(13)?,
        prev_hash: text(14)?,
        hash: text(15)?,
        key_id: text(16)?,
        signature: text(17)?,
        export_digest: text(18)?,
        export_signature: text(19)?,
    };
    build(kind, raw)
}

fn build(kind: &str, raw: RawRecord) -> Result<Record, String> {
    let need =
        |v: Option<String>, name: &str| v.ok_or_else(|| format!("{kind} record lacks `{name}`"));
    let hash32 = |v: Option<String>, name: &str| -> Result<[u8; 32], String> {
        unhex(&need(v, name)?)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("`{name}` is not 32 bytes of hex"))
    };
    let b64 = |v: Option<String>, name: &str| -> Result<Vec<u8>, String> {
        B64.decode(need(v, name)?)
            .map_err(|_| format!("`{name}` is not base64"))
    };
    let seq = raw
        .seq
        .ok_or_else(|| format!("{kind} record lacks `seq`"))?;
    match kind {
        "anchor" => Ok(Record::Anchor {
            seq,
            hash: hash32(raw.hash, "hash")?,
        }),
        "stub" => {
            // A stub carries nothing its hash does not cover: only `seq` and `hash`.
            let extra = [
                &raw.ts,
                &raw.request_id,
                &raw.actor,
                &raw.role,
                &raw.purpose,
                &raw.action,
            ]
            .iter()
            .chain([&raw.guest_id, &raw.outcome, &raw.reason, &raw.justification].iter())
            .chain(
                [
                    &raw.prev_hash,
                    &raw.key_id,
                    &raw.signature,
                    &raw.export_digest,
                ]
                .iter(),
            )
            .chain([&raw.export_signature, &raw.format].iter())
            .any(|v| v.is_some())
                || raw.fields.is_some()
                || raw.rules.is_some();
            if extra {
                return Err("a stub has only `seq` and `hash`".into());
            }
            Ok(Record::Stub {
                seq,
                hash: hash32(raw.hash, "hash")?,
            })
        }
        "checkpoint" => Ok(Record::Checkpoint {
            seq,
            hash: hash32(raw.hash, "hash")?,
            key_id: need(raw.key_id, "key_id")?,
            signature: b64(raw.signature, "signature")?,
            export_digest: hash32(raw.export_digest, "export_digest")?,
            export_signature: b64(raw.export_signature, "export_signature")?,
        }),
        "event" => {
            let outcome = match need(raw.outcome, "outcome")?.as_str() {
                "allowed" => Outcome::Allowed,
                "denied" => Outcome::Denied,
                "error" => Outcome::Error,
                _ => return Err("`outcome` is not allowed, denied or error".into()),
            };
            let event = Event {
                seq,
                ts: need(raw.ts, "ts")?,
                request_id: need(raw.request_id, "request_id")?,
                actor: need(raw.actor, "actor")?,
                role: need(raw.role, "role")?,
                purpose: raw.purpose,
                action: need(raw.action, "action")?,
                guest_id: raw.guest_id,
                fields: raw.fields.ok_or("event record lacks `fields`")?,
                outcome,
                reason: raw.reason,
                rules: raw.rules.ok_or("event record lacks `rules`")?,
                justification: raw.justification,
            };
            Ok(Record::Event {
                event: Box::new(event),
                prev_hash: hash32(raw.prev_hash, "prev_hash")?,
                hash: hash32(raw.hash, "hash")?,
            })
        }
        _ => Err(format!(
            "unknown record kind `{}`",
            kind.chars().take(16).collect::<String>()
        )),
    }
}
