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
    let conn = crate::store::open_writer(&dir.path().join("a.db"), "normal", "fp").unwrap();
    for i in 1..=n {
        append(&conn, new_event(i, T0 + time::Duration::minutes(i as i64))).unwrap();
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
        let mut ex = Export::plan(&self.conn, params, self.keyring.audit_public_key()).unwrap();
        let mut out = ex.header().unwrap();
        // A small page so that every test crosses page boundaries.
        while let Some(page) = ex.next_page(&self.conn, 7).unwrap() {
            out.extend_from_slice(&page);
        }
        let cp = ex.checkpoint(&self.keyring, timestamp(T0));
        checkpoint::store(&self.conn, &cp).unwrap();
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
    let h9 = read_after(&f.conn, 8, 1).unwrap().remove(0).hash;
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
    let (seq, hash) = head(&f.conn).unwrap();
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
    assert_eq!(crate::audit::verify_chain(&f.conn).unwrap(), Ok(10));
    f.conn
        .execute_batch(
            "DROP TRIGGER audit_events_no_update;
             UPDATE audit_events SET value_hashes = replace(value_hashes, 'cd', 'ce') WHERE seq = 7;",
        )
        .unwrap();
    assert_eq!(crate::audit::verify_chain(&f.conn).unwrap(), Err(7));
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
