//! Minors (REQ-10; PIPL Art. 28, 31; 未成年人保护法 Art. 57): registration under 18 with a
//! guardian or an accompanying adult, separate consents given by a guardian for a guest under
//! 14, marketing refused, the 14th birthday on the China date, and no age oracle for a caller
//! that cannot see the birth date.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::helpers::{self, spawn_app, zhang_san, Resp, TestApp};

/// A valid 18-digit resident ID born on `yyyymmdd` (ISO 7064 MOD 11-2 check digit); an odd
/// `seq` is a male, an even one a female.
fn resident_id(yyyymmdd: &str, seq: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let body = format!("110105{yyyymmdd}{seq}");
    let sum: u32 = body
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// A registration record of a guest born on `birth` (`YYYY-MM-DD`), male, resident ID.
fn born(birth: &str) -> serde_json::Map<String, Value> {
    let digits = birth.replace('-', "");
    json!({
        "full_name": "李小明",
        "gender": "M",
        "birth_date": birth,
        "nationality": "CN",
        "id_type": "cn_resident_id",
        "id_number": resident_id(&digits, "003"),
    })
    .as_object()
    .unwrap()
    .clone()
}

fn with_guardian(mut fields: serde_json::Map<String, Value>) -> Value {
    fields.insert("guardian_name".into(), json!("李大明"));
    fields.insert("guardian_mobile".into(), json!("139 1234 5678"));
    fields.insert("guardian_relationship".into(), json!("parent"));
    Value::Object(fields)
}

async fn register(app: &TestApp, role: &str, fields: Value) -> Resp {
    app.call(
        Method::POST,
        "/v1/guests",
        Some(role),
        Some("check_in"),
        Some(json!({ "fields": fields })),
    )
    .await
}

async fn grant(app: &TestApp, role: &str, purpose: &str, id: &str, of: &str, body: Value) -> Resp {
    let mut body = body;
    let o = body.as_object_mut().unwrap();
    o.entry("notice_version").or_insert(json!("2026-11"));
    o.entry("channel").or_insert(json!("front_desk"));
    app.call(
        Method::PUT,
        &format!("/v1/guests/{id}/consents/{of}"),
        Some(role),
        Some(purpose),
        Some(body),
    )
    .await
}

fn guardian_consent() -> Value {
    json!({"separate": true, "given_by": "guardian", "guardian_relationship": "parent",
           "guardian_ticket": "FORM-2026-118"})
}

async fn consents(app: &TestApp, role: &str, purpose: &str, id: &str) -> Resp {
    let path = format!("/v1/guests/{id}/consents");
    app.call(Method::GET, &path, Some(role), Some(purpose), None)
        .await
}

fn current<'a>(list: &'a Resp, purpose: &str) -> &'a Value {
    list.body["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no {purpose} consent in {}", list.text))
}

async fn personalization_read(app: &TestApp, id: &str) -> Resp {
    let path = format!("/v1/guests/{id}");
    app.call(
        Method::GET,
        &path,
        Some("marketing"),
        Some("personalization"),
        None,
    )
    .await
}

fn code(r: &Resp) -> (StatusCode, Option<&str>) {
    (r.status, r.body["code"].as_str())
}

fn guest_count(app: &TestApp) -> i64 {
    app.sql_i64("SELECT count(*) FROM guests", &[])
}

/// A vault on the shipped policies with one text replaced in `file` (which must contain it).
async fn spawn_with_policy_edit(file: &str, from: &str, to: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = helpers::test_config(dir.path());
    let policies = dir.path().join("policies");
    // The notice texts (`notices/`) come along.
    helpers::copy_policies(&policies);
    let path = policies.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace(from, to);
    assert_ne!(edited, text, "{file} has no {from:?}");
    std::fs::write(&path, edited).unwrap();
    config.policies.dir = Some(policies);
    guestvault::cli::init(&config).unwrap();
    helpers::spawn_on(dir, config).await
}

#[tokio::test]
async fn req_10_a_ten_year_old_is_registered_only_with_a_guardian_or_an_accompanying_adult() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let child = born("2016-03-15");

    // Without the guardian's contact or an accompanying adult: 422, nothing stored.
    let before = guest_count(&app);
    let r = register(&app, "pms", Value::Object(child.clone())).await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("guardian_required")),
        "{}",
        r.text
    );
    assert!(!r.text.contains("2016"), "the refusal echoes nothing");
    assert_eq!(guest_count(&app), before);

    // The name alone is not enough (未成年人保护法 Art. 57: the guardian's contact).
    let mut name_only = child.clone();
    name_only.insert("guardian_name".into(), json!("李大明"));
    let r = register(&app, "pms", Value::Object(name_only)).await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("guardian_required"))
    );

    // A guardian mobile is validated as a mobile.
    let mut bad = child.clone();
    bad.insert("guardian_name".into(), json!("李大明"));
    bad.insert("guardian_mobile".into(), json!("12345"));
    let r = register(&app, "pms", Value::Object(bad)).await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    assert_eq!(r.body["errors"][0]["field"], "guardian_mobile");

    // With the guardian's name and mobile: registered; the desk sees the mobile masked.
    let r = register(&app, "pms", with_guardian(child.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["guest_id"].as_str().unwrap().to_string();
    let path = format!("/v1/guests/{id}");
    let r = app
        .call(Method::GET, &path, Some("pms"), Some("check_in"), None)
        .await;
    assert_eq!(r.body["fields"]["guardian_mobile"], "+8613912345678");
    assert_eq!(r.body["fields"]["guardian_relationship"], "parent");
    let r = app
        .call(
            Method::GET,
            &path,
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.body["views"]["guardian_mobile"], "masked");
    assert_ne!(r.body["fields"]["guardian_mobile"], "+8613912345678");

    // Or with an accompanying adult the caller may read.
    let adult = app.create_guest(zhang_san()).await;
    let mut accompanied = child.clone();
    accompanied.insert("accompanied_by".into(), json!(adult));
    let r = register(&app, "pms", Value::Object(accompanied)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // An unknown adult (or an erased one) is refused like a malformed one, naming the field.
    for other in [uuid::Uuid::now_v7().to_string(), "not-an-id".to_string()] {
        let mut accompanied = child.clone();
        accompanied.insert("accompanied_by".into(), json!(other));
        let r = register(&app, "pms", Value::Object(accompanied)).await;
        assert_eq!(
            code(&r),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
        );
        assert_eq!(r.body["errors"][0]["field"], "accompanied_by");
    }
}

#[tokio::test]
async fn req_10_under_18_registration_needs_guardian_data_and_an_adult_does_not() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    // 16 years old, known by the resident ID alone: still a minor.
    let mut teen = born("2010-05-01");
    teen.remove("birth_date");
    let r = register(&app, "front_desk", Value::Object(teen.clone())).await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("guardian_required"))
    );
    let r = register(&app, "front_desk", with_guardian(teen)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // 18 today (China date): an adult, no guardian needed.
    let r = register(&app, "pms", Value::Object(born("2008-11-20"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // One day short of 18: a minor.
    let r = register(&app, "pms", Value::Object(born("2008-11-21"))).await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("guardian_required"))
    );

    // The refusals are audited with their code, and no value.
    let reasons = app.sql_column(
        "SELECT reason FROM audit_events WHERE action = 'guest.create' AND outcome = 'denied'
         ORDER BY seq",
        &[],
    );
    let reasons: Vec<&str> = reasons.iter().map(|r| r.as_deref().unwrap()).collect();
    assert_eq!(reasons, ["guardian_required", "guardian_required"]);
}

#[tokio::test]
async fn req_10_a_child_consents_only_through_a_separate_consent_given_by_a_guardian() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(with_guardian(born("2016-03-15"))).await;
    let adult = app.create_guest(zhang_san()).await;

    // The child's own consent, or a guardian's that is not separate: refused.
    for body in [
        json!({"separate": true}),
        json!({"separate": true, "given_by": "guest"}),
        json!({"separate": false, "given_by": "guardian", "guardian_relationship": "parent",
               "guardian_ticket": "FORM-1"}),
    ] {
        let r = grant(&app, "pms", "check_in", &id, "personalization", body).await;
        assert_eq!(
            code(&r),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("guardian_consent_required")
            ),
            "{}",
            r.text
        );
    }
    // A guardian's consent names the relationship and a reference that is no personal data.
    for (body, field) in [
        (
            json!({"separate": true, "given_by": "guardian", "guardian_ticket": "FORM-1"}),
            "guardian_relationship",
        ),
        (
            json!({"separate": true, "given_by": "guardian", "guardian_relationship": "parent"}),
            "guardian_ticket",
        ),
        (
            json!({"separate": true, "given_by": "guardian", "guardian_relationship": "parent",
                   "guardian_ticket": "13912345678"}),
            "guardian_ticket",
        ),
        (
            json!({"separate": true, "given_by": "guardian", "guardian_relationship": "parent",
                   "guardian_guest_id": uuid::Uuid::now_v7().to_string()}),
            "guardian_guest_id",
        ),
        (json!({"separate": true, "given_by": "mother"}), "given_by"),
    ] {
        let r = grant(&app, "pms", "check_in", &id, "personalization", body).await;
        assert_eq!(
            code(&r),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
            "{}",
            r.text
        );
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
        assert!(!r.text.contains("13912345678"));
    }
    assert_eq!(
        code(&personalization_read(&app, &id).await),
        (StatusCode::FORBIDDEN, Some("consent_required"))
    );

    // The guardian's separate consent, naming the registered guardian: recorded as such.
    let mut body = guardian_consent();
    body["guardian_guest_id"] = json!(adult);
    let r = grant(&app, "pms", "check_in", &id, "personalization", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["given_by"], "guardian");
    assert_eq!(r.body["guardian_relationship"], "parent");
    assert_eq!(r.body["guardian_guest_id"], json!(adult));
    assert_eq!(r.body["confirm_needed"], false);
    let list = consents(&app, "pms", "check_in", &id).await;
    assert_eq!(current(&list, "personalization")["given_by"], "guardian");
    let events = list.body["history"].as_array().unwrap();
    assert_eq!(events.last().unwrap()["given_by"], "guardian");
    assert_eq!(events.last().unwrap()["guardian_ticket"], "FORM-2026-118");

    // Now the child's data may be used for the purpose, shown as it would be for an adult
    // with the same consent (a different view would tell the age to the marketing role).
    let r = grant(
        &app,
        "pms",
        "check_in",
        &adult,
        "personalization",
        json!({"separate": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["given_by"], "guest");
    let child_read = personalization_read(&app, &id).await;
    assert_eq!(child_read.status, StatusCode::OK, "{}", child_read.text);
    let adult_read = personalization_read(&app, &adult).await;
    assert_eq!(
        child_read.body["views"]["full_name"],
        adult_read.body["views"]["full_name"]
    );
    assert_eq!(child_read.body["views"]["full_name"], "masked");

    // Withdrawing it is one call, as for any consent.
    let path = format!("/v1/guests/{id}/consents/personalization");
    let r = app
        .call(Method::DELETE, &path, Some("pms"), Some("check_in"), None)
        .await;
    assert_eq!(r.body["status"], "withdrawn");
    assert_eq!(
        code(&personalization_read(&app, &id).await),
        (StatusCode::FORBIDDEN, Some("consent_required"))
    );
}

#[tokio::test]
async fn req_10_marketing_to_a_child_is_refused_even_with_a_guardians_consent() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(with_guardian(born("2016-03-15"))).await;

    let r = grant(
        &app,
        "pms",
        "check_in",
        &id,
        "marketing",
        guardian_consent(),
    )
    .await;
    assert_eq!(
        code(&r),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("minor_marketing_refused")
        ),
        "{}",
        r.text
    );
    // The child's own consent is refused for want of a guardian first.
    let r = grant(
        &app,
        "pms",
        "check_in",
        &id,
        "marketing",
        json!({"separate": true}),
    )
    .await;
    assert_eq!(
        code(&r),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("guardian_consent_required")
        )
    );
    // Nothing was recorded, and marketing reads stay refused.
    let list = consents(&app, "pms", "check_in", &id).await;
    assert!(
        list.body["consents"].as_array().unwrap().is_empty(),
        "{}",
        list.text
    );
    let path = format!("/v1/guests/{id}");
    let r = app
        .call(
            Method::GET,
            &path,
            Some("marketing"),
            Some("marketing"),
            None,
        )
        .await;
    assert_eq!(code(&r), (StatusCode::FORBIDDEN, Some("consent_required")));
    // Registering the child with a marketing consent is refused too.
    let r = app
        .call(
            Method::POST,
            "/v1/guests",
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields": with_guardian(born("2016-04-01")),
                        "consents": [{"purpose": "marketing", "notice_version": "2026-11",
                                      "channel": "front_desk", "separate": true,
                                      "given_by": "guardian", "guardian_relationship": "parent",
                                      "guardian_ticket": "FORM-9"}]})),
        )
        .await;
    assert_eq!(
        code(&r),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("minor_marketing_refused")
        )
    );
}

#[tokio::test]
async fn req_10_marketing_to_a_child_with_a_guardians_consent_is_allowed_when_the_policy_says_so() {
    let app = spawn_with_policy_edit(
        "access.toml",
        "allow_marketing_under_14 = false",
        "allow_marketing_under_14 = true",
    )
    .await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(with_guardian(born("2016-03-15"))).await;

    // Still only a guardian's separate consent.
    let r = grant(
        &app,
        "pms",
        "check_in",
        &id,
        "marketing",
        json!({"separate": true}),
    )
    .await;
    assert_eq!(
        code(&r),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("guardian_consent_required")
        )
    );
    let r = grant(
        &app,
        "pms",
        "check_in",
        &id,
        "marketing",
        guardian_consent(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let path = format!("/v1/guests/{id}");
    let r = app
        .call(
            Method::GET,
            &path,
            Some("marketing"),
            Some("marketing"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn req_10_the_fourteenth_birthday_counts_on_the_china_date() {
    let app = spawn_app().await;
    // 23:59 in Beijing on 24 November 2026: the guest born on 25 November 2012 is 13.
    app.clock.set(datetime!(2026-11-24 15:59 UTC));
    let id = app.create_guest(with_guardian(born("2012-11-25"))).await;
    let r = grant(
        &app,
        "pms",
        "check_in",
        &id,
        "personalization",
        guardian_consent(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = grant(
        &app,
        "pms",
        "check_in",
        &id,
        "marketing",
        json!({"separate": true}),
    )
    .await;
    assert_eq!(
        code(&r),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("guardian_consent_required")
        )
    );
    let list = consents(&app, "pms", "check_in", &id).await;
    assert_eq!(current(&list, "personalization")["confirm_needed"], false);

    // 00:00 in Beijing on the birthday; the UTC date is still the 24th. The guest is 14.
    app.clock.set(datetime!(2026-11-24 16:00 UTC));
    let r = grant(
        &app,
        "pms",
        "check_in",
        &id,
        "marketing",
        json!({"separate": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["given_by"], "guest");
    assert_eq!(r.body["confirm_needed"], false);

    // The guardian's consent stays valid until the guest confirms or withdraws it, and says so.
    let r = personalization_read(&app, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = consents(&app, "pms", "check_in", &id).await;
    let p = current(&list, "personalization");
    assert_eq!(
        (&p["given_by"], &p["confirm_needed"]),
        (&json!("guardian"), &json!(true))
    );
    // The guest, through its own token, sees it too and confirms it.
    let token = app.token_for("guest", &id);
    let path = format!("/v1/guests/{id}/consents");
    let req = app
        .client
        .get(format!("{}{path}", app.addr))
        .bearer_auth(&token)
        .header("X-Purpose", "data_subject_request");
    let own = app.send(req).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(current(&own, "personalization")["confirm_needed"], true);
    let req = app
        .client
        .put(format!("{}{path}/personalization", app.addr))
        .bearer_auth(&token)
        .header("X-Purpose", "data_subject_request")
        .json(
            &json!({"separate": true, "given_by": "guest", "notice_version": "2026-11",
                      "channel": "app"}),
        );
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (&r.body["given_by"], &r.body["confirm_needed"]),
        (&json!("guest"), &json!(false))
    );
    assert_eq!(personalization_read(&app, &id).await.status, StatusCode::OK);
}

/// The front desk under `guest_service` sees no birth date or ID number, and the marketing
/// role sees the birth date masked (month and day, no year): every answer they get is the
/// same for a child as for an adult, and the rule applies at use as "no consent".
#[tokio::test]
async fn req_10_a_caller_that_cannot_see_the_birth_date_learns_no_age_from_the_answers() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let child = app.create_guest(with_guardian(born("2016-03-15"))).await;
    let adult = app.create_guest(zhang_san()).await;

    let mut answers = Vec::new();
    for id in [&child, &adult] {
        let r = grant(
            &app,
            "front_desk",
            "guest_service",
            id,
            "personalization",
            json!({"separate": true}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let mut body = r.body.clone();
        body.as_object_mut().unwrap().remove("granted_at");
        answers.push(body);
        let list = consents(&app, "front_desk", "guest_service", id).await;
        assert_eq!(
            current(&list, "personalization")["confirm_needed"],
            Value::Null
        );
    }
    assert_eq!(
        answers[0], answers[1],
        "the grant answers alike at every age"
    );
    assert_eq!(answers[0]["confirm_needed"], Value::Null);

    // At use the child's own consent counts as none, answered as for a guest without consent.
    let r = personalization_read(&app, &child).await;
    let no_consent = app.create_guest(zhang_san()).await;
    let none = personalization_read(&app, &no_consent).await;
    assert_eq!(code(&r), (StatusCode::FORBIDDEN, Some("consent_required")));
    assert_eq!(r.text_without_request_id(), none.text_without_request_id());
    assert_eq!(
        personalization_read(&app, &adult).await.status,
        StatusCode::OK
    );

    // A caller that may reveal the resident ID (the desk at check-in) is told at once.
    let r = grant(
        &app,
        "front_desk",
        "check_in",
        &child,
        "personalization",
        json!({"separate": true}),
    )
    .await;
    assert_eq!(
        code(&r),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("guardian_consent_required")
        )
    );
    // ...but not for a passport holder, whose birth date it sees masked: answered as an adult.
    let mut passport = born("2016-03-15");
    passport.insert("nationality".into(), json!("FR"));
    passport.insert("id_type".into(), json!("passport"));
    passport.insert("id_number".into(), json!("18AB12345"));
    let kid = app.create_guest(with_guardian(passport)).await;
    let r = grant(
        &app,
        "front_desk",
        "check_in",
        &kid,
        "personalization",
        json!({"separate": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["confirm_needed"], Value::Null);
    assert_eq!(
        code(&personalization_read(&app, &kid).await),
        (StatusCode::FORBIDDEN, Some("consent_required"))
    );
}

/// REQ-10 with REQ-05 (the notices work on the minors work): a guardian's consent for a child
/// names a registered notice (2026-12, the latest) and the ledger keeps both the giver and the
/// notice's hash; an unregistered version is 422 `unknown_notice_version` before any minors
/// rule; a refusal for the child needs no guardian, ends the guardian's consent and leaves no
/// giver on the current row, and asking again within 30 days is 409 `re_ask_too_soon`.
#[tokio::test]
async fn req_10_a_guardians_consent_names_a_registered_notice_and_a_refusal_needs_no_guardian() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-12-01 10:00 UTC));
    let id = app.create_guest(with_guardian(born("2016-03-15"))).await;
    let mut body = guardian_consent();
    body["notice_version"] = json!("2099-01");
    let r = grant(&app, "pms", "check_in", &id, "personalization", body).await;
    assert_eq!(
        code(&r),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("unknown_notice_version")
        ),
        "{}",
        r.text
    );
    let mut body = guardian_consent();
    body["notice_version"] = json!("2026-12");
    body["notice_language"] = json!("en");
    let r = grant(&app, "pms", "check_in", &id, "personalization", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let hash = {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/notices/2026-12.en.md"),
        )
        .unwrap();
        ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        (
            &r.body["status"],
            &r.body["given_by"],
            &r.body["notice_sha256"]
        ),
        (&json!("granted"), &json!("guardian"), &json!(hash))
    );
    assert_eq!(personalization_read(&app, &id).await.status, StatusCode::OK);
    let list = consents(&app, "pms", "check_in", &id).await;
    let last = list.body["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (
            &last["given_by"],
            &last["guardian_relationship"],
            &last["notice_sha256"]
        ),
        (&json!("guardian"), &json!("parent"), &json!(hash)),
        "{}",
        list.text
    );

    // Refused (the hotel asked, the guardian said no): no guardian fields needed.
    app.clock.set(datetime!(2026-12-02 10:00 UTC));
    let r = grant(
        &app,
        "pms",
        "check_in",
        &id,
        "personalization",
        json!({"decision": "refused", "notice_version": "2026-12"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (&r.body["status"], &r.body["given_by"]),
        (&json!("refused"), &Value::Null),
        "{}",
        r.text
    );
    assert_eq!(
        code(&personalization_read(&app, &id).await),
        (StatusCode::FORBIDDEN, Some("consent_required"))
    );
    app.clock.set(datetime!(2026-12-20 10:00 UTC));
    let mut body = guardian_consent();
    body["notice_version"] = json!("2026-12");
    let r = grant(&app, "pms", "check_in", &id, "personalization", body).await;
    assert_eq!(
        code(&r),
        (StatusCode::CONFLICT, Some("re_ask_too_soon")),
        "{}",
        r.text
    );
}

async fn add_stay(app: &TestApp, role: &str, purpose: &str, id: &str, check_in: &str) -> Resp {
    let check_out = {
        let d = time::Date::parse(
            check_in,
            &time::format_description::well_known::Iso8601::DATE,
        )
        .unwrap();
        (d + time::Duration::days(2)).to_string()
    };
    app.call(
        Method::POST,
        &format!("/v1/guests/{id}/stays"),
        Some(role),
        Some(purpose),
        Some(json!({"fields": {"check_in": check_in, "check_out": check_out}})),
    )
    .await
}

async fn patch(app: &TestApp, role: &str, purpose: &str, id: &str, fields: Value) -> Resp {
    app.call(
        Method::PATCH,
        &format!("/v1/guests/{id}"),
        Some(role),
        Some(purpose),
        Some(json!({ "fields": fields })),
    )
    .await
}

fn stay_count(app: &TestApp, id: &str) -> i64 {
    app.sql_i64("SELECT count(*) FROM stays WHERE guest_id = ?1", &[&id])
}

/// Each stay is a lodging registration (未成年人保护法 Art. 57): a returning guest who was
/// under 18 on the stay's check-in date needs a recorded guardian or accompanying adult, or the
/// stay is refused with 422 `guardian_required` and nothing is stored.
#[tokio::test]
async fn req_10_a_stay_of_a_guest_under_18_on_its_check_in_date_needs_a_recorded_guardian() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    // 18 since 2026-06-01: registered as an adult, no guardian.
    let id = app.create_guest(Value::Object(born("2008-06-01"))).await;

    // A stay that began when the guest was 17 (a back-filled registration): refused.
    let r = add_stay(&app, "pms", "check_in", &id, "2026-05-31").await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("guardian_required")),
        "{}",
        r.text
    );
    assert!(!r.text.contains("2008") && !r.text.contains("2026-05"));
    assert_eq!(stay_count(&app, &id), 0, "nothing stored");
    // From the 18th birthday on: no guardian needed.
    let r = add_stay(&app, "pms", "check_in", &id, "2026-06-01").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = add_stay(&app, "front_desk", "check_in", &id, "2026-11-20").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // A 10-year-old registered with an accompanying adult: a later stay is accepted, and so is
    // one after the guardian's contact replaced the adult.
    let adult = app.create_guest(zhang_san()).await;
    let mut child = born("2016-03-15");
    child.insert("accompanied_by".into(), json!(adult));
    let kid = app.create_guest(Value::Object(child)).await;
    let r = add_stay(&app, "front_desk", "check_in", &kid, "2026-11-20").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // The guardian recorded later (a correction) lets the refused stay in.
    let r = patch(
        &app,
        "pms",
        "check_in",
        &id,
        json!({"guardian_name": "李大明", "guardian_mobile": "139 1234 5678"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = add_stay(&app, "pms", "check_in", &id, "2026-05-31").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(stay_count(&app, &id), 3);

    let reasons = app.sql_column(
        "SELECT reason FROM audit_events WHERE action = 'stay.create' AND outcome = 'denied'",
        &[],
    );
    assert_eq!(reasons, [Some("guardian_required".to_string())]);
}

/// No age oracle at a stay: the desk under `guest_service` sees the birth date masked and no
/// resident ID, so its stays answer alike for a guest who was 17 at check-in and for an adult.
#[tokio::test]
async fn req_10_a_stay_tells_a_caller_that_cannot_see_the_age_nothing_about_it() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let was_17 = app.create_guest(Value::Object(born("2008-06-01"))).await;
    let adult = app.create_guest(Value::Object(born("1990-06-01"))).await;
    // The desk at check-in may reveal the resident ID, so it is told. (Asked first: once a
    // stay's check-out is 30 days past, the identity data is storage-only and the desk no
    // longer sees the ID, issue 16 §3; it is then answered like the desk below.)
    let r = add_stay(&app, "front_desk", "check_in", &was_17, "2026-05-30").await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("guardian_required")),
        "{}",
        r.text
    );
    let mut answers = Vec::new();
    for id in [&was_17, &adult] {
        let r = add_stay(&app, "front_desk", "guest_service", id, "2026-05-31").await;
        answers.push((r.status, r.body.get("code").cloned()));
    }
    assert_eq!(answers[0], answers[1], "{answers:?}");
    assert_eq!(answers[0].0, StatusCode::CREATED);
}

/// A correction that makes the record one of a guest under 18 must come with a guardian or an
/// accompanying adult; otherwise 422 `guardian_required` and nothing changes. An accompanying
/// adult set by a correction is checked as at registration. (Removing a guardian's entry is
/// refused already: the fields are in the statutory `identity` class, see the next test.)
#[tokio::test]
async fn req_10_a_correction_may_not_leave_a_minor_without_a_guardian() {
    let app = spawn_app().await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(Value::Object(born("1990-03-15"))).await;
    let child = born("2016-03-15");
    let to_child = json!({
        "birth_date": child["birth_date"],
        "id_type": child["id_type"],
        "id_number": child["id_number"],
    });
    let r = patch(&app, "pms", "check_in", &id, to_child.clone()).await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("guardian_required")),
        "{}",
        r.text
    );
    assert!(!r.text.contains("2016"), "the refusal echoes nothing");
    let path = format!("/v1/guests/{id}");
    let read = app
        .call(Method::GET, &path, Some("pms"), Some("check_in"), None)
        .await;
    assert_eq!(read.body["fields"]["birth_date"], "1990-03-15", "unchanged");

    // An accompanying adult the caller cannot read (here: no such guest) is refused as at
    // registration, without saying whether it exists.
    let mut with_unknown = to_child.as_object().unwrap().clone();
    with_unknown.insert(
        "accompanied_by".into(),
        json!(uuid::Uuid::now_v7().to_string()),
    );
    let r = patch(&app, "pms", "check_in", &id, Value::Object(with_unknown)).await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
        "{}",
        r.text
    );
    assert_eq!(r.body["errors"][0]["field"], "accompanied_by", "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "unknown_guest", "{}", r.text);

    // With the guardian, or an adult the caller may read, in the same correction: applied.
    let parent = app.create_guest(zhang_san()).await;
    let mut with_adult = to_child.as_object().unwrap().clone();
    with_adult.insert("accompanied_by".into(), json!(parent));
    let r = patch(&app, "pms", "check_in", &id, Value::Object(with_adult)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let other = app.create_guest(Value::Object(born("1991-03-15"))).await;
    let mut with_guardian_fields = to_child.as_object().unwrap().clone();
    with_guardian_fields.insert("guardian_name".into(), json!("李大明"));
    with_guardian_fields.insert("guardian_mobile".into(), json!("139 1234 5678"));
    let r = patch(
        &app,
        "pms",
        "check_in",
        &other,
        Value::Object(with_guardian_fields),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A correction that touches neither the age nor the guardian is not checked.
    let r = patch(&app, "pms", "check_in", &id, json!({"full_name": "李小明"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The refusal is audited with its code, and no value.
    let refused = app.sql_i64(
        "SELECT count(*) FROM audit_events WHERE action = 'guest.update'
         AND reason = 'guardian_required'",
        &[],
    );
    assert_eq!(refused, 1);
}

/// With a policy whose guardian mobile is not statutory (class `contact`), a correction may
/// remove it; the rule then keeps a minor's guardian. No age oracle: the desk at check-in sees
/// a passport holder's birth date masked, so it cannot know the age, and removing the entry is
/// refused for it at every age alike (fail closed). The PMS, which sees the birth date, is
/// refused for the child only.
#[tokio::test]
async fn req_10_a_correction_by_a_caller_that_cannot_see_the_age_answers_alike_at_every_age() {
    let app = spawn_with_policy_edit(
        "fields.toml",
        "[guest.guardian_mobile]\ntype = \"phone\"\ncategory = \"identity\"",
        "[guest.guardian_mobile]\ntype = \"phone\"\ncategory = \"contact\"",
    )
    .await;
    app.clock.set(datetime!(2026-11-20 10:00 UTC));

    let passport = |birth: &str| {
        let mut f = born(birth);
        f.insert("nationality".into(), json!("FR"));
        f.insert("id_type".into(), json!("passport"));
        f.insert("id_number".into(), json!("18AB12345"));
        with_guardian(f)
    };
    let kid = app.create_guest(passport("2016-03-15")).await;
    let grown = app.create_guest(passport("1990-03-15")).await;
    let mut answers = Vec::new();
    for id in [&kid, &grown] {
        let r = patch(
            &app,
            "front_desk",
            "check_in",
            id,
            json!({"guardian_mobile": null}),
        )
        .await;
        assert_eq!(
            code(&r),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("guardian_required")),
            "{}",
            r.text
        );
        answers.push(r.text_without_request_id());
        // A correction that leaves the guardian recorded is not checked by age at all.
        let r = patch(
            &app,
            "front_desk",
            "check_in",
            id,
            json!({"guardian_relationship": "parent"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(answers[0], answers[1]);
    // The PMS sees the birth date in plain: the adult loses the guardian's mobile, the child not.
    let r = patch(
        &app,
        "pms",
        "check_in",
        &grown,
        json!({"guardian_mobile": null}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = patch(
        &app,
        "pms",
        "check_in",
        &kid,
        json!({"guardian_mobile": null}),
    )
    .await;
    assert_eq!(
        code(&r),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("guardian_required")),
        "{}",
        r.text
    );
}
