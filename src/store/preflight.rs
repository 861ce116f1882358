//! Checks at start that the files the server must write can be written, so a fault is refused
//! with a message naming the file and the fix instead of being served as a stream of 503s (or,
//! for a leftover read-only `-shm`, an endless "attempt to write a readonly database", issue
//! 13).
//!
//! Two kinds of check, because the server often runs as root, and root ignores mode bits:
//! - the mode: a database, `-wal`, `-shm`, ledger or keyring file without its owner-write
//!   (owner-read for the keyring) bit is refused even for root. Nobody sets 0444 on these by
//!   accident-free means; it is an operator's mistake (or a copy from read-only media), and
//!   writing through it would hide that.
//! - the real thing: each file is opened for writing (without changing it), which fails on a
//!   read-only mount (EROFS) or an immutable file (EPERM), for root too.

use std::path::Path;

/// What is wrong, as one line for the operator: the file and the fix.
pub type Refusal = String;

#[cfg(unix)]
fn mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// The database and its `-wal` and `-shm` (those that exist) must be writable.
pub fn check_database_files(db: &Path) -> Result<(), Refusal> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let file = std::path::PathBuf::from(p);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.is_dir() {
            return Err(format!(
                "`{}` is a directory, not a database file: move it away",
                file.display()
            ));
        }
        let m = mode(&meta);
        if m & 0o200 == 0 {
            let extra = if suffix == "-shm" {
                " (with no server running, deleting the `-shm` file is also safe: SQLite rebuilds it)"
            } else {
                ""
            };
            return Err(format!(
                "`{}` is read-only (mode {m:04o}): the server must write it. Fix: `chmod 600 {}`{extra}",
                file.display(),
                file.display()
            ));
        }
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(&file) {
            return Err(format!(
                "`{}` cannot be opened for writing ({e}): the server must write it. Fix: remount \
                 the data dir's file system read-write, or clear the file's immutable flag \
                 (`chattr -i`), or give it back to the server's user",
                file.display()
            ));
        }
    }
    Ok(())
}

/// The data dir must be able to hold the erasure ledger: the file is created if missing and
/// opened for appending (nothing is written).
pub fn check_ledger(data_dir: &Path, ledger: &Path) -> Result<(), Refusal> {
    if let Ok(meta) = std::fs::metadata(ledger) {
        if meta.is_file() && mode(&meta) & 0o200 == 0 {
            return Err(format!(
                "the erasure ledger `{}` is read-only (mode {:04o}): every erasure must be \
                 recorded in it. Fix: `chmod 600 {}`",
                ledger.display(),
                mode(&meta),
                ledger.display()
            ));
        }
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)
    {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "the data dir `{}` cannot hold the erasure ledger `{}` ({e}): every erasure must be \
             recorded there. Fix: make the data dir writable by the server (and its file system \
             read-write, with free space)",
            data_dir.display(),
            ledger.display()
        )),
    }
}

/// The keyring must be a readable file: checked before its contents are parsed, so an
/// unreadable one is not reported as a missing or corrupt one.
pub fn check_keyring(keyring: &Path) -> Result<(), Refusal> {
    let fix = "Fix its permissions (`chmod 600`, owned by the server's user) or restore \
               `keyring.json` from its backup; do not run `guestvault init`, a new keyring \
               cannot open this database";
    let meta = std::fs::metadata(keyring).map_err(|e| {
        format!(
            "cannot read the keyring `{}` ({e}). {fix}",
            keyring.display()
        )
    })?;
    if !meta.is_file() {
        return Err(format!(
            "the keyring `{}` is not a file. {fix}",
            keyring.display()
        ));
    }
    if mode(&meta) & 0o400 == 0 {
        return Err(format!(
            "the keyring `{}` is not readable by its owner (mode {:04o}). {fix}",
            keyring.display(),
            mode(&meta)
        ));
    }
    std::fs::read(keyring).map(|_| ()).map_err(|e| {
        format!(
            "cannot read the keyring `{}` ({e}). {fix}",
            keyring.display()
        )
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_read_only_database_wal_or_shm_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("g.db");
        assert!(
            check_database_files(&db).is_ok(),
            "no files yet: nothing to refuse"
        );
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("g.db{suffix}"));
            std::fs::write(&file, b"").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
            let err = check_database_files(&db).unwrap_err();
            assert!(err.contains(&file.display().to_string()), "{err}");
            assert!(err.contains("0444") && err.contains("chmod 600"), "{err}");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(check_database_files(&db).is_ok());
    }

    #[test]
    fn an_unreadable_keyring_and_a_read_only_ledger_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("keyring.json");
        let err = check_keyring(&k).unwrap_err();
        assert!(err.contains("from its backup"), "{err}");
        std::fs::create_dir(&k).unwrap();
        assert!(check_keyring(&k).unwrap_err().contains("not a file"));
        std::fs::remove_dir(&k).unwrap();
        std::fs::write(&k, b"{}").unwrap();
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o200)).unwrap();
        assert!(check_keyring(&k).unwrap_err().contains("0200"));
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_keyring(&k).is_ok());

        let ledger = dir.path().join("erasure-ledger.jsonl");
        assert!(check_ledger(dir.path(), &ledger).is_ok());
        assert!(ledger.exists(), "created so it can be fsynced later");
        std::fs::set_permissions(&ledger, std::fs::Permissions::from_mode(0o444)).unwrap();
        let err = check_ledger(dir.path(), &ledger).unwrap_err();
        assert!(
            err.contains("erasure ledger") && err.contains("chmod 600"),
            "{err}"
        );
    }
}
