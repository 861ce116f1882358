//! Fuzz targets (issue 13 point 6), kept in the library as plain functions so that the
//! `cargo fuzz` crate under `fuzz/` is a thin shell and a normal `cargo test` replays the
//! committed corpus and every crash input (`tests/fuzz_replay.rs`): CI needs no nightly.
//!
//! Each `pub fn <target>(data: &[u8])` must never panic on any input; where it is cheap, it
//! also asserts an invariant (normalizers are idempotent, masks hide what their format says,
//! parsed files round-trip, a single-byte edit of a genuine audit export never verifies) by
//! panicking, which the fuzzer reports as a crash. Not part of the product API.

mod audit;
mod crypto;
mod domain;
mod policy;

pub use audit::{audit_query, audit_verify};
pub use crypto::keyring;
pub use domain::{mask, validators};
pub use policy::policy;

/// `json_bodies`: the JSON request bodies through the `ApiJson` extractor, then the
/// service-level validation of create, patch and stay bodies (lives beside the body types).
pub use crate::http::fuzz_bodies::json_bodies;

/// A fuzz target: any bytes in, a panic when an invariant fails.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay test and the fuzz crate.
pub const TARGETS: &[(&str, Target)] = &[
    ("validators", validators),
    ("mask", mask),
    ("policy", policy),
    ("json_bodies", json_bodies),
    ("audit_verify", audit_verify),
    ("audit_query", audit_query),
    ("keyring", keyring),
];

/// The fixed "today" of targets that need one, so a replayed input behaves the same any day.
fn today() -> time::Date {
    time::macros::date!(2026 - 06 - 01)
}

/// The first byte picks a mode, the rest is text; `None` when the rest is not UTF-8 (the
/// product only ever sees `str` there: JSON and TOML decoding reject invalid UTF-8 first).
fn split_text(data: &[u8]) -> Option<(u8, &str)> {
    let (&sel, rest) = data.split_first()?;
    Some((sel, std::str::from_utf8(rest).ok()?))
}
