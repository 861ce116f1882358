//! The phone rules cross-checked against Google's libphonenumber (issue 15): 5,750 generated
//! numbers, every mainland `1xx` prefix and 20 other regions, in the spellings staff type
//! (spaces, dashes, `+86`, `0086`, `(+86)`, full width, trunk zeros after the country code).
//! The expected answers in `tests/data/phone_oracle.tsv` come from Google's Python port
//! (`phonenumbers`, pinned to the metadata release of the `phonenumber` crate), written by
//! `tools/gen_phone_oracle.py`: an oracle independent of the Rust port the vault uses.

use std::collections::BTreeSet;

use guestvault::domain::pii::{normalize_mobile, ValidationCode, PHONE_METADATA_VERSION};

const ORACLE: &str = include_str!("data/phone_oracle.tsv");

#[test]
fn the_oracle_uses_the_metadata_release_of_the_crate() {
    let header = ORACLE.lines().next().unwrap();
    assert!(
        header.contains(&format!("phonenumbers {PHONE_METADATA_VERSION} ")),
        "{header}"
    );
    let lock = include_str!("../Cargo.lock");
    assert!(
        lock.contains(&format!(
            "name = \"phonenumber\"\nversion = \"0.3.10+{PHONE_METADATA_VERSION}\""
        )),
        "Cargo.lock's phonenumber is not the metadata release the oracle was made with"
    );
}

#[test]
fn every_generated_number_gets_libphonenumbers_answer() {
    let mut regions = BTreeSet::new();
    let mut mainland_prefixes = BTreeSet::new();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in ORACLE.lines().filter(|l| !l.starts_with('#')) {
        let mut cells = line.split('\t');
        let (region, input, expected) = (
            cells.next().unwrap(),
            cells.next().unwrap(),
            cells.next().unwrap(),
        );
        let got = match normalize_mobile(input) {
            Ok(e164) => e164,
            Err(ValidationCode::NotMobile) => "not_mobile".into(),
            Err(ValidationCode::InvalidFormat) => "invalid_format".into(),
            Err(other) => other.as_str().into(),
        };
        if got != expected {
            wrong.push(format!(
                "{region} {input:?}: vault {got}, libphonenumber {expected}"
            ));
        }
        regions.insert(region.to_string());
        if region == "CN" {
            let digits: String = input
                .chars()
                .filter_map(|c| {
                    let c = char::from_u32(if ('０'..='９').contains(&c) {
                        c as u32 - 0xFEE0
                    } else {
                        c as u32
                    })?;
                    c.is_ascii_digit().then_some(c)
                })
                .collect();
            let national = digits.trim_start_matches("0086");
            let national = if national.len() == 13 {
                &national[2..]
            } else {
                national
            };
            mainland_prefixes.insert(national[..3].to_string());
        }
        checked += 1;
    }
    assert!(checked >= 5_000, "{checked} numbers");
    assert_eq!(regions.len(), 21, "{regions:?}");
    assert_eq!(mainland_prefixes.len(), 70, "{mainland_prefixes:?}");
    assert!(
        wrong.is_empty(),
        "{} of {checked} disagree:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
