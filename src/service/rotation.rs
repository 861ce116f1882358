//! A rotation that fails is reported where an operator looks (issue 13): in
//! `GET /v1/admin/keys` (`rotation.error`), as an `admin.keys` audit event with outcome
//! `error`, and in `guestvault_key_rotation_failures_total`. A background rotation answered
//! 202 long before; without this its failure was only a log line.

use std::fmt::Display;

use serde::Serialize;

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::policy::Action;

/// Marks an error as the keyring's: it could not be read (or written back) during a rotation.
const KEYRING_UNREADABLE: &str = "keyring_unreadable";

/// Why the last rotation failed. No personal data: a code, and a message about keys and files.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RotationError {
    /// `keyring_unreadable`, `kek_not_on_every_node` (PostgreSQL: a live node did not load the
    /// new KEK in time), `audit_unavailable`, `storage_unavailable` or `internal`.
    pub code: &'static str,
    pub message: String,
    /// RFC 3339.
    pub at: String,
}

/// The error of a keyring load or write inside a rotation.
pub(super) fn keyring_unreadable(e: impl Display) -> VaultError {
    VaultError::Internal(format!("{KEYRING_UNREADABLE}: {e}"))
}

impl Vault {
    pub(super) fn rotation_error(&self) -> Option<RotationError> {
        self.rotation
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn clear_rotation_error(&self) {
        *self
            .rotation
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Records the failure of a rotation that had started (a refusal before the claim, such
    /// as a second rotation, is not one).
    pub(super) async fn rotation_failed(
        &self,
        caller: &Caller,
        rules: Vec<String>,
        e: &VaultError,
    ) {
        let (code, message) = match e {
            VaultError::Internal(m) => match m.strip_prefix(KEYRING_UNREADABLE) {
                Some(rest) => (
                    KEYRING_UNREADABLE,
                    format!("the keyring file cannot be read or written{rest}"),
                ),
                None => match m.strip_prefix(super::nodes::KEK_NOT_ON_EVERY_NODE) {
                    // PostgreSQL: the new KEK stays inactive; run the rotation again to resume.
                    Some(rest) => (
                        super::nodes::KEK_NOT_ON_EVERY_NODE,
                        format!("a live node lacks the new KEK{rest}"),
                    ),
                    None => ("internal", m.clone()),
                },
            },
            VaultError::AuditUnavailable(_) => (
                "audit_unavailable",
                "the audit trail cannot be written".to_string(),
            ),
            VaultError::Store(s) => ("storage_unavailable", s.to_string()),
            other => ("internal", other.to_string()),
        };
        tracing::error!(code, error = %message, "key rotation failed");
        crate::metrics::record_rotation_failure();
        *self
            .rotation
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(RotationError {
            code,
            message,
            at: self.now_ts(),
        });
        let event = self.event(
            caller,
            Action::AdminKeys,
            None,
            vec![],
            Outcome::Error,
            Some(&format!("key rotation failed: {code}")),
            rules,
        );
        if let Err(e) = self.record(event).await {
            tracing::error!(error = %e, "could not record the failed key rotation in the audit trail");
        }
    }
}
