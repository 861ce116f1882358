//! Create, masked and plain reads per role, reveal, search, stays.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{self, spawn_app, zhang_san};

#[tokio::test]
async fn created_guest_reads_back_masked_for_concierge_and_plain_for_pms() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;

    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("concierge"),
            Some("guest_service"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["guest_id"], id);
    assert_eq!(r.body["fields"]["full_name"], "张*丰");
    assert_eq!(r.body["fields"]["mobile"], "+86 138****5678");
    assert_eq!(r.body["fields"]["email"], "z****@example.com");
    assert_eq!(r.body["views"]["mobile"], "masked");
    // guest_service does not touch identity documents: absent, not masked.
    assert!(r.body["fields"].get("id_number").is_none());
    assert!(r.body["fields"].get("address").is_none());

    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["fields"]["full_name"], "张三丰");
    assert_eq!(r.body["fields"]["mobile"], "+8613812345678");
    assert_eq!(r.body["views"]["full_name"], "plain");
    // pms may only reveal the ID number: masked, first 1 + last 2 (REQ-14).
    assert_eq!(r.body["fields"]["id_number"], "1***************2X");
    assert_eq!(r.body["fields"]["birth_date"], "1949-12-31");

    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("front_desk"),
            Some("check_in"),
            None,
        )
        .await;
    assert_eq!(r.body["fields"]["birth_date"], "**-12-31");
    assert_eq!(r.body["fields"]["address"], "北京市海淀区********");
}

#[tokio::test]
async fn reveal_needs_a_reason_code_and_is_audited_with_it() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}/reveal");
    let reveal = |body: Value| {
        app.call(
            Method::POST,
            &path,
            Some("front_desk"),
            Some("check_in"),
            Some(body),
        )
    };

    // No reason, an unknown one, a bad ticket, or free text (off by default): 422, by field.
    for (body, field, code) in [
        (json!({"fields":["id_number"]}), "reason", "required"),
        (
            json!({"fields":["id_number"],"reason":"curiosity"}),
            "reason",
            "unknown_reason",
        ),
        (
            json!({"fields":["id_number"],"reason":"police_request","ticket":"=HYPERLINK(1)"}),
            "ticket",
            "invalid_format",
        ),
        (
            json!({"fields":["id_number"],"reason":"police_request","justification":"guest at desk, verifying ID"}),
            "justification",
            "free_text_disabled",
        ),
    ] {
        let r = reveal(body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.body["errors"], json!([{"field": field, "code": code}]));
        assert!(r.body.get("fields").is_none());
        assert!(!r.text_without_request_id().contains("HYPERLINK"));
    }

    let r = reveal(json!({"fields":["id_number","mobile"],"reason":"identity_check_at_desk","ticket":"REG-42"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["id_number"], "11010519491231002X");
    assert_eq!(r.body["fields"]["mobile"], "+8613812345678");

    let [action, justification, fields] = <[String; 3]>::try_from(app.sql_texts(
        "SELECT action, justification, fields FROM audit_events WHERE justification IS NOT NULL ORDER BY seq DESC LIMIT 1",
        &[],
    ))
    .unwrap();
    assert_eq!(action, "guest.reveal");
    assert_eq!(justification, "reason=identity_check_at_desk ticket=REG-42");
    assert_eq!(fields, r#"["id_number","mobile"]"#);
    // The refused attempts left no justification behind.
    let stored = app.sql_i64(
        "SELECT COUNT(*) FROM audit_events WHERE justification IS NOT NULL",
        &[],
    );
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn free_text_when_allowed_is_checked_for_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = helpers::test_config(dir.path());
    config.access.allow_free_text_justification = true;
    guestvault::cli::init(&config).unwrap();
    let app = helpers::spawn_on(dir, config).await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}/reveal");

    // A note that carries the guest's own data, a date, an address or a health word is
    // refused: the audit trail keeps it for years, after the guest is erased. Nothing is
    // revealed and the text is not stored.
    for (leaky, code) in [
        ("guest 张三丰 asked at the desk", "personal_data"),
        ("called the guest back on 138 1234 5678", "personal_data"),
        ("checking ID 11010519491231002X", "personal_data"),
        ("guest born 1949-12-31, checking", "personal_data"),
        ("guest lives at 北京市海淀区中关村", "personal_data"),
        ("guest has peanut allergy", "personal_data"),
        ("客人怀孕了，需要换房", "personal_data"),
        ("=HYPERLINK(\"http://evil\",\"x\")", "formula_prefix"),
        ("+cmd|' /C calc'!A0 for the record", "formula_prefix"),
    ] {
        let r = app
            .call(
                Method::POST,
                &path,
                Some("front_desk"),
                Some("check_in"),
                Some(json!({"fields":["id_number"],"reason":"police_request","justification": leaky})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{leaky}");
        assert_eq!(
            r.body["errors"],
            json!([{"field":"justification","code":code}]),
            "{leaky}"
        );
        assert!(r.body.get("fields").is_none());
        let text = r.text_without_request_id();
        assert!(!text.contains("张三丰") && !text.contains("5678") && !text.contains("HYPERLINK"));
    }

    // Only values the caller may already see are compared: check_in does not cover dietary
    // needs, so whether the guest's note says "peanut" must not change the answer (no oracle).
    let r = app
        .call(
            Method::POST,
            &path,
            Some("front_desk"),
            Some("check_in"),
            Some(json!({"fields":["id_number"],"reason":"police_request","justification": "registration check, peanut counter"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let justification = app.sql_text(
        "SELECT justification FROM audit_events WHERE justification IS NOT NULL ORDER BY seq DESC LIMIT 1",
        &[],
    );
    assert_eq!(
        justification,
        "reason=police_request note=registration check, peanut counter"
    );
}

#[tokio::test]
async fn reveal_of_a_field_the_role_may_only_see_masked_is_forbidden() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    // front desk sees address masked but has no reveal right on it.
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/reveal"),
            Some("front_desk"),
            Some("check_in"),
            Some(json!({"fields":["address"],"reason":"guest_request"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["code"], "forbidden");
    // concierge has no reveal action at all.
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/reveal"),
            Some("concierge"),
            Some("guest_service"),
            Some(json!({"fields":["mobile"],"reason":"contact_guest"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn search_by_mobile_finds_the_guest_in_any_common_spelling() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let _other = app
        .create_guest(json!({"full_name":"李四","mobile":"13900001111"}))
        .await;
    for spelling in [
        "138 1234 5678",
        "+86 13812345678",
        "13812345678",
        "+86-138-1234-5678",
    ] {
        let r = app
            .call(
                Method::POST,
                "/v1/guests/search",
                Some("front_desk"),
                Some("check_in"),
                Some(json!({"field":"mobile","value":spelling})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{spelling}: {}", r.text);
        assert_eq!(r.body["guest_ids"], json!([id]), "{spelling}");
    }
    let r = app
        .call(
            Method::POST,
            "/v1/guests/search",
            Some("front_desk"),
            Some("check_in"),
            Some(json!({"field":"mobile","value":"13700000000"})),
        )
        .await;
    assert_eq!(r.body["guest_ids"], json!([]));
    let r = app
        .call(
            Method::POST,
            "/v1/guests/search",
            Some("front_desk"),
            Some("check_in"),
            Some(json!({"field":"full_name","value":"张三丰"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["code"], "field_not_searchable");
    // The index holds only 64-hex-digit HMACs (REQ-12).
    let digests: Vec<Vec<u8>> = app
        .sql_column("SELECT digest FROM blind_index", &[])
        .iter()
        .map(|d| crate::helpers::sql::unhex(d.as_deref().unwrap()))
        .collect();
    assert!(digests.iter().all(|d| d.len() == 32));
}

#[tokio::test]
async fn search_by_id_number_and_email_is_normalized() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    for (field, value, purpose) in [
        ("id_number", "11010519491231002x", "check_in"),
        ("email", "Zhang.Sanfeng@EXAMPLE.com", "guest_service"),
    ] {
        let r = app
            .call(
                Method::POST,
                "/v1/guests/search",
                Some("pms"),
                Some(purpose),
                Some(json!({"field":field,"value":value})),
            )
            .await;
        assert_eq!(r.body["guest_ids"], json!([id]), "{field}: {}", r.text);
    }
}

#[tokio::test]
async fn correction_changes_the_value_and_the_index() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields":{"mobile":"139 0000 2222","address":null}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["mobile"], "+8613900002222");
    assert!(r.body["fields"].get("address").is_none());
    let search = |v: &'static str| {
        app.call(
            Method::POST,
            "/v1/guests/search",
            Some("pms"),
            Some("check_in"),
            Some(json!({"field":"mobile","value":v})),
        )
    };
    assert_eq!(search("13812345678").await.body["guest_ids"], json!([]));
    assert_eq!(search("13900002222").await.body["guest_ids"], json!([id]));
    // A birth date that contradicts the resident ID is refused. The PMS sees the stored ID
    // only masked, so it sends the ID with the birth date (no validation oracle, issue 12).
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields":{"birth_date":"1950-01-01","id_type":"cn_resident_id","id_number":"11010519491231002X"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body["errors"][0],
        json!({"field":"birth_date","code":"mismatch_id_number"})
    );
}

#[tokio::test]
async fn stays_are_added_and_listed_per_role_view() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let path = format!("/v1/guests/{id}/stays");
    let stay = json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-23","room_type":"deluxe king",
                                "room_number":"1208","amount":"1280","currency":"cny","channel":"direct"}});
    let r = app
        .call(
            Method::POST,
            &path,
            Some("pms"),
            Some("check_in"),
            Some(stay),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let stay_id = r.body["stay_id"].as_str().unwrap().to_string();

    let r = app
        .call(Method::GET, &path, Some("finance"), Some("billing"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["stays"][0]["stay_id"], stay_id);
    assert_eq!(r.body["stays"][0]["fields"]["amount"], "1280.00");
    assert_eq!(r.body["stays"][0]["fields"]["currency"], "CNY");
    assert!(r.body["stays"][0]["fields"].get("room_type").is_none());

    let r = app
        .call(
            Method::GET,
            &path,
            Some("concierge"),
            Some("guest_service"),
            None,
        )
        .await;
    assert!(r.body["stays"][0]["fields"].get("amount").is_none());
    assert_eq!(r.body["stays"][0]["fields"]["room_number"], "1208");

    let bad =
        json!({"fields":{"property":"SHA01","check_in":"2026-11-23","check_out":"2026-11-20"}});
    let r = app
        .call(
            Method::POST,
            &path,
            Some("pms"),
            Some("check_in"),
            Some(bad),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body["errors"][0],
        json!({"field":"check_out","code":"not_after_check_in"})
    );
}

#[tokio::test]
async fn every_touch_is_audited_and_the_chain_verifies() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let before = app.audit_count();
    app.call(
        Method::GET,
        &format!("/v1/guests/{id}"),
        Some("concierge"),
        Some("guest_service"),
        None,
    )
    .await;
    app.call(
        Method::GET,
        &format!("/v1/guests/{id}"),
        Some("concierge"),
        Some("billing"),
        None,
    )
    .await;
    app.call(
        Method::GET,
        &format!("/v1/guests/{id}"),
        Some("admin"),
        Some("administration"),
        None,
    )
    .await;
    assert_eq!(app.audit_count(), before + 3);
    let outcomes: Vec<(String, String)> = app
        .sql_rows(
            "SELECT outcome, COALESCE(reason, '') FROM audit_events ORDER BY seq",
            &[],
        )
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    assert_eq!(
        outcomes[outcomes.len() - 2],
        ("denied".into(), "purpose_not_allowed".into())
    );
    assert_eq!(
        outcomes[outcomes.len() - 1],
        ("denied".into(), "action_not_allowed".into())
    );
    assert_eq!(
        app.with_store(|c| guestvault::audit::verify_chain(c).unwrap()),
        Ok(app.audit_count() as u64)
    );
}
