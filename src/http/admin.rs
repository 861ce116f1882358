//! Key operations for the admin role: status and an online rotation started in the background.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::Auth;
use super::problems::{OpsProblems, RotateProblems};
use super::AppState;
use crate::policy::Action;
use crate::service::KeyStatus;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/keys", get(key_status))
        .route("/v1/admin/keys/rotate", post(start_rotation))
}

#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin",
    summary = "KEK versions, DEKs per version, rotation progress",
    responses((status = 200, description = "the key status", body = KeyStatus), OpsProblems))]
async fn key_status(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.key_status(&caller).await?))
}

/// `POST /v1/admin/keys/rotate` answers at once; the rotation goes on in the background.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RotationStarted {
    /// Always `started`.
    status: &'static str,
    /// Where to follow the progress: `/v1/admin/keys`.
    follow: &'static str,
}

/// 202: the rotation runs in the background; follow it at `GET /v1/admin/keys`.
#[utoipa::path(post, path = "/v1/admin/keys/rotate", tag = "admin",
    summary = "Start a KEK rotation in the background",
    responses((status = 202, description = "started", body = RotationStarted), RotateProblems))]
async fn start_rotation(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<impl IntoResponse, ApiError> {
    state
        .vault
        .authorize_operation(&caller, Action::AdminKeys)
        .await?;
    // Claimed before answering, so of two concurrent calls exactly one gets 202, here or on
    // any other node of a PostgreSQL vault (409 `conflict` for the other).
    let claim = state.vault.claim_rotation_everywhere().await?;
    let vault = state.vault.clone();
    tokio::spawn(async move {
        match vault.rotate_keys_claimed(&caller, claim, |_, _| {}).await {
            Ok(r) => tracing::info!(
                target_version = r.target_version,
                rewrapped = r.rewrapped,
                "key rotation finished"
            ),
            Err(e) => tracing::error!(error = %e, "key rotation failed"),
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(RotationStarted {
            status: "started",
            follow: "/v1/admin/keys",
        }),
    ))
}
