//! The REST surface: one router per resource merged here, a request-id middleware that also
//! writes the one access-log line per request and records the request metrics (route
//! template, status, latency, the caller's role and purpose; never a path with ids, a header
//! value or any body), and the body-size limit.

mod admin;
mod audit;
mod consents;
mod corrections;
mod erasure;
mod error;
mod extract;
#[doc(hidden)]
pub mod fuzz_bodies;
mod guests;
mod health;
mod holds;
pub mod limits;
pub mod metrics;
pub mod openapi;
mod policy;
mod problems;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

pub use error::{ApiError, REQUEST_ID};
pub use metrics::{Peer, ScrapeAccess};

use crate::auth::Authenticator;
use crate::policy::{AccessPolicy, Action};
use crate::service::Vault;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Behind an `Arc`: the state is cloned for every middleware layer of every request.
    pub vault: Arc<Vault>,
    pub auth: Arc<Authenticator>,
    /// Who may scrape `/metrics`.
    pub scrape: Arc<ScrapeAccess>,
    /// Request budgets, alert counters and the request timeout.
    pub limits: Arc<limits::Limits>,
    /// The compliance console's settings and sessions (`/console/`, issue 17).
    pub console: Arc<crate::console::Console>,
}

/// The single router constructor; tests and the server both use it.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    let openapi = openapi::router(
        state.vault.policies(),
        state.vault.free_text_justification(),
    );
    Router::new()
        .merge(guests::router())
        .merge(consents::router())
        .merge(admin::router())
        .merge(erasure::router())
        .merge(holds::router())
        .merge(corrections::router())
        .merge(policy::router())
        .merge(audit::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit_rejections,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::budgets,
        ))
        .route_layer(axum::middleware::from_fn(remember_route))
        .merge(crate::console::router(&state))
        .fallback(|| async { ApiError::NotFound("not_found").into_response() })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::request_timeout,
        ))
        .layer(axum::middleware::from_fn(request_context))
        .with_state(state)
}

/// Accepts a client `X-Request-Id` only if it is a UUID (kept in its canonical lower-case
/// form); otherwise makes one. The id lands in the audit trail and the log for years, and a
/// free token could be an 11-digit mobile number (issue 12 point 7).
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::try_parse(v.trim()).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .hyphenated()
        .to_string()
}

/// Routing happens inside the outer middleware, so the matched route template is handed back
/// out on the response for the access log (never the raw path, which holds guest ids).
pub(crate) async fn remember_route(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(m) = matched {
        resp.extensions_mut().insert(m);
    }
    resp
}

/// The action a personal-data route performs, by method and route template: what an audit
/// event names when the request is rejected before its handler reaches the service.
fn route_action(method: &axum::http::Method, route: &str) -> Option<Action> {
    use axum::http::Method as M;
    Some(match (method.clone(), route) {
        (M::POST, "/v1/guests") => Action::GuestCreate,
        (M::POST, "/v1/guests/search") => Action::GuestSearch,
        (M::GET, "/v1/guests/{id}") => Action::GuestRead,
        (M::PATCH, "/v1/guests/{id}") => Action::GuestUpdate,
        (M::POST, "/v1/guests/{id}/reveal") => Action::GuestReveal,
        (M::POST, "/v1/guests/{id}/stays") => Action::StayCreate,
        (M::GET, "/v1/guests/{id}/stays") => Action::StayRead,
        (M::GET, "/v1/guests/{id}/consents") => Action::ConsentRead,
        (M::PUT | M::DELETE, "/v1/guests/{id}/consents/{purpose}") => Action::ConsentWrite,
        (M::GET, "/v1/guests/{id}/export") => Action::GuestExport,
        (M::POST, "/v1/guests/{id}/erasure") => Action::GuestErase,
        (M::GET, "/v1/erasure-requests/{request_id}") => Action::GuestErase,
        (M::GET | M::POST, "/v1/guests/{id}/holds") => Action::GuestHold,
        (M::DELETE, "/v1/guests/{id}/holds/{hold_id}") => Action::GuestHold,
        (M::PATCH | M::DELETE, "/v1/guests/{id}/stays/{stay_id}") => Action::StayCorrect,
        (M::GET, "/v1/dsr-requests" | "/v1/dsr-requests/{request_id}") => Action::CorrectionDecide,
        (
            M::POST,
            "/v1/dsr-requests/{request_id}/apply" | "/v1/dsr-requests/{request_id}/reject",
        ) => Action::CorrectionDecide,
        _ => return None,
    })
}

/// Audits what the extractors reject before the service runs (400 `malformed_json`, 413, 415,
/// 404 for an undecodable path) when the caller authenticated and the route touches personal
/// data: action from the route, outcome `error`, reason the problem code, the guest id only if
/// the path holds a well-formed one, never a value. If that event cannot be written, the
/// answer is 503 `audit_unavailable`, as for any other audited request.
async fn audit_rejections(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let action = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| route_action(req.method(), m.as_str()));
    let Some(action) = action else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let guest_id = axum::extract::RawPathParams::from_request_parts(&mut parts, &state)
        .await
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(name, _)| *name == "id")
                .map(|(_, value)| value.to_string())
        });
    let slot = extract::CallerSlot::default();
    parts.extensions.insert(slot.clone());
    let resp = next.run(Request::from_parts(parts, body)).await;
    let (Some(rejected), Some(caller)) = (
        resp.extensions().get::<extract::RejectedBeforeService>(),
        slot.0.get(),
    ) else {
        return resp;
    };
    match state
        .vault
        .record_rejection(caller, action, guest_id.as_deref(), rejected.0)
        .await
    {
        Ok(()) => resp,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The caller as the access log shows it, filled in by the `Auth` extractor: the role and
/// purpose only when they are names the policy defines (a header or token could carry
/// anything, even personal data), `(unknown)` otherwise, `-` when absent.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessLog(Arc<OnceLock<(String, String)>>);

impl AccessLog {
    pub(crate) fn record(&self, access: &AccessPolicy, role: &str, purpose: Option<&str>) {
        let role = if access.roles.contains_key(role) {
            role
        } else {
            "(unknown)"
        };
        let purpose = match purpose {
            None => "-",
            Some(p) if access.purposes.contains_key(p) => p,
            Some(_) => "(unknown)",
        };
        let _ = self.0.set((role.to_string(), purpose.to_string()));
    }

    fn role_and_purpose(&self) -> (&str, &str) {
        self.0
            .get()
            .map_or(("-", "-"), |(r, p)| (r.as_str(), p.as_str()))
    }
}

/// A method label from a fixed set: a client may send any token as its method.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn request_context(mut req: Request, next: Next) -> Response {
    let _in_flight = crate::metrics::InFlight::start();
    let id = request_id(&req);
    let method = method_label(req.method());
    let caller = AccessLog::default();
    req.extensions_mut().insert(caller.clone());
    let started = Instant::now();
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    let latency = started.elapsed();
    let route = resp
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", |p| p.as_str())
        .to_string();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let (role, purpose) = caller.role_and_purpose();
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status,
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        role = %role,
        purpose = %purpose,
        "request"
    );
    crate::metrics::record_request(method, route, status, latency);
    resp
}
