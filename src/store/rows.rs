//! The records the storage seam hands over and takes, the same for every backend: a guest's
//! sealed data (ciphertext only), the facts retention decides on, data-subject request rows.

use serde::Serialize;

use crate::crypto::WrappedDek;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestStatus {
    Active,
    Restricted,
    Erased,
}

impl GuestStatus {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "restricted" => Self::Restricted,
            // Unknown states are treated as gone: fail closed.
            _ => Self::Erased,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Restricted => "restricted",
            Self::Erased => "erased",
        }
    }
}

/// A guest's stored record: everything still encrypted.
#[derive(Debug)]
pub struct SealedGuest {
    pub status: GuestStatus,
    pub wrapped_dek: WrappedDek,
    pub fields: Vec<(String, Vec<u8>)>,
    /// Left empty by the store; the service fills it when it loads the guest for a caller
    /// (issue 16 §3, `service/stages.rs`) and takes the fields it withholds out of `fields`.
    pub staging: Staging,
}

/// A stored field's state inside its retention period (issue 16 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldStage {
    /// Storage only: readable only under purposes flagged `restricted_access`.
    Restricted,
    /// No value any more; only the keyed blind-index entry (an exact-match search finds it).
    Pseudonymized,
}

impl FieldStage {
    /// The name reads (`views`), receipts and the access package use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restricted => "restricted",
            Self::Pseudonymized => "pseudonymized",
        }
    }
}

/// What a guest's retention stages mean for one caller: the stored fields (with or without a
/// value) in a stage, as the caller's purpose sees them (`restricted` wins for a purpose
/// without `restricted_access`), and the classes in their storage-only stage.
#[derive(Debug, Clone, Default)]
pub struct Staging {
    pub fields: std::collections::BTreeMap<String, FieldStage>,
    pub restricted_classes: std::collections::BTreeSet<String>,
}

#[derive(Debug)]
pub struct SealedStay {
    pub stay_id: String,
    pub ciphertext: Vec<u8>,
}

/// Everything retention needs to know about one guest, without decrypting anything.
#[derive(Debug, Clone)]
pub struct RetentionFacts {
    pub guest_id: String,
    pub status: GuestStatus,
    pub created_at: String,
    pub last_activity_at: String,
    pub last_checkout: Option<String>,
    pub fields: Vec<String>,
    /// (stay_id, check_out)
    pub stays: Vec<(String, String)>,
    /// (purpose, status, withdrawn_at)
    pub consents: Vec<(String, String, Option<String>)>,
}

/// What the retention stages of one guest are decided from (issue 16 §3): the anchor dates,
/// bounded like [`RetentionFacts`]' (no ciphertext, no values), and the fields a
/// pseudonymize stage left with only their blind-index entry.
#[derive(Debug, Clone)]
pub struct StageFacts {
    pub created_at: String,
    pub last_activity_at: String,
    pub last_checkout: Option<String>,
    pub pseudonymized: Vec<String>,
}

/// The latest check-out a stay recorded on day D can plausibly have: D plus the largest
/// `stays.max_check_in_ahead_days` and `stays.max_stay_days` (730 + 365). Retention reads every
/// stored check-out (and the guest's `last_checkout`, bounded from its last activity, which a
/// new stay updates) capped at that, so a retention `until` never lies beyond what the
/// schedule allows from a plausible date, even for a stay stored before the limits existed
/// (issue 12 point 4).
pub const PLAUSIBLE_HORIZON_DAYS: u32 =
    crate::config::MAX_CHECK_IN_AHEAD_DAYS + crate::config::MAX_STAY_DAYS;

/// A data-subject request row.
#[derive(Debug, Clone)]
pub struct DsrRow {
    pub request_id: String,
    pub kind: String,
    pub status: String,
    pub received_at: String,
    pub completed_at: Option<String>,
    pub due_at: String,
    pub receipt: String,
    /// The clocks that apply and their due dates, with any extension (JSON of
    /// `service::DsrClock`; REQ-32, REQ-48). `None` on rows written before migration 0010.
    pub deadlines: Option<String>,
}

/// A pending correction: which guest, which fields (names), and the sealed proposal.
#[derive(Debug, Clone)]
pub struct PendingCorrection {
    pub row: DsrRow,
    pub guest_id: String,
    pub fields: Vec<String>,
    pub ciphertext: Vec<u8>,
}

/// The current consent of a guest for one purpose.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentRecord {
    pub purpose: String,
    /// `granted`, `withdrawn`, `refused` (the latest answer was a refusal), `stale` (granted to
    /// a notice that does not disclose the purpose's current fields or recipients: counts as
    /// absent, REQ-06), or `none` (never recorded).
    pub status: String,
    pub separate: bool,
    pub notice_version: Option<String>,
    /// SHA-256 of the notice text the guest was shown (from `notices.toml`).
    pub notice_sha256: Option<String>,
    pub channel: Option<String>,
    pub granted_at: Option<String>,
    pub withdrawn_at: Option<String>,
    /// Who gave the consent in force: `guest` or `guardian` (PIPL Art. 31, REQ-10); `null`
    /// for a consent recorded before the vault recorded it (the guest's own).
    pub given_by: Option<String>,
    /// With a guardian's consent: the guardian's relationship to the guest.
    pub guardian_relationship: Option<String>,
    /// With a guardian's consent: the guest id of the guardian, if registered too.
    pub guardian_guest_id: Option<String>,
    /// With a guardian's consent: a ticket (e.g. the signed form's number) naming it.
    pub guardian_ticket: Option<String>,
    /// `true` when a guardian gave this consent and the guest is now 14 or older: the
    /// consent stays valid until the guest confirms it (a grant with `given_by = "guest"`)
    /// or withdraws it. `null` when the caller cannot see the guest's birth date (it would
    /// tell the guest's age).
    pub confirm_needed: Option<bool>,
    /// When the latest refusal was recorded, if the guest refused.
    pub refused_at: Option<String>,
}

/// One ledger entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentEvent {
    pub purpose: String,
    /// `granted`, `withdrawn` or `refused`.
    pub status: String,
    pub separate: bool,
    pub notice_version: Option<String>,
    pub notice_sha256: Option<String>,
    pub channel: Option<String>,
    /// Who prompted a grant or refusal: `hotel` (staff or a hotel system asked) or `guest`
    /// (the guest acted on its own); null for withdrawals and entries before issue 16.
    pub initiated_by: Option<String>,
    pub actor: String,
    pub at: String,
    /// `guest` or `guardian` for a grant (REQ-10); `null` for a withdrawal or an older grant.
    pub given_by: Option<String>,
    pub guardian_relationship: Option<String>,
    pub guardian_guest_id: Option<String>,
    pub guardian_ticket: Option<String>,
}

/// A validated consent change, ready for the writer.
#[derive(Debug, Clone)]
pub struct ConsentChange {
    pub(crate) purpose: String,
    pub(crate) grant: bool,
    pub(crate) separate: bool,
    pub(crate) notice_version: Option<String>,
    pub(crate) channel: Option<String>,
    /// Who gives a grant (`None` for a withdrawal).
    pub(crate) giver: Option<ConsentGiver>,
    /// SHA-256 of the registered notice text (grants and refusals).
    pub(crate) notice_sha256: Option<String>,
    /// `hotel` or `guest` (grants and refusals).
    pub(crate) initiated_by: Option<String>,
    /// A refusal (`grant` is then false): recorded in `consent_refusals`.
    pub(crate) refused: bool,
}

/// Who gave a consent (PIPL Art. 31, REQ-10): the guest, or a guardian named by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGiver {
    /// `guest` or `guardian`.
    pub given_by: String,
    pub relationship: Option<String>,
    pub guardian_guest_id: Option<String>,
    pub guardian_ticket: Option<String>,
}

impl ConsentGiver {
    pub fn is_guardian(&self) -> bool {
        self.given_by == "guardian"
    }
}

/// A legal hold on a guest (REQ-23): a reason code, a ticket id, an optional last day. No
/// personal data: the codes come from the policy and the ticket is a case id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HoldRow {
    pub hold_id: String,
    #[serde(skip)]
    pub guest_id: String,
    /// A code of `[hold_reasons]` in `access.toml`.
    pub reason: String,
    /// The case or ticket id, `[A-Za-z0-9._-]{1,40}`.
    pub ticket: String,
    /// The last day the hold stands (it lapses the day after); none: until lifted.
    pub until: Option<String>,
    pub placed_at: String,
    /// The token `sub` of the officer who placed it.
    pub placed_by: String,
    pub lifted_at: Option<String>,
    pub lifted_by: Option<String>,
}

impl HoldRow {
    /// Whether the hold stands on `today` (`YYYY-MM-DD`): not lifted, and `until` not passed.
    pub fn is_active(&self, today: &str) -> bool {
        self.lifted_at.is_none() && self.until.as_deref().is_none_or(|u| u >= today)
    }
}

/// A guest's wrapped data key and the (stay id, ciphertext) of some of its stays.
pub type SealedStays = (WrappedDek, Vec<(String, Vec<u8>)>);

/// An anonymized stay: dates, amount and currency, linked to nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymizedStay {
    pub check_in: Option<String>,
    pub check_out: Option<String>,
    pub amount: Option<String>,
    pub currency: Option<String>,
}

/// An open data-subject request as the deadline watch sees it (REQ-32): its dates, deadlines,
/// and whether the 80% escalation and the overdue alert have fired.
#[derive(Debug, Clone)]
pub struct DsrWatch {
    pub request_id: String,
    pub kind: String,
    pub received_at: String,
    pub due_at: String,
    pub deadlines: Option<String>,
    pub escalated: bool,
    pub overdue_alerted: bool,
}

/// One recorded refusal, as the store reads it back.
#[derive(Debug, Clone)]
pub struct RefusalRow {
    pub purpose: String,
    pub notice_version: String,
    pub notice_sha256: String,
    pub channel: String,
    pub initiated_by: String,
    pub actor: String,
    pub at: String,
}

/// Folds the refusals into the current view and the history (the same on both backends): a
/// purpose whose latest answer is a refusal shows `refused`; history entries are in time
/// order, a refusal after the entries of the same instant.
pub fn with_refusals(
    mut current: Vec<ConsentRecord>,
    mut history: Vec<ConsentEvent>,
    refusals: Vec<RefusalRow>,
) -> (Vec<ConsentRecord>, Vec<ConsentEvent>) {
    for r in &refusals {
        // A refusal of a standing consent withdraws it at the same instant: a withdrawn row
        // yields to a refusal of that instant, a granted one only to a later refusal.
        let later = |rec: &ConsentRecord| match rec.status.as_str() {
            "granted" => rec.granted_at.as_deref().is_none_or(|g| r.at.as_str() > g),
            _ => rec
                .withdrawn_at
                .as_deref()
                .is_none_or(|w| r.at.as_str() >= w),
        };
        match current.iter_mut().find(|c| c.purpose == r.purpose) {
            Some(rec) if rec.status == "refused" || later(rec) => {
                rec.status = "refused".into();
                rec.separate = false;
                rec.notice_version = Some(r.notice_version.clone());
                rec.notice_sha256 = Some(r.notice_sha256.clone());
                rec.channel = Some(r.channel.clone());
                rec.refused_at = Some(r.at.clone());
                // No consent is in force: nobody gave it.
                rec.given_by = None;
                rec.guardian_relationship = None;
                rec.guardian_guest_id = None;
                rec.guardian_ticket = None;
                rec.confirm_needed = None;
            }
            Some(_) => {}
            None => current.push(ConsentRecord {
                purpose: r.purpose.clone(),
                status: "refused".into(),
                separate: false,
                notice_version: Some(r.notice_version.clone()),
                notice_sha256: Some(r.notice_sha256.clone()),
                channel: Some(r.channel.clone()),
                granted_at: None,
                withdrawn_at: None,
                refused_at: Some(r.at.clone()),
                given_by: None,
                guardian_relationship: None,
                guardian_guest_id: None,
                guardian_ticket: None,
                confirm_needed: None,
            }),
        }
    }
    current.sort_by(|a, b| a.purpose.cmp(&b.purpose));
    history.extend(refusals.into_iter().map(|r| ConsentEvent {
        purpose: r.purpose,
        status: "refused".into(),
        separate: false,
        notice_version: Some(r.notice_version),
        notice_sha256: Some(r.notice_sha256),
        channel: Some(r.channel),
        initiated_by: Some(r.initiated_by),
        actor: r.actor,
        at: r.at,
        given_by: None,
        guardian_relationship: None,
        guardian_guest_id: None,
        guardian_ticket: None,
    }));
    // Stable: ledger entries keep their id order within an instant.
    history.sort_by(|a, b| a.at.cmp(&b.at));
    (current, history)
}
