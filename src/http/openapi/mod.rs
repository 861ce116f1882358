//! `GET /openapi.json`: the OpenAPI 3.1 document of this API, generated from the code. Each
//! handler carries a `#[utoipa::path]` (method, path, parameters, body, every status it
//! answers with, and per status the problem `code`s, see `problems.rs`); request and response
//! types derive `ToSchema`. At start-up [`narrow`] adds what only the loaded policy knows: the
//! purposes `X-Purpose` accepts, the guest and stay fields of the catalog, and the export's
//! published JSON Schema. `tests/api/openapi.rs` fails if the router has a route the document
//! lacks, or the other way round.

mod narrow;

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};

use super::AppState;
use crate::policy::Policies;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "GuestVault",
        description = "A privacy vault for hotel guest data. Personal-data routes need a bearer \
            token and the purpose of processing in `X-Purpose`; every access is audited. Errors \
            are RFC 9457 `application/problem+json` with a stable `code`."
    ),
    paths(
        super::guests::create_guest,
        super::guests::search_guests,
        super::guests::read_guest,
        super::guests::update_guest,
        super::guests::reveal_fields,
        super::guests::add_stay,
        super::guests::list_stays,
        super::consents::list_consents,
        super::consents::grant_consent,
        super::consents::withdraw_consent,
        super::erasure::erase_guest,
        super::erasure::export_guest,
        super::erasure::list_requests,
        super::erasure::get_request,
        super::erasure::run_retention,
        super::holds::place_hold,
        super::holds::list_holds,
        super::holds::lift_hold,
        super::corrections::list_requests,
        super::corrections::get_request,
        super::corrections::apply_request,
        super::corrections::reject_request,
        super::corrections::extend_request,
        super::corrections::correct_stay,
        super::corrections::delete_stay,
        super::admin::key_status,
        super::admin::start_rotation,
        super::audit::query_events,
        super::audit::export_events,
        super::audit::verify_trail,
        super::audit::public_key,
        super::policy::effective_policy,
        super::health::healthz,
        super::health::readyz,
        super::metrics::scrape,
        openapi_json,
    ),
    components(schemas(super::error::Problem, crate::domain::FieldError)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "guests", description = "Guest records and stays"),
        (name = "consents", description = "The consent ledger (PIPL Art. 13-15, 29)"),
        (name = "erasure", description = "Erasure, access and portability (PIPL Art. 44-47)"),
        (name = "holds", description = "Legal holds: nothing of the guest is deleted while one stands (PIPL Art. 47(2))"),
        (name = "audit", description = "The audit trail, for compliance officers"),
        (name = "policy", description = "The effective access policy"),
        (name = "admin", description = "Operations: keys and retention"),
        (name = "ops", description = "Health, metrics and this document"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A JWT with `sub`, `role`, `iss`, `aud` and `exp`; `role` is a role of the access policy.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The `X-Purpose` header of every personal-data route.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct PurposeHeader {
    /// The purpose of processing: a purpose of the access policy that the caller's role may
    /// use. Missing: 400 `purpose_required`; not the role's: 403 `purpose_not_allowed`.
    #[param(rename = "X-Purpose")]
    pub x_purpose: String,
}

/// A guest in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GuestPath {
    /// The guest's opaque id. Unknown, erased and malformed ids all answer 404.
    #[param(format = "uuid")]
    pub id: String,
}

/// A guest and a consent-based purpose in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConsentPath {
    #[param(format = "uuid")]
    pub id: String,
    /// A purpose whose legal basis is consent (others: 422 `validation_failed`).
    pub purpose: String,
}

/// A guest and one of its legal holds in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HoldPath {
    #[param(format = "uuid")]
    pub id: String,
    /// The `hold_id` the hold was placed with.
    #[param(format = "uuid")]
    pub hold_id: String,
}

/// A data-subject request in the path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RequestIdPath {
    /// The `request_id` of an erasure receipt.
    pub request_id: String,
}

/// Filters of `GET /v1/audit/events`; each may appear once.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQueryParams {
    /// Events at or after: RFC 3339 (`2026-11-01T00:00:00Z`) or a date (midnight UTC).
    pub since: Option<String>,
    /// Events before (RFC 3339 or a date); must be after `since`.
    pub until: Option<String>,
    /// The token `sub` of the actor.
    #[param(min_length = 1, max_length = 256)]
    pub actor: Option<String>,
    #[param(format = "uuid")]
    pub guest_id: Option<String>,
    /// An action name such as `guest.read`.
    pub action: Option<String>,
    pub outcome: Option<crate::audit::Outcome>,
    /// Only events after this seq (the previous page's `next_after_seq`).
    #[param(minimum = 0)]
    pub after_seq: Option<u64>,
    /// Events per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Filters and format of `GET /v1/audit/export`; each may appear once.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditExportParams {
    /// Events at or after: RFC 3339 or a date (midnight UTC).
    pub since: Option<String>,
    /// Events before (RFC 3339 or a date); must be after `since`.
    pub until: Option<String>,
    #[param(min_length = 1, max_length = 256)]
    pub actor: Option<String>,
    #[param(format = "uuid")]
    pub guest_id: Option<String>,
    /// An action name such as `guest.read`.
    pub action: Option<String>,
    pub outcome: Option<crate::audit::Outcome>,
    /// `jsonl` (default) or `csv`.
    #[param(pattern = "^(jsonl|csv)$")]
    pub format: Option<String>,
}

/// The document for `policies`, as served. `free_text`: whether a reveal accepts a free-text
/// `justification` (`access.allow_free_text_justification`); when not, the property is left
/// out, since a client following the document must get no 422 for it.
pub fn document(policies: &Policies, free_text: bool) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if !free_text {
        if let Some(props) = doc
            .pointer_mut("/components/schemas/RevealBody/properties")
            .and_then(serde_json::Value::as_object_mut)
        {
            props.remove("justification");
        }
    }
    for problem in narrow::narrow(&mut doc, policies) {
        tracing::error!(problem = %problem, "the OpenAPI document could not be completed");
    }
    doc
}

pub fn router(policies: &Policies, free_text: bool) -> Router<AppState> {
    let body: Arc<[u8]> = serde_json::to_vec(&document(policies, free_text))
        .unwrap_or_default()
        .into();
    Router::new().route("/openapi.json", get(move || openapi_json(body.clone())))
}

#[utoipa::path(get, path = "/openapi.json", tag = "ops", summary = "This document", security(()),
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
async fn openapi_json(body: Arc<[u8]>) -> Response {
    let mut resp = body.to_vec().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
