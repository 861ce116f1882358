//! Replays every fuzz target (issue 13 point 6) over its committed, minimized corpus
//! (`fuzz/corpus/<target>/`) and every crash input found so far (`fuzz/regressions/<target>/`),
//! so a plain `cargo test` (no nightly, no cargo-fuzz) fails if a fixed crash comes back or an
//! invariant a target asserts stops holding. `docs/fuzzing.md` says how to fuzz for real.

use std::path::{Path, PathBuf};

use guestvault::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` over each file; on a panic, names the file (the panic message says which
/// invariant failed).
fn replay(name: &str, target: fn(&[u8]), files: &[PathBuf]) {
    for file in files {
        let data = std::fs::read(file).expect("readable input");
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            panic!("fuzz target `{name}` failed on {}", file.display());
        }
    }
}

#[test]
fn every_fuzz_target_passes_its_corpus() {
    for (name, target) in TARGETS {
        let files = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(
            files.len() >= 3,
            "fuzz/corpus/{name} has {} inputs: run `cargo fuzz cmin {name}` and commit it",
            files.len()
        );
        replay(name, *target, &files);
    }
}

#[test]
fn every_crash_found_by_fuzzing_stays_fixed() {
    for (name, target) in TARGETS {
        replay(
            name,
            *target,
            &inputs(&fuzz_dir().join("regressions").join(name)),
        );
    }
}

/// Every `cargo fuzz` target is replayed here, and every replayed target can be fuzzed.
#[test]
fn the_fuzz_crate_and_the_library_list_the_same_targets() {
    let mut shells: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    shells.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(shells, names);
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

/// Every mode byte of the fast targets runs on a valid value without tripping an invariant
/// (a wrongly strict invariant would fail here before it wasted a fuzzing run).
#[test]
fn every_mode_of_the_fast_targets_accepts_a_valid_value() {
    for mode in 0..=255u8 {
        guestvault::fuzzing::validators(&[&[mode][..], b"11010519491231002X"].concat());
        guestvault::fuzzing::mask(&[&[mode][..], "张三丰".as_bytes()].concat());
        guestvault::fuzzing::audit_query(&[&[mode][..], b"limit=5"].concat());
    }
}
