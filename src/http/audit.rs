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
use super::openapi::{AuditExportParams, AuditQueryParams};
use super::problems::{OpsQueryProblems, TokenOnlyProblems, VerifyProblems};
use super::AppState;
use crate::audit::checkpoint::RangeVerification;
use crate::audit::query::ExportFormat;
use crate::service::{AuditPage, PublicKeyInfo};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/events", get(query_events))
        .route("/v1/audit/export", get(export_events))
        .route("/v1/audit/verify", get(verify_trail))
        .route("/v1/audit/public-key", get(public_key))
}

#[utoipa::path(get, path = "/v1/audit/events", tag = "audit",
    summary = "Query the audit trail, oldest first, a page at a time",
    description = "An unknown, repeated or invalid parameter gets 422 naming it.",
    params(AuditQueryParams),
    responses((status = 200, description = "a page of events", body = AuditPage), OpsQueryProblems))]
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
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit",
    summary = "Streamed, signed export of the audit trail (JSON Lines or CSV)",
    description = "Format `guestvault-audit-export/v1` (see the README); ends with a signed checkpoint.",
    params(AuditExportParams),
    responses(
        (status = 200, description = "the export", content(
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )),
        OpsQueryProblems,
    ))]
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

#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    summary = "Check the chain from the newest signed checkpoint (or all of it)",
    description = "Runs on a database connection of its own, one verification at a time \
        (409 `verify_in_progress` while one runs). By default checks the newest checkpoint's \
        signature and every event after it; `full=true` checks the whole chain and every \
        checkpoint. The answer names the range checked.",
    params(("full" = Option<bool>, Query, description = "check the whole trail")),
    responses((status = 200, description = "the result", body = RangeVerification), VerifyProblems))]
async fn verify_trail(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state.vault.verify_audit(&caller, query.as_deref()).await?,
    ))
}

/// The audit public key is not secret: any authenticated caller may fetch it (an auditor
/// should still receive it through a channel other than the export itself).
#[utoipa::path(get, path = "/v1/audit/public-key", tag = "audit",
    summary = "The Ed25519 key that signs checkpoints and exports",
    responses((status = 200, description = "the key", body = PublicKeyInfo), TokenOnlyProblems))]
async fn public_key(State(state): State<AppState>, Auth(_caller): Auth) -> impl IntoResponse {
    Json(state.vault.audit_public_key())
}
