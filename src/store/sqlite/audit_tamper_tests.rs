//! Export → verify round trips and tamper tests: each edit an attacker could make to an export
//! must be caught, at the right seq where one can be named (REQ-18, REQ-20). The fixture here is
//! shared with `store_tests`.

use rusqlite::Connection;

use crate::audit::checkpoint;
use crate::audit::export::Export;
use crate::audit::query::{parse_export, ExportFormat, ExportParams};
use crate::audit::verify::{verify_export, Failure, Problem, PublicKey};
use crate::audit::*;
use crate::clock::timestamp;
use crate::crypto::Keyring;

pub(super) const T0: time::OffsetDateTime = time::macros::datetime!(2026-01-01 00:00 UTC);
pub(super) const GUEST: &str = "0191a1d2-0000-7000-8000-000000000001";

pub(super) struct Fixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) conn: Connection,
    pub(super) keyring: Keyring,
}

impl Fixture {
    /// The connection as the seam's operations take it.
    pub(super) fn c(&self) -> crate::store::Conn<'_> {
        crate::store::Conn::Sqlite(&self.conn)
    }
}

pub(super) fn new_event(i: u64, at: time::OffsetDateTime) -> NewEvent {
    NewEvent {
        ts: timestamp(at),
        request_id: format!("req-{i}"),
        actor: if i.is_multiple_of(2) {
            "staff-a"
        } else {
            "staff-b"
        }
        .into(),
        role: "front_desk".into(),
        purpose: Some("check_in".into()),
        action: if i.is_multiple_of(3) {
            "guest.reveal"
        } else {
            "guest.read"
        }
        .into(),
        guest_id: i.is_multiple_of(4).then(|| GUEST.to_string()),
        fields: vec!["mobile".into(), "id_number".into()],
        outcome: if i.is_multiple_of(5) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        reason: (i.is_multiple_of(5)).then(|| "purpose_not_allowed".to_string()),
        rules: vec!["roles.front_desk.actions".into()],
        justification: (i.is_multiple_of(3))
            .then(|| "guest at the desk, \"ID\" check, 登记".to_string()),
        // Every 7th event is a correction with value hashes (REQ-30): exports and the offline
        // verifier must carry them, and a change to them must break the chain.
        value_hashes: if i.is_multiple_of(7) {
            vec![crate::audit::ValueHash {
                field: "mobile".into(),
                before_hash: (i.is_multiple_of(2)).then(|| "ab".repeat(32)),
                after_hash: Some("cd".repeat(32)),
            }]
        } else {
            Vec::new()
        },
    }
}

/// `n` events, one minute apart from T0.
pub(super) fn fixture(n: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::store::sqlite::open_writer(&dir.path().join("a.db"), "normal", "fp").unwrap();
    for i in 1..=n {
        append(
            &crate::store::Conn::Sqlite(&conn),
            new_event(i, T0 + time::Duration::minutes(i as i64)),
        )
        .unwrap();
    }
    Fixture {
        _dir: dir,
        conn,
        keyring: Keyring::generate().unwrap(),
    }
}

impl Fixture {
    pub(super) fn key(&self) -> PublicKey {
        PublicKey::from_raw(self.keyring.audit_public_key()).unwrap()
    }

    pub(super) fn export(&self, params: &ExportParams) -> Vec<u8> {
        let mut ex = Export::plan(&self.c(), params, self.keyring.audit_public_key()).unwrap();
        let mut out = ex.header().unwrap();
        // A small page so that every test crosses page boundaries.
        while let Some(page) = ex.next_page(&self.c(), 7).unwrap() {
            out.extend_from_slice(&page);
        }
        let cp = ex.checkpoint(&self.keyring, timestamp(T0));
        checkpoint::store(&self.c(), &cp).unwrap();
        out.extend_from_slice(&ex.finish(&self.keyring, &cp).unwrap());
        out
    }

    pub(super) fn jsonl(&self, query: &str) -> String {
        String::from_utf8(self.export(&parse_export(Some(query)).unwrap())).unwrap()
    }
}

pub(super) fn verify(text: &str, key: &PublicKey) -> Result<crate::audit::verify::Report, Failure> {
    verify_export(text.as_bytes(), key)
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The index of the line of event (or stub) `seq`.
fn line_of(lines: &[String], seq: u64) -> usize {
    let tag = format!("{{\"seq\":{seq},");
    lines.iter().position(|l| l.starts_with(&tag)).unwrap()
}

#[test]
fn a_full_export_verifies_in_both_formats() {
    let f = fixture(30);
    let report = verify(&f.jsonl(""), &f.key()).unwrap();
    assert_eq!(
        (
            report.anchor_seq,
            report.last_seq,
            report.events,
            report.stubs
        ),
        (0, 30, 30, 0)
    );
    assert!(report
        .to_string()
        .starts_with("intact: jsonl export of seq 1..=30"));
    let csv = f.export(&parse_export(Some("format=csv")).unwrap());
    assert!(csv.starts_with(b"record,seq,ts,"));
    assert!(csv.windows(2).any(|w| w == b"\r\n"));
    let report = verify_export(csv.as_slice(), &f.key()).unwrap();
    assert_eq!((report.format, report.events), (ExportFormat::Csv, 30));
}

#[test]
fn exports_are_deterministic_and_carry_no_export_time() {
    let f = fixture(12);
    assert_eq!(f.jsonl("actor=staff-a"), f.jsonl("actor=staff-a"));
}

#[test]
fn a_filtered_export_verifies_with_stubs_for_what_it_leaves_out() {
    let f = fixture(30);
    let text = f.jsonl(&format!("guest_id={GUEST}&action=guest.read"));
    let report = verify(&text, &f.key()).unwrap();
    // i.is_multiple_of(4) and i % 3 != 0: 4, 8, 16, 20, 28.
    assert_eq!(report.events, 5, "{text}");
    assert_eq!(report.events + report.stubs, 30);
    assert!(!text.contains("staff-b"), "stubs reveal nothing");
}

#[test]
fn a_time_range_export_is_anchored_where_it_starts() {
    let f = fixture(30);
    let since = timestamp(T0 + time::Duration::minutes(10));
    let until = timestamp(T0 + time::Duration::minutes(20));
    let text = f.jsonl(&format!("since={since}&until={until}&format=jsonl"));
    let report = verify(&text, &f.key()).unwrap();
    assert_eq!(
        (report.anchor_seq, report.last_seq, report.events),
        (9, 19, 10)
    );
    // The anchor is the stored hash of event 9.
    let h9 = read_after(&f.c(), 8, 1).unwrap().remove(0).hash;
    assert!(text
        .lines()
        .next()
        .unwrap()
        .contains(&crate::crypto::hex(&h9)));
}

#[test]
fn a_changed_byte_in_an_event_is_caught_at_its_seq() {
    let f = fixture(20);
    let mut l = lines(&f.jsonl(""));
    let i = line_of(&l, 6);
    l[i] = l[i].replacen("staff-a", "staff-c", 1);
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert_eq!(
        (err.seq, err.problem.clone()),
        (Some(6), Problem::HashMismatch),
        "{err}"
    );
    assert_eq!(err.line, i as u64 + 1);
}

#[test]
fn a_changed_hash_or_link_is_caught_at_its_seq() {
    let f = fixture(20);
    let base = lines(&f.jsonl(""));
    let mut l = base.clone();
    let i = line_of(&l, 8);
    let pos = l[i].find("\"hash\":\"").unwrap() + 9;
    let flipped = if &l[i][pos..pos + 1] == "0" { "1" } else { "0" };
    l[i].replace_range(pos..pos + 1, flipped);
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert_eq!((err.seq, err.problem), (Some(8), Problem::HashMismatch));
    let mut l = base;
    let pos = l[i].find("\"prev_hash\":\"").unwrap() + 14;
    let flipped = if &l[i][pos..pos + 1] == "a" { "b" } else { "a" };
    l[i].replace_range(pos..pos + 1, flipped);
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert_eq!((err.seq, err.problem), (Some(8), Problem::BrokenLink));
}

#[test]
fn a_deleted_line_is_caught_at_the_missing_seq() {
    let f = fixture(20);
    let mut l = lines(&f.jsonl(""));
    l.remove(line_of(&l, 11));
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert_eq!(
        (err.seq, err.problem),
        (Some(11), Problem::OutOfOrder { found: 12 })
    );
    // The last event removed: the checkpoint no longer sits at the end.
    let mut l = lines(&f.jsonl(""));
    l.remove(line_of(&l, 20));
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert_eq!(err.seq, Some(20), "{err}");
    // The checkpoint removed: truncated.
    let mut l = lines(&f.jsonl(""));
    l.pop();
    assert_eq!(
        verify(&join(&l), &f.key()).unwrap_err().problem,
        Problem::MissingCheckpoint
    );
}

#[test]
fn swapped_lines_are_caught_at_the_first_displaced_seq() {
    let f = fixture(20);
    let mut l = lines(&f.jsonl(""));
    let i = line_of(&l, 4);
    l.swap(i, i + 1);
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert_eq!(
        (err.seq, err.problem),
        (Some(4), Problem::OutOfOrder { found: 5 })
    );
}

#[test]
fn a_replaced_signature_or_another_key_fails() {
    let f = fixture(10);
    let text = f.jsonl("");
    // A genuine signature by another key over the same checkpoint, with the key id kept.
    let other = Keyring::generate().unwrap();
    let (seq, hash) = head(&f.c()).unwrap();
    let forged = other.audit_sign(&checkpoint::checkpoint_message(seq, &hash));
    let mut l = lines(&text);
    let last = l.len() - 1;
    let sig = |s: &str| {
        s.split("\"signature\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    };
    let old = sig(&l[last]);
    l[last] = l[last].replacen(
        &old,
        &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, forged),
        1,
    );
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert_eq!(
        (err.seq, err.problem),
        (Some(10), Problem::BadCheckpointSignature)
    );
    // The untouched file checked with another key: named as such.
    let err = verify(
        &text,
        &PublicKey::from_raw(other.audit_public_key()).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err.problem, Problem::WrongKey { .. }), "{err}");
}

#[test]
fn an_event_hidden_as_a_stub_or_a_forged_anchor_breaks_the_export_signature() {
    let f = fixture(10);
    let text = f.jsonl("");
    let mut l = lines(&text);
    let i = line_of(&l, 5);
    let hash = l[i].split("\"hash\":\"").nth(1).unwrap()[..64].to_string();
    l[i] = format!("{{\"seq\":5,\"hash\":\"{hash}\"}}");
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert_eq!(err.problem, Problem::BadExportSignature);
    // Cutting off the beginning behind a new anchor made from event 3's own hash.
    let mut l = lines(&text);
    let h3 = l[line_of(&l, 3)].split("\"hash\":\"").nth(1).unwrap()[..64].to_string();
    l.drain(0..=line_of(&l, 3));
    l.insert(0, format!("{{\"type\":\"anchor\",\"format\":\"guestvault-audit-export/v1\",\"seq\":3,\"hash\":\"{h3}\"}}"));
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert_eq!(err.problem, Problem::BadExportSignature);
}

#[test]
fn a_changed_csv_cell_is_caught_at_its_seq() {
    let f = fixture(10);
    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    let tampered = csv.replacen(
        "event,7,2026-01-01T00:07:00.000000Z,req-7,staff-b",
        "event,7,2026-01-01T00:07:00.000000Z,req-7,staff-x",
        1,
    );
    assert_ne!(csv, tampered);
    let err = verify(&tampered, &f.key()).unwrap_err();
    assert_eq!((err.seq, err.problem), (Some(7), Problem::HashMismatch));
}

#[test]
fn the_fast_and_the_strict_line_parsers_compute_the_same_hashes() {
    use crate::audit::verify::records::{canonical_event, json_record, Record};
    let f = fixture(15);
    let text = f.jsonl("");
    let events: Vec<&str> = text.lines().filter(|l| l.contains("\"ts\"")).collect();
    assert_eq!(events.len(), 15);
    for line in events {
        let fast = canonical_event(line.as_bytes()).unwrap();
        let strict = json_record(line.as_bytes()).unwrap();
        match (fast, strict) {
            (
                Record::Event {
                    seq: a,
                    hash: h1,
                    computed: c1,
                    ..
                },
                Record::Event {
                    seq: b,
                    hash: h2,
                    computed: c2,
                    ..
                },
            ) => assert!(a == b && h1 == h2 && c1 == h1 && c2 == h2, "seq {a}"),
            _ => panic!("not events"),
        }
    }
    // A line of another shape is left to the strict parser.
    assert!(canonical_event(b"{\"seq\":1,\"hash\":\"00\"}").is_none());
    assert!(canonical_event(b"{\"seq\":01,\"ts\":\"x\"}").is_none());
}

#[test]
fn an_added_key_or_garbage_line_is_malformed() {
    let f = fixture(5);
    let mut l = lines(&f.jsonl(""));
    let i = line_of(&l, 2);
    l[i] = l[i].replacen("{", "{\"note\":\"x\",", 1);
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert!(
        matches!(err.problem, Problem::Malformed(_)) && err.seq == Some(2),
        "{err}"
    );
    assert!(verify("{not json\n", &f.key()).is_err());
    assert!(verify("", &f.key()).is_err());
}

#[test]
fn public_keys_are_read_as_base64_json_or_pem() {
    let k = Keyring::generate().unwrap();
    let key = PublicKey::from_raw(k.audit_public_key()).unwrap();
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        k.audit_public_key(),
    );
    assert_eq!(PublicKey::parse(&format!("{b64}\n")).unwrap(), key);
    assert_eq!(PublicKey::parse(&key.to_pem()).unwrap(), key);
    let json = format!(
        r#"{{"key_id":"{}","algorithm":"Ed25519","public_key":"{b64}"}}"#,
        k.audit_key_id()
    );
    assert_eq!(PublicKey::parse(&json).unwrap(), key);
    assert_eq!(key.key_id(), k.audit_key_id());
    assert!(PublicKey::parse("not a key").is_err());
    assert!(PublicKey::parse(&json.replace("Ed25519", "RSA")).is_err());
}

/// REQ-30: the value hashes of a correction are covered by the chain in both formats; changing,
/// dropping or adding one is caught at its seq, and a 20-cell CSV (before the column existed)
/// still verifies.
#[test]
fn a_changed_or_removed_value_hash_is_caught_at_its_seq() {
    let f = fixture(20);
    let text = f.jsonl("");
    let l = lines(&text);
    let i = line_of(&l, 14);
    assert!(l[i].contains("\"value_hashes\":[{"), "{}", l[i]);
    assert!(verify(&text, &f.key()).is_ok());
    let changed = l[i].replacen(&"cd".repeat(32), &"ce".repeat(32), 1);
    let removed = {
        let start = l[i].find(",\"value_hashes\"").unwrap();
        let end = l[i].find(",\"prev_hash\"").unwrap();
        format!("{}{}", &l[i][..start], &l[i][end..])
    };
    for bad in [changed, removed] {
        let mut t = l.clone();
        t[i] = bad;
        let err = verify(&join(&t), &f.key()).unwrap_err();
        assert_eq!((err.seq, err.problem), (Some(14), Problem::HashMismatch));
    }
    // Added to an event that had none.
    let mut t = l.clone();
    let j = line_of(&l, 15);
    t[j] = t[j].replacen(
        ",\"prev_hash\"",
        ",\"value_hashes\":[{\"field\":\"mobile\",\"before_hash\":null,\"after_hash\":null}],\"prev_hash\"",
        1,
    );
    let err = verify(&join(&t), &f.key()).unwrap_err();
    assert_eq!((err.seq, err.problem), (Some(15), Problem::HashMismatch));

    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    assert!(verify(&csv, &f.key()).is_ok());
    let tampered = csv.replacen(&"cd".repeat(32), &"ce".repeat(32), 1);
    let err = verify(&tampered, &f.key()).unwrap_err();
    assert_eq!((err.seq, err.problem), (Some(7), Problem::HashMismatch));
}

#[test]
fn a_rewritten_value_hash_in_the_database_breaks_the_chain() {
    let f = fixture(10);
    assert_eq!(super::audit::verify_chain(&f.conn).unwrap(), Ok(10));
    f.conn
        .execute_batch(
            "DROP TRIGGER audit_events_no_update;
             UPDATE audit_events SET value_hashes = replace(value_hashes, 'cd', 'ce') WHERE seq = 7;",
        )
        .unwrap();
    assert_eq!(super::audit::verify_chain(&f.conn).unwrap(), Err(7));
}

/// Found by fuzzing (issue 13): the CSV reader took a hash pair `+a` for `0a` and a seq `+3`
/// or `03` for `3`, so an edited export still verified as intact. Every cell must be spelled
/// as the vault writes it.
#[test]
fn non_canonical_hex_and_seqs_in_csv_are_refused() {
    let f = fixture(6);
    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    assert!(verify(&csv, &f.key()).is_ok());
    let hex_cell = hex_pair_with_leading_zero(&csv);
    let mut signed = csv.clone();
    signed.replace_range(hex_cell..hex_cell + 1, "+");
    assert!(verify(&signed, &f.key()).is_err(), "a `+` in a hash");
    for bad in ["event,03,", "event,+3,"] {
        let edited = csv.replacen("event,3,", bad, 1);
        assert_ne!(edited, csv);
        assert!(verify(&edited, &f.key()).is_err(), "seq spelled {bad}");
    }
}

/// The byte offset of a `0` that starts a byte pair of some 64-digit hex cell.
fn hex_pair_with_leading_zero(text: &str) -> usize {
    let mut offset = 0;
    for cell in text.split([',', '\n', '\r']) {
        if cell.len() == 64 && cell.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Some(i) = (0..64).step_by(2).find(|&i| cell.as_bytes()[i] == b'0') {
                return offset + i;
            }
        }
        offset += cell.len() + 1;
    }
    panic!("no hash with a byte below 0x10");
}

/// Found by fuzzing (issue 13, stop 19): a CSV anchor, checkpoint or event row whose unused
/// cells held text (one `,` of the anchor row edited to `X` merged two empty cells into one
/// and the row read as the 20-cell form) still verified, and so did a JSON record with a key
/// its kind does not carry. Every record holds only the members its hash or signature covers.
#[test]
fn a_member_a_record_does_not_use_is_refused() {
    let f = fixture(6);
    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    assert!(verify(&csv, &f.key()).is_ok());
    let rows: Vec<&str> = csv.split_inclusive('\n').collect();
    for kind in ["anchor,", "event,1,", "checkpoint,"] {
        let i = rows.iter().position(|r| r.starts_with(kind)).unwrap();
        let row = rows[i];
        let at = if kind == "event,1," {
            // The comma between `key_id` and `signature`, both empty (as are
            // `export_digest`, `export_signature` and `value_hashes`): `key_id` reads "X".
            let end = row.trim_end().len();
            assert!(row.trim_end().ends_with(",,,,,"), "{row}");
            end - 4
        } else {
            // The first empty cell after the record kind: ",," -> ",X".
            row.find(",,").unwrap() + 1
        };
        let mut edited_row = row.to_string();
        edited_row.replace_range(at..at + 1, "X");
        let mut edited = rows.clone();
        edited[i] = &edited_row;
        let err = verify(&edited.concat(), &f.key()).unwrap_err();
        assert!(matches!(err.problem, Problem::Malformed(_)), "{kind} {err}");
    }
    let mut l = lines(&f.jsonl(""));
    assert!(l[0].contains("\"type\":\"anchor\""));
    l[0] = l[0].replacen("{", "{\"actor\":\"x\",", 1);
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert!(matches!(err.problem, Problem::Malformed(_)), "{err}");
    let mut l = lines(&f.jsonl(""));
    let i = line_of(&l, 2);
    l[i] = l[i].replacen("{", "{\"key_id\":\"x\",", 1);
    let err = verify(&join(&l), &f.key()).unwrap_err();
    assert!(
        matches!(err.problem, Problem::Malformed(_)) && err.seq == Some(2),
        "{err}"
    );
}

/// Found by fuzzing (issue 13, stop 19): a CSV export whose last row lost its final (empty)
/// `value_hashes` cell still verified, read as the 20-cell form of older exports. Every row
/// has the header's width; an older export (20-column header, 20-cell rows) still verifies.
#[test]
fn a_csv_row_narrower_than_the_header_is_refused() {
    let f = fixture(6);
    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    let cut = csv.trim_end().strip_suffix(',').unwrap();
    let err = verify(cut, &f.key()).unwrap_err();
    assert!(matches!(err.problem, Problem::Malformed(_)), "{err}");
    // Every row without its last cell, the header included: the older format.
    let legacy: String = csv
        .lines()
        .map(|l| format!("{}\n", l.strip_suffix(",value_hashes").unwrap_or(l)))
        .map(|l| l.replace(",\n", "\n"))
        .collect();
    assert!(!legacy.contains("value_hashes"));
    assert!(verify(&legacy, &f.key()).is_ok(), "the 20-column form");
}

/// Exports with values that would run as spreadsheet formulas, as they could be stored before
/// the free-text refusal (`formula_prefix`) existed.
fn formula_fixture() -> Fixture {
    let f = fixture(6);
    let mut e = new_event(7, T0 + time::Duration::minutes(7));
    e.justification = Some("=HYPERLINK(\"http://evil.example/\",\"click\")".into());
    e.actor = "@staff".into();
    append(&f.c(), e).unwrap();
    let mut e = new_event(8, T0 + time::Duration::minutes(8));
    e.justification = Some("'quoted note".into());
    e.reason = Some("-1+1".into());
    append(&f.c(), e).unwrap();
    f
}

#[test]
fn csv_cells_that_could_run_as_formulas_are_neutralised_and_verify() {
    let f = formula_fixture();
    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    // No cell of the file starts with a formula character: each such value has a `'` first.
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes());
    for row in rows.records() {
        for cell in row.unwrap().iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell}"
            );
        }
    }
    assert!(csv.contains("'=HYPERLINK"));
    assert!(csv.contains(",'@staff,"));
    assert!(csv.contains(",''quoted note"));
    assert!(csv.contains(",'-1+1,"));
    assert!(verify(&csv, &f.key()).is_ok());
    // The JSON Lines export carries the values as they are, and both hash the same events.
    assert!(f.jsonl("").contains("\"justification\":\"=HYPERLINK("));
    // Dropping the neutralising quote, or adding one, is a change to the file.
    for (from, to) in [
        ("'=HYPERLINK", "=HYPERLINK"),
        (",'@staff,", ",@staff,"),
        (",staff-a,", ",'staff-a,"),
    ] {
        let bad = csv.replacen(from, to, 1);
        assert_ne!(bad, csv);
        assert!(verify(&bad, &f.key()).is_err(), "{from} -> {to}");
    }
}

#[test]
fn text_planted_in_unused_cells_or_keys_is_refused() {
    let f = fixture(5);
    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    let plant = |row: usize, cell: usize, value: &str| -> String {
        let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        let mut cells: Vec<String> = l[row].split(',').map(str::to_string).collect();
        cells[cell] = value.to_string();
        l[row] = cells.join(",");
        l.join("\r\n")
    };
    let checkpoint = lines
        .iter()
        .position(|l| l.starts_with("checkpoint,"))
        .unwrap();
    // An actor on the checkpoint, a formula on the anchor, a key id on an event.
    for (row, cell, value) in [
        (checkpoint, 4, "mallory"),
        (1, 13, "=HYPERLINK(\"\"http://x\"\")"),
        (1, 4, "x"),
        (2, 16, "7c84cad162de8c03"),
    ] {
        let bad = plant(row, cell, value);
        let err = verify(&bad, &f.key()).unwrap_err();
        assert!(
            matches!(err.problem, Problem::Malformed(_)),
            "{row}/{cell}: {err}"
        );
        assert_eq!(err.line, row as u64 + 1, "{err}");
    }
    // JSON Lines: a key an anchor or a checkpoint does not have.
    let text = f.jsonl("");
    let bad = text.replacen(
        "{\"type\":\"anchor\",",
        "{\"type\":\"anchor\",\"actor\":\"x\",",
        1,
    );
    assert!(verify(&bad, &f.key()).is_err());
    let bad = text.replacen(
        "{\"type\":\"checkpoint\",",
        "{\"type\":\"checkpoint\",\"reason\":\"x\",",
        1,
    );
    assert!(verify(&bad, &f.key()).is_err());
}

#[test]
fn csv_line_numbers_are_right_with_crlf() {
    let f = fixture(10);
    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    let tampered = csv.replacen(",req-7,staff-b", ",req-7,staff-x", 1);
    // Line 1 is the header, line 2 the anchor, so event 7 is on line 9.
    let line = tampered
        .split("\r\n")
        .position(|l| l.contains("staff-x"))
        .unwrap()
        + 1;
    assert_eq!(line, 9);
    let err = verify(&tampered, &f.key()).unwrap_err();
    assert_eq!((err.line, err.seq), (9, Some(7)), "{err}");
    // The same with LF only.
    let lf = tampered.replace("\r\n", "\n");
    assert_eq!(verify(&lf, &f.key()).unwrap_err().line, 9);
}

#[test]
fn escape_spellings_and_reordered_keys_are_changes_to_an_event() {
    let f = fixture(5);
    let text = f.jsonl("");
    assert!(
        verify(&text.replace('\n', "\r\n"), &f.key()).is_ok(),
        "CRLF is layout"
    );
    assert!(
        verify(&text.replacen('\n', "\n\n", 1), &f.key()).is_ok(),
        "a blank line is layout"
    );
    let l = lines(&text);
    let i = line_of(&l, 3);
    for (from, to) in [
        ("staff-b", "staff-\\u0062"),
        ("\"role\":\"front_desk\",", "\"role\":\"front\\u005fdesk\","),
        ("\"request_id\":\"req-3\",", "\"request_id\":\"req-3\" ,"),
        ("\"seq\":3,\"ts\"", "\"ts\""),
    ] {
        let mut m = l.clone();
        assert!(m[i].contains(from), "{from}");
        m[i] = m[i].replacen(from, to, 1);
        if to == "\"ts\"" {
            m[i] = m[i].replacen("\"hash\":", "\"seq\":3,\"hash\":", 1);
        }
        let err = verify(&join(&m), &f.key()).unwrap_err();
        assert_eq!(err.seq, Some(3), "{from}: {err}");
    }
    // CSV: a JSON cell in another spelling.
    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    let bad = csv.replacen("\"[\"\"mobile\"\",", "\"[ \"\"mobile\"\",", 1);
    assert_ne!(bad, csv);
    assert!(verify(&bad, &f.key()).is_err());
}

/// The reference verifier (`tools/verify_export.py`, Python with `cryptography` only) and the
/// vault's verifier agree on a corpus of genuine and tampered exports (issue 15).
#[test]
fn the_reference_verifier_agrees_on_genuine_and_tampered_exports() {
    use base64::Engine;
    let f = formula_fixture();
    let dir = tempfile::tempdir().unwrap();
    let raw = f.keyring.audit_public_key();
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let key = f.key();
    let keys = [
        ("key.b64", format!("{b64}\n")),
        (
            "key.json",
            format!(
                "{{\"key_id\":\"{}\",\"algorithm\":\"Ed25519\",\"public_key\":\"{b64}\"}}",
                key.key_id()
            ),
        ),
        ("key.pem", key.to_pem()),
    ];
    for (name, text) in &keys {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let jsonl = f.jsonl("");
    let csv = String::from_utf8(f.export(&parse_export(Some("format=csv")).unwrap())).unwrap();
    let stubs = f.jsonl("actor=staff-a");
    let stubs_csv =
        String::from_utf8(f.export(&parse_export(Some("format=csv&actor=staff-b")).unwrap()))
            .unwrap();
    let mut corpus: Vec<(String, String)> = vec![
        ("genuine jsonl".into(), jsonl.clone()),
        ("genuine csv".into(), csv.clone()),
        ("genuine jsonl with stubs".into(), stubs.clone()),
        ("genuine csv with stubs".into(), stubs_csv.clone()),
        ("jsonl with CRLF".into(), jsonl.replace('\n', "\r\n")),
        ("csv with LF".into(), csv.replace("\r\n", "\n")),
        ("empty".into(), String::new()),
        ("garbage".into(), "{not json\n".into()),
        ("truncated".into(), jsonl[..jsonl.len() / 2].to_string()),
        (
            "no checkpoint".into(),
            jsonl
                .lines()
                .filter(|l| !l.contains("checkpoint"))
                .map(|l| format!("{l}\n"))
                .collect(),
        ),
        (
            "escape spelling".into(),
            jsonl.replacen("staff-b", "staff-\\u0062", 1),
        ),
        (
            "changed actor".into(),
            jsonl.replacen("staff-b", "staff-c", 1),
        ),
        (
            "csv changed actor".into(),
            csv.replacen("staff-b", "staff-c", 1),
        ),
        (
            "csv dropped formula quote".into(),
            csv.replacen("'=HYPERLINK", "=HYPERLINK", 1),
        ),
        (
            "csv actor on checkpoint".into(),
            csv.replacen(
                &format!("checkpoint,{},", 8),
                &format!("checkpoint,{},,,mallory", 8),
                1,
            ),
        ),
        (
            "stub turned event hidden".into(),
            stubs.replacen("\"actor\":\"staff-a\"", "\"actor\":\"staff-z\"", 1),
        ),
        (
            "anchor with extra key".into(),
            jsonl.replacen(
                "{\"type\":\"anchor\",",
                "{\"type\":\"anchor\",\"actor\":\"x\",",
                1,
            ),
        ),
    ];
    // Each single line removed, and each adjacent pair swapped, of the JSONL export.
    let l = lines(&jsonl);
    for i in 0..l.len() {
        let mut m = l.clone();
        m.remove(i);
        corpus.push((format!("line {} removed", i + 1), join(&m)));
        if i + 1 < l.len() {
            let mut m = l.clone();
            m.swap(i, i + 1);
            corpus.push((format!("lines {} and {} swapped", i + 1, i + 2), join(&m)));
        }
    }
    // A byte flipped at evenly spread places of each format.
    for (name, text) in [("jsonl", &jsonl), ("csv", &csv)] {
        let bytes = text.as_bytes();
        for k in 0..40 {
            let pos = k * bytes.len() / 40;
            let mut b = bytes.to_vec();
            b[pos] = if b[pos] == b'1' { b'2' } else { b'1' };
            if let Ok(t) = String::from_utf8(b) {
                corpus.push((format!("{name} byte {pos} changed"), t));
            }
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/verify_export.py");
    let mut intact = 0;
    for (i, (name, text)) in corpus.iter().enumerate() {
        let path = dir.path().join(format!("export-{i}"));
        std::fs::write(&path, text).unwrap();
        let vault = u8::from(verify_export(text.as_bytes(), &key).is_err());
        intact += usize::from(vault == 0);
        let (key_file, _) = &keys[i % keys.len()];
        let out = std::process::Command::new("python3")
            .arg(script)
            .arg(&path)
            .arg("--public-key")
            .arg(dir.path().join(key_file))
            .output()
            .expect("python3 runs");
        let reference = out.status.code().expect("exit code");
        assert!(
            reference == i32::from(vault),
            "{name}: vault {vault}, reference {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        intact, 6,
        "the genuine exports and their line-ending variants"
    );
    // An unreadable key or file is exit 2 for both.
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path().join("export-0"))
        .arg("--public-key")
        .arg(dir.path().join("missing.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(dir.path().join("bad.key"), "not a key").unwrap();
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path().join("no-such-export"))
        .arg("--public-key")
        .arg(dir.path().join("key.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path().join("export-0"))
        .arg("--public-key")
        .arg(dir.path().join("bad.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
