#![no_main]
//! Thin shell: the target's logic and invariants are `guestvault::fuzzing::json_bodies`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| guestvault::fuzzing::json_bodies(data));
