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
}

#[utoipa::path(get, path = "/healthz", tag = "ops", summary = "Liveness", security(()),
    responses((status = 200, description = "the process serves", body = Health)))]
async fn healthz() -> impl IntoResponse {
    Json(Health { status: "ok" })
}

/// Ready when a reader can query and the writer commits.
#[utoipa::path(get, path = "/readyz", tag = "ops", summary = "Readiness", security(()),
    responses(
        (status = 200, description = "a reader queries and the writer commits", body = Health),
        (status = 503, description = "storage is not usable", body = Health),
    ))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let read = state
        .vault
        .readers()
        .run(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
        .await;
    let write = state.vault.writer().execute(|_| Ok(())).await;
    if read.is_ok() && write.is_ok() {
        (StatusCode::OK, Json(Health { status: "ready" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable",
            }),
        )
    }
}
