//! What the compliance console needs beyond the REST API's use cases: the audit trail's status
//! at a glance (events stored, the newest signed checkpoint and when it was signed). Authorized
//! as `audit.read` and audited like a query, before anything is returned.

use serde::Serialize;

use super::{Caller, Vault, VaultError};
use crate::audit::{checkpoint, Outcome};
use crate::policy::Action;
use crate::store;

/// The trail's head and its newest signed checkpoint (no verification: that is
/// [`Vault::verify_audit`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainStatus {
    /// Events stored (after any retention purge).
    pub events: u64,
    /// The newest event's seq; `None` for an empty trail.
    pub head_seq: Option<u64>,
    /// The newest signed checkpoint: its seq and when it was signed (UTC, stored format).
    pub checkpoint_seq: Option<u64>,
    pub checkpoint_signed_at: Option<String>,
}

impl Vault {
    pub async fn audit_chain_status(&self, caller: &Caller) -> Result<ChainStatus, VaultError> {
        let action = Action::AuditRead;
        let grant = self.authorize(caller, action, None).await?;
        let event = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some("chain status read"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        self.readers
            .run(|c| {
                let (events, head_seq) = store::audit::count_and_head(c)?;
                let cp = checkpoint::latest(c)?;
                Ok(ChainStatus {
                    events,
                    head_seq,
                    checkpoint_seq: cp.as_ref().map(|c| c.seq),
                    checkpoint_signed_at: cp.map(|c| c.signed_at),
                })
            })
            .await
            .map_err(VaultError::from)
    }
}
