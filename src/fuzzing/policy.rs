//! `policy`: one of the four policy files replaced by the input, the others embedded, through
//! the same parse and cross-validation as `Policies::load`.

use crate::policy::{Policies, Sources};

use super::split_text;

pub fn policy(data: &[u8]) {
    let Some((sel, text)) = split_text(data) else {
        return;
    };
    let mut sources = Sources::embedded();
    let slot = match sel % 4 {
        0 => &mut sources.fields,
        1 => &mut sources.access,
        2 => &mut sources.retention,
        _ => &mut sources.holidays,
    };
    slot.0 = "fuzz.toml".into();
    slot.1 = text.to_string();
    let labels = [
        &sources.fields.0,
        &sources.access.0,
        &sources.retention.0,
        &sources.holidays.0,
        &sources.notices.0,
    ];
    match Policies::from_sources(&sources) {
        Ok(p) => {
            // Accepted policies are deterministic: a second load gives the same catalog.
            let again = Policies::from_sources(&sources).expect("accepted once, accepted twice");
            assert_eq!(format!("{:?}", p.catalog), format!("{:?}", again.catalog));
        }
        Err(errors) => {
            // Config errors name the file (STYLE): every problem points at one of the five.
            assert!(!errors.0.is_empty());
            for e in &errors.0 {
                assert!(labels.contains(&&e.file), "error names no policy file");
                let _ = e.to_string();
            }
        }
    }
}
