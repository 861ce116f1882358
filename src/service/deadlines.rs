//! Deadlines of data-subject requests (REQ-32, REQ-48; issue 16 §5): which clock a request runs
//! on, its extension, and the watch that escalates a request at 80% of its time and raises an
//! alert once it is overdue.
//!
//! - At intake a request takes the guest's `jurisdictions` (absent: `["cn"]`) and keeps, in
//!   `dsr_requests.deadlines`, the due date of each regime and the clock that decides (the
//!   earlier, [`crate::domain::deadlines`]). A later change of the guest's jurisdictions does
//!   not move the deadline of a request already received.
//! - `POST /v1/dsr-requests/{id}/extend`: a DSR officer extends the GDPR clock of an open
//!   request by one or two months (at most two in all) with a reason code of
//!   `[extension_reasons]` and an optional ticket. A request on the Chinese clock alone is
//!   refused with 422 `clock_not_extendable`. Because every guest is also under the Chinese
//!   clock, which cannot be extended, `due_at` stays the earlier date: the extension is
//!   recorded (GDPR Art. 12(3)) but never pushes a request past the Chinese deadline.
//! - The watch runs after each retention sweep (the background sweeper, or
//!   `POST /v1/admin/retention/run`): nobody has to look for it to fire. Each request gets one
//!   `dsr.escalated` event when 80% of its time has passed and one `dsr.overdue` event the day
//!   after its due date, each with a log line and a Prometheus counter. They name the request
//!   id, its kind and clock, never a guest (requests are keyed by an HMAC).
//!
//! Who sees a clock: whoever may list or read DSRs already sees their due dates; `eu` tells
//! them which regime set that date, no value of a guest. The overdue list names no guest.

use serde::{Deserialize, Serialize};
use time::Date;

use super::{Caller, Vault, VaultError};
use crate::audit::{NewEvent, Outcome};
use crate::domain::deadlines::{
    Deadlines, ExtendError, Jurisdictions, JURISDICTIONS_FIELD, MAX_EXTENSION_MONTHS,
};
use crate::domain::{FieldError, GuestId};
use crate::policy::{Action, DenyReason, Grant};
use crate::store;

/// The actor of the deadline watch's events.
pub const DEADLINE_ACTOR: &str = "system:dsr_deadlines";
/// Open requests the watch looks at per turn (earliest due first).
const WATCH_LIMIT: usize = 10_000;
/// 422 codes of an extension: only the Chinese clock applies; more than two months in all;
/// the request was answered (or its correction withdrawn) already.
pub const CLOCK_NOT_EXTENDABLE: &str = "clock_not_extendable";
pub const EXTENSION_LIMIT_REACHED: &str = "extension_limit_reached";
pub const REQUEST_NOT_OPEN: &str = "request_not_open";

/// Which clock decides a request's due date, and the due date of each regime that applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DsrClock {
    /// `cn` (15 Chinese working days, at most 30 calendar days) or `eu` (one month, GDPR
    /// Art. 12(3)): the regime whose due date is the earlier, and so `due_at`.
    pub clock: String,
    pub due_dates: DueDates,
    /// The extension of the GDPR clock, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<DsrExtension>,
}

/// The due date under each regime that applies (ISO dates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DueDates {
    pub cn: String,
    /// Absent when the GDPR does not apply to the guest. Includes any extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eu: Option<String>,
}

/// An extension of the GDPR clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DsrExtension {
    /// Months added in all (1 or 2).
    pub months: u32,
    /// A code of `[extension_reasons]` in `access.toml` (the latest extension's).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    pub extended_at: String,
}

impl DsrClock {
    pub(crate) fn of(d: &Deadlines, extension: Option<DsrExtension>) -> Self {
        Self {
            clock: d.clock().into(),
            due_dates: DueDates {
                cn: d.cn_due.to_string(),
                eu: d.eu_due.map(|e| e.to_string()),
            },
            extension,
        }
    }

    /// The clock of a stored request; a row from before migration 0010 ran on the Chinese
    /// clock alone, `due_at` its date.
    pub(crate) fn of_row(deadlines: Option<&str>, due_at: &str) -> Self {
        deadlines
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_else(|| Self {
                clock: "cn".into(),
                due_dates: DueDates {
                    cn: due_at.to_string(),
                    eu: None,
                },
                extension: None,
            })
    }

    /// Back to the domain's deadlines, for a request received on `received`.
    fn deadlines(&self, received: Date) -> Option<Deadlines> {
        let cn_due = crate::domain::pii::parse_date(&self.due_dates.cn).ok()?;
        let eu_due = match &self.due_dates.eu {
            Some(e) => Some(crate::domain::pii::parse_date(e).ok()?),
            None => None,
        };
        Some(Deadlines {
            received,
            jurisdictions: Jurisdictions {
                eu: eu_due.is_some(),
            },
            cn_due,
            eu_due,
            extended_months: self.extension.as_ref().map_or(0, |e| e.months),
        })
    }
}

/// The date in China Standard Time of a stored timestamp (the day a request was received on).
pub(crate) fn received_on(ts: &str) -> Option<Date> {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::macros::offset!(+8)).date())
}

/// `POST /v1/dsr-requests/{request_id}/extend`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendInput {
    /// A code of `[extension_reasons]` in `access.toml` (e.g. `complex_request`).
    #[schema(required)]
    pub reason: Option<String>,
    /// An optional ticket or case id, `[A-Za-z0-9._-]{1,40}`, not starting with `-` or `.`.
    #[schema(pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]{0,39}$")]
    pub ticket: Option<String>,
    /// Months to add, 1 or 2 (default 2); at most 2 in all (GDPR Art. 12(3)).
    #[schema(minimum = 1, maximum = 2)]
    #[serde(default, deserialize_with = "whole_months")]
    pub months: Option<u32>,
}

/// `months` as JSON Schema counts integers: `1.0` is the integer 1 (schemathesis sends it).
fn whole_months<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n: Option<serde_json::Number> = Option::deserialize(d)?;
    // Anything else (1.5, -1, huge) becomes a value out of range: 422, never the default.
    Ok(n.map(|n| {
        n.as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && (0.0..=2.0).contains(f))
                    .map(|f| f as u64)
            })
            .map_or(u32::MAX, |v| u32::try_from(v).unwrap_or(u32::MAX))
    }))
}

/// A request after its extension.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExtendedRequest {
    pub request_id: String,
    pub kind: String,
    pub status: String,
    pub received_at: String,
    /// The due date that applies (the earlier of `due_dates`).
    pub due_at: String,
    #[serde(flatten)]
    pub deadlines: DsrClock,
}

/// What one turn of the deadline watch raised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeadlineAlerts {
    /// Requests that passed 80% of their time in this turn.
    pub escalated: u64,
    /// Requests that went overdue in this turn.
    pub overdue: u64,
}

impl Vault {
    /// The jurisdictions of a guest, read under `grant` (absent or unreadable: `cn` only).
    pub(super) async fn jurisdictions_of(
        &self,
        grant: &Grant<'_>,
        guest_id: &str,
    ) -> Result<Jurisdictions, VaultError> {
        let Some(id) = GuestId::parse(guest_id) else {
            return Ok(Jurisdictions::default());
        };
        let permit = grant.permit();
        let gid = guest_id.to_string();
        let sealed = self
            .readers
            .run(move |c| store::load_guest(c, &permit, &gid))
            .await?;
        let Some(sealed) = sealed else {
            return Ok(Jurisdictions::default());
        };
        let stored = self.open_fields(&id, &sealed, |n| n == JURISDICTIONS_FIELD)?;
        Ok(Jurisdictions::from_stored(
            stored.first().map(|(_, v)| v.expose()),
        ))
    }

    /// The deadlines of a request received now from a guest under `jurisdictions`.
    pub(super) fn deadlines_now(&self, jurisdictions: Jurisdictions) -> Deadlines {
        Deadlines::compute(
            &self.policies.calendar,
            self.dsr_received_on(),
            jurisdictions,
        )
    }

    /// Checks an extension body; errors name the field with a stable code, never the value.
    fn validate_extension(&self, input: &ExtendInput) -> Result<(String, u32), Vec<FieldError>> {
        let mut errors = Vec::new();
        let reason = input.reason.as_deref().unwrap_or_default();
        if reason.is_empty() {
            errors.push(FieldError::new("reason", "required"));
        } else if !self.policies.access.extension_reasons.contains_key(reason) {
            errors.push(FieldError::new("reason", "unknown_reason"));
        }
        if input
            .ticket
            .as_deref()
            .is_some_and(|t| !crate::policy::is_ticket(t))
        {
            errors.push(FieldError::new("ticket", "invalid_format"));
        }
        let months = input.months.unwrap_or(MAX_EXTENSION_MONTHS);
        if !(1..=MAX_EXTENSION_MONTHS).contains(&months) {
            errors.push(FieldError::new("months", "out_of_range"));
        }
        if errors.is_empty() {
            Ok((reason.to_string(), months))
        } else {
            Err(errors)
        }
    }

    /// `POST /v1/dsr-requests/{id}/extend` (GDPR Art. 12(3), REQ-32). Audited as `dsr.extend`
    /// with the reason code, the months and the new due dates; refusals too.
    pub async fn extend_request(
        &self,
        caller: &Caller,
        request_id: &str,
        input: ExtendInput,
    ) -> Result<ExtendedRequest, VaultError> {
        let action = Action::DsrExtend;
        let grant = self.authorize(caller, action, None).await?;
        let rules = grant.rules().to_vec();
        if grant.role().self_only {
            let rule = format!("roles.{}.self_only", grant.role().name);
            let e = VaultError::Denied(DenyReason::ActionNotAllowed);
            return Err(self
                .refuse(caller, action, None, vec![], e, vec![rule])
                .await);
        }
        let (reason, months) = match self.validate_extension(&input) {
            Ok(v) => v,
            Err(errors) => {
                let e = VaultError::Validation(errors);
                return Err(self.refuse(caller, action, None, vec![], e, rules).await);
            }
        };
        let id = request_id.to_string();
        let row = if uuid::Uuid::try_parse(request_id).is_ok() {
            self.readers.run(move |c| store::get_dsr(c, &id)).await?
        } else {
            None
        };
        let Some((row, _)) = row else {
            return Err(self
                .refuse(caller, action, None, vec![], VaultError::NotFound, rules)
                .await);
        };
        let refuse = |code: &'static str| VaultError::Unprocessable(code);
        let open = matches!(row.status.as_str(), "received" | "pending_verification");
        let clock = DsrClock::of_row(row.deadlines.as_deref(), &row.due_at);
        let mut deadlines = match received_on(&row.received_at).and_then(|r| clock.deadlines(r)) {
            Some(d) => d,
            None => return Err(VaultError::Internal("unreadable request deadlines".into())),
        };
        let checked = if !open {
            Err(refuse(REQUEST_NOT_OPEN))
        } else {
            deadlines.extend(months).map_err(|e| match e {
                ExtendError::NotExtendable => refuse(CLOCK_NOT_EXTENDABLE),
                ExtendError::LimitReached => refuse(EXTENSION_LIMIT_REACHED),
            })
        };
        if let Err(e) = checked {
            return Err(self.refuse(caller, action, None, vec![], e, rules).await);
        }
        let extension = DsrExtension {
            months: deadlines.extended_months,
            reason: reason.clone(),
            ticket: input.ticket.clone(),
            extended_at: self.now_ts(),
        };
        let clock = DsrClock::of(&deadlines, Some(extension));
        let due_at = deadlines.due().to_string();
        let json =
            serde_json::to_string(&clock).map_err(|e| VaultError::Internal(e.to_string()))?;
        let mut event = self.event(
            caller,
            action,
            None,
            vec![],
            Outcome::Allowed,
            Some(&format!(
                "request {} ({}) extended by {months} month(s): {reason}; due {due_at} on the {} clock, eu {}",
                row.request_id,
                row.kind,
                clock.clock,
                clock.due_dates.eu.as_deref().unwrap_or("-"),
            )),
            rules.clone(),
        );
        event.justification = Some(match &input.ticket {
            Some(t) => format!("reason={reason} ticket={t}"),
            None => format!("reason={reason}"),
        });
        let rid = row.request_id.clone();
        let due = due_at.clone();
        let updated = self
            .writer
            .execute(move |c| {
                let updated = store::set_deadlines(c, &rid, &due, &json)?;
                if updated {
                    crate::audit::append(c, event)?;
                }
                Ok(updated)
            })
            .await
            .map_err(VaultError::from_write)?;
        if !updated {
            // Answered or withdrawn between the read and the write.
            let e = refuse(REQUEST_NOT_OPEN);
            return Err(self.refuse(caller, action, None, vec![], e, rules).await);
        }
        Ok(ExtendedRequest {
            request_id: row.request_id,
            kind: row.kind,
            status: row.status,
            received_at: row.received_at,
            due_at,
            deadlines: clock,
        })
    }

    /// One turn of the deadline watch (REQ-32): for each open request, a `dsr.escalated`
    /// event once 80% of its time has passed and a `dsr.overdue` event once its due date has
    /// (the day after it, as `?status=overdue` lists it). Each fires once per request: the
    /// mark and its event commit together.
    pub async fn watch_deadlines(&self, run_id: &str) -> Result<DeadlineAlerts, VaultError> {
        let rows = self
            .readers
            .run(|c| store::dsr_watch(c, WATCH_LIMIT))
            .await?;
        let today_cst = self.dsr_received_on();
        let today_utc = self.today().to_string();
        let now = self.now_ts();
        let mut due: Vec<(String, &'static str, String, String)> = Vec::new();
        for r in rows {
            let clock = DsrClock::of_row(r.deadlines.as_deref(), &r.due_at);
            let Some(d) = received_on(&r.received_at).and_then(|on| clock.deadlines(on)) else {
                continue;
            };
            let overdue = r.due_at < today_utc;
            if !r.escalated && (overdue || d.past_escalation(today_cst)) {
                due.push((
                    r.request_id.clone(),
                    "escalated",
                    r.kind.clone(),
                    clock.clock.clone(),
                ));
            }
            if !r.overdue_alerted && overdue {
                due.push((
                    r.request_id.clone(),
                    "overdue",
                    r.kind.clone(),
                    clock.clock.clone(),
                ));
            }
        }
        if due.is_empty() {
            return Ok(DeadlineAlerts::default());
        }
        let run_id = run_id.to_string();
        let fired = self
            .writer
            .execute(move |c| {
                let mut fired = Vec::new();
                for (request_id, alert, kind, clock) in due {
                    if !store::mark_dsr_alert(c, &request_id, alert, &now)? {
                        continue;
                    }
                    let action = if alert == "overdue" {
                        Action::DsrOverdue
                    } else {
                        Action::DsrEscalated
                    };
                    crate::audit::append(
                        c,
                        NewEvent {
                            ts: now.clone(),
                            request_id: run_id.clone(),
                            actor: DEADLINE_ACTOR.into(),
                            role: "system".into(),
                            purpose: None,
                            action: action.as_str().into(),
                            guest_id: None,
                            fields: vec![],
                            outcome: Outcome::Error,
                            reason: Some(format!("request {request_id} ({kind}) {alert}")),
                            rules: vec![format!("deadlines.{clock}")],
                            justification: Some(format!("kind={kind} clock={clock}")),
                            value_hashes: vec![],
                        },
                    )?;
                    fired.push((request_id, alert, kind, clock));
                }
                Ok(fired)
            })
            .await
            .map_err(VaultError::from_write)?;
        let mut out = DeadlineAlerts::default();
        for (request_id, alert, kind, clock) in fired {
            crate::metrics::record_dsr_alert(alert, &clock);
            if alert == "overdue" {
                out.overdue += 1;
                tracing::warn!(%request_id, %kind, %clock, "data-subject request overdue");
            } else {
                out.escalated += 1;
                tracing::warn!(%request_id, %kind, %clock, "data-subject request escalated: 80% of its time has passed");
            }
        }
        Ok(out)
    }
}
