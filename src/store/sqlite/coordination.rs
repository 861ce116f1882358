//! Coordination on SQLite: nothing to do. One server runs per data dir (`guestvault.lock`,
//! held while it serves), so every background job already runs on one node; the in-process
//! flags it had before (one rotation, one verification at a time) stay where they are. These
//! are the no-op counterparts of `store/postgres/coordination.rs`.

use super::SqliteConn;
use crate::store::coordination::{Job, NodeReport, NodeRow};
use crate::store::StoreError;

/// Always granted: the data-dir lock already makes this server the only one.
pub fn try_xact_lock(_conn: &SqliteConn, _job: Job) -> Result<bool, StoreError> {
    Ok(true)
}

/// No heartbeat table: there are no other nodes. The keyring file alone says which KEK is
/// active (`None`).
pub fn heartbeat(_conn: &SqliteConn, _node: &NodeReport) -> Result<Option<u32>, StoreError> {
    Ok(None)
}

/// The keyring file alone says which KEK is active.
pub fn kek_in_force(
    _conn: &SqliteConn,
    _keyring_active: u32,
    _by: &str,
) -> Result<Option<u32>, StoreError> {
    Ok(None)
}

pub fn remove_node(_conn: &SqliteConn, _node_id: &str) -> Result<(), StoreError> {
    Ok(())
}

/// No other node is ever live.
pub fn live_nodes(_conn: &SqliteConn, _live_secs: f64) -> Result<Vec<NodeRow>, StoreError> {
    Ok(Vec::new())
}

/// No node can lack a KEK: nothing holds the activation back.
pub fn try_activate_kek(
    _conn: &SqliteConn,
    _version: u32,
    _live_secs: f64,
    _by: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_sqlite_every_job_is_granted_and_no_other_node_exists() {
        let dir = tempfile::tempdir().unwrap();
        let conn =
            crate::store::sqlite::open_writer(&dir.path().join("g.db"), "full", "fp").unwrap();
        assert!(try_xact_lock(&conn, Job::Checkpoint).unwrap());
        assert!(try_xact_lock(&conn, Job::Checkpoint).unwrap());
        let me = NodeReport {
            node_id: "node-a".into(),
            version: "0".into(),
            keyring_fingerprint: "fp".into(),
            kek_versions: vec![1, 2],
            active_kek: 2,
            listen: "127.0.0.1:0".into(),
        };
        assert_eq!(heartbeat(&conn, &me).unwrap(), None);
        assert_eq!(kek_in_force(&conn, 2, "start").unwrap(), None);
        assert!(live_nodes(&conn, 10.0).unwrap().is_empty());
        assert!(try_activate_kek(&conn, 3, 10.0, "node-a")
            .unwrap()
            .is_empty());
    }
}
