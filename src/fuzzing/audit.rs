//! `audit_verify` and `audit_query`: the offline export verifier (JSON Lines and CSV, and the
//! public-key parser it takes) and the query/export parameter parsers.
//!
//! `audit_verify` builds genuine exports once per process (a temporary database, a fresh
//! keyring) so it can check the one invariant that matters: a material single-byte edit of a
//! genuine export never verifies as intact.

use std::sync::OnceLock;

use crate::audit::export::Export;
use crate::audit::query::{parse_export, parse_query, ExportParams};
use crate::audit::verify::{verify_export, PublicKey};
use crate::audit::{append, checkpoint, NewEvent, Outcome};
use crate::clock::timestamp;
use crate::crypto::Keyring;

use super::split_text;

struct Genuine {
    key: PublicKey,
    /// A full JSON Lines export, a full CSV export, and a filtered one (with stubs).
    exports: [Vec<u8>; 3],
}

fn event(i: u64) -> NewEvent {
    let at = time::macros::datetime!(2026-01-01 00:00 UTC) + time::Duration::minutes(i as i64);
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
        guest_id: (i.is_multiple_of(4)).then(|| "0191a1d2-0000-7000-8000-000000000001".to_string()),
        fields: vec!["mobile".into(), "id_number".into()],
        outcome: if i.is_multiple_of(5) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        reason: (i.is_multiple_of(5)).then(|| "purpose_not_allowed".to_string()),
        rules: vec!["roles.front_desk.actions".into()],
        justification: (i.is_multiple_of(3))
            .then(|| "guest at the desk, \"ID\" check, 登记,\r\n".into()),
        // Every seventh event is a correction, so mutations reach the value-hash member too.
        value_hashes: if i.is_multiple_of(7) {
            vec![crate::audit::ValueHash {
                field: "mobile".into(),
                before_hash: Some("ab".repeat(32)),
                after_hash: None,
            }]
        } else {
            vec![]
        },
    }
}

fn genuine() -> &'static Genuine {
    static G: OnceLock<Genuine> = OnceLock::new();
    G.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "guestvault-fuzz-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = crate::store::Db::Sqlite(
            crate::store::sqlite::open_writer(&dir.join("a.db"), "off", "fp").expect("db"),
        );
        let conn = db.conn();
        for i in 1..=9 {
            append(&conn, event(i)).expect("append");
        }
        let keyring = Keyring::generate().expect("keyring");
        let export = |params: &ExportParams| {
            let mut ex = Export::plan(&conn, params, keyring.audit_public_key()).expect("plan");
            let mut out = ex.header().expect("header");
            while let Some(page) = ex.next_page(&conn, 4).expect("page") {
                out.extend_from_slice(&page);
            }
            let cp = ex.checkpoint(&keyring, timestamp(time::OffsetDateTime::UNIX_EPOCH));
            checkpoint::store(&conn, &cp).expect("checkpoint");
            out.extend_from_slice(&ex.finish(&keyring, &cp).expect("finish"));
            out
        };
        let q = |s: &str| parse_export(Some(s)).expect("params");
        let exports = [
            export(&q("")),
            export(&q("format=csv")),
            export(&q("actor=staff-a")),
        ];
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
        let key = PublicKey::from_raw(keyring.audit_public_key()).expect("32 bytes");
        Genuine { key, exports }
    })
}

/// Whether replacing `old` by `new` could leave the export's meaning unchanged: whitespace
/// (between JSON tokens), or the case of a hex digit (hashes are decoded case-insensitively).
fn immaterial(old: u8, new: u8) -> bool {
    old.is_ascii_whitespace()
        || new.is_ascii_whitespace()
        || (old.is_ascii_hexdigit() && old.eq_ignore_ascii_case(&new))
}

pub fn audit_verify(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let g = genuine();
    match sel % 4 {
        0 => {
            // Arbitrary bytes: never a panic, and an "intact" report is self-consistent.
            if let Ok(r) = verify_export(rest, &g.key) {
                assert_eq!(r.last_seq - r.anchor_seq, r.events + r.stubs);
                assert_eq!(verify_export(rest, &g.key), Ok(r));
            }
        }
        1 => {
            // A single-byte edit of a genuine export (position, xor) must not verify.
            let which = usize::from(sel / 4) % g.exports.len();
            let mut bytes = g.exports[which].clone();
            let (Some(pos), Some(&x)) = (rest.get(..4), rest.get(4)) else {
                return;
            };
            let pos = u32::from_le_bytes(pos.try_into().expect("4 bytes")) as usize % bytes.len();
            let (old, new) = (bytes[pos], bytes[pos] ^ x);
            if x == 0 || immaterial(old, new) {
                return;
            }
            bytes[pos] = new;
            if verify_export(bytes.as_slice(), &g.key).is_ok() {
                let line = bytes[..pos].split(|&b| b == b'\n').count();
                panic!(
                    "a mutated export verified as intact (export {which}, line {line}, byte \
                     {pos}: {:?} -> {:?})",
                    char::from(old),
                    char::from(new)
                );
            }
        }
        2 => {
            // A genuine export cut at any point, or with bytes appended, is not intact.
            let which = usize::from(sel / 4) % g.exports.len();
            let genuine = &g.exports[which];
            let cut = rest
                .get(..4)
                .map(|p| u32::from_le_bytes(p.try_into().expect("4 bytes")) as usize)
                .unwrap_or(0)
                % genuine.len();
            let mut bytes = genuine[..cut].to_vec();
            bytes.extend_from_slice(rest.get(4..).unwrap_or_default());
            if verify_export(bytes.as_slice(), &g.key).is_ok() {
                // Only what carries no meaning may differ: whitespace, the case of hex digits,
                // CSV quoting (a sound but weaker comparison).
                let strip = |b: &[u8]| -> Vec<u8> {
                    b.iter()
                        .filter(|c| !c.is_ascii_whitespace() && **c != b'"')
                        .map(u8::to_ascii_lowercase)
                        .collect()
                };
                assert_eq!(strip(&bytes), strip(genuine), "an altered export verified");
            }
        }
        _ => {
            // The public-key parser the verifier is given.
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(k) = PublicKey::parse(text) {
                    assert_eq!(PublicKey::parse(&k.to_pem()), Ok(k.clone()));
                    assert_eq!(k.key_id().len(), 16);
                }
            }
        }
    }
}

pub fn audit_query(data: &[u8]) {
    let Some((sel, raw)) = split_text(data) else {
        return;
    };
    let check = |errors: &[crate::domain::FieldError]| {
        assert!(!errors.is_empty());
        for e in errors {
            // A rejected parameter is named only when it looks like a name (no echo).
            assert!(
                crate::policy::is_identifier(&e.field) || e.field == "(invalid field name)",
                "error names a non-identifier"
            );
        }
    };
    if sel % 2 == 0 {
        match parse_query(Some(raw)) {
            Ok(q) => {
                assert!((1..=crate::audit::query::MAX_LIMIT).contains(&q.limit));
                assert!(i64::try_from(q.after_seq).is_ok(), "seq past i64::MAX");
            }
            Err(e) => check(&e),
        }
    } else if let Err(e) = parse_export(Some(raw)) {
        check(&e);
    }
}
