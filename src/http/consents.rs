//! Consent routes: list, grant (`PUT`), withdraw (`DELETE`) — one call each way (REQ-05).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, Auth};
use super::openapi::{ConsentPath, GuestPath, PurposeHeader};
use super::problems::{ConsentGrantProblems, ConsentListProblems, ConsentWithdrawProblems};
use super::AppState;
use crate::service::{ConsentInput, ConsentRecord, ConsentsView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/guests/{id}/consents", get(list_consents))
        .route(
            "/v1/guests/{id}/consents/{purpose}",
            axum::routing::put(grant_consent).delete(withdraw_consent),
        )
}

#[utoipa::path(get, path = "/v1/guests/{id}/consents", tag = "consents",
    summary = "The consent ledger: current consent per purpose and the full history",
    params(GuestPath, PurposeHeader),
    responses((status = 200, description = "the ledger", body = ConsentsView), ConsentListProblems))]
async fn list_consents(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.list_consents(&caller, &id).await?))
}

#[utoipa::path(put, path = "/v1/guests/{id}/consents/{purpose}", tag = "consents",
    summary = "Record a consent for a consent-based purpose",
    description = "`notice_version` is required; `purpose` in the body is not used here (the path names it).",
    params(ConsentPath, PurposeHeader), request_body = ConsentInput,
    responses((status = 200, description = "the current consent for the purpose", body = ConsentRecord), ConsentGrantProblems))]
async fn grant_consent(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath((id, purpose)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<ConsentInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .vault
            .change_consent(&caller, &id, &purpose, input, true)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/guests/{id}/consents/{purpose}", tag = "consents",
    summary = "Withdraw a consent (effective on the next request)",
    params(ConsentPath, PurposeHeader),
    responses((status = 200, description = "the current consent for the purpose", body = ConsentRecord), ConsentWithdrawProblems))]
async fn withdraw_consent(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath((id, purpose)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let none = ConsentInput {
        purpose: None,
        separate: false,
        notice_version: String::new(),
        channel: String::new(),
        given_by: None,
        guardian_relationship: None,
        guardian_guest_id: None,
        guardian_ticket: None,
    };
    Ok(Json(
        state
            .vault
            .change_consent(&caller, &id, &purpose, none, false)
            .await?,
    ))
}
