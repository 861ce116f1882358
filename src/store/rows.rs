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
    /// `granted`, `withdrawn`, or `none` (never recorded).
    pub status: String,
    pub separate: bool,
    pub notice_version: Option<String>,
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
}

/// One ledger entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentEvent {
    pub purpose: String,
    pub status: String,
    pub separate: bool,
    pub notice_version: Option<String>,
    pub channel: Option<String>,
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
