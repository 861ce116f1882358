//! Scenario 2 (issue 17): a DSR officer signs in, finds a guest, reveals a field with a
//! reason, approves a correction request and sees it leave the queue, and erases a guest,
//! getting the receipt. Screenshots under `<target dir>/console-screenshots/`.

use std::time::Duration;

use super::{browser, screenshot_dir, sign_in, Driver, Vault};

const MOBILE: &str = "13812345678";

/// The guest's own token (its `sub` is its id).
fn guest_token(vault: &Vault, gid: &str) -> String {
    guestvault::auth::mint_with_config(&vault.config, "guest", gid, Duration::from_secs(900))
        .unwrap()
}

async fn register(vault: &Vault, name: &str, id_number: &str) -> String {
    let (status, body) = vault
        .api(
            reqwest::Method::POST,
            "/v1/guests",
            "pms",
            "check_in",
            Some(serde_json::json!({"fields": {
                "full_name": name, "gender": "F", "birth_date": "1949-12-31", "nationality": "CN",
                "id_type": "cn_resident_id", "id_number": id_number, "mobile": MOBILE,
            }})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["guest_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_2_dsr_officer_finds_reveals_approves_and_erases() {
    let Some((chromium, driver_bin)) = browser() else {
        return;
    };
    let vault = Vault::start().await;
    let gid = register(&vault, "张三丰", "11010519491231002X").await;
    // A guest who stayed: the erasure below keeps its registration (one who never stayed is
    // erased whole, issue 16 §3).
    let (status, body) = vault
        .api(
            reqwest::Method::POST,
            &format!("/v1/guests/{gid}/stays"),
            "pms",
            "check_in",
            Some(
                serde_json::json!({"fields": {"property": "SHA01", "check_in": "2026-11-20",
                "check_out": "2026-11-23", "room_number": "1208"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The guest asks to correct its name (an identity field): a request to verify (REQ-30).
    let r = reqwest::Client::new()
        .patch(format!("{}/v1/guests/{gid}", vault.addr))
        .bearer_auth(guest_token(&vault, &gid))
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

    let downloads = tempfile::tempdir().unwrap();
    let driver = Driver::start(&driver_bin).await;
    let s = driver.session(&chromium, downloads.path()).await;
    let shots = screenshot_dir();
    sign_in(&s, &vault, "dsr_officer").await;

    // Find the guest: a POST form, so the number never reaches a URL.
    s.find("nav a[href='/console/guest']").await.click().await;
    s.wait_for_path("/console/guest").await;
    s.find("#s-field option[value=mobile]").await.click().await;
    s.find("#s-value").await.send_keys(MOBILE).await;
    s.find("#search").await.click().await;
    s.wait_for("#results").await;
    assert!(!s.url().await.contains(MOBILE));
    assert_eq!(
        s.attrs("#results a[data-guest]", "data-guest").await,
        [gid.as_str()]
    );
    s.find("#results a[data-guest]").await.click().await;
    s.wait_for("#record").await;
    let masked = s.find("tr[data-field=mobile]").await.text().await;
    assert!(!masked.contains(MOBILE), "masked first: {masked}");

    // Reveal the mobile with a reason code.
    s.find("#r-field option[value=mobile]").await.click().await;
    s.find("#r-reason option[value=data_subject_request]")
        .await
        .click()
        .await;
    s.find("#reveal-button").await.click().await;
    s.wait_for("[data-revealed=mobile]").await;
    let shown = s.find("[data-revealed=mobile]").await.text().await;
    assert_eq!(shown, format!("+86{MOBILE}"));
    assert_eq!(
        s.url().await,
        format!("{}/console/guests/{gid}/reveal", vault.addr)
    );
    s.screenshot(&shots.join("scenario2-revealed.png")).await;

    // Approve the correction request: it leaves the queue.
    s.find("nav a[href='/console/dsr']").await.click().await;
    s.wait_for_path("/console/dsr").await;
    assert_eq!(
        s.attrs("#corrections tr[data-correction]", "data-correction")
            .await,
        [rid.as_str()]
    );
    s.screenshot(&shots.join("scenario2-queue.png")).await;
    s.find(&format!("tr[data-correction='{rid}'] a.button"))
        .await
        .click()
        .await;
    s.wait_for("#decide").await;
    assert!(s.find("#proposed").await.text().await.contains("张三"));
    s.find("#d-reason option[value=document_checked]")
        .await
        .click()
        .await;
    s.find("#approve").await.click().await;
    s.wait_for("#notice").await;
    assert_eq!(s.attrs("#notice", "data-decided").await, [rid.as_str()]);
    assert!(
        s.attrs("#corrections tr[data-correction]", "data-correction")
            .await
            .is_empty(),
        "the request left the queue"
    );
    assert!(s
        .attrs("#open-requests tr[data-request]", "data-request")
        .await
        .iter()
        .all(|r| *r != rid));
    s.screenshot(&shots.join("scenario2-approved.png")).await;

    // Erase the guest (asked at the desk): the receipt.
    s.find("#ie-guest").await.send_keys(&gid).await;
    s.find("#ie-reason option[value=guest_request]")
        .await
        .click()
        .await;
    s.find("#ie-confirm").await.click().await;
    s.find("#erase").await.click().await;
    s.wait_for("#receipt").await;
    let receipt = s.find("#receipt").await.text().await;
    assert!(receipt.contains("mobile"), "erased: {receipt}");
    assert!(receipt.contains("id_number"), "kept by law: {receipt}");
    assert_eq!(
        s.attrs("#receipt [data-status]", "data-status").await,
        ["partially_completed"]
    );
    let receipt_id = s.find("#receipt-id").await.text().await;
    assert_eq!(receipt_id.len(), 36);
    s.screenshot(&shots.join("scenario2-erasure-receipt.png"))
        .await;
    // The vault agrees: restricted to storage, and the receipt is listed.
    let (status, body) = vault
        .api(
            reqwest::Method::GET,
            &format!("/v1/guests/{gid}"),
            "front_desk",
            "check_in",
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "restricted");
    s.goto(&format!("{}/console/dsr", vault.addr)).await;
    s.wait_for(&format!(
        "#receipts a[href='/console/dsr/requests/{receipt_id}']"
    ))
    .await;
    s.close().await;
    vault.stop().await;
}
