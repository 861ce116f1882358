#![no_main]
//! Thin shell: the target's logic and invariants are `guestvault::fuzzing::keyring`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| guestvault::fuzzing::keyring(data));
