//! Issue 12, tried as a curious insider would: search is a disclosure (point 1), reason codes
//! instead of free text and UUID-only request ids (point 7), name masks (point 8) and token
//! lifetimes (point 9).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{self, spawn_app, zhang_san, TestApp};

const BRUTE_FORCE: usize = 10_000;
/// zhang_san()'s values, as stored.
const MOBILE: &str = "+8613812345678";
const EMAIL: &str = "zhang.sanfeng@example.com";
const ID_NUMBER: &str = "11010519491231002X";

/// 10,000 candidates that include the stored value.
fn candidates(field: &str) -> Vec<String> {
    (0..BRUTE_FORCE)
        .map(|i| match field {
            // +86 138 1234 0000 ..= 9999: the concierge's `+86 138****5678` leaves 10^4.
            "mobile" => format!("+86138{:04}{i:04}", 1234),
            "email" if i == 4_242 => EMAIL.to_string(),
            "email" => format!("zhang.sanfeng{i}@example.com"),
            _ => unreachable!(),
        })
        .collect()
}

/// Sends every candidate as a search by `role` under `purpose` (32 at a time) and returns
/// each distinct (status, body without request_id) with how many answers had it.
async fn search_all(
    app: &TestApp,
    role: &str,
    purpose: &str,
    field: &str,
    values: Vec<String>,
) -> Vec<(StatusCode, String, usize)> {
    let token = app.token(role);
    let url = format!("{}/v1/guests/search", app.addr);
    let queue = Arc::new(Mutex::new(values));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (queue, answers) = (queue.clone(), answers.clone());
        let (client, url, token) = (app.client.clone(), url.clone(), token.clone());
        let (purpose, field) = (purpose.to_string(), field.to_string());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(value) = queue.lock().unwrap().pop() else {
                    break;
                };
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("X-Purpose", &purpose)
                    .json(&json!({"field": field, "value": value}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let mut body: Value = r.json().await.unwrap();
                if let Some(o) = body.as_object_mut() {
                    o.remove("request_id");
                }
                answers.lock().unwrap().push((status, body.to_string()));
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let answers = answers.lock().unwrap();
    let distinct: BTreeSet<(StatusCode, String)> = answers.iter().cloned().collect();
    distinct
        .into_iter()
        .map(|(s, b)| {
            let n = answers
                .iter()
                .filter(|(s2, b2)| *s2 == s && *b2 == b)
                .count();
            (s, b, n)
        })
        .collect()
}

/// The shipped policy with `guest.search` given back to the concierge and finance, as it was
/// before issue 12: their searchable fields are masked, so the view check alone must hold.
fn pre_issue_policies(dir: &std::path::Path) {
    crate::helpers::copy_policies(dir);
    let access = dir.join("access.toml");
    let text = std::fs::read_to_string(&access).unwrap();
    let widened = text
        .replace(
            "purposes = [\"guest_service\"]\nactions = [\"guest.read\", \"stay.read\"]",
            "purposes = [\"guest_service\"]\nactions = [\"guest.read\", \"guest.search\", \"stay.read\"]",
        )
        .replace(
            "purposes = [\"billing\"]\nactions = [\"guest.read\", \"stay.read\"]",
            "purposes = [\"billing\"]\nactions = [\"guest.read\", \"guest.search\", \"stay.read\"]",
        );
    assert_eq!(
        widened.matches("\"guest.search\"").count(),
        text.matches("\"guest.search\"").count() + 2
    );
    std::fs::write(&access, widened).unwrap();
}

#[tokio::test]
async fn a_brute_force_search_through_a_masked_view_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = helpers::test_config(dir.path());
    let policies = dir.path().join("policies");
    pre_issue_policies(&policies);
    config.policies.dir = Some(policies);
    // Budgets off: this test proves the policy alone stops the brute force (with budgets on,
    // the searches and the denials are throttled too: see `budgets.rs`).
    config.budgets.enabled = false;
    guestvault::cli::init(&config).unwrap();
    let app = helpers::spawn_on(dir, config).await;
    let id = app.create_guest(zhang_san()).await;

    // The candidates do hold the value: a role that sees it in plain finds the guest among
    // the 200 around it (all 10,000 would only slow the test down).
    for (field, value) in [("mobile", MOBILE), ("email", EMAIL)] {
        let all = candidates(field);
        let at = all.iter().position(|c| c == value).unwrap();
        let near = all[at.saturating_sub(100)..(at + 100).min(all.len())].to_vec();
        let hits = search_all(&app, "pms", "guest_service", field, near).await;
        let found: Vec<_> = hits.iter().filter(|(_, b, _)| b.contains(&id)).collect();
        assert_eq!(found.len(), 1, "{field}: {hits:?}");
        assert_eq!(found[0].2, 1, "{field}: exactly one candidate matches");
    }

    // Every role whose view of a searchable field is masked (one field each): 10,000 tries,
    // one answer.
    let forbidden = |b: &str| {
        let v: Value = serde_json::from_str(b).unwrap();
        v["code"] == "forbidden" && v["status"] == 403
    };
    for (role, purpose, field) in [
        ("concierge", "guest_service", "mobile"),
        ("finance", "billing", "email"),
        ("front_desk", "guest_service", "email"),
    ] {
        let before = app.audit_count();
        let answers = search_all(&app, role, purpose, field, candidates(field)).await;
        assert_eq!(
            answers.len(),
            1,
            "{role} {field}: answers differ: {answers:?}"
        );
        let (status, body, n) = &answers[0];
        assert_eq!(
            (*status, *n),
            (StatusCode::FORBIDDEN, BRUTE_FORCE),
            "{role} {field}"
        );
        assert!(forbidden(body), "{body}");
        assert!(!body.contains(&id) && !body.contains("5678"), "{body}");
        // Every refusal is audited, by field name only.
        let audited = app.sql_i64(
            "SELECT count(*) FROM audit_events WHERE seq > ?1 AND action = 'guest.search' \
             AND role = ?2 AND outcome = 'denied' AND reason = 'field_not_allowed' \
             AND fields = ?3 AND guest_id IS NULL AND justification IS NULL",
            &[&before, &role, &format!("[\"{field}\"]")],
        );
        assert_eq!(audited, BRUTE_FORCE as i64, "{role} {field}");
        assert_eq!(app.audit_count() - before, BRUTE_FORCE as i64);
    }
}

#[tokio::test]
async fn shipped_roles_search_only_what_they_may_see_and_id_numbers_take_a_reason() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let search = |role: &'static str, purpose: &'static str, body: Value| {
        app.call(
            Method::POST,
            "/v1/guests/search",
            Some(role),
            Some(purpose),
            Some(body),
        )
    };

    // Front desk may reveal the mobile at check-in: it may search it, no reason needed.
    let r = search(
        "front_desk",
        "check_in",
        json!({"field":"mobile","value":"138 1234 5678"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["guest_ids"], json!([id]));

    // The ID number needs a reason (`search_requires_justification`), checked before the
    // lookup: the answer is the same whether the number is stored or not.
    for value in [ID_NUMBER, "110105194912310037"] {
        let r = search(
            "front_desk",
            "check_in",
            json!({"field":"id_number","value":value}),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(
            r.body["errors"],
            json!([{"field":"reason","code":"required"}])
        );
        let r = search(
            "front_desk",
            "check_in",
            json!({"field":"id_number","value":value,"reason":"because"}),
        )
        .await;
        assert_eq!(
            r.body["errors"],
            json!([{"field":"reason","code":"unknown_reason"}])
        );
    }
    let r = search(
        "front_desk",
        "check_in",
        json!({"field":"id_number","value":ID_NUMBER,"reason":"identity_check_at_desk","ticket":"REG-7"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["guest_ids"], json!([id]));
    let [outcome, justification, guest] = <[String; 3]>::try_from(app.sql_texts(
        "SELECT outcome, justification, guest_id FROM audit_events \
         WHERE action = 'guest.search' ORDER BY seq DESC LIMIT 1",
        &[],
    ))
    .unwrap();
    assert_eq!(
        (outcome.as_str(), justification.as_str(), guest.as_str()),
        (
            "allowed",
            "reason=identity_check_at_desk ticket=REG-7",
            id.as_str()
        )
    );

    // A masked view (e-mail under guest_service) or none (e-mail under check_in) is 403
    // before the value is even looked at: a malformed value gets the same answer.
    let mut bodies = BTreeSet::new();
    for (purpose, value) in [
        ("guest_service", EMAIL),
        ("guest_service", "not an e-mail"),
        ("check_in", EMAIL),
    ] {
        let r = search(
            "front_desk",
            purpose,
            json!({"field":"email","value":value}),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{purpose} {value}: {}",
            r.text
        );
        assert_eq!(r.body["code"], "forbidden");
        bodies.insert(r.text_without_request_id());
    }
    assert_eq!(bodies.len(), 1, "{bodies:?}");

    // Concierge, finance and marketing have no search at all in the shipped policy.
    for (role, purpose, field, value) in [
        ("concierge", "guest_service", "mobile", MOBILE),
        ("finance", "billing", "email", EMAIL),
        ("marketing", "marketing", "email", EMAIL),
    ] {
        let r = search(role, purpose, json!({"field":field,"value":value})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
        assert_eq!(r.body["code"], "forbidden");
    }

    // A police liaison sees the ID number in plain: no reason needed.
    let r = search(
        "police_liaison",
        "police_report",
        json!({"field":"id_number","value":ID_NUMBER}),
    )
    .await;
    assert_eq!(r.body["guest_ids"], json!([id]), "{}", r.text);
}

#[tokio::test]
async fn a_dsr_officers_export_takes_a_reason_code_and_the_guests_own_does_not() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let export = |query: &str| {
        let path = format!("/v1/guests/{id}/export{query}");
        let app = &app;
        async move {
            app.call(
                Method::GET,
                &path,
                Some("dsr_officer"),
                Some("data_subject_request"),
                None,
            )
            .await
        }
    };
    for (query, field, code) in [
        ("", "reason", "required"),
        ("?reason=nosy", "reason", "unknown_reason"),
        (
            "?reason=data_subject_request&ticket=-1%2B2",
            "ticket",
            "invalid_format",
        ),
    ] {
        let r = export(query).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            r.text
        );
        assert_eq!(
            r.body["errors"],
            json!([{"field": field, "code": code}]),
            "{query}"
        );
        assert!(!r.text.contains(ID_NUMBER));
    }
    let r = export("?reason=data_subject_request&ticket=DSR-2026.11").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["id_number"], ID_NUMBER);
    let justification = app.sql_text(
        "SELECT justification FROM audit_events WHERE action = 'guest.export' \
         AND outcome = 'allowed' ORDER BY seq DESC LIMIT 1",
        &[],
    );
    assert_eq!(
        justification,
        "reason=data_subject_request ticket=DSR-2026.11"
    );

    // The guest's own export needs no reason.
    let req = app
        .client
        .get(format!("{}/v1/guests/{id}/export", app.addr))
        .bearer_auth(app.token_for("guest", &id))
        .header("X-Purpose", "data_subject_request");
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_client_request_id_is_kept_only_if_it_is_a_uuid() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let send = |rid: &'static str| {
        let req = app
            .client
            .get(format!("{}/v1/guests/{id}", app.addr))
            .bearer_auth(app.token("pms"))
            .header("X-Purpose", "check_in")
            .header("X-Request-Id", rid);
        app.send(req)
    };
    for rid in ["13812345678", "zhang.sanfeng", "trace-me-42"] {
        let r = send(rid).await;
        assert_eq!(r.status, StatusCode::OK);
        let got = r.headers["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(got, rid);
        assert!(uuid::Uuid::try_parse(&got).is_ok(), "{got}");
    }
    let r = send("0B7E5B8E-2A31-4C1E-9F53-8D1F4F0A9C42").await;
    assert_eq!(
        r.headers["x-request-id"],
        "0b7e5b8e-2a31-4c1e-9f53-8d1f4f0a9c42"
    );
    let stored = app.sql_i64(
        "SELECT count(*) FROM audit_events WHERE request_id = '13812345678' \
         OR request_id LIKE '%zhang%' OR request_id = 'trace-me-42'",
        &[],
    );
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn the_openapi_document_lists_the_reason_codes() {
    let app = spawn_app().await;
    let r = app
        .call(Method::GET, "/openapi.json", None, None, None)
        .await;
    let reasons: Vec<String> = guestvault::policy::Policies::load(None)
        .unwrap()
        .access
        .reasons
        .into_keys()
        .collect();
    assert!(reasons.len() >= 5);
    let schemas = &r.body["components"]["schemas"];
    for schema in ["RevealBody", "SearchBody"] {
        assert_eq!(
            schemas[schema]["properties"]["reason"]["enum"],
            json!(reasons),
            "{schema}"
        );
    }
    assert!(schemas["RevealBody"]["required"]
        .as_array()
        .unwrap()
        .contains(&json!("reason")));
    // Free text is off: the document does not offer it.
    assert!(schemas["RevealBody"]["properties"]
        .get("justification")
        .is_none());
    let params = r.body["paths"]["/v1/guests/{id}/export"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let reason = params.iter().find(|p| p["name"] == "reason").unwrap();
    assert_eq!(reason["in"], "query");
    assert_eq!(reason["schema"]["enum"], json!(reasons));
}

#[tokio::test]
async fn a_compound_surname_stays_whole_in_the_mask() {
    let app = spawn_app().await;
    let mut guest = zhang_san();
    guest["full_name"] = json!("欧阳娜娜");
    let id = app.create_guest(guest).await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/guests/{id}"),
            Some("concierge"),
            Some("guest_service"),
            None,
        )
        .await;
    assert_eq!(r.body["fields"]["full_name"], "欧阳**");
    assert_eq!(r.body["views"]["full_name"], "masked");
}

/// A token signed with the vault's secret carrying exactly `claims`.
fn token(app: &TestApp, claims: Value) -> String {
    let secret =
        guestvault::config::read_secret_file("k", &app.config.hs256_secret_file()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_have_a_capped_lifetime_no_future_iat_and_an_opaque_sub() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let claims = |sub: &str, iat: Option<u64>, exp: u64| {
        let mut c = json!({"sub": sub, "role": "pms", "iss": "guestvault", "aud": "guestvault", "exp": exp});
        if let Some(iat) = iat {
            c["iat"] = json!(iat);
        }
        c
    };
    let day = 24 * 3600;
    let mut nbf_future = claims("pms-1", Some(now), now + 600);
    nbf_future["nbf"] = json!(now + 3600);
    let refused = [
        claims("pms-1", Some(now), now + day + 1),
        claims("pms-1", Some(now), u64::MAX),
        claims("pms-1", Some(now + 3600), now + 7200),
        claims("pms-1", None, now + 600),
        claims("zhang.sanfeng@example.com", Some(now), now + 600),
        nbf_future,
    ];
    let mut bodies = BTreeSet::new();
    for c in refused {
        let req = app
            .client
            .get(format!("{}/v1/guests/{id}", app.addr))
            .bearer_auth(token(&app, c.clone()))
            .header("X-Purpose", "check_in");
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{c}");
        assert!(!r.text.contains("sanfeng"));
        bodies.insert(r.text_without_request_id());
    }
    // One generic answer: the body does not say which check failed.
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let ok = claims("pms-1", Some(now), now + day);
    let req = app
        .client
        .get(format!("{}/v1/guests/{id}", app.addr))
        .bearer_auth(token(&app, ok))
        .header("X-Purpose", "check_in");
    assert_eq!(app.send(req).await.status, StatusCode::OK);
}

#[test]
fn the_token_command_refuses_a_lifetime_beyond_the_cap_and_an_e_mail_sub() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = guestvault::config::Config::default();
    config.storage.data_dir = data.clone();
    guestvault::cli::init(&config).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_guestvault"));
        cmd.current_dir(dir.path()).env_remove("RUST_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("GUESTVAULT_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("GUESTVAULT_STORAGE_DATA_DIR", &data)
            .args(["token", "--role", "front_desk"])
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&["--sub", "fd-1", "--ttl", "24h"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let long = run(&["--sub", "fd-1", "--ttl", "2d"]);
    assert!(!long.status.success() && long.stdout.is_empty());
    assert!(String::from_utf8_lossy(&long.stderr).contains("auth.max_token_ttl_secs"));
    let mail = run(&["--sub", "zhang@hotel.example"]);
    assert!(!mail.status.success() && mail.stdout.is_empty());
    assert!(String::from_utf8_lossy(&mail.stderr).contains("--sub"));
}

/// Issue 12, no oracles: whether a `PATCH` may remove a registration field (`null`) does not
/// depend on the stored dates (creation, last activity, stays) that decide whether its
/// statutory period still runs. An insider comparing the answers for a guest registered years
/// ago without stays, one whose only stay ended over 3 years ago, and one with a recent stay
/// learns nothing: every answer is the same 422 and nothing changes.
#[tokio::test]
async fn removing_a_registration_field_answers_the_same_whatever_the_stored_dates() {
    let app = spawn_app().await;
    let stay = |check_in: &str, check_out: &str| json!({"fields":{"property":"SHA01","check_in":check_in,"check_out":check_out,"room_number":"1208"}});
    let add_stay = |id: String, body: Value| {
        let app = &app;
        async move {
            let r = app
                .call(
                    Method::POST,
                    &format!("/v1/guests/{id}/stays"),
                    Some("pms"),
                    Some("check_in"),
                    Some(body),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
    };
    app.clock.set(time::macros::datetime!(2022-01-10 10:00 UTC));
    // Registered in 2022, no stay: its period ran from creation and ended in 2025.
    let long_ago = app.create_guest(zhang_san()).await;
    // Its only stay ended in January 2022: over too.
    let old_stay = app.create_guest(zhang_san()).await;
    add_stay(old_stay.clone(), stay("2022-01-10", "2022-01-12")).await;
    app.clock.set(time::macros::datetime!(2026-11-20 10:00 UTC));
    // A stay that ended last week: the period runs until 2029.
    let recent = app.create_guest(zhang_san()).await;
    add_stay(recent.clone(), stay("2026-11-20", "2026-11-23")).await;
    app.clock.set(time::macros::datetime!(2026-11-30 10:00 UTC));

    let mut answers = BTreeSet::new();
    for id in [&long_ago, &old_stay, &recent] {
        for (role, purpose) in [("dsr_officer", "data_subject_request"), ("pms", "check_in")] {
            let r = app
                .call(
                    Method::PATCH,
                    &format!("/v1/guests/{id}"),
                    Some(role),
                    Some(purpose),
                    Some(json!({"fields": {"id_number": null}})),
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{role} {id}: {}",
                r.text
            );
            let mut body = r.body.clone();
            // Per-request members aside, the answers must be byte for byte the same.
            if let Some(o) = body.as_object_mut() {
                o.remove("request_id");
                o.remove("instance");
            }
            answers.insert((r.status.as_u16(), body.to_string()));
        }
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (_, body) = answers.into_iter().next().unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["errors"],
        json!([{"field":"id_number","code":"statutory_retention"}]),
        "{body}"
    );
    for id in [&long_ago, &old_stay, &recent] {
        let kept = app.sql_i64(
            "SELECT count(*) FROM guest_fields WHERE guest_id = ?1 AND field = 'id_number'",
            &[id],
        );
        assert_eq!(kept, 1, "a refused patch changes nothing");
    }
}
