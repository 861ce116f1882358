//! The vault's use cases: the one choke point every read or write of personal data passes
//! through. Each operation authorizes (policy), encrypts or decrypts, masks, and appends its
//! audit event in the same transaction as its data change; reads answer only after their event
//! has committed. If the audit event cannot be written the operation fails and no data leaves.

mod audit;
mod guests;
mod stays;

use std::sync::Arc;

pub use audit::{AuditExport, AuditPage, EventOut, PublicKeyInfo};
pub use guests::{GuestView, NewGuest, RevealView};
pub use stays::StayView;

use crate::audit::{NewEvent, Outcome};
use crate::clock::{timestamp, Clock};
use crate::crypto::Keyring;
use crate::domain::{FieldError, GuestId};
use crate::policy::{is_identifier, Action, Basis, Denial, DenyReason, Grant, Policies};
use crate::store::{GuestStatus, Readers, StoreError, Writer};

/// Who is asking, under which purpose, in which request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub request_id: String,
    /// JWT `sub`: a staff or system id, or the guest's own id for the `guest` role.
    pub actor: String,
    pub role: String,
    pub purpose: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("denied: {}", .0.as_str())]
    Denied(DenyReason),
    #[error("guest not found")]
    NotFound,
    #[error("guest data is restricted to storage")]
    Restricted,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("field is not searchable")]
    FieldNotSearchable,
    #[error("the audit trail cannot be written")]
    AuditUnavailable(#[source] StoreError),
    #[error("storage unavailable")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The vault: policies, keys, storage and a clock.
#[derive(Debug, Clone)]
pub struct Vault {
    policies: Arc<Policies>,
    keyring: Arc<Keyring>,
    writer: Writer,
    readers: Arc<Readers>,
    clock: Arc<dyn Clock>,
}

impl Vault {
    pub fn new(
        policies: Arc<Policies>,
        keyring: Arc<Keyring>,
        writer: Writer,
        readers: Arc<Readers>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            policies,
            keyring,
            writer,
            readers,
            clock,
        }
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    pub fn readers(&self) -> &Arc<Readers> {
        &self.readers
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    fn now_ts(&self) -> String {
        timestamp(self.clock.now())
    }

    fn today(&self) -> time::Date {
        self.clock.now().date()
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the audit event's columns"
    )]
    /// Builds an audit event for `caller`. The purpose and role are recorded only if they are
    /// plain identifiers: a header value is never copied into the trail verbatim.
    fn event(
        &self,
        caller: &Caller,
        action: Action,
        guest_id: Option<&str>,
        fields: Vec<String>,
        outcome: Outcome,
        reason: Option<&str>,
        rules: Vec<String>,
    ) -> NewEvent {
        let clean = |s: &str| {
            if is_identifier(s) {
                s.to_string()
            } else {
                "(invalid)".to_string()
            }
        };
        NewEvent {
            ts: self.now_ts(),
            request_id: caller.request_id.clone(),
            actor: caller.actor.clone(),
            role: clean(&caller.role),
            purpose: caller.purpose.as_deref().map(clean),
            action: action.as_str().to_string(),
            guest_id: guest_id
                .and_then(GuestId::parse)
                .map(|g| g.as_str().to_string()),
            fields,
            outcome,
            reason: reason.map(str::to_string),
            rules,
            justification: None,
        }
    }

    /// Appends one event in its own transaction; a failure becomes `AuditUnavailable`.
    async fn record(&self, event: NewEvent) -> Result<(), VaultError> {
        self.writer
            .execute(move |c| crate::audit::append(c, event).map(|_| ()))
            .await
            .map_err(VaultError::AuditUnavailable)
    }

    /// Records a refusal and returns the error to answer with (or 503 if even that fails).
    async fn refuse(
        &self,
        caller: &Caller,
        action: Action,
        guest_id: Option<&str>,
        fields: Vec<String>,
        error: VaultError,
        rules: Vec<String>,
    ) -> VaultError {
        let (outcome, reason) = match &error {
            VaultError::Denied(r) => (Outcome::Denied, r.as_str()),
            VaultError::NotFound => (Outcome::Denied, "guest_not_found"),
            VaultError::Restricted => (Outcome::Denied, "restricted"),
            VaultError::Validation(_) => (Outcome::Error, "validation_failed"),
            VaultError::FieldNotSearchable => (Outcome::Error, "field_not_searchable"),
            _ => (Outcome::Error, "internal"),
        };
        let event = self.event(
            caller,
            action,
            guest_id,
            fields,
            outcome,
            Some(reason),
            rules,
        );
        match self.record(event).await {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    /// Request-level authorization, audited when refused.
    async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        guest_id: Option<&str>,
    ) -> Result<Grant<'_>, VaultError> {
        match self
            .policies
            .access
            .authorize(&caller.role, caller.purpose.as_deref(), action)
        {
            Ok(grant) => Ok(grant),
            Err(Denial { reason, rules }) => Err(self
                .refuse(
                    caller,
                    action,
                    guest_id,
                    vec![],
                    VaultError::Denied(reason),
                    rules,
                )
                .await),
        }
    }

    /// Parses a path id; a malformed one is answered exactly like an unknown guest.
    async fn guest_id(
        &self,
        caller: &Caller,
        action: Action,
        raw: &str,
    ) -> Result<GuestId, VaultError> {
        match GuestId::parse(raw) {
            Some(id) => Ok(id),
            None => Err(self
                .refuse(caller, action, None, vec![], VaultError::NotFound, vec![])
                .await),
        }
    }

    /// Status and consent checks that apply once the guest's row is known: unknown or erased →
    /// 404; restricted → 403 unless the purpose is flagged `restricted_access` (PIPL Art.
    /// 47(2)); a consent purpose without the guest's active consent → 403 (PIPL Art. 13–15).
    /// Returns whether a *separate* consent is on record (needed for sensitive fields).
    async fn check_guest(
        &self,
        caller: &Caller,
        grant: &Grant<'_>,
        guest_id: &GuestId,
        status: Option<GuestStatus>,
        consent: Option<ConsentState>,
    ) -> Result<bool, VaultError> {
        let action = grant.action();
        let gid = Some(guest_id.as_str());
        match status {
            None | Some(GuestStatus::Erased) => {
                return Err(self
                    .refuse(
                        caller,
                        action,
                        gid,
                        vec![],
                        VaultError::NotFound,
                        grant.rules().to_vec(),
                    )
                    .await)
            }
            Some(GuestStatus::Restricted) if !grant.purpose().restricted_access => {
                let rule = format!("purposes.{}.restricted_access", grant.purpose().name);
                return Err(self
                    .refuse(
                        caller,
                        action,
                        gid,
                        vec![],
                        VaultError::Restricted,
                        vec![rule],
                    )
                    .await);
            }
            _ => {}
        }
        if grant.purpose().basis != Basis::Consent {
            return Ok(false);
        }
        match consent {
            Some(ConsentState {
                granted: true,
                separate,
            }) => Ok(separate),
            _ => {
                let rule = format!("purposes.{}.basis", grant.purpose().name);
                Err(self
                    .refuse(
                        caller,
                        action,
                        gid,
                        vec![],
                        VaultError::Denied(DenyReason::ConsentRequired),
                        vec![rule],
                    )
                    .await)
            }
        }
    }
}

/// The current consent of a guest for one purpose.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsentState {
    pub granted: bool,
    pub separate: bool,
}

pub(crate) fn consent_state(
    conn: &rusqlite::Connection,
    guest_id: &str,
    purpose: &str,
) -> Result<Option<ConsentState>, StoreError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached(
            "SELECT status, separate FROM consents WHERE guest_id = ?1 AND purpose = ?2",
        )?
        .query_row([guest_id, purpose], |r| {
            Ok(ConsentState {
                granted: r.get::<_, String>(0)? == "granted",
                separate: r.get::<_, i64>(1)? != 0,
            })
        })
        .optional()?)
}
