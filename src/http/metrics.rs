//! `GET /metrics`: the Prometheus text format, for the scrapers the config allows
//! (`metrics.allow` networks, default loopback only; or a bearer token of a role in
//! `metrics.bearer_roles`). Also the connection info every request carries: the peer address
//! and a guard that counts the connection as open while it lives.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::IncomingStream;
use axum::Router;
use tokio::net::TcpListener;

use super::error::ApiError;
use super::AppState;
use crate::metrics::ConnectionGuard;

/// Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// The connection a request came in on (`into_make_service_with_connect_info::<Peer>`).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    _open: Arc<ConnectionGuard>,
}

impl Peer {
    /// The info of a connection from `addr`, counted as open while any clone lives.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            _open: ConnectionGuard::open(),
        }
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            _open: ConnectionGuard::open(),
        }
    }
}

/// Who may scrape, from `[metrics]` in the config.
#[derive(Debug, Clone, Default)]
pub struct ScrapeAccess {
    pub networks: Vec<ipnet::IpNet>,
    pub bearer_roles: Vec<String>,
}

impl ScrapeAccess {
    pub fn from_config(config: &crate::config::MetricsConfig) -> Self {
        Self {
            networks: config.allowed_networks(),
            bearer_roles: config.bearer_roles.clone(),
        }
    }

    /// An IPv4 client of a dual-stack listener shows up as `::ffff:a.b.c.d`: compare the
    /// IPv4 address.
    fn admits_address(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|n| n.contains(&ip))
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    summary = "Prometheus metrics",
    description = "Prometheus text format. Allowed without a token from the networks in \
        `metrics.allow` (default loopback only); from anywhere with a bearer token whose role \
        is in `metrics.bearer_roles`. Labels hold route templates, methods, statuses and \
        retention classes only: never a guest id or value.",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the metrics", body = String, content_type = "text/plain"),
        super::problems::MetricsProblems,
    )
)]
async fn scrape(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    authorize_scrape(&state, &req)?;
    crate::metrics::sample(&state.vault).await;
    let text = crate::metrics::install()
        .map(|h| {
            h.run_upkeep();
            h.render()
        })
        .unwrap_or_default();
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// An allowed peer needs nothing more. Anyone else needs a valid bearer token (401 if it is
/// missing or invalid while tokens are accepted) of an allowed role (403 otherwise).
fn authorize_scrape(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(p)| p.addr.ip());
    if peer.is_some_and(|ip| state.scrape.admits_address(ip)) {
        return Ok(());
    }
    if state.scrape.bearer_roles.is_empty() {
        return Err(ApiError::Forbidden("forbidden"));
    }
    let token = super::extract::bearer_token(req.headers()).ok_or(ApiError::Unauthorized)?;
    let principal = state.auth.verify(token).map_err(|e| {
        // The kind only: a JWT library error can quote claim values.
        tracing::info!(reason = e.kind(), "bearer token rejected");
        ApiError::Unauthorized
    })?;
    if state.scrape.bearer_roles.contains(&principal.role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("forbidden"))
    }
}
