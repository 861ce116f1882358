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
pub(crate) enum Record {
    Anchor {
        seq: u64,
        hash: [u8; 32],
    },
    /// An event, with the hash its content actually has (`computed`) beside the one it states.
    Event {
        seq: u64,
        prev_hash: [u8; 32],
        hash: [u8; 32],
        computed: [u8; 32],
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

/// `,"prev_hash":"<64 hex>","hash":"<64 hex>"}`: how every exported event line ends.
const CHAIN_SUFFIX_BYTES: usize = 14 + 64 + 10 + 64 + 2;

/// The fast path for a JSONL event line as the vault writes it: the canonical bytes followed
/// by the two chain keys. The hash is computed over the line's own bytes (so any change of a
/// byte is a mismatch) without parsing and re-serializing; a line of another shape returns
/// `None` and takes the strict parser.
pub(crate) fn canonical_event(line: &[u8]) -> Option<Record> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && rest[0] == b'0') || !rest[digits..].starts_with(b",\"ts\":\"")
    {
        return None;
    }
    let seq: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let split = line.len().checked_sub(CHAIN_SUFFIX_BYTES)?;
    let (body, suffix) = line.split_at(split);
    let suffix = suffix.strip_prefix(b",\"prev_hash\":\"")?;
    let (prev_hex, suffix) = suffix.split_at_checked(64)?;
    let suffix = suffix.strip_prefix(b"\",\"hash\":\"")?;
    let (hash_hex, suffix) = suffix.split_at_checked(64)?;
    if suffix != b"\"}" {
        return None;
    }
    // Decoded in place: this runs once per line of files with millions of lines.
    let hex32 = |h: &[u8]| -> Option<[u8; 32]> {
        let nibble = |c: u8| (c as char).to_digit(16);
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(h.chunks_exact(2)) {
            *o = u8::try_from(nibble(pair[0])? << 4 | nibble(pair[1])?).ok()?;
        }
        (h.len() == 64).then_some(out)
    };
    let prev_hash = hex32(prev_hex)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&prev_hash);
    ctx.update(body);
    ctx.update(b"}");
    let computed = ctx.finish().as_ref().try_into().ok()?;
    Some(Record::Event {
        seq,
        prev_hash,
        hash: hex32(hash_hex)?,
        computed,
    })
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
    value_hashes: Option<Vec<crate::audit::ValueHash>>,
}

pub(crate) fn json_record(line: &[u8]) -> Result<Record, String> {
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
    // An anchor or a checkpoint carries only its own keys, like a stub (issue 15): nothing
    // rides along that no hash or signature covers.
    let allowed: &[&str] = match kind.as_str() {
        "anchor" => &["type", "format", "seq", "hash"],
        "checkpoint" => &[
            "type",
            "seq",
            "hash",
            "key_id",
            "signature",
            "export_digest",
            "export_signature",
        ],
        "stub" => &["seq", "hash"],
        _ => &[],
    };
    if !allowed.is_empty() {
        let present = [
            ("type", raw.kind.is_some()),
            ("format", raw.format.is_some()),
            ("ts", raw.ts.is_some()),
            ("request_id", raw.request_id.is_some()),
            ("actor", raw.actor.is_some()),
            ("role", raw.role.is_some()),
            ("purpose", raw.purpose.is_some()),
            ("action", raw.action.is_some()),
            ("guest_id", raw.guest_id.is_some()),
            ("fields", raw.fields.is_some()),
            ("outcome", raw.outcome.is_some()),
            ("reason", raw.reason.is_some()),
            ("rules", raw.rules.is_some()),
            ("justification", raw.justification.is_some()),
            ("prev_hash", raw.prev_hash.is_some()),
            ("key_id", raw.key_id.is_some()),
            ("signature", raw.signature.is_some()),
            ("export_digest", raw.export_digest.is_some()),
            ("export_signature", raw.export_signature.is_some()),
            ("value_hashes", raw.value_hashes.is_some()),
        ];
        if let Some((name, _)) = present.iter().find(|(n, p)| *p && !allowed.contains(n)) {
            return Err(format!("a {kind} record has no `{name}`"));
        }
    }
    if kind == "anchor" && raw.format.as_deref() != Some(FORMAT_ID) {
        return Err(format!("the anchor must name format `{FORMAT_ID}`"));
    }
    build(&kind, raw)
}

pub(super) fn csv_record(row: &csv::ByteRecord) -> Result<Record, String> {
    // Exports written before `value_hashes` existed have one cell less.
    if row.len() != CSV_HEADER.len() && row.len() != CSV_HEADER.len() - 1 {
        return Err(format!(
            "expected {} cells, found {}",
            CSV_HEADER.len(),
            row.len()
        ));
    }
    let kind = std::str::from_utf8(&row[0]).map_err(|_| "a cell is not UTF-8".to_string())?;
    let event = kind == "event";
    // Every cell a record does not use is empty (issue 15): nothing rides along unhashed.
    let used: &[usize] = match kind {
        "anchor" | "stub" => &[0, 1, 15],
        "checkpoint" => &[0, 1, 15, 16, 17, 18, 19],
        _ => &[],
    };
    if !event {
        if let Some(i) = (0..row.len()).find(|i| !used.contains(i) && !row[*i].is_empty()) {
            return Err(format!(
                "cell `{}` must be empty in a {} record",
                CSV_HEADER[i],
                kind.chars().take(16).collect::<String>()
            ));
        }
    } else if let Some(i) = (16..20).find(|i| !row[*i].is_empty()) {
        return Err(format!(
            "cell `{}` must be empty in an event record",
            CSV_HEADER[i]
        ));
    }
    // Formula neutralisation: a text cell the vault wrote with a leading `'`
    // ([`crate::audit::export::csv_cell`]) is read without it; a cell that needs none and has
    // one, or needs one and lacks it, is not the vault's spelling.
    let unquote = |v: &str| -> Result<String, String> {
        match v.strip_prefix('\'') {
            Some(rest) if crate::audit::export::needs_neutralising(rest) => Ok(rest.to_string()),
            None if !crate::audit::export::needs_neutralising(v) => Ok(v.to_string()),
            _ => Err("a cell is not in the export's canonical CSV form (formula quoting)".into()),
        }
    };
    let cell = |i: usize| -> Result<String, String> {
        let v = std::str::from_utf8(&row[i]).map_err(|_| "a cell is not UTF-8".to_string())?;
        if event && i > 1 {
            unquote(v)
        } else {
            Ok(v.to_string())
        }
    };
    let text = |i: usize| -> Result<Option<String>, String> {
        let v = cell(i)?;
        Ok((!v.is_empty()).then_some(v))
    };
    // JSON cells (`fields`, `rules`, `value_hashes`) must be in the canonical compact form,
    // like the event they are part of: the content is the bytes, not an equivalent spelling.
    fn canonical_json<T: serde::de::DeserializeOwned + serde::Serialize>(
        v: &str,
        what: &str,
    ) -> Result<T, String> {
        let parsed: T = serde_json::from_str(v).map_err(|_| format!("`{what}` is not valid"))?;
        match serde_json::to_string(&parsed) {
            Ok(again) if again == v => Ok(parsed),
            _ => Err(format!("`{what}` is not in canonical JSON form")),
        }
    }
    let list = |i: usize| -> Result<Option<Vec<String>>, String> {
        text(i)?
            .map(|v| canonical_json(&v, CSV_HEADER[i]))
            .transpose()
    };
    // Required text columns of an event are never null, so an empty cell is an empty string.
    let required = |i: usize| -> Result<Option<String>, String> {
        Ok(if event { Some(cell(i)?) } else { text(i)? })
    };
    let raw = RawRecord {
        kind: Some(kind.to_string()),
        format: None,
        seq: text(1)?
            .map(|s| canonical_u64(&s).ok_or_else(|| "`seq` is not a number".to_string()))
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
        value_hashes: match row.len() > 20 {
            true => text(20)?
                .map(|v| canonical_json(&v, "value_hashes"))
                .transpose()?,
            false => None,
        },
    };
    build(kind, raw)
}

/// A seq as the vault writes it: digits only, no sign, no leading zero (JSON numbers are this
/// strict already; `str::parse` alone would take `+5` and `05` for 5).
fn canonical_u64(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse().ok())
        .flatten()
}

/// The members each kind of record carries besides `type` and `seq` (an unknown kind is
/// refused in [`build`]).
fn members(kind: &str) -> &'static [&'static str] {
    match kind {
        "anchor" => &["format", "hash"],
        "stub" => &["hash"],
        "checkpoint" => &[
            "hash",
            "key_id",
            "signature",
            "export_digest",
            "export_signature",
        ],
        _ => &[
            "ts",
            "request_id",
            "actor",
            "role",
            "purpose",
            "action",
            "guest_id",
            "fields",
            "outcome",
            "reason",
            "rules",
            "justification",
            "prev_hash",
            "hash",
            "value_hashes",
        ],
    }
}

/// A record carries nothing its hash or signature does not cover: a member (a JSON key, a
/// non-empty CSV cell) that its kind does not use is refused, so such a member cannot be
/// added or edited while the export still verifies (fuzzing found a CSV anchor whose unused
/// cells took any text).
fn no_unused_members(kind: &str, raw: &RawRecord) -> Result<(), String> {
    let present = [
        ("format", raw.format.is_some()),
        ("ts", raw.ts.is_some()),
        ("request_id", raw.request_id.is_some()),
        ("actor", raw.actor.is_some()),
        ("role", raw.role.is_some()),
        ("purpose", raw.purpose.is_some()),
        ("action", raw.action.is_some()),
        ("guest_id", raw.guest_id.is_some()),
        ("fields", raw.fields.is_some()),
        ("outcome", raw.outcome.is_some()),
        ("reason", raw.reason.is_some()),
        ("rules", raw.rules.is_some()),
        ("justification", raw.justification.is_some()),
        ("prev_hash", raw.prev_hash.is_some()),
        ("hash", raw.hash.is_some()),
        ("key_id", raw.key_id.is_some()),
        ("signature", raw.signature.is_some()),
        ("export_digest", raw.export_digest.is_some()),
        ("export_signature", raw.export_signature.is_some()),
        ("value_hashes", raw.value_hashes.is_some()),
    ];
    let allowed = members(kind);
    match present
        .iter()
        .find(|(name, set)| *set && !allowed.contains(name))
    {
        Some((name, _)) => Err(format!("a {kind} record has no `{name}`")),
        None => Ok(()),
    }
}

fn build(kind: &str, raw: RawRecord) -> Result<Record, String> {
    if matches!(kind, "anchor" | "stub" | "checkpoint" | "event") {
        no_unused_members(kind, &raw)?;
    }
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
        "stub" => Ok(Record::Stub {
            seq,
            hash: hash32(raw.hash, "hash")?,
        }),
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
                value_hashes: raw.value_hashes.unwrap_or_default(),
            };
            let prev_hash = hash32(raw.prev_hash, "prev_hash")?;
            Ok(Record::Event {
                seq,
                computed: event.chain_hash(&prev_hash),
                prev_hash,
                hash: hash32(raw.hash, "hash")?,
            })
        }
        _ => Err(format!(
            "unknown record kind `{}`",
            kind.chars().take(16).collect::<String>()
        )),
    }
}
