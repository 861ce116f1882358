//! Identity data in stages (issue 16 §3; REQ-23, REQ-24; legal analysis §(b) #1): in full use
//! through check-out + 30 days, then storage-only (police and data-subject requests only);
//! from check-out + 1 year the ID number is pseudonymized (value deleted, keyed blind index
//! kept, so a police search still finds the guest); everything deleted after 3 years. Each
//! boundary is tested the day before and the day of, with the injected clock.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::helpers::{spawn_app, zhang_san, TestApp};

const ID: &str = "11010519491231002X";
const DESK: (&str, &str) = ("front_desk", "check_in");
const POLICE: (&str, &str) = ("police_liaison", "police_report");
const DSR: (&str, &str) = ("dsr_officer", "data_subject_request");

async fn sweep(app: &TestApp, dry_run: bool) -> Value {
    let r = app
        .call(
            Method::POST,
            &format!("/v1/admin/retention/run?dry_run={dry_run}"),
            Some("admin"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// A registered guest whose only stay ends on 2026-11-23.
async fn registered(app: &TestApp) -> String {
    app.clock.set(datetime!(2026-11-20 10:00 UTC));
    let id = app.create_guest(zhang_san()).await;
    let stay = json!({"fields":{"property":"SHA01","check_in":"2026-11-20","check_out":"2026-11-23","room_number":"1208"}});
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/stays"),
            Some("pms"),
            Some("check_in"),
            Some(stay),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    id
}

async fn read(app: &TestApp, id: &str, (role, purpose): (&str, &str)) -> crate::helpers::Resp {
    app.call(
        Method::GET,
        &format!("/v1/guests/{id}"),
        Some(role),
        Some(purpose),
        None,
    )
    .await
}

async fn search_id(app: &TestApp, (role, purpose): (&str, &str)) -> Value {
    let r = app
        .call(
            Method::POST,
            "/v1/guests/search",
            Some(role),
            Some(purpose),
            Some(json!({"field":"id_number","value":ID,"reason":"identity_check_at_desk"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["guest_ids"].clone()
}

fn stage_events(app: &TestApp, id: &str) -> Vec<Vec<Option<String>>> {
    app.sql_rows(
        "SELECT fields, reason, rules, actor FROM audit_events WHERE action = 'retention.stage' AND guest_id = ?1 ORDER BY seq",
        &[&id],
    )
}

fn stored_fields(app: &TestApp, id: &str) -> Vec<String> {
    app.sql_column(
        "SELECT field FROM guest_fields WHERE guest_id = ?1 ORDER BY field",
        &[&id],
    )
    .into_iter()
    .map(Option::unwrap)
    .collect()
}

fn index_fields(app: &TestApp, id: &str) -> Vec<String> {
    app.sql_column(
        "SELECT field FROM blind_index WHERE guest_id = ?1 ORDER BY field",
        &[&id],
    )
    .into_iter()
    .map(Option::unwrap)
    .collect()
}

/// REQ-23, REQ-24: the storage-only stage from check-out + 30 days, for reads, searches,
/// reveals and updates; applied and audited once by the sweeper; a dry run counts it.
#[tokio::test]
async fn identity_becomes_storage_only_the_day_after_check_out_plus_30_days() {
    let app = spawn_app().await;
    let id = registered(&app).await;

    // The day before (check-out + 30 days): in full use.
    app.clock.set(datetime!(2026-12-23 12:00 UTC));
    let report = sweep(&app, false).await;
    assert_eq!(report["stages"], json!({}), "{report}");
    let r = read(&app, &id, DESK).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["full_name"], "张三丰");
    assert_eq!(r.body["views"]["full_name"], "plain");
    assert_eq!(search_id(&app, DESK).await, json!([id]));
    assert!(stage_events(&app, &id).is_empty());

    // The day of: storage-only at once, even before the sweeper has run (decided from dates).
    app.clock.set(datetime!(2026-12-24 12:00 UTC));
    let r = read(&app, &id, DESK).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for f in [
        "full_name",
        "gender",
        "birth_date",
        "nationality",
        "id_type",
        "id_number",
    ] {
        assert!(
            r.body["fields"].get(f).is_none(),
            "{f} readable: {}",
            r.text
        );
        assert_eq!(r.body["views"][f], "restricted", "{f}: {}", r.text);
    }
    // Contact data has its own class and period (1 year): still in use.
    assert_eq!(r.body["views"]["mobile"], "masked", "{}", r.text);
    assert!(
        !r.text.contains("张三丰") && !r.text.contains("1949"),
        "{}",
        r.text
    );
    // The police read it all.
    let r = read(&app, &id, POLICE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["fields"]["id_number"], ID);
    assert_eq!(r.body["fields"]["full_name"], "张三丰");
    // Front desk: no search hit, no reveal, no change of the restricted class.
    assert_eq!(search_id(&app, DESK).await, json!([]));
    assert_eq!(search_id(&app, POLICE).await, json!([id]));
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/reveal"),
            Some(DESK.0),
            Some(DESK.1),
            Some(json!({"fields":["id_number"],"reason":"identity_check_at_desk"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("restricted")),
        "{}",
        r.text
    );
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/guests/{id}"),
            Some(DESK.0),
            Some(DESK.1),
            Some(json!({"fields":{"full_name":"张三"}})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("restricted")),
        "{}",
        r.text
    );
    // A class in use is still changed.
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/guests/{id}"),
            Some(DESK.0),
            Some(DESK.1),
            Some(json!({"fields":{"mobile":"13900001111"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A dry run counts the stage and records nothing.
    let dry = sweep(&app, true).await;
    assert_eq!(dry["stages"], json!({"identity": {"restrict": 1}}), "{dry}");
    assert!(stage_events(&app, &id).is_empty());
    // The sweep applies and audits it once, with field names and no value.
    let report = sweep(&app, false).await;
    assert_eq!(
        report["stages"],
        json!({"identity": {"restrict": 1}}),
        "{report}"
    );
    let events = stage_events(&app, &id);
    assert_eq!(events.len(), 1, "{events:?}");
    let [fields, reason, rules, actor] =
        <[Option<String>; 4]>::try_from(events[0].clone()).unwrap();
    assert_eq!(
        fields.as_deref(),
        Some(r#"["birth_date","full_name","gender","id_number","id_type","nationality"]"#)
    );
    assert_eq!(
        reason.as_deref(),
        Some("identity: restricted (storage only)")
    );
    assert_eq!(rules.as_deref(), Some(r#"["classes.identity.stages[0]"]"#));
    assert_eq!(actor.as_deref(), Some("system:retention"));
    // Idempotent: a second sweep does nothing more.
    let again = sweep(&app, false).await;
    assert_eq!(again["stages"], json!({}), "{again}");
    assert_eq!(stage_events(&app, &id).len(), 1);
    // Storage only changes no data: every value is still stored.
    assert!(stored_fields(&app, &id).contains(&"id_number".to_string()));
}

/// REQ-23, REQ-24: the ID number pseudonymized from check-out + 1 year (a police search by ID
/// number still finds the guest, a read shows `pseudonymized`, never a value), everything
/// deleted after 3 years.
#[tokio::test]
async fn the_id_number_is_pseudonymized_after_a_year_and_everything_goes_after_three() {
    let app = spawn_app().await;
    let id = registered(&app).await;
    app.clock.set(datetime!(2027-01-10 12:00 UTC));
    sweep(&app, false).await;

    // The day before (check-out + 1 year): the police read the value.
    app.clock.set(datetime!(2027-11-23 12:00 UTC));
    let report = sweep(&app, false).await;
    assert_eq!(report["stages"], json!({}), "{report}");
    let r = read(&app, &id, POLICE).await;
    assert_eq!(r.body["fields"]["id_number"], ID, "{}", r.text);

    // The day of: no purpose reads the value any more, even before the sweep.
    app.clock.set(datetime!(2027-11-24 12:00 UTC));
    let r = read(&app, &id, POLICE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["fields"].get("id_number").is_none(), "{}", r.text);
    assert_eq!(r.body["views"]["id_number"], "pseudonymized");
    assert_eq!(r.body["fields"]["full_name"], "张三丰");
    let dry = sweep(&app, true).await;
    assert_eq!(
        dry["stages"],
        json!({"identity": {"pseudonymize": 1}}),
        "{dry}"
    );
    assert!(stored_fields(&app, &id).contains(&"id_number".to_string()));
    // The sweep deletes the ciphertext and keeps the blind-index entry.
    let report = sweep(&app, false).await;
    assert_eq!(
        report["stages"],
        json!({"identity": {"pseudonymize": 1}}),
        "{report}"
    );
    assert!(!stored_fields(&app, &id).contains(&"id_number".to_string()));
    assert!(stored_fields(&app, &id).contains(&"full_name".to_string()));
    assert!(index_fields(&app, &id).contains(&"id_number".to_string()));
    let events = stage_events(&app, &id);
    let last = events.last().unwrap();
    assert_eq!(last[0].as_deref(), Some(r#"["id_number"]"#));
    assert_eq!(
        last[2].as_deref(),
        Some(r#"["classes.identity.stages[1]"]"#)
    );
    assert!(events
        .iter()
        .flatten()
        .flatten()
        .all(|t| !t.contains("110105")));
    let again = sweep(&app, false).await;
    assert_eq!(again["stages"], json!({}), "{again}");
    assert_eq!(stage_events(&app, &id).len(), events.len());

    // A police search by ID number still finds the guest; a read shows no value.
    assert_eq!(search_id(&app, POLICE).await, json!([id]));
    let r = read(&app, &id, POLICE).await;
    assert_eq!(r.body["views"]["id_number"], "pseudonymized", "{}", r.text);
    assert!(!r.text.contains(ID), "{}", r.text);
    // The front desk still sees the class as storage-only.
    let r = read(&app, &id, DESK).await;
    assert_eq!(r.body["views"]["id_number"], "restricted", "{}", r.text);
    assert_eq!(search_id(&app, DESK).await, json!([]));
    // A reveal has no value to show.
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/reveal"),
            Some(DSR.0),
            Some(DSR.1),
            Some(json!({"fields":["id_number"],"reason":"data_subject_request"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["fields"].get("id_number").is_none(), "{}", r.text);

    // The access package shows each field's stage, the next ones and the end.
    let me = app.token_for("guest", &id);
    let req = app
        .client
        .get(format!("{}/v1/guests/{id}/export", app.addr))
        .bearer_auth(&me)
        .header("X-Purpose", "data_subject_request");
    let pkg = app.send(req).await;
    assert_eq!(pkg.status, StatusCode::OK, "{}", pkg.text);
    assert!(!pkg.text.contains(ID));
    let stages = pkg.body["retention_stages"].as_array().unwrap();
    let of = |f: &str| stages.iter().find(|s| s["field"] == f).cloned().unwrap();
    assert_eq!(
        of("id_number"),
        json!({"field":"id_number","class":"identity","stage":"pseudonymized","next_stages":[],"until":"2029-11-23"})
    );
    assert_eq!(of("full_name")["stage"], "restricted");
    assert!(
        stages.iter().all(|s| s["class"] == "identity"),
        "{stages:?}"
    );

    // Deletion: kept through check-out + 3 years, gone the day after, index entry included.
    app.clock.set(datetime!(2029-11-23 12:00 UTC));
    assert_eq!(sweep(&app, false).await["guests_erased"], 0);
    assert_eq!(search_id(&app, POLICE).await, json!([id]));
    app.clock.set(datetime!(2029-11-24 12:00 UTC));
    let report = sweep(&app, false).await;
    assert_eq!(report["guests_erased"], 1, "{report}");
    assert_eq!(search_id(&app, POLICE).await, json!([]));
    assert_eq!(read(&app, &id, POLICE).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.columns_containing(&id, |t| !t.starts_with("audit")),
        Vec::<String>::new()
    );
}

/// REQ-24: an erasure in the storage-only stage behaves as before (the guest is restricted
/// until its period ends); its receipt shows each kept field's stage and the next ones, and
/// the identity stages still run.
#[tokio::test]
async fn an_erasure_in_the_storage_only_stage_restricts_until_the_end_and_shows_the_stages() {
    let app = spawn_app().await;
    let id = registered(&app).await;
    app.clock.set(datetime!(2027-01-10 12:00 UTC));
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/erasure"),
            Some(DSR.0),
            Some(DSR.1),
            Some(json!({"reason":"guest_request"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "partially_completed");
    let retained = r.body["retained"].as_array().unwrap().clone();
    let of = |f: &str| {
        retained
            .iter()
            .find(|r| r["field"] == f)
            .cloned()
            .unwrap_or_else(|| panic!("{f} not retained: {retained:?}"))
    };
    let id_number = of("id_number");
    assert_eq!(id_number["stage"], "restricted", "{id_number}");
    assert_eq!(
        id_number["next_stages"],
        json!([{"stage":"pseudonymized","from":"2027-11-24"}])
    );
    assert_eq!(id_number["until"], "2029-11-23");
    assert_eq!(of("full_name")["stage"], "restricted");
    assert!(of("full_name").get("next_stages").is_none());
    // Stays are not statutory (issue 16 §3): the erasure deleted them, nothing is kept.
    assert!(
        retained.iter().all(|r| r["field"] != "stays"),
        "{retained:?}"
    );
    // As before: restricted as a whole, the police still read it.
    assert_eq!(read(&app, &id, DESK).await.body["code"], "restricted");
    assert_eq!(
        read(&app, &id, POLICE).await.body["fields"]["id_number"],
        ID
    );
    // The stages still run on the erased guest (no sweep ran before: both apply now).
    app.clock.set(datetime!(2027-11-24 12:00 UTC));
    let report = sweep(&app, false).await;
    assert_eq!(
        report["stages"],
        json!({"identity": {"restrict": 1, "pseudonymize": 1}}),
        "{report}"
    );
    assert_eq!(search_id(&app, POLICE).await, json!([id]));
    assert!(!stored_fields(&app, &id).contains(&"id_number".to_string()));
    // A repeated request returns the receipt given.
    let again = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/erasure"),
            Some(DSR.0),
            Some(DSR.1),
            Some(json!({"reason":"guest_request"})),
        )
        .await;
    assert_eq!(
        again.body["request_id"], r.body["request_id"],
        "{}",
        again.text
    );
    app.clock.set(datetime!(2029-11-24 12:00 UTC));
    assert_eq!(sweep(&app, false).await["guests_erased"], 1);
    let rid = r.body["request_id"].as_str().unwrap();
    let done = app
        .call(
            Method::GET,
            &format!("/v1/erasure-requests/{rid}"),
            Some(DSR.0),
            Some(DSR.1),
            None,
        )
        .await;
    assert_eq!(done.body["status"], "completed", "{}", done.text);
}

/// A returning guest: a new stay moves the anchor, so identity is in full use again (the
/// pseudonymized ID number stays without a value until it is entered again).
#[tokio::test]
async fn a_new_stay_starts_the_stages_again_and_a_new_id_number_ends_the_pseudonymization() {
    let app = spawn_app().await;
    let id = registered(&app).await;
    app.clock.set(datetime!(2027-12-01 12:00 UTC));
    sweep(&app, false).await;
    let stay = json!({"fields":{"property":"SHA01","check_in":"2027-12-01","check_out":"2027-12-03","room_number":"0808"}});
    let r = app
        .call(
            Method::POST,
            &format!("/v1/guests/{id}/stays"),
            Some("pms"),
            Some("check_in"),
            Some(stay),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = read(&app, &id, DESK).await;
    assert_eq!(r.body["views"]["full_name"], "plain", "{}", r.text);
    assert_eq!(r.body["views"]["id_number"], "pseudonymized", "{}", r.text);
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/guests/{id}"),
            Some("pms"),
            Some("check_in"),
            Some(json!({"fields":{"id_type":"cn_resident_id","id_number":ID}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = read(&app, &id, POLICE).await;
    assert_eq!(r.body["fields"]["id_number"], ID, "{}", r.text);
    assert_eq!(r.body["views"]["id_number"], "plain");
    // The next pseudonymization runs a year after the new check-out.
    app.clock.set(datetime!(2028-12-03 12:00 UTC));
    assert_eq!(
        sweep(&app, false).await["stages"]["identity"].get("pseudonymize"),
        None
    );
    app.clock.set(datetime!(2028-12-04 12:00 UTC));
    assert_eq!(
        sweep(&app, false).await["stages"]["identity"]["pseudonymize"],
        1
    );
    assert_eq!(search_id(&app, POLICE).await, json!([id]));
}

/// `guestvault policy check` refuses an invalid stage, naming the file and key.
#[test]
fn policy_check_names_the_key_of_an_invalid_stage() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    crate::helpers::copy_policies(&policies);
    let file = policies.join("retention.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = text.replacen("fields = [\"id_number\"]", "fields = [\"full_name\"]", 1);
    assert_ne!(broken, text, "the fixture must change");
    std::fs::write(&file, broken).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestvault"))
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .args(["policy", "check", "--dir"])
        .arg(&policies)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retention.toml"), "{stderr}");
    assert!(
        stderr.contains("classes.identity.stages[1].fields"),
        "{stderr}"
    );
}
