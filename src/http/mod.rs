//! The REST surface: one router per resource merged here, a request-id middleware that also
//! writes the one access-log line per request (route template, status, latency; never a path
//! with ids or any body), and the body-size limit.

mod admin;
mod audit;
mod consents;
mod erasure;
mod error;
mod extract;
mod guests;
mod health;
mod policy;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

pub use error::{ApiError, REQUEST_ID};

use crate::auth::Authenticator;
use crate::service::Vault;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub vault: Vault,
    pub auth: Arc<Authenticator>,
}

/// The single router constructor; tests and the server both use it.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(guests::router())
        .merge(consents::router())
        .merge(admin::router())
        .merge(erasure::router())
        .merge(policy::router())
        .merge(audit::router())
        .merge(health::router())
        .route_layer(axum::middleware::from_fn(remember_route))
        .fallback(|| async { ApiError::NotFound("not_found").into_response() })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(request_context))
        .with_state(state)
}

/// Accepts a client `X-Request-Id` only if it is a short token of safe characters (so nothing
/// personal can ride in on it); otherwise makes one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Routing happens inside the outer middleware, so the matched route template is handed back
/// out on the response for the access log (never the raw path, which holds guest ids).
async fn remember_route(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(m) = matched {
        resp.extensions_mut().insert(m);
    }
    resp
}

async fn request_context(req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let method = req.method().clone();
    let started = Instant::now();
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    let route = resp
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".into());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status = resp.status().as_u16(),
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    resp
}
