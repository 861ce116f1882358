//! The DSR officer's desk (issue 17): what the console's data-subject request and guest pages
//! need beyond the REST API's use cases. The queue of open requests (overdue or not), the
//! newest erasure receipts, one guest's requests, requests taken in at the desk or by phone
//! (an access request recorded to be answered by an export; a correction request recorded to
//! be verified), and one guest's audit events. Each is authorized under the caller's role and
//! purpose, refused to a self-only role (a guest's own token), and audited before anything is
//! returned, like the API's calls.
//!
//! `dsr_requests` rows name nobody (their subject is a keyed HMAC of the guest id), so the
//! queue shows a request's kind, status and dates, never a guest; a pending correction shows
//! its guest's opaque id from `correction_requests`, as `GET /v1/dsr-requests` does.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::domain::GuestId;
use crate::policy::{Action, DenyReason, Grant};
use crate::store::{self, DsrRow};

/// The purpose the desk works under.
pub const DSR_PURPOSE: &str = "data_subject_request";
/// Requests a list shows at most.
pub const DESK_LIMIT: usize = 200;
/// A guest's audit events shown at most per page.
pub const GUEST_EVENTS_LIMIT: usize = 50;

/// A data-subject request as the desk shows it: no guest, no value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeskRequest {
    pub request_id: String,
    /// `erasure`, `access` or `correction`.
    pub kind: String,
    pub status: String,
    pub received_at: String,
    pub completed_at: Option<String>,
    /// ISO date (REQ-32: 15 Chinese working days, at most 30 calendar days; for a guest under
    /// the GDPR too, at most one month, extendable: REQ-48).
    pub due_at: String,
    /// Which clock set `due_at`, each regime's due date, and any extension.
    pub deadlines: super::DsrClock,
    /// The stored receipt (field names, retained classes and their basis; no value).
    pub receipt: Value,
}

impl From<DsrRow> for DeskRequest {
    fn from(r: DsrRow) -> Self {
        Self {
            receipt: serde_json::from_str(&r.receipt).unwrap_or(Value::Null),
            deadlines: super::DsrClock::of_row(r.deadlines.as_deref(), &r.due_at),
            request_id: r.request_id,
            kind: r.kind,
            status: r.status,
            received_at: r.received_at,
            completed_at: r.completed_at,
            due_at: r.due_at,
        }
    }
}

/// An access request taken in at the desk.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessIntake {
    pub request_id: String,
    pub received_at: String,
    pub due_at: String,
    pub deadlines: super::DsrClock,
}

impl Vault {
    /// Authorizes `action` for a staff role (a self-only role is refused, audited).
    pub(super) async fn desk_grant(
        &self,
        caller: &Caller,
        action: Action,
    ) -> Result<Grant<'_>, VaultError> {
        let grant = self.authorize(caller, action, None).await?;
        if grant.role().self_only {
            let rule = format!("roles.{}.self_only", grant.role().name);
            return Err(self
                .refuse(
                    caller,
                    action,
                    None,
                    vec![],
                    VaultError::Denied(DenyReason::ActionNotAllowed),
                    vec![rule],
                )
                .await);
        }
        Ok(grant)
    }

    /// The queue: every request not yet answered (`received`, or a correction waiting for
    /// verification whose guest still exists), earliest due first. Authorized and audited as
    /// `guest.erase` like [`Vault::overdue_requests`].
    pub async fn open_requests(&self, caller: &Caller) -> Result<Vec<DeskRequest>, VaultError> {
        let action = Action::GuestErase;
        let grant = self.desk_grant(caller, action).await?;
        let rows = self.readers.run(|c| store::open_dsr(c, DESK_LIMIT)).await?;
        let event = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some("open requests listed"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        Ok(rows.into_iter().map(DeskRequest::from).collect())
    }

    /// The newest erasure receipts, newest first (audited as `guest.erase`).
    pub async fn erasure_receipts(&self, caller: &Caller) -> Result<Vec<DeskRequest>, VaultError> {
        let action = Action::GuestErase;
        let grant = self.desk_grant(caller, action).await?;
        let rows = self
            .readers
            .run(|c| store::recent_dsr(c, "erasure", DESK_LIMIT))
            .await?;
        let event = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some("erasure receipts listed"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        Ok(rows.into_iter().map(DeskRequest::from).collect())
    }

    /// One guest's requests (found by the keyed subject digest), newest first. Authorized as
    /// `guest.export` (the right to answer them), audited with the guest id. The guest need
    /// not exist any more: an erased guest's receipts stay.
    pub async fn guest_requests(
        &self,
        caller: &Caller,
        raw_id: &str,
    ) -> Result<Vec<DeskRequest>, VaultError> {
        let action = Action::GuestExport;
        let grant = self.desk_grant(caller, action).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let subject = self.subject(guest_id.as_str());
        let rows = self
            .readers
            .run(move |c| store::dsr_of_subject(c, &subject))
            .await?;
        let event = self.event(
            caller,
            action,
            Some(guest_id.as_str()),
            vec![],
            Outcome::Allowed,
            Some("guest requests listed"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        Ok(rows.into_iter().map(DeskRequest::from).collect())
    }

    /// Records an access request taken in at the desk or by phone (PIPL Art. 45; REQ-32):
    /// status `received`, due in 15 Chinese working days. The next export of the guest's
    /// package ([`Vault::export_guest`]) answers it. Authorized as `guest.export`; the guest
    /// must exist (an erased or unknown id answers 404; a restricted guest may be asked about).
    pub async fn record_access_request(
        &self,
        caller: &Caller,
        raw_id: &str,
    ) -> Result<AccessIntake, VaultError> {
        let action = Action::GuestExport;
        let grant = self.desk_grant(caller, action).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let now = self.now_ts();
        let jurisdictions = self.jurisdictions_of(&grant, &gid).await?;
        let mut row = self.answered_dsr("access", &now, "{}".into(), jurisdictions);
        row.status = "received".into();
        row.completed_at = None;
        let intake = AccessIntake {
            request_id: row.request_id.clone(),
            received_at: now.clone(),
            due_at: row.due_at.clone(),
            deadlines: super::DsrClock::of_row(row.deadlines.as_deref(), &row.due_at),
        };
        let subject = self.subject(&gid);
        let event = self.event(
            caller,
            action,
            Some(&gid),
            vec![],
            Outcome::Allowed,
            Some("access request received"),
            grant.rules().to_vec(),
        );
        let write_gid = gid.clone();
        let status = self
            .writer
            .execute(move |c| {
                let status = store::guest_status(c, &write_gid)?;
                if status.is_some() {
                    store::insert_dsr(c, &subject, &row)?;
                    crate::audit::append(c, event)?;
                }
                Ok(status)
            })
            .await
            .map_err(VaultError::from_write)?;
        if status.is_none() {
            return Err(self
                .refuse(
                    caller,
                    action,
                    Some(&gid),
                    vec![],
                    VaultError::NotFound,
                    grant.rules().to_vec(),
                )
                .await);
        }
        Ok(intake)
    }

    /// Records a correction the guest asked for at the desk or by phone as a correction
    /// request (`pending_verification`), to be applied or rejected after the document is
    /// checked, exactly as a guest's own request of an identity field is (REQ-30, REQ-32).
    /// Only under `data_subject_request`, by a staff role with `guest.update`; validated like
    /// `PATCH /v1/guests/{id}`.
    pub async fn take_correction_request(
        &self,
        caller: &Caller,
        raw_id: &str,
        patch: Map<String, Value>,
    ) -> Result<super::CorrectionReceipt, VaultError> {
        if caller.purpose.as_deref() != Some(DSR_PURPOSE) {
            let grant = self.authorize(caller, Action::GuestUpdate, None).await?;
            return Err(self
                .refuse(
                    caller,
                    Action::GuestUpdate,
                    None,
                    vec![],
                    VaultError::Denied(DenyReason::PurposeNotAllowed),
                    grant.rules().to_vec(),
                )
                .await);
        }
        let grant = self.desk_grant(caller, Action::GuestUpdate).await?;
        drop(grant);
        match self.update_guest_as(caller, raw_id, patch, true).await? {
            super::UpdateOutcome::Requested(r) => Ok(r),
            super::UpdateOutcome::Applied(_) => Err(VaultError::Internal(
                "a desk correction was applied instead of recorded".into(),
            )),
        }
    }

    /// One guest's audit events, oldest first, `GUEST_EVENTS_LIMIT` a page after `after_seq`
    /// (a cursor: the page's last `seq`): what was done with its data, by whom and why (PIPL
    /// Art. 44, 45, 48). Authorized as `guest.history` under the caller's purpose (the shipped
    /// policy gives it to `dsr_officer` under `data_subject_request` only: the officer answers
    /// the guest's access request with it, and never reads the rest of the trail); a role
    /// without it is refused, audited. Refused to a self-only role; an id that is not a guest
    /// id is 404. An erased guest's events stay readable (the trail outlives the guest).
    /// Audited with the guest id. The events hold no value.
    pub async fn guest_audit_events(
        &self,
        caller: &Caller,
        raw_id: &str,
        after_seq: u64,
    ) -> Result<super::AuditPage, VaultError> {
        let action = Action::GuestHistory;
        let grant = self.desk_grant(caller, action).await?;
        let guest_id: GuestId = self.target(caller, &grant, raw_id).await?;
        let event = self.event(
            caller,
            action,
            Some(guest_id.as_str()),
            vec![],
            Outcome::Allowed,
            Some("guest audit events read"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        let filter = crate::audit::query::Filter {
            guest_id: Some(guest_id.as_str().to_string()),
            ..Default::default()
        };
        let rows = self
            .readers
            .run(move |c| crate::audit::query::query(c, &filter, after_seq, GUEST_EVENTS_LIMIT))
            .await?;
        let next_after_seq = if rows.len() == GUEST_EVENTS_LIMIT {
            rows.last().map(|e| e.event.seq)
        } else {
            None
        };
        Ok(super::AuditPage {
            events: rows.into_iter().map(super::EventOut::from).collect(),
            next_after_seq,
        })
    }
}
