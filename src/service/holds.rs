//! Legal holds (issue 16 §2, REQ-23; PIPL Art. 47(2)): an officer whom the policy allows
//! (`guest.hold`) places a hold on a guest with a reason code of `[hold_reasons]` and a ticket
//! id, optionally until a date. While a hold stands the retention sweeper purges nothing of
//! the guest, an erasure restricts instead of deleting (its receipt names the hold), and the
//! access package lists the hold. A hold with `until` lapses by itself the day after; lifting
//! one is a `DELETE`. Each step is audited with codes and ids only (no free text), and is
//! appended to the erasure ledger so a restore of an older backup places or lifts it again
//! before it re-applies later erasures.

use serde::{Deserialize, Serialize};

use super::{Caller, Vault, VaultError};
use crate::audit::Outcome;
use crate::domain::FieldError;
use crate::policy::Action;
use crate::store::{self, GuestStatus, HoldRow, StoreError};

/// `POST /v1/guests/{id}/holds`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldInput {
    /// A code of `[hold_reasons]` in `access.toml` (e.g. `litigation`).
    #[schema(required)]
    pub reason: Option<String>,
    /// The case or ticket id, `[A-Za-z0-9._-]{1,40}`, not starting with `-` or `.`.
    #[schema(required, pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]{0,39}$")]
    pub ticket: Option<String>,
    /// The last day the hold stands (`YYYY-MM-DD`, today or later); it lapses the day after.
    /// Leave out for a hold that stands until it is lifted.
    #[schema(format = Date)]
    pub until: Option<String>,
}

/// A hold as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HoldView {
    pub hold_id: String,
    pub reason: String,
    pub ticket: String,
    /// The last day it stands; absent: until lifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// `active`, `lifted`, or `lapsed` (its `until` has passed).
    pub status: String,
    pub placed_at: String,
    /// The token `sub` of who placed it (left out of the guest's own access package).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifted_by: Option<String>,
}

impl HoldView {
    pub(crate) fn of(row: HoldRow, today: &str, with_officers: bool) -> Self {
        let status = if row.lifted_at.is_some() {
            "lifted"
        } else if row.is_active(today) {
            "active"
        } else {
            "lapsed"
        };
        Self {
            status: status.into(),
            hold_id: row.hold_id,
            reason: row.reason,
            ticket: row.ticket,
            until: row.until,
            placed_at: row.placed_at,
            placed_by: with_officers.then_some(row.placed_by),
            lifted_at: row.lifted_at,
            lifted_by: row.lifted_by.filter(|_| with_officers),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HoldList {
    pub guest_id: String,
    /// Every hold of the guest, oldest first: active, lifted and lapsed.
    pub holds: Vec<HoldView>,
}

enum Placed {
    Done(Box<HoldRow>),
    Missing,
}

impl Vault {
    /// Checks a hold body. Errors name the field with a stable code and never echo the value:
    /// `reason`: `required`, `unknown_reason`; `ticket`: `required`, `invalid_format`;
    /// `until`: `invalid_format`, `in_the_past`.
    fn validate_hold(
        &self,
        input: &HoldInput,
    ) -> Result<(String, String, Option<String>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let reason = input.reason.as_deref().unwrap_or_default();
        if reason.is_empty() {
            errors.push(FieldError::new("reason", "required"));
        } else if !self.policies.access.hold_reasons.contains_key(reason) {
            errors.push(FieldError::new("reason", "unknown_reason"));
        }
        let ticket = input.ticket.as_deref().unwrap_or_default();
        if ticket.is_empty() {
            errors.push(FieldError::new("ticket", "required"));
        } else if !crate::policy::is_ticket(ticket) {
            errors.push(FieldError::new("ticket", "invalid_format"));
        }
        let until = match input.until.as_deref() {
            None => None,
            Some(u) => match crate::domain::pii::parse_date(u) {
                Ok(d) if d < self.today() => {
                    errors.push(FieldError::new("until", "in_the_past"));
                    None
                }
                Ok(d) => Some(d.to_string()),
                Err(_) => {
                    errors.push(FieldError::new("until", "invalid_format"));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((reason.to_string(), ticket.to_string(), until))
    }

    /// `POST /v1/guests/{id}/holds`: places a hold on a guest (restricted guests included: a
    /// hold keeps what an erasure left for its statutory period beyond it).
    pub async fn place_hold(
        &self,
        caller: &Caller,
        raw_id: &str,
        input: HoldInput,
    ) -> Result<HoldView, VaultError> {
        let action = Action::GuestHold;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let (reason, ticket, until) = match self.validate_hold(&input) {
            Ok(v) => v,
            Err(e) => {
                return Err(self
                    .refuse(
                        caller,
                        action,
                        Some(&gid),
                        vec![],
                        VaultError::Validation(e),
                        grant.rules().to_vec(),
                    )
                    .await)
            }
        };
        let now = self.now_ts();
        let hold = HoldRow {
            hold_id: uuid::Uuid::now_v7().hyphenated().to_string(),
            guest_id: gid.clone(),
            reason,
            ticket,
            until,
            placed_at: now.clone(),
            placed_by: caller.actor.clone(),
            lifted_at: None,
            lifted_by: None,
        };
        let mut event = self.event(
            caller,
            action,
            Some(&gid),
            vec![],
            Outcome::Allowed,
            Some(&format!(
                "legal hold {} placed: {}{}",
                hold.hold_id,
                hold.reason,
                hold.until
                    .as_deref()
                    .map(|u| format!(", until {u}"))
                    .unwrap_or_default()
            )),
            grant.rules().to_vec(),
        );
        event.justification = Some(format!("reason={} ticket={}", hold.reason, hold.ticket));
        let ledger = self.ledger.clone();
        let placed = self
            .writer
            .execute(move |c| {
                match store::guest_status(c, &hold.guest_id)? {
                    None | Some(GuestStatus::Erased) => return Ok(Placed::Missing),
                    _ => {}
                }
                store::holds::place(c, &hold)?;
                // Before the commit: a restore of an older backup places it again (REQ-27).
                ledger
                    .append(&hold.guest_id, &crate::ledger::hold_event(&hold), &now)
                    .map_err(|e| StoreError::Other(e.to_string()))?;
                crate::audit::append(c, event)?;
                Ok(Placed::Done(Box::new(hold)))
            })
            .await
            .map_err(VaultError::from_write)?;
        match placed {
            Placed::Done(row) => Ok(HoldView::of(*row, &self.today().to_string(), true)),
            Placed::Missing => Err(self
                .refuse(
                    caller,
                    action,
                    Some(&gid),
                    vec![],
                    VaultError::NotFound,
                    grant.rules().to_vec(),
                )
                .await),
        }
    }

    /// `GET /v1/guests/{id}/holds`: every hold of the guest.
    pub async fn list_holds(&self, caller: &Caller, raw_id: &str) -> Result<HoldList, VaultError> {
        let action = Action::GuestHold;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let read_gid = gid.clone();
        let (status, holds) = self
            .readers
            .run(move |c| {
                Ok((
                    store::guest_status(c, &read_gid)?,
                    store::holds::list(c, &read_gid)?,
                ))
            })
            .await?;
        if matches!(status, None | Some(GuestStatus::Erased)) {
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
        let event = self.event(
            caller,
            action,
            Some(&gid),
            vec![],
            Outcome::Allowed,
            Some("legal holds listed"),
            grant.rules().to_vec(),
        );
        self.record(event).await?;
        let today = self.today().to_string();
        Ok(HoldList {
            guest_id: gid,
            holds: holds
                .into_iter()
                .map(|h| HoldView::of(h, &today, true))
                .collect(),
        })
    }

    /// `DELETE /v1/guests/{id}/holds/{hold_id}`: lifts a hold. Lifting one already lifted
    /// answers it as it is (the first lift stays); an unknown hold id answers like an unknown
    /// guest.
    pub async fn lift_hold(
        &self,
        caller: &Caller,
        raw_id: &str,
        hold_id: &str,
    ) -> Result<HoldView, VaultError> {
        let action = Action::GuestHold;
        let grant = self.authorize(caller, action, Some(raw_id)).await?;
        let guest_id = self.target(caller, &grant, raw_id).await?;
        let gid = guest_id.as_str().to_string();
        let hold_id = match uuid::Uuid::try_parse(hold_id) {
            Ok(u) => u.hyphenated().to_string(),
            Err(_) => {
                return Err(self
                    .refuse(
                        caller,
                        action,
                        Some(&gid),
                        vec![],
                        VaultError::NotFound,
                        grant.rules().to_vec(),
                    )
                    .await)
            }
        };
        let now = self.now_ts();
        let mut event = self.event(
            caller,
            action,
            Some(&gid),
            vec![],
            Outcome::Allowed,
            Some(&format!("legal hold {hold_id} lifted")),
            grant.rules().to_vec(),
        );
        let actor = caller.actor.clone();
        let ledger = self.ledger.clone();
        let job_gid = gid.clone();
        let lifted = self
            .writer
            .execute(move |c| {
                match store::guest_status(c, &job_gid)? {
                    None | Some(GuestStatus::Erased) => return Ok(None),
                    _ => {}
                }
                let before = store::holds::list(c, &job_gid)?
                    .into_iter()
                    .find(|h| h.hold_id == hold_id);
                let Some(before) = before else {
                    return Ok(None);
                };
                let row = store::holds::lift(c, &job_gid, &hold_id, &now, &actor)?;
                if before.lifted_at.is_none() {
                    ledger
                        .append(
                            &job_gid,
                            &format!("{}{hold_id}", crate::ledger::HOLD_LIFTED_PREFIX),
                            &now,
                        )
                        .map_err(|e| StoreError::Other(e.to_string()))?;
                } else {
                    event.reason = Some(format!("legal hold {hold_id} already lifted"));
                }
                event.justification =
                    Some(format!("reason={} ticket={}", before.reason, before.ticket));
                crate::audit::append(c, event)?;
                Ok(row)
            })
            .await
            .map_err(VaultError::from_write)?;
        match lifted {
            Some(row) => Ok(HoldView::of(row, &self.today().to_string(), true)),
            None => Err(self
                .refuse(
                    caller,
                    action,
                    Some(&gid),
                    vec![],
                    VaultError::NotFound,
                    grant.rules().to_vec(),
                )
                .await),
        }
    }
}
