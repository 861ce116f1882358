//! One HTTP error type, answered as RFC 9457 `application/problem+json` with a stable
//! snake_case `code`. Bodies never echo submitted values or internal error text; 5xx details
//! are logged (without personal data) and replaced by a generic message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::FieldError;
use crate::policy::DenyReason;
use crate::service::VaultError;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

#[derive(Debug)]
pub enum ApiError {
    /// 401: missing, malformed, expired or forged token.
    Unauthorized,
    /// 403: the role may not do this (`forbidden`), or a narrower code.
    Forbidden(&'static str),
    /// 400: `X-Purpose` is missing.
    PurposeRequired,
    /// 404: unknown, erased or malformed guest id, or no such route.
    NotFound(&'static str),
    /// 403: storage-only data (PIPL Art. 47(2)).
    Restricted,
    /// 422: per-field problems.
    Validation(Vec<FieldError>),
    /// 422
    FieldNotSearchable,
    /// 422 with a code of its own: a rule refused the request as a whole (the minors rules:
    /// `guardian_required`, `guardian_consent_required`, `minor_marketing_refused`; REQ-10).
    Unprocessable(&'static str),
    /// 400: the body is not JSON of the expected shape.
    MalformedJson,
    /// 415
    UnsupportedMediaType,
    /// 413
    PayloadTooLarge,
    /// 503: the audit trail could not be written, so nothing was done or shown.
    AuditUnavailable,
    /// 503
    Unavailable,
    /// 409: the operation conflicts with the current state (e.g. retiring a KEK in use).
    Conflict,
    /// 409: another audit verification is running.
    VerifyInProgress,
    /// 429: over the principal's budget; retry after the given seconds.
    RateLimited { retry_after_secs: u64 },
    /// 408: no response header within `server.request_timeout_secs`.
    RequestTimeout,
    /// 422: the consent names a notice version not registered in `notices.toml`.
    UnknownNoticeVersion,
    /// 409: the hotel asks again too soon after the guest's refusal.
    ReAskTooSoon,
    /// 500
    Internal,
}

/// An RFC 9457 problem: every error answer, as `application/problem+json`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `https://guestvault.dev/problems/{code}`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    kind: String,
    title: &'static str,
    /// The HTTP status.
    status: u16,
    /// Stable snake_case code; each route documents the codes it answers with.
    code: &'static str,
    /// A fixed explanation: never a submitted value or internal error text.
    detail: &'static str,
    /// Also in the `X-Request-Id` header; quote it when asking about a request.
    request_id: String,
    /// With `validation_failed`: the field (or parameter) names and what is wrong with them.
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<FieldError>>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Self::Unauthorized => (S::UNAUTHORIZED, "unauthorized", "Unauthorized", "a valid bearer token is required"),
            Self::Forbidden(code) => (S::FORBIDDEN, code, "Forbidden", match *code {
                "purpose_not_allowed" => "the purpose is not allowed for this role",
                "consent_required" => "the guest has not consented to this purpose",
                _ => "the policy does not allow this",
            }),
            Self::PurposeRequired => (S::BAD_REQUEST, "purpose_required", "Purpose required", "send the purpose of processing in the X-Purpose header"),
            Self::NotFound(code) => (S::NOT_FOUND, code, "Not found", "no such resource"),
            Self::Restricted => (S::FORBIDDEN, "restricted", "Restricted", "this guest's data is kept for storage only and cannot be processed under this purpose"),
            Self::Validation(_) => (S::UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed", "one or more fields are invalid; see errors"),
            Self::FieldNotSearchable => (S::UNPROCESSABLE_ENTITY, "field_not_searchable", "Field not searchable", "the field has no blind index"),
            Self::Unprocessable(code) => (S::UNPROCESSABLE_ENTITY, code, "Refused", match *code {
                "guardian_required" => "a guest under 18 is registered with the guardian's name and mobile, or the guest id of an accompanying adult",
                "guardian_consent_required" => "a guest under 14 needs a separate consent given by a guardian",
                "minor_marketing_refused" => "the policy refuses marketing to a guest under 14",
                "clock_not_extendable" => "only the GDPR clock can be extended; this request runs on the Chinese clock alone",
                "extension_limit_reached" => "the GDPR clock can be extended by two months at most",
                "request_not_open" => "the request has been answered; its deadline cannot change",
                _ => "the request is refused",
            }),
            Self::MalformedJson => (S::BAD_REQUEST, "malformed_json", "Malformed request body", "the body must be JSON of the documented shape"),
            Self::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type", "send Content-Type: application/json"),
            Self::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large", "the request body is too large"),
            Self::AuditUnavailable => (S::SERVICE_UNAVAILABLE, "audit_unavailable", "Audit trail unavailable", "the audit trail cannot be written; nothing was done"),
            Self::Unavailable => (S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", "storage is unavailable; try again"),
            Self::Conflict => (S::CONFLICT, "conflict", "Conflict", "the operation conflicts with the current state"),
            Self::VerifyInProgress => (S::CONFLICT, "verify_in_progress", "Verification in progress", "another audit verification is running; try again when it ends"),
            Self::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate_limited", "Too many requests", "over this caller's request budget; retry after Retry-After seconds"),
            Self::RequestTimeout => (S::REQUEST_TIMEOUT, "request_timeout", "Request timeout", "the request took longer than the server allows"),
            Self::UnknownNoticeVersion => (S::UNPROCESSABLE_ENTITY, "unknown_notice_version", "Unknown notice version", "the notice version (and language) must be registered in notices.toml"),
            Self::ReAskTooSoon => (S::CONFLICT, "re_ask_too_soon", "Asked again too soon", "the guest refused this purpose recently; the hotel may not ask again before consent.re_ask_after_days have passed"),
            Self::Internal => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error", "an internal error occurred"),
        }
    }
}

impl ApiError {
    /// The problem `code` this error answers with.
    pub(crate) fn code(&self) -> &'static str {
        self.parts().1
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title, detail) = self.parts();
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        let retry_after = match self {
            Self::RateLimited { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        let errors = match self {
            Self::Validation(e) => Some(e),
            _ => None,
        };
        let body = Problem {
            kind: format!("https://guestvault.dev/problems/{code}"),
            title,
            status: status.as_u16(),
            code,
            detail,
            request_id,
            errors,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (status, bytes).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"guestvault\", error=\"invalid_token\""),
            );
        }
        resp
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Denied(r) => match r {
                DenyReason::PurposeRequired => Self::PurposeRequired,
                DenyReason::PurposeNotAllowed => Self::Forbidden("purpose_not_allowed"),
                DenyReason::ConsentRequired => Self::Forbidden("consent_required"),
                DenyReason::UnknownRole
                | DenyReason::ActionNotAllowed
                | DenyReason::FieldNotAllowed => Self::Forbidden("forbidden"),
            },
            VaultError::NotFound => Self::NotFound("guest_not_found"),
            VaultError::Restricted => Self::Restricted,
            VaultError::Validation(errors) => Self::Validation(errors),
            VaultError::FieldNotSearchable => Self::FieldNotSearchable,
            VaultError::Unprocessable(code) => Self::Unprocessable(code),
            VaultError::AuditUnavailable(e) => {
                tracing::error!(error = %e, "audit append failed; request refused");
                Self::AuditUnavailable
            }
            VaultError::Store(e) => {
                tracing::error!(error = %e, "storage error");
                Self::Unavailable
            }
            VaultError::Conflict(_) => Self::Conflict,
            VaultError::VerifyInProgress => Self::VerifyInProgress,
            VaultError::UnknownNoticeVersion => Self::UnknownNoticeVersion,
            VaultError::ReAskTooSoon => Self::ReAskTooSoon,
            VaultError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                Self::Internal
            }
        }
    }
}
