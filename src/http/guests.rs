//! Guest routes: create, read, correct, reveal, search, and stays.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, Auth};
use super::openapi::{GuestPath, PurposeHeader};
use super::problems::{
    CreateProblems, ReadProblems, RegisterWriteProblems, SearchProblems, WriteProblems,
};
use super::AppState;
use crate::policy::JustificationInput;
use crate::service::{
    ConsentInput, CorrectionReceipt, GuestView, NewGuest, RevealView, StayView, UpdateOutcome,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/guests", post(create_guest))
        .route("/v1/guests/search", post(search_guests))
        .route("/v1/guests/{id}", get(read_guest).patch(update_guest))
        .route("/v1/guests/{id}/reveal", post(reveal_fields))
        .route("/v1/guests/{id}/stays", post(add_stay).get(list_stays))
}

/// A new guest: its fields, and consents given at registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateGuestBody {
    /// Field name → value, validated by the field catalog (`policies/fields.toml`).
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
    /// Each needs its `purpose`, a consent-based one.
    #[serde(default)]
    consents: Vec<ConsentInput>,
}

/// Corrections: field name → new value, or `null` to remove the field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateGuestBody {
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

/// A stay: stay field name → value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StayBody {
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

/// Fields to show in plain, and why (the reason code and ticket are audited).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevealBody {
    /// Guest field names the role may reveal.
    #[schema(min_items = 1)]
    fields: Vec<String>,
    /// A reason code from `[reasons]` in `access.toml` (the document lists them).
    #[serde(default)]
    #[schema(required, value_type = String)]
    reason: Option<String>,
    /// An optional ticket or case id, `[A-Za-z0-9._-]{1,40}`, not starting with `-` or `.`.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]{0,39}$")]
    ticket: Option<String>,
    /// Free text, refused unless `access.allow_free_text_justification` is on; then 10–500
    /// characters with no personal data and no leading `= + - @`.
    #[serde(default)]
    #[schema(min_length = 10, max_length = 500)]
    justification: Option<String>,
}

impl RevealBody {
    fn why(&self) -> JustificationInput<'_> {
        JustificationInput {
            reason: self.reason.as_deref(),
            ticket: self.ticket.as_deref(),
            note: self.justification.as_deref(),
        }
    }
}

/// An exact-match search on one searchable field (a POST, so the value is in no URL or log).
/// Only a field the role sees in plain or may reveal can be searched.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchBody {
    /// A searchable field (`mobile`, `email`, `id_number` by default).
    field: String,
    /// Any common spelling; normalized like the stored value.
    value: String,
    /// A reason code; required where the policy marks the field
    /// `search_requires_justification` (the ID number for front desk), audited.
    #[serde(default)]
    reason: Option<String>,
    /// An optional ticket or case id, as for a reveal.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]{0,39}$")]
    ticket: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct GuestCreated {
    #[schema(format = "uuid")]
    guest_id: String,
    /// Data-quality flags of the values in the request (issue 15), absent when there are
    /// none: e.g. `gender_mismatch_id_number` when `gender` contradicts digit 17 of the
    /// resident ID and `[validation] gender_vs_id_number` is `warn`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    data_quality: Vec<crate::domain::DataQualityFlag>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SearchResult {
    /// Ids of the matching guests.
    guest_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StayCreated {
    stay_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StayList {
    stays: Vec<StayView>,
}

#[utoipa::path(post, path = "/v1/guests", tag = "guests", summary = "Register a guest",
    params(PurposeHeader), request_body = CreateGuestBody,
    responses((status = 201, description = "created", body = GuestCreated), CreateProblems))]
async fn create_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<CreateGuestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let new = NewGuest {
        fields: body.fields,
        consents: body.consents,
    };
    let created = state.vault.create_guest(&caller, new).await?;
    let created = GuestCreated {
        guest_id: created.guest_id.as_str().to_string(),
        data_quality: created.data_quality,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/v1/guests/{id}", tag = "guests", summary = "Read a guest",
    description = "Fields the role may see under the purpose, plain or masked; others are absent.",
    params(GuestPath, PurposeHeader),
    responses((status = 200, description = "the guest", body = GuestView), ReadProblems))]
async fn read_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.read_guest(&caller, &id).await?))
}

#[utoipa::path(patch, path = "/v1/guests/{id}", tag = "guests", summary = "Correct or remove fields",
    params(GuestPath, PurposeHeader), request_body = UpdateGuestBody,
    description = "A guest's own token corrects `self_service` fields (contact, preferences) at \
        once; a correction of any other field (identity, membership) is recorded as a correction \
        request for a DSR officer to verify: 202 with its id and due date. A cross-field rule \
        compares only values in the request and stored values the caller sees in plain: a \
        hidden counterpart must come with the request (`required_for_cross_check`). \
        `data_quality` warns (e.g. `gender_mismatch_id_number`) from the request and the values \
        the caller sees in plain only.",
    responses((status = 200, description = "the guest after the change", body = GuestView),
        (status = 202, description = "recorded as a correction request", body = CorrectionReceipt),
        RegisterWriteProblems))]
async fn update_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateGuestBody>,
) -> Result<axum::response::Response, ApiError> {
    Ok(
        match state.vault.update_guest(&caller, &id, body.fields).await? {
            UpdateOutcome::Applied(view) => Json(view).into_response(),
            UpdateOutcome::Requested(receipt) => {
                (StatusCode::ACCEPTED, Json(receipt)).into_response()
            }
        },
    )
}

#[utoipa::path(post, path = "/v1/guests/{id}/reveal", tag = "guests", summary = "Reveal fields in plain",
    description = "Only fields the role may reveal; the reason code (and ticket) is audited.",
    params(GuestPath, PurposeHeader), request_body = RevealBody,
    responses((status = 200, description = "the fields in plain", body = RevealView), WriteProblems))]
async fn reveal_fields(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RevealBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .vault
            .reveal(&caller, &id, body.fields.clone(), body.why())
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/guests/search", tag = "guests", summary = "Find guests by an exact value",
    params(PurposeHeader), request_body = SearchBody,
    responses((status = 200, description = "matching guest ids", body = SearchResult), SearchProblems))]
async fn search_guests(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<impl IntoResponse, ApiError> {
    let why = JustificationInput {
        reason: body.reason.as_deref(),
        ticket: body.ticket.as_deref(),
        note: None,
    };
    let guest_ids = state
        .vault
        .search(&caller, &body.field, &body.value, why)
        .await?;
    let miss = guest_ids.is_empty();
    let mut resp = Json(SearchResult { guest_ids }).into_response();
    if miss {
        // For the search-miss alert of the budget layer.
        resp.extensions_mut().insert(super::limits::SearchMiss);
    }
    Ok(resp)
}

#[utoipa::path(post, path = "/v1/guests/{id}/stays", tag = "guests", summary = "Add a stay",
    params(GuestPath, PurposeHeader), request_body = StayBody,
    responses((status = 201, description = "created", body = StayCreated), RegisterWriteProblems))]
async fn add_stay(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<StayBody>,
) -> Result<impl IntoResponse, ApiError> {
    let stay_id = state.vault.add_stay(&caller, &id, body.fields).await?;
    Ok((StatusCode::CREATED, Json(StayCreated { stay_id })))
}

#[utoipa::path(get, path = "/v1/guests/{id}/stays", tag = "guests", summary = "List a guest's stays",
    params(GuestPath, PurposeHeader),
    responses((status = 200, description = "the stays", body = StayList), ReadProblems))]
async fn list_stays(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stays = state.vault.list_stays(&caller, &id).await?;
    Ok(Json(StayList { stays }))
}
