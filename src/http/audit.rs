//! Audit routes for compliance officers: query, streamed export, chain verification, and the
//! public key an auditor verifies exports with. Query parameters are passed raw to the service,
//! which authorizes first, then parses (so a refused caller learns nothing about them), and
//! audits the access either way.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use super::extract::Auth;
use super::AppState;
use crate::audit::query::ExportFormat;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/events", get(query_events))
        .route("/v1/audit/export", get(export_events))
        .route("/v1/audit/verify", get(verify_trail))
        .route("/v1/audit/public-key", get(public_key))
}

async fn query_events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state.vault.query_audit(&caller, query.as_deref()).await?,
    ))
}

/// Streams the export: the response starts once the export is authorized, audited and
/// planned; the pages follow from a background task.
async fn export_events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let export = state
        .vault
        .start_audit_export(&caller, query.as_deref())
        .await?;
    let (content_type, disposition) = match export.format() {
        ExportFormat::Jsonl => (
            "application/x-ndjson",
            "attachment; filename=\"guestvault-audit.jsonl\"",
        ),
        ExportFormat::Csv => (
            "text/csv; charset=utf-8",
            "attachment; filename=\"guestvault-audit.csv\"",
        ),
    };
    let pages = export.stream();
    let stream = futures_util::stream::unfold(pages, |mut pages| async move {
        pages.recv().await.map(|page| (page, pages))
    });
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(disposition),
    );
    Ok(resp)
}

async fn verify_trail(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.vault.verify_audit(&caller).await?))
}

/// The audit public key is not secret: any authenticated caller may fetch it (an auditor
/// should still receive it through a channel other than the export itself).
async fn public_key(State(state): State<AppState>, Auth(_caller): Auth) -> impl IntoResponse {
    Json(state.vault.audit_public_key())
}
