//! `GET /v1/policy`: the effective access matrix for compliance officers (role × purpose ×
//! field → view, with each purpose's legal basis).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::Auth;
use super::AppState;
use crate::policy::{Action, FieldScope};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/policy", get(effective_policy))
}

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
    let purposes: BTreeMap<&str, Value> = access
        .purposes
        .values()
        .map(|p| {
            (
                p.name.as_str(),
                json!({
                    "basis": p.basis.as_str(),
                    "restricted_access": p.restricted_access,
                    "fields": p.fields,
                    "stay_fields": p.stay_fields,
                }),
            )
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
                matrix.insert(purpose.as_str(), json!({ "fields": {}, "stay_fields": {} }));
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
            matrix.insert(
                purpose.as_str(),
                json!({ "fields": views(FieldScope::Guest), "stay_fields": views(FieldScope::Stay) }),
            );
        }
        roles.insert(
            role.name.as_str(),
            json!({
                "purposes": role.purposes,
                "actions": role.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "self_only": role.self_only,
                "views": matrix,
            }),
        );
    }
    Ok(Json(json!({ "purposes": purposes, "roles": roles })))
}
