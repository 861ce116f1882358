//! The access policy (`access.toml`): purposes with their legal basis and the fields they may
//! touch (minimum necessary, PIPL Art. 6), roles with their purposes, actions and per-field
//! views. Deny by default; every decision carries the ids (TOML key paths) of the rules that
//! decided it, and those ids go into the audit event.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::catalog::{Catalog, FieldScope};
use super::PolicyError;

/// Everything a principal can ask the vault to do. A closed set: an unknown action in a policy
/// file is an error, never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    GuestCreate,
    GuestRead,
    GuestUpdate,
    GuestReveal,
    GuestSearch,
    StayCreate,
    StayRead,
    /// Correct or delete a stay entered in error (issue 12 point 4).
    StayCorrect,
    /// List, apply and reject guests' correction requests (issue 12 point 3, REQ-30).
    CorrectionDecide,
    ConsentRead,
    ConsentWrite,
    GuestExport,
    GuestErase,
    /// Place, list and lift legal holds on a guest (issue 16 §2, REQ-23).
    GuestHold,
    /// Read one guest's audit events (what was done with its data, by whom and why) to answer
    /// its access request (PIPL Art. 44, 45, 48; issue 17); never the rest of the trail.
    GuestHistory,
    AuditRead,
    AuditExport,
    AuditVerify,
    AdminRetention,
    AdminKeys,
    PolicyRead,
    /// `guestvault backup` (CLI only; recorded, never authorized by the policy).
    AdminBackup,
    /// `guestvault restore` (CLI only; recorded, never authorized by the policy).
    AdminRestore,
    /// Requests refused over budget, aggregated (recorded, never authorized by the policy).
    AccessThrottled,
    /// An anomaly the budget layer noticed (recorded, never authorized by the policy).
    SecurityAlert,
    /// Extend the GDPR clock of an open data-subject request (GDPR Art. 12(3), REQ-32).
    DsrExtend,
    /// A data-subject request passed 80% of its time (recorded by the deadline watch, never
    /// authorized by the policy; REQ-32).
    DsrEscalated,
    /// A data-subject request went past its due date unanswered (recorded by the deadline
    /// watch, never authorized by the policy; REQ-32).
    DsrOverdue,
}

impl Action {
    pub const ALL: [Action; 28] = [
        Self::GuestCreate,
        Self::GuestRead,
        Self::GuestUpdate,
        Self::GuestReveal,
        Self::GuestSearch,
        Self::StayCreate,
        Self::StayRead,
        Self::StayCorrect,
        Self::CorrectionDecide,
        Self::ConsentRead,
        Self::ConsentWrite,
        Self::GuestExport,
        Self::GuestErase,
        Self::GuestHold,
        Self::GuestHistory,
        Self::AuditRead,
        Self::AuditExport,
        Self::AuditVerify,
        Self::AdminRetention,
        Self::AdminKeys,
        Self::PolicyRead,
        Self::AdminBackup,
        Self::AdminRestore,
        Self::AccessThrottled,
        Self::SecurityAlert,
        Self::DsrExtend,
        Self::DsrEscalated,
        Self::DsrOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GuestCreate => "guest.create",
            Self::GuestRead => "guest.read",
            Self::GuestUpdate => "guest.update",
            Self::GuestReveal => "guest.reveal",
            Self::GuestSearch => "guest.search",
            Self::StayCreate => "stay.create",
            Self::StayRead => "stay.read",
            Self::StayCorrect => "stay.correct",
            Self::CorrectionDecide => "correction.decide",
            Self::ConsentRead => "consent.read",
            Self::ConsentWrite => "consent.write",
            Self::GuestExport => "guest.export",
            Self::GuestErase => "guest.erase",
            Self::GuestHold => "guest.hold",
            Self::GuestHistory => "guest.history",
            Self::AuditRead => "audit.read",
            Self::AuditExport => "audit.export",
            Self::AuditVerify => "audit.verify",
            Self::AdminRetention => "admin.retention",
            Self::AdminKeys => "admin.keys",
            Self::PolicyRead => "policy.read",
            Self::AdminBackup => "admin.backup",
            Self::AdminRestore => "admin.restore",
            Self::AccessThrottled => "access.throttled",
            Self::SecurityAlert => "security.alert",
            Self::DsrExtend => "dsr.extend",
            Self::DsrEscalated => "dsr.escalated",
            Self::DsrOverdue => "dsr.overdue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether the action touches personal data fields (and so needs `X-Purpose`).
    pub fn touches_personal_data(self) -> bool {
        !matches!(
            self,
            Self::AuditRead
                | Self::AuditExport
                | Self::AuditVerify
                | Self::AdminRetention
                | Self::AdminKeys
                | Self::PolicyRead
                | Self::AdminBackup
                | Self::AdminRestore
                | Self::AccessThrottled
                | Self::SecurityAlert
                | Self::DsrEscalated
                | Self::DsrOverdue
        )
    }
}

/// How a field is shown to a role under a purpose. Ordered from least to most revealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum View {
    None,
    Masked,
    /// Masked in reads; plaintext through `/reveal` with a justification (REQ-13).
    Reveal,
    Plain,
}

impl View {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "masked" => Self::Masked,
            "reveal" => Self::Reveal,
            "plain" => Self::Plain,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Masked => "masked",
            Self::Reveal => "reveal",
            Self::Plain => "plain",
        }
    }
}

/// The legal basis of a purpose (PIPL Art. 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterest,
}

impl Basis {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "consent" => Self::Consent,
            "contract" => Self::Contract,
            "legal_obligation" => Self::LegalObligation,
            "vital_interest" => Self::VitalInterest,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Contract => "contract",
            Self::LegalObligation => "legal_obligation",
            Self::VitalInterest => "vital_interest",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Purpose {
    pub name: String,
    pub basis: Basis,
    pub restricted_access: bool,
    pub fields: BTreeSet<String>,
    pub stay_fields: BTreeSet<String>,
    /// Other handlers the purpose provides data to (PIPL Art. 23), as disclosed in the notice.
    pub recipients: BTreeSet<String>,
}

impl Purpose {
    pub fn touches(&self, scope: FieldScope, field: &str) -> bool {
        match scope {
            FieldScope::Guest => self.fields.contains(field),
            FieldScope::Stay => self.stay_fields.contains(field),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    /// Acts only on the guest whose id is the token's `sub` (the `guest` role).
    pub self_only: bool,
    pub purposes: BTreeSet<String>,
    pub actions: BTreeSet<Action>,
    pub views: BTreeMap<String, View>,
    pub stay_views: BTreeMap<String, View>,
    /// Searchable guest fields whose search needs a reason code, like a reveal (a search
    /// confirms a value: issue 12 point 1).
    pub search_requires_justification: BTreeSet<String>,
}

impl Role {
    fn view(&self, scope: FieldScope, field: &str) -> View {
        let views = match scope {
            FieldScope::Guest => &self.views,
            FieldScope::Stay => &self.stay_views,
        };
        views.get(field).copied().unwrap_or(View::None)
    }
}

#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    pub purposes: BTreeMap<String, Purpose>,
    pub roles: BTreeMap<String, Role>,
    /// The reason codes a reveal, a justified search or an officer's export may give.
    pub reasons: BTreeMap<String, super::reasons::Reason>,
    /// Why a legal hold is placed (`[hold_reasons]`, REQ-23).
    pub hold_reasons: BTreeMap<String, super::reasons::Reason>,
    /// Why the GDPR clock of a data-subject request is extended (`[extension_reasons]`,
    /// GDPR Art. 12(3), REQ-32).
    pub extension_reasons: BTreeMap<String, super::reasons::Reason>,
    /// `[minors]`: marketing to guests under 14 (REQ-10).
    pub minors: super::minors::MinorsPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    purposes: BTreeMap<String, RawPurpose>,
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    reasons: BTreeMap<String, super::reasons::RawReason>,
    #[serde(default)]
    hold_reasons: BTreeMap<String, super::reasons::RawReason>,
    #[serde(default)]
    extension_reasons: BTreeMap<String, super::reasons::RawReason>,
    minors: Option<super::minors::RawMinors>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    basis: String,
    #[serde(default)]
    restricted_access: bool,
    fields: Vec<String>,
    #[serde(default)]
    stay_fields: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    self_only: bool,
    purposes: Vec<String>,
    actions: Vec<String>,
    #[serde(default)]
    views: BTreeMap<String, String>,
    #[serde(default)]
    stay_views: BTreeMap<String, String>,
    #[serde(default)]
    search_requires_justification: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

impl AccessPolicy {
    pub fn parse(file: &str, text: &str, catalog: &Catalog, errors: &mut Vec<PolicyError>) -> Self {
        let Some(raw) = super::parse_toml::<RawAccess>(file, text, errors) else {
            return Self::default();
        };
        let mut policy = Self {
            reasons: super::reasons::parse(file, raw.reasons, errors),
            // Optional: without any, no legal hold can be placed (422 `unknown_reason`).
            hold_reasons: super::reasons::parse_table(
                file,
                "hold_reasons",
                raw.hold_reasons,
                false,
                errors,
            ),
            // Optional: without any, no deadline can be extended (422 `unknown_reason`).
            extension_reasons: super::reasons::parse_table(
                file,
                "extension_reasons",
                raw.extension_reasons,
                false,
                errors,
            ),
            ..Self::default()
        };
        for (name, p) in raw.purposes {
            let key = format!("purposes.{name}");
            let _ = p.description;
            let basis = Basis::parse(&p.basis);
            if basis.is_none() {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.basis"),
                    "must be one of consent, contract, legal_obligation, vital_interest",
                ));
            }
            for (scope, list, what) in [
                (FieldScope::Guest, &p.fields, "fields"),
                (FieldScope::Stay, &p.stay_fields, "stay_fields"),
            ] {
                for f in list {
                    if catalog.get(scope, f).is_none() {
                        errors.push(PolicyError::new(
                            file,
                            &format!("{key}.{what}"),
                            &format!("unknown {} field `{f}`", scope.table()),
                        ));
                    }
                }
            }
            if let Some(r) = p.recipients.iter().find(|r| !super::is_identifier(r)) {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.recipients"),
                    &format!("`{r}` is not a recipient name (lower-case letters, digits, `_`)"),
                ));
            }
            policy.purposes.insert(
                name.clone(),
                Purpose {
                    name,
                    basis: basis.unwrap_or(Basis::LegalObligation),
                    restricted_access: p.restricted_access,
                    fields: p.fields.into_iter().collect(),
                    stay_fields: p.stay_fields.into_iter().collect(),
                    recipients: p.recipients.into_iter().collect(),
                },
            );
        }
        for (name, r) in raw.roles {
            let key = format!("roles.{name}");
            let _ = r.description;
            if r.purposes.is_empty() {
                errors.push(PolicyError::new(
                    file,
                    &format!("{key}.purposes"),
                    "a role needs at least one purpose",
                ));
            }
            for p in &r.purposes {
                if !policy.purposes.contains_key(p) {
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.purposes"),
                        &format!("unknown purpose `{p}`"),
                    ));
                }
            }
            let mut actions = BTreeSet::new();
            for a in &r.actions {
                match Action::parse(a) {
                    Some(a) => {
                        actions.insert(a);
                    }
                    None => errors.push(PolicyError::new(
                        file,
                        &format!("{key}.actions"),
                        &format!("unknown action `{a}`"),
                    )),
                }
            }
            // A self-only role acts on one guest's own data: nothing that reaches other guests
            // (search, create, the audit trail, operations) is allowed.
            if r.self_only {
                const SELF_ACTIONS: [Action; 8] = [
                    Action::GuestRead,
                    Action::GuestUpdate,
                    Action::GuestReveal,
                    Action::StayRead,
                    Action::ConsentRead,
                    Action::ConsentWrite,
                    Action::GuestExport,
                    Action::GuestErase,
                ];
                for a in actions.iter().copied() {
                    if !SELF_ACTIONS.contains(&a) {
                        errors.push(PolicyError::new(
                            file,
                            &format!("{key}.actions"),
                            &format!("a self_only role cannot have `{}`", a.as_str()),
                        ));
                    }
                }
            }
            let mut parse_views = |scope: FieldScope, raw: BTreeMap<String, String>, what: &str| {
                let mut out = BTreeMap::new();
                for (field, view) in raw {
                    let vkey = format!("{key}.{what}.{field}");
                    let Some(spec) = catalog.get(scope, &field) else {
                        errors.push(PolicyError::new(file, &vkey, "unknown field"));
                        continue;
                    };
                    let Some(view) = View::parse(&view) else {
                        errors.push(PolicyError::new(
                            file,
                            &vkey,
                            "unknown view (expected plain, masked, reveal or none)",
                        ));
                        continue;
                    };
                    // PIPL Art. 29: sensitive data under a consent purpose is never shown in
                    // plain by default; a separate consent and a reveal are needed.
                    let consent_purpose = r.purposes.iter().any(|p| {
                        policy
                            .purposes
                            .get(p)
                            .is_some_and(|p| p.basis == Basis::Consent && p.touches(scope, &field))
                    });
                    if view == View::Plain && spec.is_sensitive() && consent_purpose {
                        errors.push(PolicyError::new(
                            file,
                            &vkey,
                            "a sensitive field cannot be `plain` under a consent-based purpose",
                        ));
                    }
                    out.insert(field, view);
                }
                out
            };
            let views = parse_views(FieldScope::Guest, r.views, "views");
            let stay_views = parse_views(FieldScope::Stay, r.stay_views, "stay_views");
            for f in &r.search_requires_justification {
                if !catalog
                    .get(FieldScope::Guest, f)
                    .is_some_and(|s| s.searchable)
                {
                    errors.push(PolicyError::new(
                        file,
                        &format!("{key}.search_requires_justification"),
                        &format!("`{f}` is not a searchable guest field"),
                    ));
                }
            }
            policy.roles.insert(
                name.clone(),
                Role {
                    name,
                    self_only: r.self_only,
                    purposes: r.purposes.into_iter().collect(),
                    actions,
                    views,
                    stay_views,
                    search_requires_justification: r
                        .search_requires_justification
                        .into_iter()
                        .collect(),
                },
            );
        }
        if policy.roles.is_empty() {
            errors.push(PolicyError::new(file, "roles", "no roles are defined"));
        }
        policy.minors = super::minors::parse(file, raw.minors, &policy.purposes, errors);
        policy
    }

    /// The request-level decision: is `role` allowed to do `action` under `purpose`?
    /// Consent is checked later by the service, which knows the guest.
    pub fn authorize(
        &self,
        role: &str,
        purpose: Option<&str>,
        action: Action,
    ) -> Result<Grant<'_>, Denial> {
        let Some(r) = self.roles.get(role) else {
            return Err(Denial::new(DenyReason::UnknownRole, "default.deny"));
        };
        let action_rule = format!("roles.{role}.actions");
        if !r.actions.contains(&action) {
            return Err(Denial::new(DenyReason::ActionNotAllowed, &action_rule));
        }
        let purpose_name = match purpose {
            Some(p) => p,
            None if action.touches_personal_data() => {
                return Err(Denial::new(DenyReason::PurposeRequired, "default.deny"));
            }
            // Operations on no personal data run under the role's first purpose.
            None => match r.purposes.iter().next() {
                Some(p) => p.as_str(),
                None => return Err(Denial::new(DenyReason::PurposeNotAllowed, "default.deny")),
            },
        };
        let Some(p) = self.purposes.get(purpose_name) else {
            return Err(Denial::new(DenyReason::PurposeNotAllowed, "default.deny"));
        };
        let purposes_rule = format!("roles.{role}.purposes");
        if !r.purposes.contains(purpose_name) {
            return Err(Denial::new(DenyReason::PurposeNotAllowed, &purposes_rule));
        }
        Ok(Grant {
            role: r,
            purpose: p,
            action,
            rules: vec![action_rule, purposes_rule],
        })
    }
}

/// What the vault knows of a guest's consent for the purpose in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentFacts {
    /// Never given (or the guest refused).
    None,
    Granted {
        separate: bool,
    },
    Withdrawn,
}

impl<'a> Grant<'a> {
    /// PIPL Art. 13–16: a consent-based purpose needs the guest's active consent; contract and
    /// legal-obligation purposes never ask (service must not depend on consent, Art. 16).
    /// Returns the rule that decided.
    pub fn consent_gate(&self, consent: ConsentFacts) -> Result<String, Denial> {
        let rule = format!("purposes.{}.basis", self.purpose.name);
        match (self.purpose.basis, consent) {
            (Basis::Consent, ConsentFacts::Granted { .. }) => Ok(rule),
            (Basis::Consent, _) => Err(Denial::new(DenyReason::ConsentRequired, &rule)),
            _ => Ok(rule),
        }
    }

    /// The view of one field once consent is known: sensitive fields under a consent purpose
    /// need a *separate* consent (PIPL Art. 29, REQ-09), otherwise they are withheld.
    pub fn field_view(
        &self,
        scope: FieldScope,
        field: &str,
        sensitive: bool,
        consent: ConsentFacts,
    ) -> (View, String) {
        let (view, rule) = self.view(scope, field);
        if view != View::None
            && sensitive
            && self.purpose.basis == Basis::Consent
            && !matches!(consent, ConsentFacts::Granted { separate: true })
        {
            return (
                View::None,
                format!("purposes.{}.basis.separate_consent", self.purpose.name),
            );
        }
        (view, rule)
    }
}

/// Why a request was refused; the HTTP layer maps each to a stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    UnknownRole,
    ActionNotAllowed,
    PurposeRequired,
    PurposeNotAllowed,
    ConsentRequired,
    FieldNotAllowed,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownRole => "unknown_role",
            Self::ActionNotAllowed => "action_not_allowed",
            Self::PurposeRequired => "purpose_required",
            Self::PurposeNotAllowed => "purpose_not_allowed",
            Self::ConsentRequired => "consent_required",
            Self::FieldNotAllowed => "field_not_allowed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
    pub rules: Vec<String>,
}

impl Denial {
    pub fn new(reason: DenyReason, rule: &str) -> Self {
        Self {
            reason,
            rules: vec![rule.to_string()],
        }
    }
}

/// A request-level permission: role, purpose and action checked. Field views come from here.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    role: &'a Role,
    purpose: &'a Purpose,
    action: Action,
    rules: Vec<String>,
}

impl<'a> Grant<'a> {
    /// Effective view of a field: the role's view if the purpose touches the field, else none.
    pub fn view(&self, scope: FieldScope, field: &str) -> (View, String) {
        if !self.purpose.touches(scope, field) {
            let what = match scope {
                FieldScope::Guest => "fields",
                FieldScope::Stay => "stay_fields",
            };
            return (View::None, format!("purposes.{}.{what}", self.purpose.name));
        }
        let what = match scope {
            FieldScope::Guest => "views",
            FieldScope::Stay => "stay_views",
        };
        (
            self.role.view(scope, field),
            format!("roles.{}.{what}.{field}", self.role.name),
        )
    }

    pub fn role(&self) -> &'a Role {
        self.role
    }

    /// Whether a search on `field` must carry a reason code (`search_requires_justification`).
    pub fn search_needs_justification(&self, field: &str) -> bool {
        self.role.search_requires_justification.contains(field)
    }

    pub fn purpose(&self) -> &'a Purpose {
        self.purpose
    }

    pub fn action(&self) -> Action {
        self.action
    }

    pub fn rules(&self) -> &[String] {
        &self.rules
    }

    /// The capability that store functions touching personal data demand.
    pub fn permit(&self) -> Permit {
        Permit {
            action: self.action,
            purpose: self.purpose.name.clone(),
        }
    }
}

/// Proof that the policy allowed an action. Its fields are private and only [`Grant::permit`]
/// (in this module) creates one, so storage cannot be reached around the policy.
#[derive(Debug, Clone)]
pub struct Permit {
    action: Action,
    purpose: String,
}

impl Permit {
    pub fn action(&self) -> Action {
        self.action
    }

    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// A permit for the vault's own housekeeping. The name says what it is: it bypasses role
    /// and purpose checks, so it is crate-private and only mints the action of one of the
    /// [`SystemJob`]s (never a read, create or update of guest data).
    /// Any permit, for the storage backends' unit tests (which check the SQL, not the policy).
    #[cfg(test)]
    pub(crate) fn for_tests(action: Action, purpose: &str) -> Self {
        Self {
            action,
            purpose: purpose.to_string(),
        }
    }

    pub(crate) fn system_unchecked(job: SystemJob) -> Self {
        Self {
            action: job.action(),
            purpose: "system".to_string(),
        }
    }
}

/// The vault's own jobs that act without a caller's role and purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SystemJob {
    /// A restore re-applies the erasure ledger's later erasures.
    ErasureReplay,
    /// KEK rotation rewraps DEKs.
    KeyRotation,
    /// The retention sweeper purges what expired.
    RetentionSweep,
}

impl SystemJob {
    #[cfg(test)]
    pub(crate) const ALL: [SystemJob; 3] =
        [Self::ErasureReplay, Self::KeyRotation, Self::RetentionSweep];

    fn action(self) -> Action {
        match self {
            Self::ErasureReplay => Action::GuestErase,
            Self::KeyRotation => Action::AdminKeys,
            Self::RetentionSweep => Action::AdminRetention,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Policies;
    use super::*;

    fn policies() -> Policies {
        Policies::load(None).unwrap()
    }

    #[test]
    fn unknown_role_is_denied_by_default() {
        let p = policies();
        let d = p
            .access
            .authorize("janitor", Some("check_in"), Action::GuestRead)
            .unwrap_err();
        assert_eq!(d.reason, DenyReason::UnknownRole);
        assert_eq!(d.rules, vec!["default.deny"]);
    }

    #[test]
    fn purpose_is_required_for_personal_data() {
        let p = policies();
        let d = p
            .access
            .authorize("front_desk", None, Action::GuestRead)
            .unwrap_err();
        assert_eq!(d.reason, DenyReason::PurposeRequired);
    }

    #[test]
    fn purpose_outside_the_role_is_not_allowed() {
        let p = policies();
        let d = p
            .access
            .authorize("concierge", Some("billing"), Action::GuestRead)
            .unwrap_err();
        assert_eq!(d.reason, DenyReason::PurposeNotAllowed);
        assert_eq!(d.rules, vec!["roles.concierge.purposes"]);
        let d = p
            .access
            .authorize("concierge", Some("nonsense"), Action::GuestRead)
            .unwrap_err();
        assert_eq!(d.reason, DenyReason::PurposeNotAllowed);
    }

    #[test]
    fn view_is_none_when_the_purpose_does_not_touch_the_field() {
        let p = policies();
        let g = p
            .access
            .authorize("front_desk", Some("guest_service"), Action::GuestRead)
            .unwrap();
        // front desk may reveal id_number, but guest_service does not need it.
        assert_eq!(g.view(FieldScope::Guest, "id_number").0, View::None);
        let g = p
            .access
            .authorize("front_desk", Some("check_in"), Action::GuestRead)
            .unwrap();
        let (view, rule) = g.view(FieldScope::Guest, "id_number");
        assert_eq!(view, View::Reveal);
        assert_eq!(rule, "roles.front_desk.views.id_number");
    }

    #[test]
    fn admin_and_compliance_cannot_read_guests() {
        let p = policies();
        for role in ["admin", "compliance_officer"] {
            let d = p
                .access
                .authorize(role, Some("check_in"), Action::GuestRead)
                .unwrap_err();
            assert_eq!(d.reason, DenyReason::ActionNotAllowed, "{role}");
        }
    }

    #[test]
    fn system_permits_cover_only_the_housekeeping_actions() {
        let minted: Vec<(Action, String)> = SystemJob::ALL
            .into_iter()
            .map(Permit::system_unchecked)
            .map(|p| (p.action(), p.purpose().to_string()))
            .collect();
        assert_eq!(
            minted,
            vec![
                (Action::GuestErase, "system".to_string()),
                (Action::AdminKeys, "system".to_string()),
                (Action::AdminRetention, "system".to_string()),
            ]
        );
        for (action, _) in &minted {
            assert!(!matches!(
                action,
                Action::GuestRead
                    | Action::GuestCreate
                    | Action::GuestUpdate
                    | Action::GuestReveal
                    | Action::GuestSearch
                    | Action::GuestExport
                    | Action::StayRead
                    | Action::StayCreate
            ));
        }
    }
}
