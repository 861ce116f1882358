//! The audit export format, `guestvault-audit-export/v1`: written by `GET /v1/audit/export`
//! and `guestvault audit export`, checked offline by `guestvault audit verify`
//! ([`super::verify`]). REQ-20.
//!
//! # JSON Lines
//! One JSON object per line (`\n`), in this order:
//! 1. **Anchor**: `{"type":"anchor","format":"guestvault-audit-export/v1","seq":A,"hash":H}`,
//!    the chain position just before the first exported event (`A = first seq - 1`, `H` its
//!    hash as 64 hex digits; all zeros for `A = 0`).
//! 2. For every seq from `A + 1` to `L`, in order, either
//!    - an **event**: its canonical JSON (see [`super`]: the exact bytes its hash covers, with
//!      `value_hashes` after `justification` only on corrections) with
//!      `"prev_hash"` and `"hash"` (hex) appended as the last two keys; or
//!    - a **stub** `{"seq":n,"hash":H}` for an event of the range that the filter excludes, so
//!      the chain stays checkable without revealing the event.
//! 3. **Checkpoint**: `{"type":"checkpoint","seq":L,"hash":H,"key_id":K,"signature":S,
//!    "export_digest":D,"export_signature":X}`. `signature` (base64) is the Ed25519 checkpoint
//!    signature over `(L, H)` ([`super::checkpoint`]; the same row is stored in
//!    `audit_checkpoints`). `D` (hex) binds the list of records:
//!    `SHA-256("guestvault/export/v1" || for each record before the checkpoint: kind ("A"
//!    anchor, "E" event, "S" stub) || seq (u64 big-endian) || hash)`, and `X` (base64) is the
//!    Ed25519 signature over `"guestvault/export/v1" || D`. It makes an event turned into a
//!    stub, a forged anchor or a cut-off beginning detectable. `K` is the first 16 hex digits
//!    of the SHA-256 of the raw public key.
//!
//! # CSV
//! RFC 4180 (`\r\n` line ends, quotes where needed): a header row, then the same records, one
//! per row, with the columns of [`CSV_HEADER`]. `record` is `anchor`, `event`, `stub` or
//! `checkpoint`; cells a record does not use are empty; `fields` and `rules` are JSON arrays;
//! an empty `purpose`, `guest_id`, `reason` or `justification` cell is null. The last column,
//! `value_hashes`, is the event's JSON list of value hashes (REQ-30), empty when it has none;
//! the verifier also reads exports written before that column existed (20 cells).
//!
//! Both encodings of the same range and filter carry the same records, hashes and signatures;
//! two exports of the same range and filter are byte-for-byte identical (Ed25519 signatures
//! are deterministic and no export time is written).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::checkpoint::{self, Checkpoint};
use super::query::{resolve_range, ExportFormat, ExportParams, Filter, Range};
use super::{read_after, ChainedEvent};
use crate::crypto::{hex, sha256, Keyring};
use crate::store::{Conn, StoreError};

pub const FORMAT_ID: &str = "guestvault-audit-export/v1";
/// Domain separation of the record digest and the export signature.
pub const EXPORT_DOMAIN: &[u8] = b"guestvault/export/v1";
/// Events read per page: enough to amortize a query, small enough for flat memory.
pub const PAGE_EVENTS: usize = 5_000;

pub const CSV_HEADER: [&str; 21] = [
    "record",
    "seq",
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
    "key_id",
    "signature",
    "export_digest",
    "export_signature",
    "value_hashes",
];

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored chain does not verify: the vault never signs a broken chain.
    #[error("the stored audit chain is broken at seq {0}; the export was stopped unsigned")]
    Broken(u64),
}

/// Kinds of records that the export digest covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Anchor,
    Event,
    Stub,
}

impl RecordKind {
    fn tag(self) -> u8 {
        match self {
            Self::Anchor => b'A',
            Self::Event => b'E',
            Self::Stub => b'S',
        }
    }
}

/// The running `export_digest` (shared with the verifier so both compute it the same way).
#[derive(Clone)]
pub struct RecordDigest(ring::digest::Context);

impl std::fmt::Debug for RecordDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordDigest")
    }
}

impl Default for RecordDigest {
    fn default() -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(EXPORT_DOMAIN);
        Self(ctx)
    }
}

impl RecordDigest {
    pub fn add(&mut self, kind: RecordKind, seq: u64, hash: &[u8; 32]) {
        self.0.update(&[kind.tag()]);
        self.0.update(&seq.to_be_bytes());
        self.0.update(hash);
    }

    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// The bytes `export_signature` covers.
pub fn export_signature_message(digest: &[u8; 32]) -> Vec<u8> {
    [EXPORT_DOMAIN, digest.as_slice()].concat()
}

/// A streaming export: call [`header`](Self::header), then [`next_page`](Self::next_page)
/// until it returns `None`, then [`finish`](Self::finish). Memory stays at one page whatever
/// the range. Each event is re-hashed and its link checked on the way out, and each checkpoint
/// recorded inside the range must carry a valid signature over the same hash: a chain that was
/// rewritten and re-hashed after it was signed is never signed again.
#[derive(Debug)]
pub struct Export {
    format: ExportFormat,
    filter: Filter,
    range: Range,
    after: u64,
    prev: [u8; 32],
    digest: RecordDigest,
    events: u64,
    stubs: u64,
    /// The audit public key, to check the checkpoints met on the way.
    public_key: Vec<u8>,
}

impl Export {
    pub fn plan(conn: &Conn, params: &ExportParams, public_key: &[u8]) -> Result<Self, StoreError> {
        let range = resolve_range(conn, &params.filter)?;
        Ok(Self {
            public_key: public_key.to_vec(),
            format: params.format,
            filter: params.filter.clone(),
            after: range.first - 1,
            prev: range.anchor_hash,
            range,
            digest: RecordDigest::default(),
            events: 0,
            stubs: 0,
        })
    }

    pub fn range(&self) -> Range {
        self.range
    }

    /// Events in the range (shown or stubbed).
    pub fn total(&self) -> u64 {
        self.range.last + 1 - self.range.first
    }

    /// Events written in full and as stubs so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.events, self.stubs)
    }

    pub fn is_done(&self) -> bool {
        self.after >= self.range.last
    }

    /// The CSV header (for CSV) and the anchor record.
    pub fn header(&mut self) -> Result<Vec<u8>, ExportError> {
        let seq = self.range.first - 1;
        let hash = self.range.anchor_hash;
        self.digest.add(RecordKind::Anchor, seq, &hash);
        match self.format {
            ExportFormat::Jsonl => Ok(format!(
                "{{\"type\":\"anchor\",\"format\":\"{FORMAT_ID}\",\"seq\":{seq},\"hash\":\"{}\"}}\n",
                hex(&hash)
            )
            .into_bytes()),
            ExportFormat::Csv => {
                let mut w = csv_writer();
                write_row(&mut w, CSV_HEADER)?;
                let (seq, hash) = (seq.to_string(), hex(&hash));
                write_row(&mut w, sparse(&[(0, "anchor"), (1, &seq), (15, &hash)]))?;
                into_bytes(w)
            }
        }
    }

    /// The next page of records, or `None` when the range is done.
    pub fn next_page(
        &mut self,
        conn: &Conn,
        page_events: usize,
    ) -> Result<Option<Vec<u8>>, ExportError> {
        if self.is_done() {
            return Ok(None);
        }
        let batch = read_after(conn, self.after, page_events)?;
        if batch.first().is_none_or(|e| e.event.seq != self.after + 1) {
            return Err(ExportError::Broken(self.after + 1));
        }
        let page_last = batch.last().map_or(0, |e| e.event.seq).min(self.range.last);
        let mut signed = checkpoint::in_range(conn, self.after + 1, page_last)?
            .into_iter()
            .peekable();
        let mut out = Vec::with_capacity(batch.len() * 320);
        let mut csv = (self.format == ExportFormat::Csv).then(csv_writer);
        for e in batch {
            let seq = e.event.seq;
            if seq > self.range.last {
                break;
            }
            // Serialized once: hashed here and, if shown, written as is.
            let canonical = e.event.canonical();
            let hash: [u8; 32] = match e.hash.as_slice().try_into() {
                Ok(h)
                    if seq == self.after + 1
                        && e.prev_hash == self.prev
                        && sha256(&[&e.prev_hash, &canonical]) == h =>
                {
                    h
                }
                _ => return Err(ExportError::Broken(seq)),
            };
            if let Some(cp) = signed.next_if(|cp| cp.seq == seq) {
                if cp.hash != hash || !cp.is_valid_for(&self.public_key) {
                    return Err(ExportError::Broken(seq));
                }
            }
            let shown = self.filter.matches(&e.event);
            let kind = if shown {
                self.events += 1;
                RecordKind::Event
            } else {
                self.stubs += 1;
                RecordKind::Stub
            };
            self.digest.add(kind, seq, &hash);
            match csv.as_mut() {
                Some(w) if shown => write_row(w, event_row(&e))?,
                Some(w) => write_row(
                    w,
                    sparse(&[(0, "stub"), (1, &seq.to_string()), (15, &hex(&hash))]),
                )?,
                None if shown => push_event_line(&mut out, canonical, &e.prev_hash, &hash),
                None => out.extend_from_slice(
                    format!("{{\"seq\":{seq},\"hash\":\"{}\"}}\n", hex(&hash)).as_bytes(),
                ),
            }
            self.prev = hash;
            self.after = seq;
        }
        if let Some(w) = csv {
            out = into_bytes(w)?;
        }
        Ok(Some(out))
    }

    /// The checkpoint over the last exported position, to record in `audit_checkpoints`.
    pub fn checkpoint(&self, keyring: &Keyring, signed_at: String) -> Checkpoint {
        Checkpoint::sign(keyring, self.after, self.prev, signed_at)
    }

    /// The final record: `cp` (from [`checkpoint`](Self::checkpoint)) and the export signature.
    pub fn finish(&self, keyring: &Keyring, cp: &Checkpoint) -> Result<Vec<u8>, ExportError> {
        if !self.is_done() || cp.seq != self.after || cp.hash != self.prev {
            return Err(ExportError::Broken(self.after + 1));
        }
        let digest = self.digest.clone().finish();
        let export_sig = B64.encode(keyring.audit_sign(&export_signature_message(&digest)));
        let (hash, sig, digest) = (hex(&cp.hash), B64.encode(&cp.signature), hex(&digest));
        match self.format {
            ExportFormat::Jsonl => Ok(format!(
                "{{\"type\":\"checkpoint\",\"seq\":{},\"hash\":\"{hash}\",\"key_id\":\"{}\",\"signature\":\"{sig}\",\"export_digest\":\"{digest}\",\"export_signature\":\"{export_sig}\"}}\n",
                cp.seq, cp.key_id
            )
            .into_bytes()),
            ExportFormat::Csv => {
                let mut w = csv_writer();
                let seq = cp.seq.to_string();
                write_row(
                    &mut w,
                    sparse(&[
                        (0, "checkpoint"),
                        (1, &seq),
                        (15, &hash),
                        (16, &cp.key_id),
                        (17, &sig),
                        (18, &digest),
                        (19, &export_sig),
                    ]),
                )?;
                into_bytes(w)
            }
        }
    }
}

/// The canonical bytes with the two chain keys appended before the closing brace.
fn push_event_line(out: &mut Vec<u8>, mut canonical: Vec<u8>, prev_hash: &[u8], hash: &[u8]) {
    canonical.pop(); // INVARIANT: a serialized struct ends with `}`.
    out.extend_from_slice(&canonical);
    out.extend_from_slice(b",\"prev_hash\":\"");
    out.extend_from_slice(hex(prev_hash).as_bytes());
    out.extend_from_slice(b"\",\"hash\":\"");
    out.extend_from_slice(hex(hash).as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// Whether a CSV cell value could run as a formula when a spreadsheet opens the export: it
/// starts with `=`, `+`, `-`, `@`, a tab or a carriage return, or with the `'` that marks a
/// neutralised cell (so the rule can be undone without ambiguity).
pub fn needs_neutralising(v: &str) -> bool {
    v.starts_with(['=', '+', '-', '@', '\t', '\r', '\''])
}

/// An event's text cell in the canonical CSV form: a value that [`needs_neutralising`] is
/// written with one leading `'` (the OWASP rule for CSV injection; spreadsheets show the
/// value as text), every other value as it is. The verifier removes exactly that `'`.
pub fn csv_cell(v: &str) -> String {
    if needs_neutralising(v) {
        format!("'{v}")
    } else {
        v.to_string()
    }
}

fn event_row(e: &ChainedEvent) -> [String; 21] {
    let ev = &e.event;
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    let opt = |v: &Option<String>| csv_cell(v.as_deref().unwrap_or_default());
    [
        "event".into(),
        ev.seq.to_string(),
        csv_cell(&ev.ts),
        csv_cell(&ev.request_id),
        csv_cell(&ev.actor),
        csv_cell(&ev.role),
        opt(&ev.purpose),
        csv_cell(&ev.action),
        opt(&ev.guest_id),
        json(&ev.fields),
        csv_cell(ev.outcome.as_str()),
        opt(&ev.reason),
        json(&ev.rules),
        opt(&ev.justification),
        hex(&e.prev_hash),
        hex(&e.hash),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        if ev.value_hashes.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&ev.value_hashes).unwrap_or_else(|_| "[]".into())
        },
    ]
}

/// A row with only the given cells set.
fn sparse(cells: &[(usize, &str)]) -> [String; 21] {
    let mut row: [String; 21] = Default::default();
    for (i, v) in cells {
        row[*i] = (*v).to_string();
    }
    row
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .has_headers(false)
        .from_writer(Vec::new())
}

fn write_row<I, T>(w: &mut csv::Writer<Vec<u8>>, row: I) -> Result<(), ExportError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    w.write_record(row)
        .map_err(|e| ExportError::Store(StoreError::Other(format!("csv encoding: {e}"))))
}

fn into_bytes(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, ExportError> {
    w.into_inner()
        .map_err(|e| ExportError::Store(StoreError::Other(format!("csv encoding: {}", e.error()))))
}
