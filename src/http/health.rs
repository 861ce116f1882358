//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok` (liveness), `ready` or `unavailable` (readiness).
    status: &'static str,
    /// When unavailable, why writes cannot succeed: `storage_read_only`, `disk_full`,
    /// `keyring_unreadable` or `audit_unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

#[utoipa::path(get, path = "/healthz", tag = "ops", summary = "Liveness", security(()),
    responses((status = 200, description = "the process serves", body = Health)))]
async fn healthz() -> impl IntoResponse {
    Json(Health {
        status: "ok",
        reason: None,
    })
}

/// Ready when a real write commits: a heartbeat row through the writer (at most once a
/// second, cached), a read through the pool, and a readable keyring. 503 with the reason
/// otherwise; ready again as soon as the fault is gone, without a restart.
#[utoipa::path(get, path = "/readyz", tag = "ops", summary = "Readiness", security(()),
    responses(
        (status = 200, description = "a write commits, a reader queries, the keyring reads", body = Health),
        (status = 503, description = "writes cannot succeed; `reason` says why", body = Health),
    ))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.vault.readiness().await {
        None => (
            StatusCode::OK,
            Json(Health {
                status: "ready",
                reason: None,
            }),
        ),
        Some(fault) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
                reason: Some(fault.code()),
            }),
        ),
    }
}
