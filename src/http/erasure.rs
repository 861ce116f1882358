//! Erasure, data-subject request receipts and deadlines, the access/portability export, and
//! the retention run.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Auth};
use super::AppState;
use crate::domain::FieldError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/guests/{id}/erasure", post(erase_guest))
        .route("/v1/guests/{id}/export", get(export_guest))
        .route("/v1/erasure-requests", get(list_requests))
        .route("/v1/erasure-requests/{request_id}", get(get_request))
        .route("/v1/admin/retention/run", post(run_retention))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErasureBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn erase_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ErasureBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .vault
            .erase_guest(&caller, &id, body.reason.as_deref())
            .await?,
    ))
}

async fn export_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.export_guest(&caller, &id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
}

async fn list_requests(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if q.status.as_deref() != Some("overdue") {
        return Err(ApiError::Validation(vec![FieldError::new(
            "status",
            "not_allowed",
        )]));
    }
    let requests = state.vault.overdue_requests(&caller).await?;
    Ok(Json(json!({ "requests": requests })))
}

async fn get_request(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(request_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state.vault.erasure_receipt(&caller, &request_id).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn run_retention(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.admin_retention(&caller, q.dry_run).await?))
}
