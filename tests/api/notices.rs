//! Issue 16 §4: registered notices, refusals and re-consent (REQ-05, REQ-06, REQ-08).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{copy_policies, spawn_app, spawn_app_with, spawn_on, zhang_san, TestApp};

/// Lower-case hex SHA-256 of a shipped notice text, computed here with `ring` directly.
fn shipped_hash(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies/notices")
        .join(file);
    let bytes = std::fs::read(path).unwrap();
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn put_consent(
    app: &TestApp,
    id: &str,
    purpose: &str,
    role: &str,
    body: Value,
) -> crate::helpers::Resp {
    let purpose_header = if role == "guest" {
        "data_subject_request"
    } else {
        "check_in"
    };
    let req = app
        .client
        .put(format!("{}/v1/guests/{id}/consents/{purpose}", app.addr))
        .bearer_auth(if role == "guest" {
            app.token_for("guest", id)
        } else {
            app.token(role)
        })
        .header("X-Purpose", purpose_header)
        .json(&body);
    app.send(req).await
}

async fn consents(app: &TestApp, id: &str) -> Value {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}/consents"),
            Some("pms"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

fn current<'a>(ledger: &'a Value, purpose: &str) -> &'a Value {
    ledger["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no current consent for {purpose}: {ledger}"))
}

async fn marketing_read(app: &TestApp, id: &str) -> StatusCode {
    app.call(
        Method::GET,
        &format!("/v1/guests/{id}"),
        Some("marketing"),
        Some("marketing"),
        None,
    )
    .await
    .status
}

/// REQ-05: a consent names a registered notice version (else 422 `unknown_notice_version`,
/// nothing stored), and the ledger stores the SHA-256 of the text in the language shown.
#[tokio::test]
async fn req05_a_consent_must_name_a_registered_notice_and_the_ledger_stores_its_hash() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    for body in [
        json!({"notice_version":"2025-01","channel":"app"}),
        json!({"notice_version":"1","channel":"app","decision":"refused"}),
    ] {
        let r = put_consent(&app, &id, "marketing", "pms", body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.body["code"], "unknown_notice_version", "{}", r.text);
    }
    // Malformed input is still `validation_failed`, naming the field.
    let r = put_consent(
        &app,
        &id,
        "marketing",
        "pms",
        json!({"notice_version":"2026-11","channel":"app","notice_language":"fr"}),
    )
    .await;
    assert_eq!(r.body["code"], "validation_failed", "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "notice_language");
    let ledger = consents(&app, &id).await;
    assert_eq!(ledger["consents"], json!([]), "nothing stored: {ledger}");
    assert_eq!(ledger["history"], json!([]));
    assert_eq!(marketing_read(&app, &id).await, StatusCode::FORBIDDEN);

    // Registered: the default language is zh-CN; `en` stores the English text's hash.
    let r = put_consent(
        &app,
        &id,
        "marketing",
        "pms",
        json!({"notice_version":"2026-11","channel":"front_desk"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "granted");
    assert_eq!(r.body["notice_sha256"], shipped_hash("2026-11.zh-CN.md"));
    let r = put_consent(
        &app,
        &id,
        "personalization",
        "pms",
        json!({"notice_version":"2026-11","notice_language":"en","channel":"app"}),
    )
    .await;
    assert_eq!(
        r.body["notice_sha256"],
        shipped_hash("2026-11.en.md"),
        "{}",
        r.text
    );
    assert_ne!(
        shipped_hash("2026-11.en.md"),
        shipped_hash("2026-11.zh-CN.md")
    );
    let ledger = consents(&app, &id).await;
    let history = ledger["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0]["notice_sha256"],
        shipped_hash("2026-11.zh-CN.md")
    );
    assert_eq!(history[0]["initiated_by"], "hotel");
    assert_eq!(history[1]["notice_sha256"], shipped_hash("2026-11.en.md"));
    assert_eq!(marketing_read(&app, &id).await, StatusCode::OK);

    // At registration too: an unregistered version refuses the whole request, no guest made.
    let mut body = json!({"fields": {"full_name": "王五"}, "consents": [{"purpose": "marketing", "notice_version": "2099-01", "channel": "app"}]});
    let r = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["code"], "unknown_notice_version");
    assert!(
        !r.text.contains("2099-01"),
        "the value is not echoed: {}",
        r.text
    );
    body["consents"][0]["notice_version"] = json!("2026-11");
    let r = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let new_id = r.body["guest_id"].as_str().unwrap().to_string();
    let ledger = consents(&app, &new_id).await;
    assert_eq!(
        current(&ledger, "marketing")["notice_sha256"],
        shipped_hash("2026-11.zh-CN.md")
    );
}

/// REQ-05 (Network Data Security Regulation Art. 22(5)): a refusal is recorded; the hotel
/// asking again (a grant or refusal it prompted) within `consent.re_ask_after_days` (30) is
/// 409 `re_ask_too_soon` and changes nothing; what the guest does on its own is not re-asking.
#[tokio::test]
async fn req05_a_refusal_is_recorded_and_the_hotel_may_not_ask_again_within_30_days() {
    let app = spawn_app().await;
    let a = app.create_guest(zhang_san()).await;
    let b = app.create_guest(json!({"full_name": "李四"})).await;
    let refuse = json!({"notice_version":"2026-11","channel":"front_desk","decision":"refused"});
    let ask = json!({"notice_version":"2026-11","channel":"front_desk"});
    for id in [&a, &b] {
        let r = put_consent(&app, id, "marketing", "pms", refuse.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], "refused");
        assert!(r.body["refused_at"].is_string(), "{}", r.text);
    }
    let ledger = consents(&app, &a).await;
    assert_eq!(current(&ledger, "marketing")["status"], "refused");
    assert_eq!(ledger["history"][0]["status"], "refused");
    assert_eq!(ledger["history"][0]["initiated_by"], "hotel");
    assert_eq!(marketing_read(&app, &a).await, StatusCode::FORBIDDEN);

    // The hotel asks again: refused, audited, nothing recorded.
    let audit_before = app.audit_count();
    for body in [
        ask.clone(),
        refuse.clone(),
        json!({"notice_version":"2026-11","channel":"app","initiated_by":"hotel"}),
    ] {
        let r = put_consent(&app, &a, "marketing", "front_desk", body).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.body["code"], "re_ask_too_soon");
    }
    assert_eq!(
        app.audit_count(),
        audit_before + 3,
        "each refusal of the prompt is audited"
    );
    assert_eq!(
        consents(&app, &a).await["history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Another purpose is another question.
    let r = put_consent(&app, &a, "personalization", "pms", ask.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Day 29: still too soon.
    app.clock.advance(time::Duration::days(29));
    let r = put_consent(&app, &a, "marketing", "pms", ask.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    // The guest acts on its own: its own token, or staff recording the guest's own request.
    let r = put_consent(&app, &b, "marketing", "guest", ask.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "granted");
    let r = put_consent(
        &app,
        &a,
        "marketing",
        "pms",
        json!({"notice_version":"2026-11","channel":"front_desk","initiated_by":"guest"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(marketing_read(&app, &a).await, StatusCode::OK);
    let ledger = consents(&app, &b).await;
    let last = ledger["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["status"].as_str(), last["initiated_by"].as_str()),
        (Some("granted"), Some("guest"))
    );

    // A refusal of a standing consent withdraws it at once.
    let r = put_consent(&app, &b, "marketing", "guest", refuse.clone()).await;
    assert_eq!(r.body["status"], "refused", "{}", r.text);
    assert_eq!(marketing_read(&app, &b).await, StatusCode::FORBIDDEN);
    let statuses: Vec<String> = consents(&app, &b).await["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["refused", "granted", "withdrawn", "refused"]);

    // Day 31 after the first refusals: the hotel may ask a again (b refused again on day 29).
    app.clock.advance(time::Duration::days(2));
    let r = put_consent(&app, &b, "marketing", "pms", ask.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let c = app.create_guest(json!({"full_name": "王五"})).await;
    let r = put_consent(&app, &c, "marketing", "pms", refuse.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    app.clock.advance(time::Duration::days(30));
    let r = put_consent(&app, &c, "marketing", "pms", ask.clone()).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "30 days after the refusal the hotel may ask: {}",
        r.text
    );
    assert!(!app
        .error_bodies
        .lock()
        .unwrap()
        .iter()
        .any(|b| b.contains("2026-11")));
}

/// `consent.re_ask_after_days` is configurable, and out of range stops the start.
#[tokio::test]
async fn req05_re_ask_after_days_comes_from_the_config() {
    let app = spawn_app_with(|c, _| c.consent.re_ask_after_days = 2).await;
    let id = app.create_guest(zhang_san()).await;
    let r = put_consent(
        &app,
        &id,
        "marketing",
        "pms",
        json!({"notice_version":"2026-11","channel":"app","decision":"refused"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.clock.advance(time::Duration::days(1));
    let ask = json!({"notice_version":"2026-11","channel":"app"});
    assert_eq!(
        put_consent(&app, &id, "marketing", "pms", ask.clone())
            .await
            .status,
        StatusCode::CONFLICT
    );
    app.clock
        .advance(time::Duration::days(1) + time::Duration::seconds(1));
    assert_eq!(
        put_consent(&app, &id, "marketing", "pms", ask).await.status,
        StatusCode::OK
    );

    let err = guestvault::config::Config::load_with_env(
        None,
        [(
            "GUESTVAULT_CONSENT_RE_ASK_AFTER_DAYS".to_string(),
            "0".to_string(),
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("consent.re_ask_after_days"), "{err}");
}

/// REQ-06: the shipped 2026-12 discloses more than 2026-11 (the minors' registration fields,
/// the identity stages, the legal holds), but none of it widens a consent-based purpose:
/// consents to 2026-11 still count and show `granted`, not `stale`, and new consents may name
/// either version, each with its own text's hash.
#[tokio::test]
async fn req06_consents_to_2026_11_stay_valid_under_2026_12_which_widens_no_consent_purpose() {
    let app = spawn_app().await;
    let old = app.create_guest(zhang_san()).await;
    let new = app.create_guest(json!({"full_name": "李四"})).await;
    for (id, version) in [(&old, "2026-11"), (&new, "2026-12")] {
        let r = put_consent(
            &app,
            id,
            "marketing",
            "pms",
            json!({"notice_version": version, "channel":"app"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], "granted", "{}", r.text);
        assert_eq!(
            r.body["notice_sha256"],
            shipped_hash(&format!("{version}.zh-CN.md"))
        );
        assert_eq!(marketing_read(&app, id).await, StatusCode::OK, "{version}");
        let ledger = consents(&app, id).await;
        assert_eq!(
            current(&ledger, "marketing")["status"],
            "granted",
            "{ledger}"
        );
    }
    assert_ne!(
        shipped_hash("2026-11.zh-CN.md"),
        shipped_hash("2026-12.zh-CN.md")
    );
}

/// REQ-06 (PIPL Art. 14(2)): widening `marketing` by a field needs a notice that discloses it
/// (the start refuses otherwise, naming file and key); consents given to the older notice are
/// then `stale` and count as absent, until the guest consents to the new one.
#[tokio::test]
async fn req06_widening_a_purpose_makes_older_consents_stale_until_the_guest_consents_again() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let other = app.create_guest(json!({"full_name": "李四"})).await;
    for g in [&id, &other] {
        let r = put_consent(
            &app,
            g,
            "marketing",
            "pms",
            json!({"notice_version":"2026-11","channel":"app"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(marketing_read(&app, &id).await, StatusCode::OK);
    let (dir, mut config) = app.stop().await;

    // The policy widens marketing by `address`, without a new notice: the start is refused.
    let policies = dir.path().join("widened");
    copy_policies(&policies);
    let access = std::fs::read_to_string(policies.join("access.toml")).unwrap();
    let widened = access.replacen(
        "fields = [\"full_name\", \"email\", \"mobile\", \"birth_date\", \"membership_level\"]",
        "fields = [\"full_name\", \"email\", \"mobile\", \"birth_date\", \"membership_level\", \"address\"]",
        1,
    );
    assert_ne!(widened, access, "the fixture must change");
    std::fs::write(policies.join("access.toml"), widened).unwrap();
    config.policies.dir = Some(policies.clone());
    let err = format!(
        "{:#}",
        guestvault::startup::App::build(config.clone())
            .await
            .unwrap_err()
    );
    assert!(
        err.contains("notices.toml")
            && err.contains("`notices.\"2026-12\".purposes.marketing.fields`")
            && err.contains("`address`"),
        "{err}"
    );

    // Register 2027-01, which discloses it (derived from 2026-12, the latest, last in the file).
    let text = "# 2027-01\n\nMarketing now also uses your address.\n";
    std::fs::write(policies.join("notices/2027-01.zh-CN.md"), text).unwrap();
    let hash: String = ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let notices = std::fs::read_to_string(policies.join("notices.toml")).unwrap();
    let start = notices.find("[notices.\"2026-12\"]").unwrap();
    let newer = notices[start..]
        .replace("\"2026-12\"", "\"2027-01\"")
        .replace("effective = \"2026-12-01\"", "effective = \"2027-01-01\"")
        .replace(
            "fields = [\"full_name\", \"email\", \"mobile\", \"birth_date\", \"membership_level\"]",
            "fields = [\"full_name\", \"email\", \"mobile\", \"birth_date\", \"membership_level\", \"address\"]",
        )
        .lines()
        .filter(|l| !l.starts_with("texts."))
        .map(|l| {
            if l == "effective = \"2027-01-01\"" {
                format!("{l}\ntexts.zh-CN = {{ file = \"notices/2027-01.zh-CN.md\", sha256 = \"{hash}\" }}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        policies.join("notices.toml"),
        format!("{notices}\n{newer}\n"),
    )
    .unwrap();
    let app = spawn_on(dir, config).await;

    // Both consents are stale: absent for processing, shown as stale.
    assert_eq!(marketing_read(&app, &id).await, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("marketing"),
            Some("marketing"),
            None,
        )
        .await;
    assert_eq!(
        r.body["code"], "consent_required",
        "as without consent: {}",
        r.text
    );
    let ledger = consents(&app, &id).await;
    assert_eq!(current(&ledger, "marketing")["status"], "stale", "{ledger}");
    assert_eq!(current(&ledger, "marketing")["notice_version"], "2026-11");
    // Consenting again to the old notice does not cover the change.
    let r = put_consent(
        &app,
        &other,
        "marketing",
        "pms",
        json!({"notice_version":"2026-11","channel":"app","initiated_by":"guest"}),
    )
    .await;
    assert_eq!(r.body["status"], "stale", "{}", r.text);
    assert_eq!(marketing_read(&app, &other).await, StatusCode::FORBIDDEN);
    // The new one does.
    let r = put_consent(
        &app,
        &id,
        "marketing",
        "pms",
        json!({"notice_version":"2027-01","channel":"app"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "granted");
    assert_eq!(r.body["notice_sha256"], hash);
    assert_eq!(marketing_read(&app, &id).await, StatusCode::OK);
    assert_eq!(marketing_read(&app, &other).await, StatusCode::FORBIDDEN);
    // Personalization did not change: its consents are not affected.
    let r = put_consent(
        &app,
        &other,
        "personalization",
        "pms",
        json!({"notice_version":"2026-11","channel":"app"}),
    )
    .await;
    assert_eq!(r.body["status"], "granted", "{}", r.text);
}

/// The start is refused when a registered text does not match its SHA-256, naming file and key.
#[tokio::test]
async fn a_notice_text_that_does_not_match_its_hash_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(dir.path());
    guestvault::cli::init(&config).unwrap();
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let file = policies.join("notices/2026-11.en.md");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\nThe hotel may also sell your data.\n");
    std::fs::write(&file, text).unwrap();
    config.policies.dir = Some(policies);
    let err = format!(
        "{:#}",
        guestvault::startup::App::build(config).await.unwrap_err()
    );
    assert!(
        err.contains("notices.toml") && err.contains("`notices.\"2026-11\".texts.en.sha256`"),
        "{err}"
    );
}
