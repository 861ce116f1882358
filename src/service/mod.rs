//! The vault's use cases: the one choke point every read or write of personal data passes
//! through. Each operation authorizes (policy), encrypts or decrypts, masks, and appends its
//! audit event in the same transaction as its data change; reads answer only after their event
//! has committed. If the audit event cannot be written the operation fails and no data leaves.

mod alerts;
mod audit;
mod consents;
mod console;
mod console_ops;
mod correction_requests;
mod corrections;
mod deadlines;
mod dsr_desk;
mod dsr_tracking;
mod erasure;
mod export;
mod fields;
mod guests;
mod holds;
mod key_schedule;
mod keys;
mod minors;
mod nodes;
mod ready;
mod restore;
mod retention;
mod rotation;
mod search;
mod stages;
mod stay_corrections;
mod stays;

use std::sync::Arc;

pub use alerts::SecurityEvent;
pub use audit::{AuditExport, AuditPage, EventOut, PublicKeyInfo};
pub use consents::{
    ConsentInput, ConsentRecord, ConsentsView, CHANNELS, DECISIONS, DEFAULT_RE_ASK_AFTER_DAYS,
    INITIATORS,
};
pub use console::ChainStatus;
pub use console_ops::{
    ChartData, DayOutcomes, OperationsView, RoleReveals, WeekRequests, CHART_DAYS, CHART_WEEKS,
};
pub use correction_requests::Decision;
pub use corrections::{
    CorrectionDecision, CorrectionDetail, CorrectionReceipt, CorrectionSummary, UpdateOutcome,
    REGISTERED_PREFIX,
};
pub use deadlines::{
    DeadlineAlerts, DsrClock, DsrExtension, DueDates, ExtendInput, ExtendedRequest,
    CLOCK_NOT_EXTENDABLE, DEADLINE_ACTOR, EXTENSION_LIMIT_REACHED, REQUEST_NOT_OPEN,
};
pub use dsr_desk::{AccessIntake, DeskRequest, DSR_PURPOSE, GUEST_EVENTS_LIMIT};
pub use dsr_tracking::{parse_due, Deadline, DsrTracking, TrackedRequest, TRACKING_LIMIT};
pub use erasure::{HoldBasis, OverdueRequest, Receipt, Retained, ERASURE_REASONS, UNTIL_LIFTED};
pub use export::EXPORT_FORMAT;
pub use guests::{CreatedGuest, GuestView, NewGuest, RevealView};
pub use holds::{HoldInput, HoldList, HoldView};
pub use key_schedule::{KeySchedule, ScheduleOutcome, KEY_SCHEDULE_ACTOR, KEY_SCHEDULE_CHECK};
pub use keys::{
    wait_until_keyring_settled, KekVersionStatus, KeySource, KeyStatus, RotationClaim,
    RotationReport, RotationStatus, KEYRING_POLL_INTERVAL, KEYRING_SETTLE,
};
pub use minors::{GUARDIAN_CONSENT_REQUIRED, GUARDIAN_REQUIRED, MINOR_MARKETING_REFUSED};
pub use nodes::{Coordination, HEARTBEAT_INTERVAL, KEK_GATE_TIMEOUT, NODE_LIVE_SECS};
pub use restore::ReplayCounts;
pub use retention::{ClassCount, SweepReport, SWEEP_ACTOR};
pub use rotation::RotationError;
pub use stays::StayView;

use crate::audit::{NewEvent, Outcome};
use crate::clock::{timestamp, Clock};
use crate::crypto::Keyring;
use crate::domain::{FieldError, GuestId};
use crate::policy::{is_identifier, Action, ConsentFacts, Denial, DenyReason, Grant, Policies};
pub(crate) use crate::store::consents::consent_state;
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
    /// 422 with a code of its own: a rule refused the request as a whole (the minors rules,
    /// REQ-10).
    #[error("refused: {0}")]
    Unprocessable(&'static str),
    #[error("field is not searchable")]
    FieldNotSearchable,
    #[error("the audit trail cannot be written")]
    AuditUnavailable(#[source] StoreError),
    #[error("storage unavailable")]
    Store(#[from] StoreError),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("an audit verification is already running")]
    VerifyInProgress,
    #[error("internal error: {0}")]
    Internal(String),
    /// A consent names a notice version (or language) not registered in `notices.toml`.
    #[error("unknown notice version")]
    UnknownNoticeVersion,
    /// The hotel asks again within `consent.re_ask_after_days` of the guest's refusal.
    #[error("asked again too soon after a refusal")]
    ReAskTooSoon,
}

impl VaultError {
    /// Classifies a failed write, whose transaction carries its audit event (DESIGN.md,
    /// principles 1 and 2): when that event could not be written, because its append failed,
    /// because the transaction could not begin or commit (a full disk, a read-only file
    /// system, an I/O error), because a statement beside it hit such a storage fault, or
    /// because the writer is gone, the answer is `audit_unavailable`, as for a read whose
    /// event cannot commit. Anything else (an error of the operation's own logic) is a storage
    /// error. Either way the transaction rolled back and nothing was done.
    pub(crate) fn from_write(e: StoreError) -> Self {
        if e.is_unavailable() {
            // PostgreSQL lost: 503 `unavailable`, and the node reconnects by itself.
            return Self::Store(e);
        }
        match e {
            StoreError::Audit(inner) => Self::AuditUnavailable(*inner),
            e @ (StoreError::Commit(_) | StoreError::Io(_) | StoreError::WriterGone) => {
                Self::AuditUnavailable(e)
            }
            StoreError::Sqlite(s) if crate::store::Fault::of_sqlite(&s).is_some() => {
                Self::AuditUnavailable(StoreError::Sqlite(s))
            }
            e => Self::Store(e),
        }
    }
}

/// The vault: policies, keys, storage and a clock.
#[derive(Debug, Clone)]
pub struct Vault {
    policies: Arc<Policies>,
    /// Swapped whole when a KEK is added or retired; readers take a cheap `Arc` clone.
    keyring: Arc<std::sync::RwLock<Arc<Keyring>>>,
    key_source: Arc<KeySource>,
    rotation: Arc<keys::RotationProgress>,
    ledger: Arc<crate::ledger::ErasureLedger>,
    writer: Writer,
    readers: Arc<Readers>,
    clock: Arc<dyn Clock>,
    /// `access.allow_free_text_justification`: a free-text note besides the reason code.
    free_text_justification: bool,
    /// Plausible stay dates (`[stays]` in the config).
    stay_limits: crate::config::StaysConfig,
    /// `consent.re_ask_after_days`: no hotel-prompted answer this long after a refusal.
    re_ask_after_days: u32,
    /// The database file `GET /v1/audit/verify` opens its own connection on.
    verify_db: Option<crate::store::Location>,
    /// Set while a verification runs (one at a time).
    verifying: Arc<std::sync::atomic::AtomicBool>,
    /// The last readiness probe (`/readyz`).
    ready: Arc<ready::ReadyCache>,
    /// This node among the others on a PostgreSQL database; `None` on SQLite.
    coordination: Option<Arc<nodes::Coordination>>,
}

impl Vault {
    pub fn new(
        policies: Arc<Policies>,
        keyring: Arc<Keyring>,
        key_source: KeySource,
        ledger: Arc<crate::ledger::ErasureLedger>,
        writer: Writer,
        readers: Arc<Readers>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // Load the phone metadata and the region codes now, not on the first request (the
        // first lookup deserializes the libphonenumber database; issue 15).
        let _ = crate::domain::pii::normalize_mobile("13800138000");
        let _ = crate::domain::pii::is_known_region(110_000);
        Self {
            policies,
            keyring: Arc::new(std::sync::RwLock::new(keyring)),
            key_source: Arc::new(key_source),
            rotation: Arc::default(),
            ledger,
            writer,
            readers,
            clock,
            free_text_justification: false,
            stay_limits: crate::config::StaysConfig::default(),
            re_ask_after_days: consents::DEFAULT_RE_ASK_AFTER_DAYS,
            verify_db: None,
            verifying: Arc::default(),
            ready: Arc::default(),
            coordination: None,
        }
    }

    /// Turns free-text justification notes on (`access.allow_free_text_justification`).
    pub fn with_free_text_justification(mut self, allowed: bool) -> Self {
        self.free_text_justification = allowed;
        self
    }

    /// Whether a free-text justification note is accepted besides the reason code.
    pub fn free_text_justification(&self) -> bool {
        self.free_text_justification
    }

    /// Checks a reason code, ticket and note against the policy and the deployment's free-text
    /// setting (see [`Justification::parse`] for the error codes). For every justified action:
    /// reveal, justified search, an officer's export, applying a correction request.
    pub fn check_justification(
        &self,
        input: &crate::policy::JustificationInput<'_>,
    ) -> Result<crate::policy::Justification, Vec<FieldError>> {
        crate::policy::Justification::parse(
            &self.policies.access.reasons,
            input,
            self.free_text_justification,
        )
    }

    /// Sets the stay-date limits (`[stays]`; validated by the config loader).
    pub fn with_stay_limits(mut self, limits: crate::config::StaysConfig) -> Self {
        self.stay_limits = limits;
        self
    }

    /// Sets `consent.re_ask_after_days` (validated by the config loader).
    pub fn with_re_ask_after_days(mut self, days: u32) -> Self {
        self.re_ask_after_days = days;
        self
    }

    /// The database file audit verification reads, on a connection of its own.
    pub fn with_verify_db(mut self, db: &crate::store::Location) -> Self {
        self.verify_db = Some(db.clone());
        self
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The keyring in force now.
    pub fn keys(&self) -> Arc<Keyring> {
        match self.keyring.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn install_keyring(&self, k: Keyring) {
        let k = Arc::new(k);
        match self.keyring.write() {
            Ok(mut g) => *g = k,
            Err(poisoned) => *poisoned.into_inner() = k,
        }
    }

    pub fn key_path(&self) -> &std::path::Path {
        &self.key_source.path
    }

    /// Re-reads the keyring file (after a rotation or retirement by another process). Refuses a
    /// file with a different fingerprint: that is another vault's keyring.
    pub fn reload_keyring(&self) -> Result<(), VaultError> {
        let k = self
            .key_source
            .load()
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        if k.fingerprint() != self.keys().fingerprint() {
            return Err(VaultError::Internal(
                "keyring file now belongs to another vault".into(),
            ));
        }
        let k = self.follow_database_kek(k)?;
        self.install_keyring(k);
        Ok(())
    }

    /// Unwraps a guest's DEK; a KEK version this process does not know yet (another process
    /// rotated) triggers one reload of the keyring file.
    pub(crate) fn open_dek(
        &self,
        wrapped: &crate::crypto::WrappedDek,
        gid: &str,
    ) -> Result<crate::crypto::Dek, VaultError> {
        match self.keys().unwrap_dek(wrapped, gid) {
            Err(crate::crypto::CryptoError::UnknownKeyVersion(_)) => {
                self.reload_keyring()?;
                self.keys()
                    .unwrap_dek(wrapped, gid)
                    .map_err(|e| VaultError::Internal(e.to_string()))
            }
            r => r.map_err(|e| VaultError::Internal(e.to_string())),
        }
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

    /// The date a data-subject request is received on, in China Standard Time (UTC+8): the
    /// deadline counts Chinese working days (REQ-32), so a request at 01:00 in Beijing on a
    /// Monday is received on Monday, not on Sunday in UTC.
    fn dsr_received_on(&self) -> time::Date {
        self.dsr_today()
    }

    /// A data-subject request answered at once (`now`): an access export or a correction.
    /// Its deadlines follow the guest's `jurisdictions` (REQ-32, REQ-48).
    fn answered_dsr(
        &self,
        kind: &str,
        now: &str,
        receipt: String,
        jurisdictions: crate::domain::deadlines::Jurisdictions,
    ) -> crate::store::DsrRow {
        let deadlines = self.deadlines_now(jurisdictions);
        crate::store::DsrRow {
            request_id: uuid::Uuid::now_v7().hyphenated().to_string(),
            kind: kind.into(),
            status: "completed".into(),
            received_at: now.to_string(),
            completed_at: Some(now.to_string()),
            due_at: deadlines.due().to_string(),
            receipt,
            deadlines: serde_json::to_string(&DsrClock::of(&deadlines, None)).ok(),
        }
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
            value_hashes: Vec::new(),
        }
    }

    /// Appends one event in its own transaction; any failure, the commit's included (a full
    /// disk fails the commit, not the insert), becomes `AuditUnavailable`: the event that had
    /// to be written is what could not be.
    async fn record(&self, event: NewEvent) -> Result<(), VaultError> {
        // One INSERT (after reading the chain head): atomic without a savepoint.
        self.writer.append_event(event).await.map_err(|e| match e {
            e if e.is_unavailable() => VaultError::Store(e),
            StoreError::Audit(inner) => VaultError::AuditUnavailable(*inner),
            e => VaultError::AuditUnavailable(e),
        })
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
            VaultError::Unprocessable(code) => (Outcome::Denied, *code),
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

    /// Audits a request the HTTP layer rejected before it reached a use case (malformed body,
    /// wrong media type, oversize body, undecodable path): outcome `error`, the problem code as
    /// reason, no fields and no values. `guest_id` is kept only if it is a well-formed id.
    pub async fn record_rejection(
        &self,
        caller: &Caller,
        action: Action,
        guest_id: Option<&str>,
        code: &'static str,
    ) -> Result<(), VaultError> {
        let event = self.event(
            caller,
            action,
            guest_id,
            vec![],
            Outcome::Error,
            Some(code),
            vec!["http.request_rejected".to_string()],
        );
        self.record(event).await
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

    /// Authorizes an operation that touches no personal data (admin, policy); refusals are
    /// audited like any other.
    pub async fn authorize_operation(
        &self,
        caller: &Caller,
        action: Action,
    ) -> Result<(), VaultError> {
        self.authorize(caller, action, None).await.map(|_| ())
    }

    /// Parses a path id. A malformed id, and for a self-only role (the `guest` role) any id but
    /// its own, is answered exactly like an unknown guest: no enumeration, no existence oracle.
    async fn target(
        &self,
        caller: &Caller,
        grant: &Grant<'_>,
        raw: &str,
    ) -> Result<GuestId, VaultError> {
        let rule = format!("roles.{}.self_only", grant.role().name);
        match GuestId::parse(raw) {
            Some(id) if !grant.role().self_only || id.as_str() == caller.actor => Ok(id),
            Some(id) => Err(self
                .refuse(
                    caller,
                    grant.action(),
                    Some(id.as_str()),
                    vec![],
                    VaultError::NotFound,
                    vec![rule],
                )
                .await),
            None => Err(self
                .refuse(
                    caller,
                    grant.action(),
                    None,
                    vec![],
                    VaultError::NotFound,
                    vec![],
                )
                .await),
        }
    }

    /// Status checks alone (consent routes must not need consent): unknown or erased → 404;
    /// restricted → 403 unless the purpose is flagged `restricted_access`.
    async fn check_status(
        &self,
        caller: &Caller,
        grant: &Grant<'_>,
        guest_id: &GuestId,
        status: Option<GuestStatus>,
    ) -> Result<(), VaultError> {
        self.check_guest(
            caller,
            grant,
            guest_id,
            status,
            ConsentFacts::Granted { separate: false },
        )
        .await
        .map(|_| ())
        .or_else(|e| match e {
            VaultError::Denied(DenyReason::ConsentRequired) => Ok(()),
            e => Err(e),
        })
    }

    /// Status and consent checks that apply once the guest's row is known: unknown or erased →
    /// 404; restricted → 403 unless the purpose is flagged `restricted_access` (PIPL Art.
    /// 47(2)); a consent purpose without the guest's active consent → 403 (PIPL Art. 13–15).
    /// Returns the consent on record, which decides the view of sensitive fields.
    async fn check_guest(
        &self,
        caller: &Caller,
        grant: &Grant<'_>,
        guest_id: &GuestId,
        status: Option<GuestStatus>,
        consent: ConsentFacts,
    ) -> Result<ConsentFacts, VaultError> {
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
        match grant.consent_gate(consent) {
            Ok(_) => Ok(consent),
            Err(Denial { reason, rules }) => Err(self
                .refuse(
                    caller,
                    action,
                    gid,
                    vec![],
                    VaultError::Denied(reason),
                    rules,
                )
                .await),
        }
    }
}
