//! Scenario 3 (issue 17): an administrator signs in, starts a key rotation on the operations
//! page and watches its progress reach 100% (the page's script polls the console's progress
//! endpoint). Plus the README's screenshots: `GV_DOCS_SCREENSHOTS=1` copies the English
//! screenshots of the audit, overview, policy and operations pages to `docs/` (see README,
//! "Console").

use std::path::Path;

use super::webdriver::Session;
use super::{browser, screenshot_dir, sign_in, Driver, Vault};

/// Switches the console to English (the machine may lack CJK fonts for the screenshots).
pub(super) async fn english(s: &Session) {
    if s.lang().await != "en" {
        s.find("form.lang button").await.click().await;
        s.wait_for("html[lang='en']").await;
    }
}

/// Saves `name` under the screenshot dir, and under `docs/` when `GV_DOCS_SCREENSHOTS=1`.
pub(super) async fn shot(s: &Session, name: &str, docs_name: Option<&str>) {
    let path = screenshot_dir().join(name);
    s.screenshot(&path).await;
    if let Some(d) = docs_name {
        if std::env::var("GV_DOCS_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let to = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(d);
            std::fs::copy(&path, &to).unwrap();
            let size = std::fs::metadata(&to).unwrap().len();
            assert!(size < 150_000, "{}: {size} bytes", to.display());
        }
    }
}

async fn guests(vault: &Vault, n: usize) {
    let chars: Vec<char> = "甲乙丙丁戊己庚辛壬癸子丑".chars().collect();
    for i in 0..n {
        let name = format!("王{}{}", chars[i % 12], chars[(i / 12) % 12]);
        let (status, body) = vault
            .api(
                reqwest::Method::POST,
                "/v1/guests",
                "pms",
                "check_in",
                Some(serde_json::json!({"fields": {"full_name": name, "mobile": "13812345678"}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_3_admin_starts_a_rotation_and_watches_it_reach_100_percent() {
    let Some((chromium, driver_bin)) = browser() else {
        return;
    };
    let vault = Vault::start().await;
    guests(&vault, 120).await;
    let downloads = tempfile::tempdir().unwrap();
    let driver = Driver::start(&driver_bin).await;
    let s = driver.session(&chromium, downloads.path()).await;

    sign_in(&s, &vault, "admin").await;
    english(&s).await;
    s.find("nav a[href='/console/operations']")
        .await
        .click()
        .await;
    s.wait_for_path("/console/operations").await;
    assert_eq!(s.attrs("#rotation", "data-state").await, ["none"]);
    assert_eq!(
        s.attrs("#kek-versions tbody tr", "data-deks").await,
        ["120"],
        "one KEK wraps every guest's key"
    );
    assert_eq!(s.attrs("[data-ready]", "data-ready").await, ["ready"]);
    s.find("#rotate").await.click().await;
    s.wait_for_path("/console/operations").await;
    // The script follows the rotation and reloads the page once it has finished.
    s.wait_for("#rotation[data-state='finished']").await;
    let bar = s.find("#rotation-progress").await;
    let (value, max) = (bar.attr("value").await, bar.attr("max").await);
    assert_eq!(value, max, "the bar is full");
    assert_eq!(max.as_deref(), Some("120"));
    let label = s.find("[data-progress-label]").await.text().await;
    assert!(label.contains("120 / 120 (100%)"), "{label}");
    assert_eq!(s.find("#active-version").await.text().await, "v2");
    assert_eq!(
        s.attrs("#kek-versions tbody tr", "data-deks").await,
        ["0", "120"],
        "every key rewrapped under v2"
    );
    shot(
        &s,
        "scenario3-rotation-finished.png",
        Some("console-operations.png"),
    )
    .await;

    // The policy page, for the README.
    s.find("nav a[href='/console/policy']").await.click().await;
    s.wait_for("#matrix").await;
    shot(&s, "scenario3-policy.png", Some("console-policy.png")).await;
    s.close().await;
    vault.stop().await;
}

/// The compliance officer's overview (a spike of denials today) and audit trail, in English:
/// the README's screenshots, and a check that the spike is marked in a real browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_charts_mark_a_spike_of_denials_in_the_browser() {
    let Some((chromium, driver_bin)) = browser() else {
        return;
    };
    let vault = Vault::start().await;
    guests(&vault, 3).await;
    let (_, body) = vault
        .api(
            reqwest::Method::POST,
            "/v1/guests",
            "pms",
            "check_in",
            Some(serde_json::json!({"fields": {"full_name": "张三丰", "mobile": "13812345678"}})),
        )
        .await;
    let gid = body["guest_id"].as_str().unwrap().to_string();
    for _ in 0..8 {
        let (status, _) = vault
            .api(
                reqwest::Method::GET,
                &format!("/v1/guests/{gid}"),
                "marketing",
                "marketing",
                None,
            )
            .await;
        assert_eq!(status, 403);
    }
    for _ in 0..2 {
        let (status, body) = vault
            .api(
                reqwest::Method::POST,
                &format!("/v1/guests/{gid}/reveal"),
                "front_desk",
                "check_in",
                Some(serde_json::json!({"fields": ["mobile"], "reason": "contact_guest"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let downloads = tempfile::tempdir().unwrap();
    let driver = Driver::start(&driver_bin).await;
    let s = driver.session(&chromium, downloads.path()).await;
    sign_in(&s, &vault, "compliance_officer").await;
    english(&s).await;
    s.find("nav a[href='/console/overview']")
        .await
        .click()
        .await;
    s.wait_for("#chart-outcomes svg").await;
    assert_eq!(
        s.attrs("#chart-outcomes g[data-spike='true']", "data-spike")
            .await
            .len(),
        1,
        "today's denials are a spike"
    );
    assert!(s
        .find("p.spike")
        .await
        .text()
        .await
        .contains("Spike of denials"));
    shot(&s, "overview-charts.png", Some("console-overview.png")).await;
    s.find("nav a[href='/console/audit']").await.click().await;
    s.wait_for("#chain").await;
    shot(&s, "audit-trail.png", Some("console-audit.png")).await;
    s.close().await;
    vault.stop().await;
}
