//! `validators` and `mask`: the normalizers of `domain::pii` and the masks of `domain::mask`.

use crate::domain::mask::{self, MaskKind};
use crate::domain::pii::{self, ValidationCode};

use super::{split_text, today};

const DOCUMENT_TYPES: [&str; 6] = [
    "cn_resident_id",
    "passport",
    "hk_macau_permit",
    "taiwan_permit",
    "foreign_permanent_resident",
    "unknown_type",
];

/// A normalizer's output is a fixed point: normalizing it again gives it back unchanged, or
/// the blind index (REQ-12) would find a stored value only under one of two spellings.
fn idempotent(input: &str, f: impl Fn(&str) -> Result<String, ValidationCode>) -> Option<String> {
    let out = f(input).ok()?;
    assert_eq!(
        f(&out).as_deref(),
        Ok(out.as_str()),
        "normalizer not idempotent"
    );
    Some(out)
}

pub fn validators(data: &[u8]) {
    let Some((sel, s)) = split_text(data) else {
        return;
    };
    let today = today();
    match sel % 8 {
        0 => {
            if let Some(id) = idempotent(s, |x| pii::normalize_resident_id(x, today)) {
                assert_eq!(id.len(), 18);
                let born = pii::resident_id_birth_date(&id).expect("valid ID has a birth date");
                assert!(born <= today, "birth date after today");
                assert!(pii::resident_id_gender(&id).is_some());
                // The legacy 15-digit form converts to the same 18-character number.
                assert_eq!(
                    pii::normalize_document("cn_resident_id", &id, today).as_deref(),
                    Ok(id.as_str())
                );
            }
        }
        1 => {
            if let Some(m) = idempotent(s, pii::normalize_mobile) {
                let digits = m.strip_prefix('+').expect("E.164 starts with +");
                assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                assert!((8..=15).contains(&digits.len()));
            }
        }
        2 => {
            if let Some(e) = idempotent(s, pii::normalize_email) {
                assert_eq!(e, e.to_ascii_lowercase());
                assert_eq!(e.matches('@').count(), 1);
                assert!(e.chars().count() <= 254);
            }
        }
        3 => {
            if let Some(n) = idempotent(s, pii::normalize_name) {
                assert!((1..=30).contains(&n.chars().count()));
                assert_eq!(n.trim(), n);
                assert!(!n.contains("  "));
            }
        }
        4 => {
            let t = DOCUMENT_TYPES[usize::from(sel / 8) % DOCUMENT_TYPES.len()];
            if let Some(d) = idempotent(s, |x| pii::normalize_document(t, x, today)) {
                assert!(!d.chars().any(char::is_whitespace));
                assert_ne!(t, "unknown_type");
            }
            if pii::icao_check_digit(s).is_some_and(|d| d > 9) {
                panic!("ICAO check digit out of range");
            }
        }
        5 => {
            if let Ok(d) = pii::parse_date(s) {
                assert_eq!(pii::parse_date(&d.to_string()), Ok(d), "date round trip");
            }
            if let Ok(d) = pii::validate_birth_date(s, today) {
                assert!(d <= today);
                assert_eq!(pii::validate_birth_date(&d.to_string(), today), Ok(d));
            }
        }
        6 => {
            idempotent(s, pii::normalize_country);
            idempotent(s, pii::normalize_currency);
            idempotent(s, pii::normalize_code);
            idempotent(s, |x| pii::normalize_text(x, 500));
            if let Some(a) = idempotent(s, pii::normalize_amount) {
                let (int, frac) = a.split_once('.').expect("two decimals");
                assert_eq!(frac.len(), 2);
                assert!(int == "0" || !int.starts_with('0'));
            }
        }
        _ => {
            // The justification check must be total, with any known values.
            let (note, known) = s.split_once('\n').unwrap_or((s, ""));
            let known: Vec<&str> = known.split('\n').collect();
            let _ = crate::domain::carries_personal_data(note, &known);
        }
    }
}

/// Han ideographs, the ranges of the name validator and of the masks.
fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}' | '\u{30000}'..='\u{323AF}')
}

/// Characters of `masked` that are not mask characters.
fn shown(masked: &str) -> usize {
    masked.chars().filter(|c| !matches!(c, '*' | ' ')).count()
}

pub fn mask(data: &[u8]) {
    let Some((sel, s)) = split_text(data) else {
        return;
    };
    // Any text through every mask: total, and the fixed masks are fixed.
    for kind in [
        MaskKind::Mobile,
        MaskKind::IdNumber,
        MaskKind::Name,
        MaskKind::Email,
        MaskKind::Address,
        MaskKind::Document,
        MaskKind::BirthDate,
        MaskKind::Redact,
        MaskKind::None,
    ] {
        let out = kind.apply(s);
        assert_eq!(kind.as_str().parse::<MaskKind>(), Ok(kind));
        match kind {
            MaskKind::Redact => assert_eq!(out, "****"),
            MaskKind::None => assert_eq!(out, s),
            _ if s.trim().is_empty() => assert_eq!(out, "", "{kind:?} of blank input"),
            _ => {}
        }
    }
    let today = today();
    match sel % 7 {
        0 => {
            if let Ok(m) = pii::normalize_mobile(s) {
                let out = mask::mask_mobile(&m);
                assert_ne!(out, m);
                assert!(out.contains("****"));
                let digits = |t: &str| t.bytes().filter(u8::is_ascii_digit).count();
                // Mainland: 4 of 13 digits hidden; elsewhere first 2 + last 4 of at least 8.
                let hidden = if m.starts_with("+86") { 4 } else { 2 };
                assert!(
                    digits(&out) + hidden <= digits(&m),
                    "mobile mask shows too much"
                );
            }
        }
        1 => {
            if let Ok(id) = pii::normalize_resident_id(s, today) {
                let out: Vec<char> = MaskKind::IdNumber.apply(&id).chars().collect();
                let id: Vec<char> = id.chars().collect();
                assert_eq!(out.len(), 18);
                // REQ-14: the birth date (positions 7-14) is never shown.
                assert!(out[1..16].iter().all(|&c| c == '*'));
                assert_eq!((out[0], &out[16..]), (id[0], &id[16..]));
            }
        }
        2 => {
            let t = DOCUMENT_TYPES[usize::from(sel / 7) % 5];
            if let Ok(doc) = pii::normalize_document(t, s, today) {
                for kind in [MaskKind::Document, MaskKind::IdNumber] {
                    let out: Vec<char> = kind.apply(&doc).chars().collect();
                    let doc: Vec<char> = doc.chars().collect();
                    assert_eq!(out.len(), doc.len());
                    let same = out.iter().zip(&doc).filter(|(a, b)| a == b).count();
                    let allowed = match doc.len() {
                        0..=4 => 0,
                        5 | 6 => 2,
                        _ => 5,
                    };
                    assert!(
                        same <= allowed,
                        "document mask shows {same} of {}",
                        doc.len()
                    );
                }
            }
        }
        3 => {
            if let Ok(name) = pii::normalize_name(s) {
                let out = mask::mask_name(&name);
                assert_ne!(out, name);
                assert!(out.contains('*'));
                let letters: Vec<char> = name.chars().filter(|c| *c != ' ').collect();
                if letters.iter().all(|&c| is_han(c)) {
                    // REQ-14: a Han name never shows more than 2 of 3 characters (1 of 2);
                    // longer ones at most ⌈n/2⌉, and never more than a compound surname
                    // plus one character (the documented rule: `欧阳娜娜娜` → `欧阳**娜`).
                    let allowed = match letters.len() {
                        n @ 0..=2 => n.saturating_sub(1),
                        n => n.div_ceil(2).min(3),
                    };
                    assert!(shown(&out) <= allowed, "Han name mask shows too much");
                }
            }
        }
        4 => {
            if let Ok(e) = pii::normalize_email(s) {
                let (local, domain) = e.split_once('@').expect("normalized e-mail has @");
                let first: String = local.chars().take(1).collect();
                assert_eq!(mask::mask_email(&e), format!("{first}****@{domain}"));
            }
        }
        5 => {
            if let Ok(d) = pii::validate_birth_date(s, today) {
                let d = d.to_string();
                let out = mask::mask_birth_date(&d);
                assert_eq!(out, format!("**-{}", &d[5..]), "the year stays hidden");
            }
        }
        _ => {
            if let Ok(a) = pii::normalize_text(s, 500) {
                let out = mask::mask_address(&a);
                if a.chars().any(is_han) {
                    let kept = out.strip_suffix("********").expect("fixed tail");
                    // Only the administrative prefix (province, city, district) is kept.
                    assert!(a.starts_with(kept), "address mask keeps only a prefix");
                } else if let Some(last) = out.strip_prefix("********, ") {
                    assert!(a.ends_with(last), "address mask keeps only the last part");
                    assert!(last.chars().count() < a.chars().count());
                } else {
                    assert_eq!(out, "********");
                }
            }
        }
    }
}
