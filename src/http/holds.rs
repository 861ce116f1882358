//! Legal holds (issue 16 §2, REQ-23): place, list and lift, for the roles the policy gives
//! `guest.hold` (DSR officer and compliance officer by default), under one of the role's
//! purposes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, Auth};
use super::openapi::{GuestPath, HoldPath, PurposeHeader};
use super::problems::{HoldListProblems, HoldPlaceProblems};
use super::AppState;
use crate::service::{HoldInput, HoldList, HoldView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/guests/{id}/holds", get(list_holds).post(place_hold))
        .route("/v1/guests/{id}/holds/{hold_id}", delete(lift_hold))
}

#[utoipa::path(post, path = "/v1/guests/{id}/holds", tag = "holds",
    summary = "Place a legal hold: nothing of the guest is deleted while it stands",
    description = "`reason` is a code of `[hold_reasons]` in `access.toml`; `ticket` a case id. \
        While the hold stands the retention sweeper purges nothing of the guest and an erasure \
        restricts instead of deleting, its receipt naming the hold. With `until`, the hold \
        lapses the day after that date. `X-Purpose` is one of the role's purposes (`audit` for a \
        compliance officer, `data_subject_request` for a DSR officer).",
    params(GuestPath, PurposeHeader), request_body = HoldInput,
    responses((status = 201, description = "the hold", body = HoldView), HoldPlaceProblems))]
async fn place_hold(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<HoldInput>,
) -> Result<impl IntoResponse, ApiError> {
    let hold = state.vault.place_hold(&caller, &id, input).await?;
    Ok((StatusCode::CREATED, Json(hold)))
}

#[utoipa::path(get, path = "/v1/guests/{id}/holds", tag = "holds",
    summary = "The legal holds of a guest: active, lifted and lapsed",
    params(GuestPath, PurposeHeader),
    responses((status = 200, description = "the holds", body = HoldList), HoldListProblems))]
async fn list_holds(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.list_holds(&caller, &id).await?))
}

#[utoipa::path(delete, path = "/v1/guests/{id}/holds/{hold_id}", tag = "holds",
    summary = "Lift a legal hold",
    description = "The next retention sweep, or a repeated erasure request, then deletes what \
        the hold kept. Lifting a hold already lifted answers it unchanged; an unknown hold id \
        answers 404 `guest_not_found`.",
    params(HoldPath, PurposeHeader),
    responses((status = 200, description = "the hold, lifted", body = HoldView), HoldListProblems))]
async fn lift_hold(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath((id, hold_id)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.lift_hold(&caller, &id, &hold_id).await?))
}
