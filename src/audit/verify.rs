//! The offline verifier of an audit export (REQ-18, REQ-20): `guestvault audit verify FILE
//! --public-key KEY` needs nothing but the file and the vault's audit public key. The format
//! (JSON Lines or CSV, detected from the first byte) is documented in [`super::export`].
//!
//! It reads the file once, in constant memory, and checks that
//! 1. the file starts with an anchor and the seqs that follow are consecutive (a removed or
//!    reordered record is reported at the first seq that is missing or out of place);
//! 2. each event's hash is the SHA-256 of the previous hash and its canonical form, and its
//!    `prev_hash` is the previous record's hash (stubs carry their hash forward);
//! 3. the file ends with a checkpoint at the last seq and hash, signed by the given key;
//! 4. the export signature covers exactly this list of anchor, events and stubs.
//!
//! A passing file is an unaltered, contiguous section of the vault's chain, as the vault
//! exported it. It does not prove which range or filter was asked for: compare the seqs and
//! counts in the summary with the request.

mod key;
pub(crate) mod records;

use std::io::{BufRead, BufReader, Read};

pub use key::{KeyError, PublicKey};
use records::{canonical_event, csv_record, json_record, Record};

use super::checkpoint::{checkpoint_message, signature_is_valid};
use super::export::{export_signature_message, RecordDigest, RecordKind, CSV_HEADER};
use super::query::ExportFormat;
use super::GENESIS_HASH;

/// Why a JSONL event line that is not byte for byte the canonical event is refused.
const NOT_CANONICAL: &str = "an event line must be the canonical JSON of the event (keys in \
    order, no whitespace, serde_json escaping) followed by prev_hash and hash";

/// Longest line or row accepted, so a hostile file cannot exhaust memory.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// A passing verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub format: ExportFormat,
    pub anchor_seq: u64,
    pub last_seq: u64,
    pub events: u64,
    pub stubs: u64,
    pub key_id: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = self.format.as_str();
        if self.last_seq == self.anchor_seq {
            write!(f, "intact: empty {format} export")?;
        } else {
            write!(
                f,
                "intact: {format} export of seq {}..={} ({} events, {} stubs)",
                self.anchor_seq + 1,
                self.last_seq,
                self.events,
                self.stubs
            )?;
        }
        write!(
            f,
            ", anchored at seq {}, checkpoint and export signed by key {}",
            self.anchor_seq, self.key_id
        )
    }
}

/// What is wrong, where: the line (1-based; for CSV the line the row starts on) and the first
/// bad seq when one can be named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {problem}", .seq.map(|s| format!(", seq {s}")).unwrap_or_default())]
pub struct Failure {
    pub line: u64,
    pub seq: Option<u64>,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("cannot read the file: {0}")]
    Unreadable(String),
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error("the file does not start with an anchor record")]
    MissingAnchor,
    #[error("record out of place (found seq {found}): a record was removed or reordered")]
    OutOfOrder { found: u64 },
    #[error("prev_hash does not match the previous record's hash")]
    BrokenLink,
    #[error("hash does not match the event's content")]
    HashMismatch,
    #[error("records after the final checkpoint")]
    AfterCheckpoint,
    #[error("no checkpoint record at the end: the file is truncated")]
    MissingCheckpoint,
    #[error("the checkpoint covers seq {checkpoint_seq}, not the last record")]
    CheckpointNotAtEnd { checkpoint_seq: u64 },
    #[error("the checkpoint hash does not match the last record")]
    CheckpointHashMismatch,
    #[error("signed by key {found}, not by the given key {expected}")]
    WrongKey { found: String, expected: String },
    #[error("the checkpoint signature does not verify")]
    BadCheckpointSignature,
    #[error(
        "the export signature does not cover these records (an event hidden, replaced or added)"
    )]
    BadExportSignature,
}

/// Verifies an export read from `input` against `key`.
pub fn verify_export(input: impl Read, key: &PublicKey) -> Result<Report, Failure> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let unreadable = |e: std::io::Error| Failure {
        line: 0,
        seq: None,
        problem: Problem::Unreadable(e.to_string()),
    };
    let first = reader
        .fill_buf()
        .map_err(unreadable)?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace());
    let mut checker = Checker::default();
    let format = if first == Some(b'{') {
        let mut line_no = 0u64;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_RECORD_BYTES + 1)
                .read_until(b'\n', &mut buf)
                .map_err(unreadable)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record = if n as u64 > MAX_RECORD_BYTES {
                Err("line too long".to_string())
            } else {
                // An event's content is its canonical bytes: a line of an event in any other
                // spelling (keys reordered, whitespace, other escapes) is not that event.
                canonical_event(&buf).map_or_else(
                    || match json_record(&buf) {
                        Ok(Record::Event { .. }) => Err(NOT_CANONICAL.to_string()),
                        other => other,
                    },
                    Ok,
                )
            };
            checker.feed(line_no, record)?;
        }
        ExportFormat::Jsonl
    } else {
        let newlines = std::rc::Rc::new(std::cell::RefCell::new(Newlines::default()));
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(LineCounter {
                inner: reader,
                newlines: newlines.clone(),
            });
        let mut row = csv::ByteRecord::new();
        // The header's width (21 columns, or 20 for exports written before `value_hashes`);
        // every row must have it, so a row cannot drop its last (empty) cell.
        let mut width = None;
        loop {
            let before = rows.position().line();
            let read = rows.read_byte_record(&mut row);
            // The line the row starts on (the reader's own position is still on the line
            // before it when a row ends with CRLF).
            let line = match &read {
                Ok(true) => row
                    .position()
                    .map_or(before, |p| newlines.borrow_mut().line_at(p.byte())),
                _ => before,
            };
            match read {
                Ok(false) => break,
                Ok(true) if width.is_none() => {
                    width = Some(row.len());
                    let legacy = &CSV_HEADER[..CSV_HEADER.len() - 1];
                    if row.iter().ne(CSV_HEADER.iter().map(|h| h.as_bytes()))
                        && row.iter().ne(legacy.iter().map(|h| h.as_bytes()))
                    {
                        return Err(Failure {
                            line,
                            seq: None,
                            problem: Problem::Malformed(
                                "not a GuestVault audit export (unexpected CSV header)".into(),
                            ),
                        });
                    }
                }
                Ok(true) if width != Some(row.len()) => checker.feed(
                    line,
                    Err(format!(
                        "expected {} cells, found {}",
                        width.unwrap_or_default(),
                        row.len()
                    )),
                )?,
                Ok(true) => checker.feed(line, csv_record(&row))?,
                Err(e) => checker.feed(line, Err(format!("unreadable CSV: {e}")))?,
            }
        }
        ExportFormat::Csv
    };
    checker.finish(format, key)
}

/// The byte offsets of the `\n`s read so far that lie at or after the current row, and how
/// many came before: the line a row starts on is `1 +` the newlines before its first byte.
/// (The `csv` crate's own line count is one too low on rows that end with CRLF.) Memory stays
/// at about one read buffer: offsets behind the current row are dropped.
#[derive(Debug, Default)]
struct Newlines {
    pending: std::collections::VecDeque<u64>,
    before: u64,
    read: u64,
}

impl Newlines {
    fn line_at(&mut self, byte: u64) -> u64 {
        // `<=`: on CRLF rows the `csv` crate counts the `\n` as the first byte of the next row.
        while self.pending.front().is_some_and(|&o| o <= byte) {
            self.pending.pop_front();
            self.before += 1;
        }
        self.before + 1
    }
}

/// A reader that records where the newlines are, for [`Newlines`].
struct LineCounter<R> {
    inner: R,
    newlines: std::rc::Rc<std::cell::RefCell<Newlines>>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut nl = self.newlines.borrow_mut();
        let start = nl.read;
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
            nl.pending.push_back(start + i as u64);
        }
        nl.read += n as u64;
        Ok(n)
    }
}

#[derive(Debug, Default)]
struct Checker {
    anchor: Option<u64>,
    next: u64,
    prev: [u8; 32],
    digest: RecordDigest,
    events: u64,
    stubs: u64,
    last_line: u64,
    checkpoint: Option<(u64, Record)>,
}

impl Checker {
    fn fail(&self, line: u64, seq: Option<u64>, problem: Problem) -> Failure {
        Failure { line, seq, problem }
    }

    fn feed(&mut self, line: u64, record: Result<Record, String>) -> Result<(), Failure> {
        self.last_line = line;
        let expected = self.anchor.map(|_| self.next);
        if self.checkpoint.is_some() {
            return Err(self.fail(line, None, Problem::AfterCheckpoint));
        }
        let record = record.map_err(|m| self.fail(line, expected, Problem::Malformed(m)))?;
        let (kind, seq, hash) = match &record {
            Record::Checkpoint { .. } => {
                self.checkpoint = Some((line, record));
                return Ok(());
            }
            Record::Anchor { seq, hash } => {
                if self.anchor.is_some() || (*seq == 0 && *hash != GENESIS_HASH) {
                    return Err(self.fail(
                        line,
                        Some(*seq),
                        Problem::Malformed("misplaced or false anchor".into()),
                    ));
                }
                self.anchor = Some(*seq);
                self.next = *seq;
                (RecordKind::Anchor, *seq, *hash)
            }
            _ if self.anchor.is_none() => {
                return Err(self.fail(line, None, Problem::MissingAnchor))
            }
            Record::Stub { seq, hash } => (RecordKind::Stub, *seq, *hash),
            Record::Event {
                seq,
                prev_hash,
                hash,
                computed,
            } => {
                if *seq == self.next {
                    if *prev_hash != self.prev {
                        return Err(self.fail(line, Some(*seq), Problem::BrokenLink));
                    }
                    if computed != hash {
                        return Err(self.fail(line, Some(*seq), Problem::HashMismatch));
                    }
                }
                (RecordKind::Event, *seq, *hash)
            }
        };
        if seq != self.next {
            return Err(self.fail(line, Some(self.next), Problem::OutOfOrder { found: seq }));
        }
        match kind {
            RecordKind::Event => self.events += 1,
            RecordKind::Stub => self.stubs += 1,
            RecordKind::Anchor => {}
        }
        self.digest.add(kind, seq, &hash);
        self.prev = hash;
        self.next = seq + 1;
        Ok(())
    }

    fn finish(self, format: ExportFormat, key: &PublicKey) -> Result<Report, Failure> {
        let Some(anchor_seq) = self.anchor else {
            return Err(self.fail(self.last_line.max(1), None, Problem::MissingAnchor));
        };
        let last = self.next - 1;
        let Some((
            line,
            Record::Checkpoint {
                seq,
                hash,
                key_id,
                signature,
                export_digest,
                export_signature,
            },
        )) = self.checkpoint
        else {
            return Err(self.fail(self.last_line, Some(last), Problem::MissingCheckpoint));
        };
        if seq != last {
            // A checkpoint beyond the last record means records are missing at the end.
            let bad = if seq > last { last + 1 } else { seq + 1 };
            return Err(Failure {
                line,
                seq: Some(bad),
                problem: Problem::CheckpointNotAtEnd {
                    checkpoint_seq: seq,
                },
            });
        }
        let fail = |problem| Failure {
            line,
            seq: Some(seq),
            problem,
        };
        if hash != self.prev {
            return Err(fail(Problem::CheckpointHashMismatch));
        }
        if key_id != key.key_id() {
            return Err(fail(Problem::WrongKey {
                found: key_id,
                expected: key.key_id(),
            }));
        }
        if !signature_is_valid(key.as_bytes(), &checkpoint_message(seq, &hash), &signature) {
            return Err(fail(Problem::BadCheckpointSignature));
        }
        if self.digest.finish() != export_digest
            || !signature_is_valid(
                key.as_bytes(),
                &export_signature_message(&export_digest),
                &export_signature,
            )
        {
            return Err(fail(Problem::BadExportSignature));
        }
        Ok(Report {
            format,
            anchor_seq,
            last_seq: last,
            events: self.events,
            stubs: self.stubs,
            key_id,
        })
    }
}
