//! Fuzz target `json_bodies` (see `crate::fuzzing`): a JSON request body through the `ApiJson`
//! extractor as each route declares it, then, for bodies the extractor accepts, the
//! service-level validation the route runs next (catalog validation of create, patch and stay
//! fields; search normalization), without a server or a database.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::corrections::{DecisionBody, StayCorrectionBody};
use super::erasure::ErasureBody;
use super::extract::ApiJson;
use super::guests::{CreateGuestBody, RevealBody, SearchBody, StayBody, UpdateGuestBody};
use crate::domain::{normalize_for_search, validate_fields, FieldError, Validated};
use crate::policy::{Catalog, FieldScope, FieldType, Policies, Sources};
use crate::service::{ConsentInput, ExtendInput, HoldInput};

fn today() -> time::Date {
    time::macros::date!(2026 - 06 - 01)
}

fn catalog() -> &'static Catalog {
    static P: OnceLock<Policies> = OnceLock::new();
    &P.get_or_init(|| Policies::from_sources(&Sources::embedded()).expect("embedded policies"))
        .catalog
}

/// Runs a future that cannot wait on anything (an in-memory body) to completion.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("an in-memory body did not complete at once"),
    }
}

/// The extractor's verdict on `data` as a `T` body: the value, or the rejection's status and
/// problem body.
fn run<T: DeserializeOwned>(data: &[u8]) -> Result<T, (u16, axum::body::Bytes)> {
    let req = Request::builder()
        .method("POST")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(data.to_vec()))
        .expect("request");
    ready(ApiJson::<T>::from_request(req, &()))
        .map(|ApiJson(v)| v)
        .map_err(|rejected| {
            let resp = rejected.into_response();
            let status = resp.status().as_u16();
            let body = ready(axum::body::to_bytes(resp.into_body(), 1 << 16)).expect("body");
            (status, body)
        })
}

/// `Some` when the extractor accepts `data`. A rejection must not depend on the body at all
/// (no echo, no oracle): it is byte for byte the rejection of any other malformed body.
fn extract<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    match run::<T>(data) {
        Ok(v) => Some(v),
        Err((status, body)) => {
            assert_eq!(
                status, 400,
                "an in-memory JSON body is malformed or accepted"
            );
            let Err(reference) = run::<T>(b"{") else {
                panic!("`{{` accepted");
            };
            assert_eq!(body, reference.1, "a rejection depends on the body");
            None
        }
    }
}

/// Validated values back into a JSON object, as a client would submit them again.
fn resubmit(scope: FieldScope, v: &Validated) -> Map<String, Value> {
    v.iter()
        .map(|(k, val)| {
            let json = match (val, catalog().get(scope, k).map(|s| s.field_type)) {
                (None, _) => Value::Null,
                (Some(p), Some(FieldType::Json | FieldType::Jurisdictions)) => {
                    serde_json::from_str(p.expose()).expect("a json field stays json")
                }
                (Some(p), _) => Value::String(p.expose().to_string()),
            };
            (k.clone(), json)
        })
        .collect()
}

fn plain(v: &Validated) -> BTreeMap<String, Option<String>> {
    v.iter()
        .map(|(k, p)| (k.clone(), p.as_ref().map(|p| p.expose().to_string())))
        .collect()
}

/// Catalog validation of `fields`; a validated set validates again to itself (normalization
/// is idempotent over whole records), and errors name only submitted fields or a placeholder.
fn check_fields(
    scope: FieldScope,
    fields: &Map<String, Value>,
    existing: &BTreeMap<String, String>,
    allow_null: bool,
) {
    let catalog = catalog();
    match validate_fields(catalog, scope, fields, existing, allow_null, today()) {
        Ok(v) => {
            let again = validate_fields(
                catalog,
                scope,
                &resubmit(scope, &v),
                existing,
                allow_null,
                today(),
            )
            .expect("a validated record re-validates");
            assert_eq!(plain(&again), plain(&v), "validation is not idempotent");
        }
        Err(errors) => check_errors(&errors, fields),
    }
}

fn check_errors(errors: &[FieldError], fields: &Map<String, Value>) {
    assert!(!errors.is_empty());
    for e in errors {
        assert!(
            e.field == "(invalid field name)"
                || fields.contains_key(&e.field)
                || crate::policy::is_identifier(&e.field),
            "an error names something that is no field"
        );
    }
}

/// A stored guest the patch bodies are checked against, so the cross-field rules run.
fn existing() -> BTreeMap<String, String> {
    [
        ("id_type", "cn_resident_id"),
        ("id_number", "11010519491231002X"),
        ("birth_date", "1949-12-31"),
        ("gender", "F"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn json_bodies(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let object = || match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => o,
        _ => panic!("the extractor accepted what is not a JSON object"),
    };
    let fields = || match object().remove("fields") {
        Some(Value::Object(f)) => f,
        _ => panic!("accepted without a fields object"),
    };
    match sel % 8 {
        0 => {
            if extract::<CreateGuestBody>(body).is_some() {
                check_fields(FieldScope::Guest, &fields(), &BTreeMap::new(), false);
            }
        }
        1 => {
            if extract::<UpdateGuestBody>(body).is_some() {
                check_fields(FieldScope::Guest, &fields(), &existing(), true);
                check_fields(FieldScope::Guest, &fields(), &BTreeMap::new(), true);
            }
        }
        2 => {
            if extract::<StayBody>(body).is_some() {
                check_fields(FieldScope::Stay, &fields(), &BTreeMap::new(), false);
            }
        }
        3 => {
            if extract::<SearchBody>(body).is_some() {
                let o = object();
                let (Some(Value::String(field)), Some(Value::String(value))) =
                    (o.get("field"), o.get("value"))
                else {
                    panic!("accepted a search without field and value strings");
                };
                let spec = catalog().get(FieldScope::Guest, field);
                if let Some(spec) = spec.filter(|s| s.searchable) {
                    if let Ok(n) = normalize_for_search(spec, value, today()) {
                        // The blind index finds a value only under one spelling.
                        assert_eq!(normalize_for_search(spec, &n, today()), Ok(n));
                    }
                }
            }
        }
        4 => {
            let _ = extract::<RevealBody>(body);
        }
        5 => {
            let _ = extract::<ErasureBody>(body);
        }
        6 => {
            let _ = extract::<ConsentInput>(body);
        }
        _ => {
            // The same bytes through every body type: none may panic.
            let _ = extract::<CreateGuestBody>(body);
            let _ = extract::<RevealBody>(body);
            let _ = extract::<SearchBody>(body);
            let _ = extract::<DecisionBody>(body);
            let _ = extract::<StayCorrectionBody>(body);
            let _ = extract::<HoldInput>(body);
            // `months` takes a whole number, also written as `1.0`; anything else is out of
            // range for the service (never the default).
            if let Some(e) = extract::<ExtendInput>(body) {
                if let (Some(m), Some(raw)) = (e.months, object().get("months")) {
                    let whole = raw.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0);
                    assert!(
                        whole == Some(f64::from(m)) || m == u32::MAX,
                        "months read as another number"
                    );
                }
            }
        }
    }
}
