//! Consent routes: list, grant (`PUT`), withdraw (`DELETE`) — one call each way (REQ-05).

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use super::AppState;
use crate::service::ConsentInput;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/guests/{id}/consents", get(list_consents))
        .route(
            "/v1/guests/{id}/consents/{purpose}",
            axum::routing::put(grant_consent).delete(withdraw_consent),
        )
}

async fn list_consents(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.list_consents(&caller, &id).await?))
}

async fn grant_consent(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, purpose)): Path<(String, String)>,
    ApiJson(input): ApiJson<ConsentInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .vault
            .change_consent(&caller, &id, &purpose, input, true)
            .await?,
    ))
}

async fn withdraw_consent(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, purpose)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let none = ConsentInput {
        purpose: None,
        separate: false,
        notice_version: String::new(),
        channel: String::new(),
    };
    Ok(Json(
        state
            .vault
            .change_consent(&caller, &id, &purpose, none, false)
            .await?,
    ))
}
