//! `GET /v1/policy`: the effective access matrix for compliance officers (role × purpose ×
//! field → view, with each purpose's legal basis).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::Auth;
use super::problems::PolicyProblems;
use super::AppState;
use crate::policy::{Action, FieldScope};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/policy", get(effective_policy))
}

/// The effective policy: every purpose and every role.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EffectivePolicy {
    purposes: BTreeMap<String, PurposeSummary>,
    roles: BTreeMap<String, RoleSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PurposeSummary {
    /// `consent`, `contract`, `legal_obligation` or `vital_interest`.
    basis: &'static str,
    /// May process storage-only (restricted) data.
    restricted_access: bool,
    /// Guest fields the purpose may touch (minimum necessary).
    fields: BTreeSet<String>,
    stay_fields: BTreeSet<String>,
    /// Sensitive fields this purpose shows only with the guest's *separate* consent (PIPL
    /// Art. 29); without it they are withheld whatever the role's view says. Empty unless
    /// the basis is `consent`.
    separate_consent_fields: BTreeSet<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RoleSummary {
    purposes: BTreeSet<String>,
    actions: Vec<&'static str>,
    /// Acts only on the guest whose id is the token's `sub`.
    self_only: bool,
    /// Per purpose: the view of each visible field.
    views: BTreeMap<String, PurposeViews>,
}

/// Field → `plain`, `masked` or `reveal`; fields shown `none` are absent.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(super) struct PurposeViews {
    fields: BTreeMap<String, &'static str>,
    stay_fields: BTreeMap<String, &'static str>,
}

#[utoipa::path(get, path = "/v1/policy", tag = "policy",
    summary = "The effective access matrix (compliance officer, admin)",
    responses((status = 200, description = "the matrix", body = EffectivePolicy), PolicyProblems))]
async fn effective_policy(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let policies = state.vault.policies();
    let access = &policies.access;
    state
        .vault
        .authorize_operation(&caller, Action::PolicyRead)
        .await?;
    let purposes = access
        .purposes
        .values()
        .map(|p| {
            let sensitive = |scope: FieldScope, names: &BTreeSet<String>| -> Vec<String> {
                names
                    .iter()
                    .filter(|n| {
                        policies
                            .catalog
                            .get(scope, n)
                            .is_some_and(|f| f.is_sensitive())
                    })
                    .cloned()
                    .collect()
            };
            let separate_consent_fields = if p.basis == crate::policy::Basis::Consent {
                let mut s: BTreeSet<String> = sensitive(FieldScope::Guest, &p.fields)
                    .into_iter()
                    .collect();
                s.extend(sensitive(FieldScope::Stay, &p.stay_fields));
                s
            } else {
                BTreeSet::new()
            };
            let summary = PurposeSummary {
                basis: p.basis.as_str(),
                restricted_access: p.restricted_access,
                fields: p.fields.clone(),
                stay_fields: p.stay_fields.clone(),
                separate_consent_fields,
            };
            (p.name.clone(), summary)
        })
        .collect();
    let mut roles = BTreeMap::new();
    for role in access.roles.values() {
        let mut matrix = BTreeMap::new();
        for purpose in &role.purposes {
            let Ok(grant) = access
                .authorize(&role.name, Some(purpose), Action::GuestRead)
                .or_else(|_| access.authorize(&role.name, Some(purpose), Action::StayRead))
            else {
                matrix.insert(purpose.clone(), PurposeViews::default());
                continue;
            };
            let views = |scope: FieldScope| -> BTreeMap<String, &'static str> {
                policies
                    .catalog
                    .fields(scope)
                    .map(|f| (f.name.clone(), grant.view(scope, &f.name).0.as_str()))
                    .filter(|(_, v)| *v != "none")
                    .collect()
            };
            let shown = PurposeViews {
                fields: views(FieldScope::Guest),
                stay_fields: views(FieldScope::Stay),
            };
            matrix.insert(purpose.clone(), shown);
        }
        let summary = RoleSummary {
            purposes: role.purposes.clone(),
            actions: role.actions.iter().map(|a| a.as_str()).collect(),
            self_only: role.self_only,
            views: matrix,
        };
        roles.insert(role.name.clone(), summary);
    }
    Ok(Json(EffectivePolicy { purposes, roles }))
}
