//! The access log in JSON: one line per request with request id, route template, status,
//! latency, role and purpose, and nothing personal (REQ-11).

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const CANARY_NAME: &str = "欧阳锋";
const CANARY_MOBILE: &str = "13911112222";

#[tokio::test]
async fn the_json_access_log_has_one_line_per_request_with_role_and_purpose_and_no_values() {
    let buf = Capture(Arc::new(Mutex::new(Vec::new())));
    let mut config = guestvault::config::Config::default();
    config.log.format = "json".into();
    config.log.level = "info".into();
    let writer = buf.clone();
    let subscriber = guestvault::cli::log_subscriber(&config, move || writer.clone());
    // A current-thread test runtime: the server's tasks log on this thread, to this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_app().await;
    let r = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields": {"full_name": CANARY_NAME, "mobile": CANARY_MOBILE}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["guest_id"].as_str().unwrap().to_string();
    let path = format!("/v1/guests/{id}");
    let r = app
        .client
        .get(format!("{}{path}", app.addr))
        .bearer_auth(app.token("pms"))
        .header("X-Purpose", "check_in")
        .header("X-Request-Id", "0b7e5b8e-2a31-4c1e-9f53-8d1f4f0a9c42");
    assert_eq!(app.send(r).await.status, StatusCode::OK);
    // A value typed where the purpose goes, and no token at all.
    app.call(Method::GET, &path, Some("pms"), Some(CANARY_MOBILE), None)
        .await;
    app.call(Method::GET, &path, None, Some("check_in"), None)
        .await;
    app.stop().await;

    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 4, "{text}");
    for l in &requests {
        for key in [
            "timestamp",
            "level",
            "request_id",
            "method",
            "route",
            "status",
            "latency_us",
            "role",
            "purpose",
        ] {
            assert!(!l[key].is_null(), "{key} missing in {l}");
        }
    }
    let read = requests
        .iter()
        .find(|l| l["request_id"] == "0b7e5b8e-2a31-4c1e-9f53-8d1f4f0a9c42")
        .unwrap();
    assert_eq!(read["route"], "/v1/guests/{id}");
    assert_eq!(read["status"], 200);
    assert_eq!(
        (read["role"].as_str(), read["purpose"].as_str()),
        (Some("pms"), Some("check_in"))
    );
    assert!(requests
        .iter()
        .any(|l| l["purpose"] == "(unknown)" && l["status"] == 403));
    assert!(requests
        .iter()
        .any(|l| l["role"] == "-" && l["status"] == 401));
    for needle in [CANARY_NAME, CANARY_MOBILE, id.as_str()] {
        assert!(!text.contains(needle), "{needle} in the log:\n{text}");
    }
}
