//! The problem+json answers of each route, for the OpenAPI document: per status, the exact
//! `code`s that route can answer with (as a `code` enum, so a client generator and
//! schemathesis both hold the server to them). One set per route or group of routes with the
//! same failures, referenced from the handlers' `#[utoipa::path]` as `responses(..., Set)`.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

/// Every problem `code` the API answers with, and when (the README's table).
pub const CODES: [(&str, &str); 26] = [
    (
        "purpose_required",
        "no `X-Purpose` header on a personal-data route",
    ),
    (
        "malformed_json",
        "the body is not JSON of the documented shape",
    ),
    ("unauthorized", "missing or invalid bearer token"),
    (
        "forbidden",
        "unknown role, action not allowed, or field not revealable",
    ),
    (
        "purpose_not_allowed",
        "the role may not use this purpose, or the purpose is unknown",
    ),
    (
        "consent_required",
        "consent-based purpose without the guest's consent",
    ),
    (
        "restricted",
        "the guest's data is storage-only (PIPL Art. 47(2))",
    ),
    (
        "guest_not_found",
        "unknown or erased guest, or unknown request id (all answer alike)",
    ),
    ("not_found", "no such route"),
    (
        "conflict",
        "the operation conflicts with the current state (a rotation, or on PostgreSQL a retention sweep, is running here or on another node)",
    ),
    ("payload_too_large", "body over `server.max_body_bytes`"),
    (
        "unsupported_media_type",
        "no `Content-Type: application/json`",
    ),
    (
        "validation_failed",
        "bad field values or parameters; see `errors`",
    ),
    (
        "field_not_searchable",
        "search on a field without a blind index",
    ),
    (
        "internal",
        "an internal error (details are logged, never sent)",
    ),
    (
        "audit_unavailable",
        "the audit event could not be written, so nothing was done or shown",
    ),
    ("unavailable", "storage is unavailable; try again"),
    (
        "rate_limited",
        "over the caller's request budget (see `Retry-After`)",
    ),
    (
        "request_timeout",
        "no response within `server.request_timeout_secs`",
    ),
    (
        "verify_in_progress",
        "another audit verification is running",
    ),
    (
        "guardian_required",
        "a guest under 18 registered, given a stay or corrected without the guardian's name and mobile or an accompanying adult recorded (REQ-10)",
    ),
    (
        "guardian_consent_required",
        "a consent for a guest under 14 that is not a separate consent given by a guardian (REQ-10)",
    ),
    (
        "minor_marketing_refused",
        "marketing consent for a guest under 14, refused by `[minors]` in access.toml (REQ-10)",
    ),
    (
        "clock_not_extendable",
        "an extension of a request on the Chinese clock alone: it cannot be extended (REQ-32)",
    ),
    (
        "extension_limit_reached",
        "an extension past two months in all (GDPR Art. 12(3), REQ-32)",
    ),
    (
        "request_not_open",
        "an extension of a request already answered (REQ-32)",
    ),
];

/// Answers every budgeted route can give, whatever its own failures: 429 over budget
/// (with `Retry-After`) and 408 past the request timeout.
const EDGE: [(u16, &[&str]); 2] = [(408, &["request_timeout"]), (429, &["rate_limited"])];

/// The responses for `spec`: per status, the codes it may carry.
pub fn responses(spec: &[(u16, &[&str])]) -> BTreeMap<String, RefOr<Response>> {
    spec.iter()
        .chain(EDGE.iter())
        .map(|(status, codes)| (status.to_string(), RefOr::T(response(*status, codes))))
        .collect()
}

fn response(status: u16, codes: &[&str]) -> Response {
    let when: Vec<String> = codes
        .iter()
        .map(|c| {
            let meaning = CODES.iter().find(|(k, _)| k == c).map_or("", |(_, m)| *m);
            format!("`{c}`: {meaning}")
        })
        .collect();
    let narrowed = ObjectBuilder::new()
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes.iter().copied())),
        )
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([status])),
        );
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(narrowed)
        .build();
    let mut builder = ResponseBuilder::new()
        .description(format!("Problem ({}).", when.join("; ")))
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Schema::AllOf(schema)))
                .build(),
        );
    if status == 429 {
        builder = builder.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("seconds until the budget allows a request again"))
                .build(),
        );
    }
    if status == 401 {
        builder = builder.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(
                    "`Bearer realm=\"guestvault\", error=\"invalid_token\"`",
                ))
                .build(),
        );
    }
    builder.build()
}

/// `Name { status => [codes], ... }`: a unit type whose `IntoResponses` lists those problems.
macro_rules! problem_sets {
    ($($(#[$doc:meta])* $name:ident { $($status:literal => [$($code:literal),+ $(,)?]),+ $(,)? })+) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;

            impl utoipa::IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    responses(&[$(($status, &[$($code),+])),+])
                }
            }
        )+

        /// Every set, for the test that each code is one the API really answers with.
        #[cfg(test)]
        pub(super) fn all_sets() -> Vec<(&'static str, BTreeMap<String, RefOr<Response>>)> {
            vec![$((stringify!($name), <$name as utoipa::IntoResponses>::responses())),+]
        }
    };
}

problem_sets! {
    /// `POST /v1/guests`: no guest exists yet, so no 404 or `restricted`.
    CreateProblems {
        400 => ["purpose_required", "malformed_json"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed", "consent_required"],
        413 => ["payload_too_large"],
        415 => ["unsupported_media_type"],
        422 => ["validation_failed", "guardian_required", "guardian_consent_required", "minor_marketing_refused", "unknown_notice_version"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// Reads of one guest (record, stays, export).
    ReadProblems {
        400 => ["purpose_required"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed", "consent_required", "restricted"],
        404 => ["guest_not_found"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `GET .../export`: a read that takes a reason code from staff (`?reason=`).
    ExportProblems {
        400 => ["purpose_required"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed", "consent_required", "restricted"],
        404 => ["guest_not_found"],
        422 => ["validation_failed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// Writes to one guest with a JSON body (correct, reveal, add a stay).
    WriteProblems {
        400 => ["purpose_required", "malformed_json"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed", "consent_required", "restricted"],
        404 => ["guest_not_found"],
        413 => ["payload_too_large"],
        415 => ["unsupported_media_type"],
        422 => ["validation_failed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// Writes that register or correct a guest (`PATCH`, add a stay, apply a correction
    /// request): `guardian_required` when a guest under 18 would be left without a guardian
    /// (REQ-10).
    RegisterWriteProblems {
        400 => ["purpose_required", "malformed_json"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed", "consent_required", "restricted"],
        404 => ["guest_not_found"],
        413 => ["payload_too_large"],
        415 => ["unsupported_media_type"],
        422 => ["validation_failed", "guardian_required"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `POST /v1/guests/search`.
    SearchProblems {
        400 => ["purpose_required", "malformed_json"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        413 => ["payload_too_large"],
        415 => ["unsupported_media_type"],
        422 => ["validation_failed", "field_not_searchable"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `GET .../consents`: never needs consent itself.
    ConsentListProblems {
        400 => ["purpose_required"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed", "restricted"],
        404 => ["guest_not_found"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `PUT .../consents/{purpose}`.
    ConsentGrantProblems {
        400 => ["purpose_required", "malformed_json"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed", "restricted"],
        404 => ["guest_not_found"],
        409 => ["re_ask_too_soon"],
        413 => ["payload_too_large"],
        415 => ["unsupported_media_type"],
        422 => ["validation_failed", "guardian_consent_required", "minor_marketing_refused", "unknown_notice_version"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `DELETE .../consents/{purpose}`.
    ConsentWithdrawProblems {
        400 => ["purpose_required"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed", "restricted"],
        404 => ["guest_not_found"],
        422 => ["validation_failed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `POST .../erasure`: `restricted` when a restricted guest's erasure cannot proceed.
    EraseProblems {
        400 => ["purpose_required", "malformed_json"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed", "restricted"],
        404 => ["guest_not_found"],
        413 => ["payload_too_large"],
        415 => ["unsupported_media_type"],
        422 => ["validation_failed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `POST /v1/dsr-requests/{id}/extend` (REQ-32): 404 for an unknown request.
    ExtendProblems {
        400 => ["purpose_required", "malformed_json"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        404 => ["guest_not_found"],
        413 => ["payload_too_large"],
        415 => ["unsupported_media_type"],
        422 => ["validation_failed", "clock_not_extendable", "extension_limit_reached", "request_not_open"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `POST /v1/guests/{id}/holds`.
    HoldPlaceProblems {
        400 => ["purpose_required", "malformed_json"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        404 => ["guest_not_found"],
        413 => ["payload_too_large"],
        415 => ["unsupported_media_type"],
        422 => ["validation_failed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `GET /v1/guests/{id}/holds`, `DELETE .../holds/{hold_id}` (an unknown hold answers
    /// like an unknown guest).
    HoldListProblems {
        400 => ["purpose_required"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        404 => ["guest_not_found"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `GET /v1/erasure-requests?status=overdue`.
    OverdueProblems {
        400 => ["purpose_required"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        422 => ["validation_failed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `GET /v1/erasure-requests/{request_id}`: an unknown id answers like an unknown guest.
    ReceiptProblems {
        400 => ["purpose_required"],
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        404 => ["guest_not_found"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// Operations on no personal data that take query parameters (audit query and export,
    /// retention run). A purpose is not needed; one that is sent must be the role's.
    OpsQueryProblems {
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        422 => ["validation_failed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `GET /v1/audit/verify`: one at a time.
    VerifyProblems {
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        409 => ["verify_in_progress"],
        422 => ["validation_failed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// Operations on no personal data without parameters (key status).
    OpsProblems {
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `POST /v1/admin/keys/rotate`: starts in the background.
    RotateProblems {
        401 => ["unauthorized"],
        403 => ["forbidden"],
        409 => ["conflict"],
        503 => ["unavailable"],
    }
    /// `POST /v1/admin/retention/run`: on PostgreSQL one sweep at a time across the nodes.
    RetentionRunProblems {
        401 => ["unauthorized"],
        403 => ["forbidden", "purpose_not_allowed"],
        409 => ["conflict"],
        422 => ["validation_failed"],
        500 => ["internal"],
        503 => ["audit_unavailable", "unavailable"],
    }
    /// `GET /v1/policy`.
    PolicyProblems {
        401 => ["unauthorized"],
        403 => ["forbidden"],
    }
    /// `GET /v1/audit/public-key`: any valid token.
    TokenOnlyProblems {
        401 => ["unauthorized"],
    }
    /// `GET /metrics`: a peer outside `metrics.allow` without an accepted token.
    MetricsProblems {
        401 => ["unauthorized"],
        403 => ["forbidden"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ApiError;
    use axum::response::IntoResponse;

    /// The codes `ApiError` really produces, read from its rendered bodies.
    fn produced_codes() -> Vec<String> {
        let errors = [
            ApiError::Unauthorized,
            ApiError::Forbidden("forbidden"),
            ApiError::Forbidden("purpose_not_allowed"),
            ApiError::Forbidden("consent_required"),
            ApiError::PurposeRequired,
            ApiError::NotFound("guest_not_found"),
            ApiError::NotFound("not_found"),
            ApiError::Restricted,
            ApiError::Validation(vec![]),
            ApiError::FieldNotSearchable,
            ApiError::Unprocessable("guardian_required"),
            ApiError::Unprocessable("guardian_consent_required"),
            ApiError::Unprocessable("minor_marketing_refused"),
            ApiError::Unprocessable("clock_not_extendable"),
            ApiError::Unprocessable("extension_limit_reached"),
            ApiError::Unprocessable("request_not_open"),
            ApiError::UnknownNoticeVersion,
            ApiError::ReAskTooSoon,
            ApiError::MalformedJson,
            ApiError::UnsupportedMediaType,
            ApiError::PayloadTooLarge,
            ApiError::AuditUnavailable,
            ApiError::Unavailable,
            ApiError::Conflict,
            ApiError::Internal,
            ApiError::VerifyInProgress,
            ApiError::RateLimited {
                retry_after_secs: 1,
            },
            ApiError::RequestTimeout,
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        errors
            .into_iter()
            .map(|e| {
                let resp = e.into_response();
                let status = resp.status().as_u16();
                let body = rt
                    .block_on(axum::body::to_bytes(resp.into_body(), 1 << 16))
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["status"], status);
                format!("{status} {}", v["code"].as_str().unwrap())
            })
            .collect()
    }

    #[test]
    fn every_documented_code_is_one_the_api_answers_with_at_that_status() {
        let produced = produced_codes();
        for (code, _) in CODES {
            assert!(
                produced.iter().any(|p| p.ends_with(&format!(" {code}"))),
                "{code} is never produced"
            );
        }
        for (set, responses) in all_sets() {
            for (status, resp) in responses {
                let RefOr::T(resp) = resp else {
                    panic!("{set}: inline")
                };
                let json = serde_json::to_value(&resp).unwrap();
                let codes = &json["content"]["application/problem+json"]["schema"]["allOf"][1]
                    ["properties"]["code"]["enum"];
                for code in codes.as_array().unwrap() {
                    let pair = format!("{status} {}", code.as_str().unwrap());
                    assert!(produced.contains(&pair), "{set}: {pair} is never produced");
                }
            }
        }
    }
}
