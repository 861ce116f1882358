//! Correction routes (issue 12 points 3 and 4): the DSR officer's queue of guests' correction
//! requests and its decisions, and corrections of stays entered in error.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use super::openapi::{PurposeHeader, RequestIdPath};
use super::problems::{
    ExtendProblems, OverdueProblems, ReceiptProblems, RegisterWriteProblems, WriteProblems,
};
use super::AppState;
use crate::domain::FieldError;
use crate::service::{
    CorrectionDecision, CorrectionDetail, CorrectionSummary, Decision, ExtendInput, ExtendedRequest,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/dsr-requests", get(list_requests))
        .route("/v1/dsr-requests/{request_id}", get(get_request))
        .route("/v1/dsr-requests/{request_id}/apply", post(apply_request))
        .route("/v1/dsr-requests/{request_id}/reject", post(reject_request))
        .route("/v1/dsr-requests/{request_id}/extend", post(extend_request))
        .route(
            "/v1/guests/{id}/stays/{stay_id}",
            patch(correct_stay).delete(delete_stay),
        )
}

/// A guest and one of its stays in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "describes the path for the OpenAPI document only")]
pub struct StayPath {
    /// The guest's opaque id.
    #[param(format = "uuid")]
    pub id: String,
    /// The stay's id (from `POST /v1/guests/{id}/stays`). Another guest's stay answers 404.
    #[param(format = "uuid")]
    pub stay_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DsrListQuery {
    /// Only `correction` is listed here (erasure deadlines: `/v1/erasure-requests`).
    #[param(required = true, value_type = String, pattern = "^correction$")]
    kind: Option<String>,
    /// Only `pending_verification`.
    #[param(required = true, value_type = String, pattern = "^pending_verification$")]
    status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CorrectionList {
    requests: Vec<CorrectionSummary>,
}

/// Why the officer decides so: a reason code, and optionally a ticket reference.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DecisionBody {
    /// A code such as `document_checked` or `document_mismatch` (`^[a-z][a-z0-9_]{0,39}$`);
    /// never free text.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    reason: String,
    /// A ticket reference.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,40}$")]
    #[serde(default)]
    ticket: Option<String>,
}

/// A stay correction: the stay fields to change (`null` removes one; the dates cannot be
/// removed), and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StayCorrectionBody {
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    reason: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,40}$")]
    #[serde(default)]
    ticket: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StayCorrected {
    stay_id: String,
}

#[utoipa::path(get, path = "/v1/dsr-requests", tag = "erasure",
    summary = "Guests' correction requests awaiting verification, the earliest due first",
    params(DsrListQuery, PurposeHeader),
    responses((status = 200, description = "the pending requests", body = CorrectionList), OverdueProblems))]
async fn list_requests(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<DsrListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    if q.kind.as_deref() != Some("correction") {
        errors.push(FieldError::new("kind", "not_allowed"));
    }
    if q.status.as_deref() != Some("pending_verification") {
        errors.push(FieldError::new("status", "not_allowed"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let requests = state.vault.pending_corrections(&caller).await?;
    Ok(Json(CorrectionList { requests }))
}

#[utoipa::path(get, path = "/v1/dsr-requests/{request_id}", tag = "erasure",
    summary = "A pending correction request with the proposed values (audited)",
    params(RequestIdPath, PurposeHeader),
    responses((status = 200, description = "the request", body = CorrectionDetail), ReceiptProblems))]
async fn get_request(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(request_id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state.vault.correction_detail(&caller, &request_id).await?,
    ))
}

#[utoipa::path(post, path = "/v1/dsr-requests/{request_id}/extend", tag = "erasure",
    summary = "Extend the GDPR clock of an open data-subject request by up to two months",
    description = "GDPR Art. 12(3), REQ-32: by a DSR officer, with a reason code of `[extension_reasons]` \
        and an optional ticket; audited as `dsr.extend`. Any kind of request (access, correction, \
        erasure) that is still open. The Chinese clock (15 working days) cannot be extended: a request \
        of a guest without `eu` in `jurisdictions` answers 422 `clock_not_extendable`. As every guest \
        is also under the Chinese clock, `due_at` stays the earlier date; the extension and the new \
        `due_dates.eu` are recorded.",
    params(RequestIdPath, PurposeHeader), request_body = ExtendInput,
    responses((status = 200, description = "the request with its new deadlines", body = ExtendedRequest), ExtendProblems))]
async fn extend_request(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(request_id): ApiPath<String>,
    ApiJson(body): ApiJson<ExtendInput>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .vault
            .extend_request(&caller, &request_id, body)
            .await?,
    ))
}

async fn decide(
    state: AppState,
    caller: crate::service::Caller,
    request_id: String,
    body: DecisionBody,
    decision: Decision,
) -> Result<Json<CorrectionDecision>, ApiError> {
    Ok(Json(
        state
            .vault
            .decide_correction(
                &caller,
                &request_id,
                decision,
                &body.reason,
                body.ticket.as_deref(),
            )
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/dsr-requests/{request_id}/apply", tag = "erasure",
    summary = "Apply a correction request after checking the guest's document",
    description = "The audit event carries keyed hashes of the values before and after (REQ-30).",
    params(RequestIdPath, PurposeHeader), request_body = DecisionBody,
    responses((status = 200, description = "applied", body = CorrectionDecision), RegisterWriteProblems))]
async fn apply_request(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(request_id): ApiPath<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<impl IntoResponse, ApiError> {
    decide(state, caller, request_id, body, Decision::Apply).await
}

#[utoipa::path(post, path = "/v1/dsr-requests/{request_id}/reject", tag = "erasure",
    summary = "Reject a correction request, with the reason (PIPL Art. 50)",
    params(RequestIdPath, PurposeHeader), request_body = DecisionBody,
    responses((status = 200, description = "rejected", body = CorrectionDecision), WriteProblems))]
async fn reject_request(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(request_id): ApiPath<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<impl IntoResponse, ApiError> {
    decide(state, caller, request_id, body, Decision::Reject).await
}

#[utoipa::path(patch, path = "/v1/guests/{id}/stays/{stay_id}", tag = "guests",
    summary = "Correct a stay entered in error",
    description = "For `stay.correct` roles (DSR officer, PMS), with a reason code. Retention \
        dates are recomputed; the audit event carries keyed hashes of the values before and after.",
    params(StayPath, PurposeHeader), request_body = StayCorrectionBody,
    responses((status = 200, description = "corrected", body = StayCorrected), WriteProblems))]
async fn correct_stay(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath((id, stay_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<StayCorrectionBody>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .vault
        .correct_stay(
            &caller,
            &id,
            &stay_id,
            Some(body.fields),
            &body.reason,
            body.ticket.as_deref(),
        )
        .await?;
    Ok(Json(StayCorrected { stay_id }))
}

#[utoipa::path(delete, path = "/v1/guests/{id}/stays/{stay_id}", tag = "guests",
    summary = "Delete a stay entered in error",
    description = "For `stay.correct` roles (DSR officer, PMS), with a reason code. Retention \
        dates are recomputed from the stays that remain.",
    params(StayPath, PurposeHeader), request_body = DecisionBody,
    responses((status = 204, description = "deleted"), WriteProblems))]
async fn delete_stay(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath((id, stay_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .vault
        .correct_stay(
            &caller,
            &id,
            &stay_id,
            None,
            &body.reason,
            body.ticket.as_deref(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
