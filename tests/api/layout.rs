//! The storage seam's layout (issue 14, design requirement 1): the SQLite driver is used only
//! under `src/store/sqlite/`, a PostgreSQL client only under `src/store/postgres/`, and no SQL
//! is run outside `src/store/`. The rest of the vault reaches storage through `crate::store`.

use std::path::{Path, PathBuf};

/// Calls that run SQL (or set pragmas) on a driver connection.
const SQL_CALLS: [&str; 8] = [
    "prepare_cached(",
    "query_row(",
    "query_map(",
    "execute_batch(",
    "pragma_update(",
    "transaction_with_behavior(",
    "\"SELECT ",
    "\"INSERT INTO ",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files under `root` (relative paths, `/`-separated) that contain any of `needles` and are
/// not under one of `allowed` (prefixes relative to `root`).
fn offenders(root: &Path, needles: &[&str], allowed: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if allowed.iter().any(|a| rel.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for n in needles {
            if text.contains(n) {
                bad.push(format!("{rel}: {n}"));
            }
        }
    }
    bad.sort();
    bad
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn rusqlite_is_used_only_in_the_sqlite_backend() {
    let bad = offenders(&src(), &["rusqlite"], &["store/sqlite/"]);
    assert!(
        bad.is_empty(),
        "rusqlite outside src/store/sqlite/: {bad:#?}"
    );
}

#[test]
fn a_postgres_client_is_used_only_in_the_postgres_backend() {
    let bad = offenders(
        &src(),
        &[
            "tokio_postgres",
            "deadpool_postgres",
            "postgres_types",
            "postgres_protocol",
            "use postgres::",
        ],
        &["store/postgres/"],
    );
    assert!(
        bad.is_empty(),
        "PostgreSQL client outside src/store/postgres/: {bad:#?}"
    );
}

#[test]
fn no_sql_runs_outside_the_storage_seam() {
    let bad = offenders(&src(), &SQL_CALLS, &["store/"]);
    assert!(bad.is_empty(), "SQL outside src/store/: {bad:#?}");
}

#[test]
fn the_layout_check_finds_an_offender() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store/sqlite")).unwrap();
    std::fs::create_dir_all(dir.path().join("service")).unwrap();
    std::fs::write(
        dir.path().join("store/sqlite/ok.rs"),
        "use rusqlite::Connection;",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("service/bad.rs"),
        "fn f(c: &rusqlite::Connection) { c.query_row(\"SELECT 1\", [], |_| Ok(())); }",
    )
    .unwrap();
    assert_eq!(
        offenders(dir.path(), &["rusqlite"], &["store/sqlite/"]),
        vec!["service/bad.rs: rusqlite".to_string()]
    );
    assert_eq!(
        offenders(dir.path(), &SQL_CALLS, &["store/"]),
        vec![
            "service/bad.rs: \"SELECT ".to_string(),
            "service/bad.rs: query_row(".to_string()
        ]
    );
}
