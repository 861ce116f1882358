//! The audit events of the budget layer (issue 12, REQ-38): `access.throttled`, one per
//! throttled principal per report interval, and `security.alert`. Neither names a guest id
//! or carries a value: the count and the window go into `justification` as `count=N ...`,
//! the budget classes or the alert threshold into `rules`.

use std::collections::BTreeSet;

use super::{Vault, VaultError};
use crate::audit::{NewEvent, Outcome};
use crate::clock::timestamp;
use crate::policy::{is_identifier, Action};

/// An event of the budget layer, before it is timestamped and chained.
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    actor: String,
    role: String,
    action: Action,
    outcome: Outcome,
    reason: String,
    rules: Vec<String>,
    detail: String,
}

impl SecurityEvent {
    /// `count` requests of `sub` (as `role`) answered 429 since the last report.
    pub fn throttled(sub: &str, role: &str, count: u64, classes: &BTreeSet<&str>) -> Self {
        Self {
            actor: sub.to_string(),
            role: role.to_string(),
            action: Action::AccessThrottled,
            outcome: Outcome::Denied,
            reason: "rate_limited".into(),
            rules: classes.iter().map(|c| format!("budgets.{c}")).collect(),
            detail: format!("count={count}"),
        }
    }

    /// An alert of `kind` for `actor`: `count` occurrences within `window_secs`.
    pub fn alert(actor: &str, role: &str, kind: &str, count: u32, window_secs: u64) -> Self {
        let threshold = match kind {
            "reveal_burst" => "alerts.reveals",
            "search_miss_burst" => "alerts.search_misses",
            "export_burst" => "alerts.exports",
            "guest_probing" => "alerts.guest_probes",
            _ => "alerts.token_failures",
        };
        Self {
            actor: actor.to_string(),
            role: role.to_string(),
            action: Action::SecurityAlert,
            outcome: Outcome::Error,
            reason: kind.to_string(),
            rules: vec![threshold.to_string()],
            detail: format!("count={count} window_secs={window_secs}"),
        }
    }
}

impl Vault {
    /// Appends a budget-layer event in its own transaction.
    pub async fn record_security_event(&self, e: SecurityEvent) -> Result<(), VaultError> {
        let role = if is_identifier(&e.role) {
            e.role
        } else {
            "(invalid)".to_string()
        };
        self.record(NewEvent {
            ts: timestamp(self.clock.now()),
            request_id: uuid::Uuid::new_v4().to_string(),
            actor: e.actor,
            role,
            purpose: None,
            action: e.action.as_str().to_string(),
            guest_id: None,
            fields: vec![],
            outcome: e.outcome,
            reason: Some(e.reason),
            rules: e.rules,
            justification: Some(e.detail),
            value_hashes: vec![],
        })
        .await
    }
}
