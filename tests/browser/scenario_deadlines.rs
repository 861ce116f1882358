//! Scenario 5 (issue 17, REQ-32): a compliance officer signs in and finds an overdue
//! data-subject request on the request deadlines page (the vault's clock moved past the due
//! date), read-only and naming no guest; a DSR officer does not get that page (403, not in its
//! navigation) and handles the same request on its own queue instead. With
//! `GV_DOCS_SCREENSHOTS=1` the English screenshot goes to `docs/console-deadlines.png`.

use std::sync::Arc;
use std::time::Duration;

use guestvault::clock::{Clock, ManualClock};

use super::scenario_ops::{english, shot};
use super::{browser, sign_in, Driver, Vault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_5_compliance_officer_finds_the_overdue_request() {
    let Some((chromium, driver_bin)) = browser() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let vault = Vault::start_with_clock(clock.clone() as Arc<dyn Clock>).await;
    let (status, body) = vault
        .api(
            reqwest::Method::POST,
            "/v1/guests",
            "pms",
            "check_in",
            Some(serde_json::json!({"fields": {"full_name": "张三丰", "mobile": "13812345678"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let gid = body["guest_id"].as_str().unwrap().to_string();
    // The guest asks to correct its name: a request due in 15 Chinese working days.
    let guest =
        guestvault::auth::mint_with_config(&vault.config, "guest", &gid, Duration::from_secs(900))
            .unwrap();
    let r = reqwest::Client::new()
        .patch(format!("{}/v1/guests/{gid}", vault.addr))
        .bearer_auth(guest)
        .header("X-Purpose", "data_subject_request")
        .json(&serde_json::json!({"fields": {"full_name": "张三"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let rid = r.json::<serde_json::Value>().await.unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Nobody answers it for 40 days: it is overdue (15 working days are at most 30 days).
    clock.advance(time::Duration::days(40));

    let downloads = tempfile::tempdir().unwrap();
    let driver = Driver::start(&driver_bin).await;
    let s = driver.session(&chromium, downloads.path()).await;
    sign_in(&s, &vault, "compliance_officer").await;
    english(&s).await;
    assert!(s
        .attrs("nav a", "href")
        .await
        .iter()
        .all(|h| !h.ends_with("/console/dsr")));
    s.find("nav a[href='/console/deadlines']")
        .await
        .click()
        .await;
    s.wait_for_path("/console/deadlines").await;
    s.wait_for("#overdue").await;
    assert_eq!(
        s.attrs("#overdue tr[data-request]", "data-request").await,
        [rid.as_str()]
    );
    let row = s
        .find(&format!("#overdue tr[data-request='{rid}']"))
        .await
        .text()
        .await;
    assert!(row.contains("Overdue by"), "{row}");
    assert!(row.contains("Correction"), "{row}");
    assert_eq!(s.find("#overdue-count").await.text().await, "1");
    let main = s.find("main").await.text().await;
    assert!(!main.contains(&gid), "no guest on the page");
    assert!(
        s.attrs("main a", "href").await.is_empty(),
        "no link into a request"
    );
    shot(&s, "scenario5-deadlines.png", Some("console-deadlines.png")).await;
    s.find("div.who form button[type=submit]")
        .await
        .click()
        .await;
    s.wait_for_path("/console/sign-in").await;

    // The DSR officer: not its page (the policy gives it no audit.read); its own queue has
    // the same request, with the review to answer it.
    sign_in(&s, &vault, "dsr_officer").await;
    english(&s).await;
    let hrefs = s.attrs("nav a", "href").await;
    assert!(
        hrefs.iter().any(|h| h.ends_with("/console/dsr")),
        "{hrefs:?}"
    );
    assert!(
        hrefs.iter().all(|h| !h.ends_with("/console/deadlines")),
        "{hrefs:?}"
    );
    s.goto(&format!("{}/console/deadlines", vault.addr)).await;
    let refusal = s.find("main p.error").await.text().await;
    assert!(refusal.contains("may not"), "{refusal}");
    assert!(s.attrs("#overdue", "id").await.is_empty());
    s.find("nav a[href='/console/dsr']").await.click().await;
    s.wait_for_path("/console/dsr").await;
    assert_eq!(
        s.attrs(
            &format!("#open-requests tr[data-request='{rid}'] [data-deadline]"),
            "data-deadline"
        )
        .await,
        ["overdue"]
    );
    s.wait_for(&format!(
        "#corrections tr[data-correction='{rid}'] a.button"
    ))
    .await;
    shot(&s, "scenario5-dsr-queue.png", None).await;
    s.close().await;
    vault.stop().await;
}
