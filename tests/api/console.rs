//! The compliance console over HTTP (issue 17): sign-in with good, expired, wrong-role and
//! garbage tokens, session expiry, CSRF refusals, the security headers on every page, role
//! gating, no personal data in URLs or logs, and audit events for console reads.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{captured_logs, spawn_app, spawn_app_with, zhang_san, TestApp};

/// A cookie-keeping, non-redirecting client: what a browser does, step by step.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
    pub lang: &'static str,
}

#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) text: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The value of the first `name="csrf"` hidden input.
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .text
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in {}", self.text));
        let rest = &self.text[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            lang: "en",
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut req = req.header("accept-language", self.lang);
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let page = Page {
            status,
            headers,
            text,
        };
        for c in page.set_cookies() {
            let first = c.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        page
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.app.addr));
        self.finish(req).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self
            .client
            .post(format!("{}{path}", self.app.addr))
            .form(form);
        self.finish(req).await
    }

    /// Signs in with `token`; returns the sign-in POST's answer.
    pub(crate) async fn sign_in_with(&mut self, token: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let csrf = form.csrf();
        self.post("/console/sign-in", &[("csrf", &csrf), ("token", token)])
            .await
    }

    pub(crate) async fn signed_in(app: &'a TestApp, role: &str) -> Browser<'a> {
        let mut b = Browser::new(app);
        let r = b.sign_in_with(&app.token(role)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
        assert_eq!(r.location(), "/console/");
        b
    }

    /// The session's CSRF token, from the home page's forms.
    pub(crate) async fn csrf(&mut self) -> String {
        self.get("/console/").await.csrf()
    }
}

pub(crate) fn assert_console_headers(path: &str, p: &Page) {
    let h = |name: &str| {
        p.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let csp = h("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{path}: CSP {csp:?}");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{path}: CSP {csp:?}"
    );
    assert!(!csp.contains("unsafe-inline"), "{path}: CSP {csp:?}");
    assert_eq!(h("cache-control"), "no-store", "{path}");
    assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
    assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
    // No inline script: every <script> has a src, and no element has an event handler.
    if h("content-type").starts_with("text/html") {
        for (i, _) in p.text.match_indices("<script") {
            let tag = &p.text[i..i + p.text[i..].find('>').unwrap()];
            assert!(tag.contains("src=\"/console/assets/"), "{path}: {tag}");
        }
        assert!(!p.text.contains(" onclick="), "{path}");
        assert!(!p.text.contains(" style="), "{path}");
        assert!(
            !p.text.contains("http://") && !p.text.contains("https://"),
            "{path}: external reference"
        );
    }
}

pub(crate) fn audit_rows(
    app: &TestApp,
    actor: &str,
) -> Vec<(String, String, Option<String>, String)> {
    app.sql_rows(
        "SELECT action, role, purpose, outcome FROM audit_events WHERE actor = ?1 ORDER BY seq",
        &[&actor],
    )
    .into_iter()
    .map(|r| {
        let mut r = r.into_iter();
        let mut next = || r.next().unwrap();
        (next().unwrap(), next().unwrap(), next(), next().unwrap())
    })
    .collect()
}

#[tokio::test]
async fn a_good_token_starts_a_strict_http_only_session_no_longer_than_the_token() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let r = b.sign_in_with(&app.token("compliance_officer")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.location(), "/console/");
    let cookie = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("gv_console_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/console"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let max_age: u64 = cookie
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age <= 600 && max_age > 500,
        "token lives 600 s: {max_age}"
    );
    // The token itself is nowhere in the cookie.
    assert!(!cookie.contains(&app.token("compliance_officer")[..20]));
    let home = b.get("/console/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.text.contains("href=\"/console/audit\""),
        "{}",
        home.text
    );
    let trail = b.get("/console/audit").await;
    assert_eq!(trail.status, StatusCode::OK, "{}", trail.text);
    assert!(trail.text.contains("Chain status"));
    assert_eq!(app.state.console.session_count(), 1);
}

#[tokio::test]
async fn expired_garbage_and_wrong_role_tokens_get_no_session() {
    let app = spawn_app().await;
    let secret =
        guestvault::config::read_secret_file("auth", &app.config.hs256_secret_file()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = guestvault::auth::mint_hs256(
        &secret,
        &app.config.auth.issuer,
        &app.config.auth.audience,
        "compliance_officer",
        "officer-1",
        Duration::from_secs(600),
        now - 3600,
    )
    .unwrap();
    for (token, status, text) in [
        (
            expired.as_str(),
            StatusCode::UNAUTHORIZED,
            "was not accepted",
        ),
        ("not-a-token", StatusCode::UNAUTHORIZED, "was not accepted"),
        (
            &app.token("front_desk"),
            StatusCode::FORBIDDEN,
            "no console pages",
        ),
        (&app.token("pms"), StatusCode::FORBIDDEN, "no console pages"),
    ] {
        let mut b = Browser::new(&app);
        let r = b.sign_in_with(token).await;
        assert_eq!(r.status, status, "{}", r.text);
        assert!(r.text.contains(text), "{}", r.text);
        assert!(
            !r.set_cookies()
                .iter()
                .any(|c| c.starts_with("gv_console_session=")),
            "no session for a refused token"
        );
        // The pasted token is never echoed back.
        assert!(!r.text.contains(token));
        assert_console_headers("/console/sign-in (refused)", &r);
        let page = b.get("/console/audit").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/console/sign-in");
    }
    assert_eq!(app.state.console.session_count(), 0);
}

#[tokio::test]
async fn a_session_ends_when_its_token_expires_and_at_sign_out() {
    let app = spawn_app().await;
    let short = guestvault::auth::mint_with_config(
        &app.config,
        "compliance_officer",
        "officer-short",
        Duration::from_secs(2),
    )
    .unwrap();
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in_with(&short).await.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/console/audit").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = b.get("/console/audit").await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "expired session: {}",
        r.text
    );
    assert_eq!(r.location(), "/console/sign-in");
    assert_eq!(
        app.state.console.session_count(),
        0,
        "the expired session is dropped"
    );

    let mut b = Browser::signed_in(&app, "compliance_officer").await;
    let csrf = b.csrf().await;
    let stolen = b.cookies.clone();
    let out = b.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/console/sign-in");
    // The old cookie is worthless once signed out.
    b.cookies = stolen;
    assert_eq!(b.get("/console/audit").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let mut b = Browser::signed_in(&app, "compliance_officer").await;
    let csrf = b.csrf().await;
    let before = app.audit_count();
    for path in [
        "/console/audit",
        "/console/audit/verify",
        "/console/audit/export",
        "/console/sign-out",
        "/console/lang",
    ] {
        for bad in ["", "0000", &"a".repeat(64)] {
            let r = b
                .post(path, &[("csrf", bad), ("format", "jsonl"), ("lang", "en")])
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} with {bad:?}");
            assert!(r.text.contains("did not come from this console"), "{path}");
            assert_console_headers(path, &r);
        }
    }
    assert_eq!(
        app.audit_count(),
        before,
        "a refused form reads and audits nothing"
    );
    // Still signed in: the refused sign-out did not end the session.
    assert_eq!(b.get("/console/audit").await.status, StatusCode::OK);
    // Sign-in without the signed-out forms' cookie (a cross-site POST) is refused too.
    let mut stranger = Browser::new(&app);
    let r = stranger
        .post(
            "/console/sign-in",
            &[("csrf", &csrf), ("token", &app.token("compliance_officer"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("gv_console_session=")));
}

#[tokio::test]
async fn every_console_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let mut anon = Browser::new(&app);
    for path in [
        "/console/sign-in",
        "/console/assets/console.css",
        "/console/assets/console.js",
        "/console/nope",
        "/console/",
        "/console/audit",
    ] {
        let r = anon.get(path).await;
        assert_console_headers(path, &r);
    }
    let mut b = Browser::signed_in(&app, "compliance_officer").await;
    let csrf = b.csrf().await;
    for path in [
        "/console/",
        "/console/audit",
        "/console/audit/events/1",
        "/console/audit/events/999999",
        "/console/audit/events/x",
        "/console/audit/public-key.json",
        "/console/audit/public-key.pem",
        "/console/assets/console.css",
    ] {
        let r = b.get(path).await;
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status
        );
        assert_console_headers(path, &r);
    }
    for (path, form) in [
        ("/console/audit", vec![("outcome", "denied")]),
        ("/console/audit", vec![("since", "not-a-date")]),
        ("/console/audit/verify", vec![]),
        ("/console/audit/export", vec![("format", "jsonl")]),
        ("/console/audit/export", vec![("format", "csv")]),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let r = b.post(path, &form).await;
        assert_console_headers(path, &r);
    }
}

#[tokio::test]
async fn the_trail_filters_pages_exports_and_shows_events_through_the_audited_service() {
    let app = spawn_app().await;
    // Some traffic: a guest, a read, and a denied read.
    let gid = app.create_guest(zhang_san()).await;
    let r = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/guests/{gid}"),
            Some("marketing"),
            Some("marketing"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut b = Browser::signed_in(&app, "compliance_officer").await;
    let csrf = b.csrf().await;
    let denied = b
        .post(
            "/console/audit",
            &[("csrf", &csrf), ("outcome", "denied"), ("guest_id", &gid)],
        )
        .await;
    assert_eq!(denied.status, StatusCode::OK, "{}", denied.text);
    assert!(
        denied.text.contains("data-outcome=\"denied\""),
        "{}",
        denied.text
    );
    assert!(!denied.text.contains("data-outcome=\"allowed\""));
    // The guest id went in the POST body, and no link or form target carries it.
    for attr in ["href=\"", "action=\""] {
        for (i, _) in denied.text.match_indices(attr) {
            let rest = &denied.text[i + attr.len()..];
            let url = &rest[..rest.find('"').unwrap()];
            assert!(!url.contains(&gid), "{url}");
        }
    }
    // Event detail by seq.
    let at = denied.text.find("/console/audit/events/").unwrap();
    let rest = &denied.text[at..];
    let link = &rest[..rest.find('"').unwrap()];
    let detail = b.get(link).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    assert!(detail.text.contains("guest.read") && detail.text.contains(&gid));
    assert!(
        detail.text.contains("purposes.marketing.basis"),
        "rules shown: {}",
        detail.text
    );
    // A bad filter is a 422 naming the field, not echoing the value.
    let bad = b
        .post(
            "/console/audit",
            &[("csrf", &csrf), ("actor", &"x".repeat(300))],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("invalid_length") && !bad.text.contains(&"x".repeat(300)));
    // Cursor pagination: a trail longer than a page has a next-page form with after_seq.
    for _ in 0..60 {
        app.call(
            reqwest::Method::GET,
            &format!("/v1/guests/{gid}"),
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    }
    let first = b.post("/console/audit", &[("csrf", &csrf)]).await;
    assert!(first.text.contains("id=\"next-page\""), "a second page");
    let at = first.text.find("name=\"after_seq\" value=\"").unwrap();
    let rest = &first.text[at + 24..];
    let after = &rest[..rest.find('"').unwrap()];
    assert_eq!(after, "50");
    let second = b
        .post("/console/audit", &[("csrf", &csrf), ("after_seq", after)])
        .await;
    assert!(second.text.contains("#51") && !second.text.contains(">#50<"));
    // A streamed JSONL export that verifies with the audit key.
    let export = b
        .post(
            "/console/audit/export",
            &[("csrf", &csrf), ("format", "jsonl")],
        )
        .await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.headers["content-type"], "application/x-ndjson");
    assert!(export.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let key = b.get("/console/audit/public-key.pem").await;
    assert!(key.text.starts_with("-----BEGIN PUBLIC KEY-----"));
    let key = guestvault::audit::verify::PublicKey::parse(&key.text).unwrap();
    let report = guestvault::audit::verify::verify_export(
        std::io::Cursor::new(export.text.as_bytes()),
        &key,
    );
    assert!(report.is_ok(), "{report:?}");
    let csv = b
        .post(
            "/console/audit/export",
            &[("csrf", &csrf), ("format", "csv")],
        )
        .await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    // Verify now.
    let v = b.post("/console/audit/verify", &[("csrf", &csrf)]).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.text);
    assert!(v.text.contains("data-verdict=\"intact\""), "{}", v.text);
    // Every read was audited under the officer's role and the purpose `audit`.
    let rows = audit_rows(&app, "test-compliance_officer");
    let actions: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for want in ["audit.read", "audit.export", "audit.verify"] {
        assert!(actions.contains(&want), "{actions:?}");
    }
    for (action, role, purpose, outcome) in &rows {
        assert_eq!(role, "compliance_officer", "{action}");
        assert_eq!(purpose.as_deref(), Some("audit"), "{action}");
        assert!(
            outcome == "allowed" || outcome == "error",
            "{action}: {outcome}"
        );
    }
}

#[tokio::test]
async fn the_console_leaves_no_token_or_personal_data_in_logs() {
    let app = spawn_app().await;
    let gid = app.create_guest(zhang_san()).await;
    let token = app.token_for("compliance_officer", "officer-logcheck");
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in_with(&token).await.status, StatusCode::SEE_OTHER);
    let csrf = b.csrf().await;
    b.post("/console/audit", &[("csrf", &csrf), ("guest_id", &gid)])
        .await;
    b.post(
        "/console/audit/export",
        &[("csrf", &csrf), ("guest_id", &gid)],
    )
    .await;
    let mut bad = Browser::new(&app);
    bad.sign_in_with("eyJhbGciOiJIUzI1NiJ9.13812345678.sig")
        .await;
    let logs = captured_logs();
    assert!(
        logs.contains("route=/console/audit"),
        "the console's requests are logged"
    );
    for line in logs.lines().filter(|l| l.contains("console")) {
        assert!(!line.contains(&gid), "{line}");
        assert!(!line.contains("13812345678"), "{line}");
        assert!(!line.contains(&token[token.len() - 20..]), "{line}");
        for (k, v) in b.cookies.iter() {
            assert!(!line.contains(v.as_str()), "cookie {k} in {line}");
        }
    }
}

#[tokio::test]
async fn the_language_follows_accept_language_and_the_switch() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    b.lang = "zh-CN,zh;q=0.9";
    let zh = b.get("/console/sign-in").await;
    assert!(zh.text.contains("lang=\"zh-CN\"") && zh.text.contains("登录"));
    let csrf = zh.csrf();
    let r = b
        .post(
            "/console/lang",
            &[
                ("csrf", &csrf),
                ("lang", "en"),
                ("back", "/console/sign-in"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/console/sign-in");
    let en = b.get("/console/sign-in").await;
    assert!(
        en.text.contains("lang=\"en\"") && en.text.contains("Bearer token"),
        "{}",
        en.text
    );
    // An unknown page to go back to is not followed.
    let csrf = en.csrf();
    let r = b
        .post(
            "/console/lang",
            &[
                ("csrf", &csrf),
                ("lang", "zh-CN"),
                ("back", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.location(), "/console/");
}

#[tokio::test]
async fn console_enabled_false_answers_404_everywhere_under_console() {
    let app = spawn_app_with(|c, _| c.console.enabled = false).await;
    let mut b = Browser::new(&app);
    for path in [
        "/console/",
        "/console/sign-in",
        "/console/audit",
        "/console/assets/console.css",
    ] {
        assert_eq!(b.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let r = b
        .post(
            "/console/sign-in",
            &[("token", &app.token("compliance_officer"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failed_sign_ins_draw_on_the_apis_per_peer_budget() {
    let app = spawn_app_with(|c, _| {
        c.budgets.auth_failures_per_min = 1;
        c.budgets.auth_failures_burst = 3;
    })
    .await;
    let mut b = Browser::new(&app);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(b.sign_in_with("garbage").await.status);
    }
    assert_eq!(&statuses[..3], &[StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // Blocked for a good token too, as the API blocks the peer.
    let r = b.sign_in_with(&app.token("compliance_officer")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}
