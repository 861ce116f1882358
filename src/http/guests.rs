//! Guest routes: create, read, correct, reveal, search, and stays.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use super::AppState;
use crate::service::{ConsentInput, NewGuest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/guests", post(create_guest))
        .route("/v1/guests/search", post(search_guests))
        .route("/v1/guests/{id}", get(read_guest).patch(update_guest))
        .route("/v1/guests/{id}/reveal", post(reveal_fields))
        .route("/v1/guests/{id}/stays", post(add_stay).get(list_stays))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGuestBody {
    fields: Map<String, Value>,
    #[serde(default)]
    consents: Vec<ConsentInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsBody {
    fields: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevealBody {
    fields: Vec<String>,
    #[serde(default)]
    justification: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    field: String,
    value: String,
}

async fn create_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<CreateGuestBody>,
) -> Result<impl IntoResponse, ApiError> {
    let new = NewGuest {
        fields: body.fields,
        consents: body.consents,
    };
    let id = state.vault.create_guest(&caller, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "guest_id": id.as_str() })),
    ))
}

async fn read_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.read_guest(&caller, &id).await?))
}

async fn update_guest(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FieldsBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state.vault.update_guest(&caller, &id, body.fields).await?,
    ))
}

async fn reveal_fields(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RevealBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .vault
            .reveal(&caller, &id, body.fields, &body.justification)
            .await?,
    ))
}

async fn search_guests(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<impl IntoResponse, ApiError> {
    let ids = state
        .vault
        .search(&caller, &body.field, &body.value)
        .await?;
    Ok(Json(json!({ "guest_ids": ids })))
}

async fn add_stay(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FieldsBody>,
) -> Result<impl IntoResponse, ApiError> {
    let stay_id = state.vault.add_stay(&caller, &id, body.fields).await?;
    Ok((StatusCode::CREATED, Json(json!({ "stay_id": stay_id }))))
}

async fn list_stays(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stays = state.vault.list_stays(&caller, &id).await?;
    Ok(Json(json!({ "stays": stays })))
}
