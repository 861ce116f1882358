//! `GET /openapi.json` against the real router: no route without its operation, no operation
//! without its route, personal-data routes declare `X-Purpose`, every error answer is
//! problem+json with `code`s the README documents.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

const SAMPLE_ID: &str = "0191a1d2-0000-7000-8000-000000000000";

/// The route templates the router really holds. axum offers no listing, so they are read
/// from its `Debug` output (`path_router: .. node: Node { paths: {RouteId(3): "/v1/..", ..} }`,
/// before the fallback router); should that format change, this finds nothing and the test
/// fails loudly.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let dump = format!("{router:?}");
    let routes = dump.split("fallback_router").next().unwrap_or_default();
    routes
        .split("RouteId(")
        .filter_map(|piece| {
            let rest = piece.trim_start_matches(|c: char| c.is_ascii_digit());
            let path = rest.strip_prefix("): \"")?;
            Some(path.split('"').next()?.to_string())
        })
        .collect()
}

fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| if seg.starts_with('{') { SAMPLE_ID } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_and_the_router_have_exactly_the_same_operations() {
    let app = spawn_app().await;
    let router = guestvault::http::app(app.state.clone(), 65536);
    let mut paths = router_paths(&router);
    assert!(paths.contains("/v1/guests/{id}"), "parsed {paths:?}");
    // The console (`/console/`) is HTML for people, not part of the API document.
    paths.retain(|p| !p.starts_with("/console"));

    // Each route's methods, from what it answers to a method it does not serve: 405 + Allow.
    let mut routed = BTreeSet::new();
    for path in &paths {
        let r = app
            .send(
                app.client
                    .request(Method::OPTIONS, format!("{}{}", app.addr, concrete(path))),
            )
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allow = r.headers["allow"].to_str().unwrap().to_string();
        for method in allow.split(',').map(str::trim).filter(|m| *m != "HEAD") {
            routed.insert((method.to_lowercase(), path.clone()));
        }
    }

    let doc = app
        .call(Method::GET, "/openapi.json", None, None, None)
        .await
        .body;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    assert!(routed.len() >= 26, "{routed:?}");
}

/// The problem codes of the README's error table.
fn readme_codes() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    readme
        .lines()
        .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
        .flat_map(|l| {
            l.split('|')
                .nth(2)
                .unwrap_or_default()
                .split(',')
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|c| c.trim().trim_matches('`').to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_bearer_auth_purposes_and_problem_codes() {
    let app = spawn_app().await;
    let r = app
        .call(Method::GET, "/openapi.json", None, None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    let known = readme_codes();
    assert!(
        known.contains("guest_not_found") && known.contains("unavailable"),
        "{known:?}"
    );

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = format!("{method} {path}");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let purpose = params.iter().find(|p| p["name"] == "X-Purpose");
            // Personal-data routes: everything about a guest, stays, consents, erasure and
            // correction requests.
            if path.starts_with("/v1/guests")
                || path.starts_with("/v1/erasure-requests")
                || path.starts_with("/v1/dsr-requests")
            {
                let p = purpose.unwrap_or_else(|| panic!("{id} lacks X-Purpose"));
                assert_eq!(
                    (p["in"].as_str(), p["required"].as_bool()),
                    (Some("header"), Some(true)),
                    "{id}"
                );
                assert!(p["schema"]["enum"]
                    .as_array()
                    .unwrap()
                    .contains(&"check_in".into()));
            } else {
                assert!(purpose.is_none(), "{id} documents X-Purpose");
            }
            let public =
                ["/healthz", "/readyz", "/openapi.json", "/metrics"].contains(&path.as_str());
            assert_eq!(
                op.get("security").is_some(),
                public,
                "{id}: security override"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{id}");
            if !public {
                assert!(responses.contains_key("401"), "{id} lacks 401");
            }
            for (status, resp) in responses {
                if status.starts_with('2') || path == "/readyz" {
                    continue;
                }
                let schema = &resp["content"]["application/problem+json"]["schema"];
                assert_eq!(
                    schema["allOf"][0]["$ref"], "#/components/schemas/Problem",
                    "{id} {status}"
                );
                let codes = schema["allOf"][1]["properties"]["code"]["enum"]
                    .as_array()
                    .unwrap();
                assert!(!codes.is_empty(), "{id} {status}");
                for code in codes {
                    let code = code.as_str().unwrap();
                    assert!(
                        known.contains(code),
                        "{id} {status}: `{code}` is not in the README"
                    );
                }
            }
        }
    }
    // The catalog and the published export schema made it in.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["GuestView"]["properties"]["fields"]["$ref"],
        "#/components/schemas/GuestFieldValues"
    );
    assert!(schemas["GuestFieldsInput"]["properties"]["mobile"].is_object());
    assert_eq!(
        schemas["GuestExport"]["properties"]["format"]["const"],
        "guestvault-export/v1"
    );
    let export = &doc["paths"]["/v1/guests/{id}/export"]["get"]["responses"]["200"];
    assert_eq!(
        export["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/GuestExport"
    );
}

/// Every documented error status of an operation is one it can produce: spot checks that the
/// document's codes match real answers (schemathesis in `.ci/run` does this exhaustively).
#[tokio::test]
async fn documented_problem_codes_match_real_answers() {
    let app = spawn_app().await;
    let doc = app
        .call(Method::GET, "/openapi.json", None, None, None)
        .await
        .body;
    let codes = |path: &str, method: &str, status: u16| -> Vec<Value> {
        doc["paths"][path][method]["responses"][status.to_string()]["content"]
            ["application/problem+json"]["schema"]["allOf"][1]["properties"]["code"]["enum"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let path = format!("/v1/guests/{SAMPLE_ID}");
    for (role, purpose, status, code) in [
        (Some("pms"), None, 400, "purpose_required"),
        (None, Some("check_in"), 401, "unauthorized"),
        (Some("pms"), Some("marketing"), 403, "purpose_not_allowed"),
        (Some("pms"), Some("check_in"), 404, "guest_not_found"),
    ] {
        let r = app.call(Method::GET, &path, role, purpose, None).await;
        assert_eq!(r.status.as_u16(), status, "{}", r.text);
        assert_eq!(r.body["code"], code);
        assert!(
            codes("/v1/guests/{id}", "get", status).contains(&code.into()),
            "{status} {code}"
        );
    }
}
