#![no_main]
//! Thin shell: the target's logic and invariants are `guestvault::fuzzing::audit_verify`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| guestvault::fuzzing::audit_verify(data));
