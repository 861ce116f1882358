//! Extractors: the authenticated caller (bearer token + `X-Purpose`) and a JSON body whose
//! rejections become problem+json without echoing the input.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::{ApiError, REQUEST_ID};
use super::AppState;
use crate::service::Caller;

pub const PURPOSE_HEADER: &str = "x-purpose";

/// The caller of a request: verified token, role, and the declared purpose (if any).
#[derive(Debug, Clone)]
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        // Only the kind of failure is logged: the token's own text (header, claims) is
        // attacker-supplied and could forge log lines.
        let verified = parts.extensions.remove::<VerifiedToken>().map(|v| v.0);
        let principal = match verified {
            Some(p) => p,
            None => state.auth.verify(token).map_err(|e| {
                tracing::info!(reason = e.kind(), "bearer token rejected");
                ApiError::Unauthorized
            })?,
        };
        // A header that is not UTF-8 is passed on as an unknown purpose: the policy denies it.
        let purpose = parts.headers.get(PURPOSE_HEADER).map(|v| {
            v.to_str()
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "(invalid)".into())
        });
        if let Some(slot) = parts.extensions.get::<super::AccessLog>() {
            slot.record(
                &state.vault.policies().access,
                &principal.role,
                purpose.as_deref(),
            );
        }
        let caller = Caller {
            request_id: REQUEST_ID.try_with(Clone::clone).unwrap_or_default(),
            actor: principal.sub,
            role: principal.role,
            purpose,
        };
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            let _ = slot.0.set(caller.clone());
        }
        Ok(Self(caller))
    }
}

/// The principal of the bearer token the budget layer already verified for this request, so
/// that a request costs one signature check, not two. Only server code inserts it.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedToken(pub(crate) crate::auth::Principal);

/// Where the `Auth` extractor leaves the authenticated caller for the rejection-audit
/// middleware (a request that never authenticates leaves it empty).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallerSlot(pub(crate) std::sync::Arc<std::sync::OnceLock<Caller>>);

/// Marks a response as an extractor's rejection (malformed JSON, wrong media type, oversize
/// body, undecodable path), answered before the service ran: the value is the problem code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RejectedBeforeService(pub(crate) &'static str);

/// The rejection of [`ApiJson`] and [`ApiPath`]: the problem, marked for the audit middleware.
#[derive(Debug)]
pub struct Rejected(ApiError);

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let mut resp = self.0.into_response();
        resp.extensions_mut().insert(RejectedBeforeService(code));
        resp
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `axum::Json` with rejections mapped to our problem codes.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Rejected;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match axum::Json::<ObjectOnly<T>>::from_request(req, state).await {
            Ok(axum::Json(ObjectOnly(v))) => Ok(Self(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(Rejected(ApiError::UnsupportedMediaType))
            }
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(Rejected(ApiError::PayloadTooLarge))
            }
            Err(_) => Err(Rejected(ApiError::MalformedJson)),
        }
    }
}

/// A body type read from a JSON object only. Serde's derived structs also accept a JSON array
/// of their fields in order (`[{"full_name": ...}]` created a guest), which no documented body
/// is and `deny_unknown_fields` does not cover (found by fuzzing, issue 13).
struct ObjectOnly<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Object(std::marker::PhantomData))
            .map(ObjectOnly)
    }
}

/// `axum::extract::Path` with rejections (a segment that does not decode to UTF-8) answered
/// like an unknown guest: 404 `guest_not_found`, no echo.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Rejected;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|_| Rejected(ApiError::NotFound("guest_not_found")))
    }
}

/// `axum::extract::Query` with rejections mapped to 422 `validation_failed` (no echo).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|_| {
                ApiError::Validation(vec![crate::domain::FieldError::new(
                    "query",
                    "invalid_format",
                )])
            })
    }
}
