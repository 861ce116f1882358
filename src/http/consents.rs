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
    summary = "Record a consent (or a refusal) for a consent-based purpose",
    description = "`notice_version` is required and must be registered in `notices.toml` (422 `unknown_notice_version`); the ledger stores the SHA-256 of its text. `\"decision\":\"refused\"` records a refusal. An answer the hotel prompted (`initiated_by` = `hotel`, the default for staff) within `consent.re_ask_after_days` of the guest's latest refusal of the purpose is 409 `re_ask_too_soon`; the guest's own token and `initiated_by` = `guest` never are. `purpose` in the body is not used here (the path names it).",
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
    let none = ConsentInput::withdrawal();
    Ok(Json(
        state
            .vault
            .change_consent(&caller, &id, &purpose, none, false)
            .await?,
    ))
}
