#![no_main]
//! Thin shell: the target's logic and invariants are `guestvault::fuzzing::mask`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| guestvault::fuzzing::mask(data));
