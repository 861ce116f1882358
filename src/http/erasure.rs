//! Erasure, data-subject request receipts and deadlines, the access/portability export, and
//! the retention run.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::openapi::{GuestPath, PurposeHeader, RequestIdPath};
use super::problems::{
    EraseProblems, ExportProblems, OverdueProblems, ReceiptProblems, RetentionRunProblems,
};
use super::AppState;
use crate::domain::FieldError;
use crate::service::{OverdueRequest, Receipt, SweepReport, VaultError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/guests/{id}/erasure", post(erase_guest))
        .route("/v1/guests/{id}/export", get(export_guest))
        .route("/v1/erasure-requests", get(list_requests))
        .route("/v1/erasure-requests/{request_id}", get(get_request))
        .route("/v1/admin/retention/run", post(run_retention))
}

/// Why the guest's data is erased.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ErasureBody {
    /// `guest_request`, `consent_withdrawn`, `purpose_fulfilled`, `unlawful_processing` or
    /// `service_stopped` are recorded as given; any other text is accepted but recorded only as
    /// `other` (free text could carry personal data).
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

#[utoipa::path(post, path = "/v1/guests/{id}/erasure", tag = "erasure",
    summary = "Erase a guest: delete what may be deleted, restrict what the law keeps",
    description = "Repeating the request for a fully erased guest returns the latest receipt.",
    params(GuestPath, PurposeHeader), request_body = ErasureBody,
    responses((status = 200, description = "the receipt", body = Receipt), EraseProblems))]
async fn erase_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ErasureBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .vault
            .erase_guest(&caller, &id, body.reason.as_deref())
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/guests/{id}/export", tag = "erasure",
    summary = "Access and portability package of a guest, in plain",
    description = "For the guest's own token or a DSR officer. The shape is `docs/export.schema.json`.",
    params(GuestPath, PurposeHeader, ExportQuery),
    responses((status = 200, description = "the package", body = Object), ExportProblems))]
async fn export_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let why = crate::policy::JustificationInput {
        reason: q.reason.as_deref(),
        ticket: q.ticket.as_deref(),
        note: None,
    };
    Ok(Json(state.vault.export_guest(&caller, &id, why).await?))
}

/// Why a DSR officer exports (every field in plain): a reason code and ticket, which are no
/// personal data and so may sit in the URL. The guest's own export needs neither.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ExportQuery {
    /// A reason code from `[reasons]` in `access.toml`. Required for staff; the guest's own
    /// export may leave it out.
    #[param(required = true)]
    reason: Option<String>,
    /// An optional ticket or case id, `[A-Za-z0-9._-]{1,40}`.
    #[param(pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]{0,39}$")]
    ticket: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only `overdue` is supported.
    #[param(required = true, value_type = String, pattern = "^overdue$")]
    status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OverdueList {
    requests: Vec<OverdueRequest>,
}

#[utoipa::path(get, path = "/v1/erasure-requests", tag = "erasure",
    summary = "Data-subject requests past their due date",
    params(ListQuery, PurposeHeader),
    responses((status = 200, description = "the overdue requests", body = OverdueList), OverdueProblems))]
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
    Ok(Json(OverdueList { requests }))
}

#[utoipa::path(get, path = "/v1/erasure-requests/{request_id}", tag = "erasure",
    summary = "An erasure receipt and its status",
    params(RequestIdPath, PurposeHeader),
    responses((status = 200, description = "the receipt", body = Receipt), ReceiptProblems))]
async fn get_request(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(request_id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state.vault.erasure_receipt(&caller, &request_id).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RunQuery {
    /// Count what would be purged, change nothing.
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(post, path = "/v1/admin/retention/run", tag = "admin",
    summary = "Run the retention sweeper now",
    params(RunQuery),
    responses((status = 200, description = "what was (or would be) purged", body = SweepReport), RetentionRunProblems))]
async fn run_retention(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let report = state.vault.admin_retention(&caller, q.dry_run).await;
    match &report {
        _ if q.dry_run => {}
        Ok(r) => crate::metrics::record_sweep("api", Some(r)),
        Err(VaultError::Denied(_)) => {}
        Err(_) => crate::metrics::record_sweep("api", None),
    }
    Ok(Json(report?))
}
