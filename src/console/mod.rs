//! The compliance console (issue 17): server-rendered HTML at `/console/`, served by the vault
//! itself. Templates are `maud` macros compiled into the binary; the stylesheet and the small
//! script are embedded with `include_str!`. No CDN, no web font, no inline script: every page
//! carries `Content-Security-Policy: default-src 'self'; frame-ancestors 'none'`.
//!
//! One choke point: every page reads through the same service layer ([`crate::service::Vault`])
//! as the REST API, as the signed-in role under the page's purpose (`audit`, ...), and is
//! audited exactly like the API call it mirrors. A page or action the role's policy does not
//! allow answers 403. No personal data goes into a URL: filters and lookups are POST forms,
//! and every POST form carries the session's CSRF token.
//!
//! Sessions live in memory (see [`session`]): a restart or another node means signing in again.

mod audit;
mod charts;
mod deadlines;
mod dsr;
mod guest;
mod i18n;
mod layout;
mod ops;
mod policy;
pub mod session;
mod words;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Form, Router};
use serde::Deserialize;

pub use i18n::{Lang, Msg};
use session::{Session, Sessions};

use crate::config::{Config, RouteClass};
use crate::http::{AppState, Peer, REQUEST_ID};
use crate::policy::Action;
use crate::service::{Caller, VaultError};

/// The security headers of every console response.
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's settings and its session store.
#[derive(Debug)]
pub struct Console {
    enabled: bool,
    /// The server speaks HTTPS: cookies get `Secure`.
    secure_cookies: bool,
    sessions: Sessions,
}

impl Console {
    pub fn from_config(config: &Config) -> Self {
        Self {
            enabled: config.console.enabled,
            secure_cookies: config.server.tls_cert_file.is_some(),
            sessions: Sessions::default(),
        }
    }

    /// Sessions held now (tests, metrics).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

/// A console page: where it is, what it is called, and the action and purpose its data is
/// read under. The navigation shows a role only the pages its policy allows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    pub path: &'static str,
    pub title: Msg,
    pub action: Action,
    pub purpose: &'static str,
}

/// The pages built so far. A page whose `purpose` is empty touches no personal data: it is
/// read under the role's own (first) purpose, as the API reads such operations.
pub(crate) const PAGES: [Page; 7] = [
    Page {
        path: "/console/audit",
        title: Msg::AuditTrail,
        action: Action::AuditRead,
        purpose: "audit",
    },
    Page {
        path: charts::PATH,
        title: Msg::Overview,
        action: Action::AuditRead,
        purpose: "audit",
    },
    Page {
        path: deadlines::PATH,
        title: Msg::DsrDeadlines,
        action: Action::AuditRead,
        purpose: deadlines::PURPOSE,
    },
    Page {
        path: policy::PATH,
        title: Msg::Policy,
        action: Action::PolicyRead,
        purpose: "",
    },
    Page {
        path: ops::PATH,
        title: Msg::Operations,
        action: Action::AdminKeys,
        purpose: "administration",
    },
    Page {
        path: dsr::PATH,
        title: Msg::DsrRequests,
        action: Action::GuestErase,
        purpose: crate::service::DSR_PURPOSE,
    },
    Page {
        path: guest::PATH,
        title: Msg::GuestLookup,
        action: Action::GuestSearch,
        purpose: crate::service::DSR_PURPOSE,
    },
];

/// Paths a language switch may send the browser back to.
const BACK_PATHS: [&str; 9] = [
    "/console/",
    "/console/audit",
    "/console/sign-in",
    charts::PATH,
    deadlines::PATH,
    policy::PATH,
    ops::PATH,
    dsr::PATH,
    guest::PATH,
];

/// The console's routes; with `console.enabled = false`, none (every `/console/` path is the
/// API's 404).
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.console.enabled {
        return Router::new();
    }
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home))
        .route("/console/sign-in", get(sign_in_form).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/lang", post(switch_language))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .merge(audit::router())
        .merge(charts::router())
        .merge(deadlines::router())
        .merge(policy::router())
        .merge(ops::router())
        .merge(dsr::router())
        .merge(guest::router())
        .route("/console/{*rest}", any(not_found))
        .route_layer(axum::middleware::from_fn(crate::http::remember_route))
        .layer(axum::middleware::from_fn(security_headers))
}

/// `Content-Security-Policy`, `Cache-Control: no-store`, `Referrer-Policy: no-referrer` and
/// friends on every console response, error pages and downloads included.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

/// The language of a request: the switch's cookie, else `Accept-Language`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LangPref(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for LangPref {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(lang_of(&parts.headers)))
    }
}

fn lang_of(headers: &axum::http::HeaderMap) -> Lang {
    session::cookie(headers, session::LANG_COOKIE)
        .and_then(Lang::from_tag)
        .unwrap_or_else(|| {
            Lang::from_accept_language(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            )
        })
}

/// A signed-in request: its live session and language. Without a live session the request is
/// sent to the sign-in page (303); over the principal's budget it answers 429.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub id: String,
    pub session: Session,
    pub lang: Lang,
    pub request_id: String,
}

impl Signed {
    /// The caller the service sees: the session's `sub` and role, under `purpose`.
    pub fn caller(&self, purpose: &str) -> Caller {
        Caller {
            request_id: self.request_id.clone(),
            actor: self.session.sub.clone(),
            role: self.session.role.clone(),
            purpose: Some(purpose.to_string()),
        }
    }

    /// Whether the role's policy allows `page` (for the navigation; the service still decides).
    pub fn may(&self, state: &AppState, page: &Page) -> bool {
        may(state, &self.session.role, page)
    }

    /// Whether a POST carries this session's CSRF token (else: [`Signed::csrf_refused`]).
    pub fn csrf_ok(&self, sent: &str) -> bool {
        session::same_token(&self.session.csrf, sent)
    }

    pub fn csrf_refused(&self) -> Response {
        csrf_refused(self.lang)
    }
}

pub(crate) fn may(state: &AppState, role: &str, page: &Page) -> bool {
    let access = &state.vault.policies().access;
    access.roles.get(role).is_some_and(|r| !r.self_only)
        && access
            .authorize(
                role,
                Some(page.purpose).filter(|p| !p.is_empty()),
                page.action,
            )
            .is_ok()
}

/// The budget class of a console request (the API's classes, by what the request does).
fn class_of(method: &Method, path: &str) -> RouteClass {
    if path.ends_with("/export") {
        RouteClass::Exports
    } else if method == Method::GET || path == "/console/audit" || path == "/console/audit/verify" {
        RouteClass::Reads
    } else {
        RouteClass::Writes
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let lang = lang_of(&parts.headers);
        let now = session::unix_now();
        let found = session::cookie(&parts.headers, session::SESSION_COOKIE).and_then(|id| {
            state
                .console
                .sessions
                .get(id, now)
                .map(|s| (id.to_string(), s))
        });
        let Some((id, session)) = found else {
            return Err(Redirect::to("/console/sign-in").into_response());
        };
        if let Some(slot) = parts.extensions.get::<crate::http::AccessLog>() {
            slot.record(&state.vault.policies().access, &session.role, None);
        }
        let class = class_of(&parts.method, parts.uri.path());
        if let Err(wait) =
            crate::http::limits::console::admit(&state.limits, &session.sub, &session.role, class)
        {
            return Err(rate_limited(lang, wait));
        }
        Ok(Self {
            id,
            session,
            lang,
            request_id: REQUEST_ID.try_with(Clone::clone).unwrap_or_default(),
        })
    }
}

/// A page of its own for every refusal: status, a localised message, and for validation
/// errors the names of the fields and their problem codes (never a value).
pub(crate) fn error_page(
    state: &AppState,
    signed: Option<&Signed>,
    lang: Lang,
    err: VaultError,
) -> Response {
    let (status, msg) = match &err {
        VaultError::Denied(_) | VaultError::Restricted => (StatusCode::FORBIDDEN, Msg::Forbidden),
        VaultError::NotFound => (StatusCode::NOT_FOUND, Msg::NotFound),
        VaultError::Validation(_)
        | VaultError::FieldNotSearchable
        | VaultError::Unprocessable(_)
        | VaultError::UnknownNoticeVersion => (StatusCode::UNPROCESSABLE_ENTITY, Msg::InvalidInput),
        // The console records no consents; answered like any conflict.
        VaultError::ReAskTooSoon => (StatusCode::CONFLICT, Msg::InvalidInput),
        VaultError::AuditUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, Msg::AuditUnavailable),
        VaultError::VerifyInProgress => (StatusCode::CONFLICT, Msg::VerifyInProgress),
        VaultError::Store(_) | VaultError::Conflict(_) | VaultError::Internal(_) => {
            tracing::error!(error = %err, "console request failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Msg::InternalError)
        }
    };
    if status == StatusCode::FORBIDDEN {
        if let Some(s) = signed {
            crate::http::limits::console::refused(&state.limits, &s.session.sub, &s.session.role);
        }
    }
    let fields: Vec<(String, &'static str)> = match &err {
        VaultError::Validation(errors) => {
            errors.iter().map(|e| (e.field.clone(), e.code)).collect()
        }
        _ => vec![],
    };
    let body = layout::message_page(state, signed, lang, msg, &fields);
    (status, body).into_response()
}

fn csrf_refused(lang: Lang) -> Response {
    (
        StatusCode::FORBIDDEN,
        layout::bare_message(lang, Msg::CsrfRefused),
    )
        .into_response()
}

fn rate_limited(lang: Lang, wait: u64) -> Response {
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        layout::bare_message(lang, Msg::RateLimited),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

async fn not_found(LangPref(lang): LangPref) -> Response {
    (
        StatusCode::NOT_FOUND,
        layout::bare_message(lang, Msg::NotFound),
    )
        .into_response()
}

/// The home page: the pages this role may open.
async fn home(State(state): State<AppState>, signed: Signed) -> Response {
    layout::home(&state, &signed).into_response()
}

/// The signed-out forms' CSRF token: the one in the request's cookie, or a new one (set by
/// the response).
fn pre_token(headers: &axum::http::HeaderMap) -> Option<(String, bool)> {
    match session::cookie(headers, session::PRE_COOKIE) {
        Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some((v.to_string(), false))
        }
        _ => session::random_token().map(|t| (t, true)),
    }
}

fn with_pre_cookie(state: &AppState, mut resp: Response, token: &str, new: bool) -> Response {
    if new {
        let c = session::set_cookie(
            session::PRE_COOKIE,
            token,
            3600,
            state.console.secure_cookies,
        );
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn sign_in_form(State(state): State<AppState>, req: Request) -> Response {
    let headers = req.headers();
    let lang = lang_of(headers);
    if let Some(id) = session::cookie(headers, session::SESSION_COOKIE) {
        if state
            .console
            .sessions
            .get(id, session::unix_now())
            .is_some()
        {
            return Redirect::to("/console/").into_response();
        }
    }
    let Some((token, new)) = pre_token(headers) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            layout::bare_message(lang, Msg::InternalError),
        )
            .into_response();
    };
    let page = layout::sign_in(lang, &token, None);
    with_pre_cookie(&state, (StatusCode::OK, page).into_response(), &token, new)
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// Verifies the pasted token exactly as the API does (same [`crate::auth::Authenticator`],
/// same per-peer budget for failures), then starts a session that ends at the token's `exp`.
async fn sign_in(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let lang = lang_of(&parts.headers);
    let peer = parts
        .extensions
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(p)| p.addr.ip().to_canonical());
    let form =
        match Form::<SignInForm>::from_request(Request::from_parts(parts.clone(), body), &state)
            .await
        {
            Ok(Form(f)) => f,
            Err(_) => return csrf_refused(lang),
        };
    let cookie_token = session::cookie(&parts.headers, session::PRE_COOKIE).unwrap_or("");
    if !session::same_token(cookie_token, &form.csrf) {
        return csrf_refused(lang);
    }
    if let Some(resp) =
        peer.and_then(|ip| crate::http::limits::console::peer_blocked(&state.limits, ip))
    {
        return resp;
    }
    let token = form.token.trim();
    let retry = |msg: Msg, status: StatusCode| {
        (status, layout::sign_in(lang, &form.csrf, Some(msg))).into_response()
    };
    let principal = match state.auth.verify(token) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(reason = e.kind(), "console sign-in: token rejected");
            if let Some(ip) = peer {
                crate::http::limits::console::token_failed(&state, ip, e.kind());
            }
            return retry(Msg::TokenRejected, StatusCode::UNAUTHORIZED);
        }
    };
    if let Err(wait) = crate::http::limits::console::admit(
        &state.limits,
        &principal.sub,
        &principal.role,
        RouteClass::Writes,
    ) {
        return rate_limited(lang, wait);
    }
    if !PAGES.iter().any(|p| may(&state, &principal.role, p)) {
        tracing::info!("console sign-in: role has no console page");
        return retry(Msg::RoleHasNoPages, StatusCode::FORBIDDEN);
    }
    let now = session::unix_now();
    let Some(exp) = session::verified_token_exp(token).filter(|exp| *exp > now) else {
        return retry(Msg::TokenRejected, StatusCode::UNAUTHORIZED);
    };
    let Some(new) = state
        .console
        .sessions
        .create(principal.sub, principal.role, exp, now)
    else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            layout::bare_message(lang, Msg::InternalError),
        )
            .into_response();
    };
    if let Some(slot) = parts.extensions.get::<crate::http::AccessLog>() {
        slot.record(&state.vault.policies().access, &new.session.role, None);
    }
    tracing::info!("console sign-in");
    let mut resp = Redirect::to("/console/").into_response();
    let secure = state.console.secure_cookies;
    for c in [
        session::set_cookie(session::SESSION_COOKIE, &new.id, exp - now, secure),
        session::set_cookie(session::PRE_COOKIE, "", 0, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<AppState>,
    signed: Signed,
    form: Result<Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Response {
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !signed.csrf_ok(&sent) {
        return signed.csrf_refused();
    }
    state.console.sessions.remove(&signed.id);
    let mut resp = Redirect::to("/console/sign-in").into_response();
    let c = session::set_cookie(session::SESSION_COOKIE, "", 0, state.console.secure_cookies);
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Debug, Deserialize)]
pub(crate) struct LangForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
    #[serde(default)]
    back: String,
}

/// The language switch: a POST (with the session's CSRF token, or the signed-out forms' one)
/// that sets the `gv_lang` cookie and goes back to a known console page.
async fn switch_language(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let lang = lang_of(&parts.headers);
    let form = match Form::<LangForm>::from_request(
        Request::from_parts(parts.clone(), body),
        &state,
    )
    .await
    {
        Ok(Form(f)) => f,
        Err(_) => return csrf_refused(lang),
    };
    let now = session::unix_now();
    let expected = session::cookie(&parts.headers, session::SESSION_COOKIE)
        .and_then(|id| state.console.sessions.get(id, now))
        .map(|s| s.csrf)
        .or_else(|| session::cookie(&parts.headers, session::PRE_COOKIE).map(str::to_string))
        .unwrap_or_default();
    if !session::same_token(&expected, &form.csrf) {
        return csrf_refused(lang);
    }
    let Some(chosen) = Lang::from_tag(&form.lang) else {
        return csrf_refused(lang);
    };
    let back = BACK_PATHS
        .iter()
        .find(|p| **p == form.back)
        .copied()
        .unwrap_or("/console/");
    let mut resp = Redirect::to(back).into_response();
    let c = session::set_cookie(
        session::LANG_COOKIE,
        chosen.tag(),
        365 * 24 * 3600,
        state.console.secure_cookies,
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Percent-encodes `pairs` into a query string for the service's parsers (the same strict
/// parsers the REST API's query strings go through).
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(&mut out, k);
        out.push('=');
        encode_into(&mut out, v);
    }
    out
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_percent_encoded() {
        assert_eq!(
            query_string(&[("actor", "a b&c=d"), ("since", "2026-11-01T00:00:00+08:00")]),
            "actor=a%20b%26c%3Dd&since=2026-11-01T00%3A00%3A00%2B08%3A00"
        );
        assert_eq!(query_string(&[("x", "中")]), "x=%E4%B8%AD");
    }

    #[test]
    fn export_and_reads_have_their_budget_classes() {
        assert_eq!(
            class_of(&Method::POST, "/console/audit/export"),
            RouteClass::Exports
        );
        assert_eq!(class_of(&Method::GET, "/console/audit"), RouteClass::Reads);
        assert_eq!(class_of(&Method::POST, "/console/audit"), RouteClass::Reads);
        assert_eq!(
            class_of(&Method::POST, "/console/sign-out"),
            RouteClass::Writes
        );
    }
}
