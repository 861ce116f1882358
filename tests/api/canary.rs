//! REQ-11 / REQ-15: plant distinctive values, exercise the API (including failures), then scan
//! the database files (the live WAL included), the server logs and every error body. Zero hits
//! allowed.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{captured_logs, spawn_app};

const CANARY_NAME: &str = "龙傲天";
const CANARY_MOBILE: &str = "13987654321";
const CANARY_EMAIL: &str = "canary.zx81@example.org";
const CANARY_ID: &str = "440524198001010013";
const CANARY_STREET: &str = "金蝉路88号";
const CANARY_DIET: &str = "quokka-canary-allergy";
const CANARY_ROOM: &str = "QX-7731";

#[tokio::test]
async fn planted_canaries_appear_in_no_file_log_or_error_body() {
    let app = spawn_app().await;
    let id = app
        .create_guest(json!({
            "full_name": CANARY_NAME, "mobile": format!("+86 {CANARY_MOBILE}"), "email": CANARY_EMAIL,
            "id_type": "cn_resident_id", "id_number": CANARY_ID, "gender": "M",
            "address": format!("上海市浦东新区{CANARY_STREET}"), "dietary_needs": CANARY_DIET,
        }))
        .await;
    let path = format!("/v1/guests/{id}");
    let r = app.call(Method::POST, &format!("{path}/stays"), Some("pms"), Some("check_in"),
        Some(json!({"fields":{"property":"SHA01","check_in":"2026-11-01","check_out":"2026-11-03","room_number":CANARY_ROOM}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Successful and failing calls that carry the canaries in requests.
    app.call(
        Method::GET,
        &path,
        Some("concierge"),
        Some("guest_service"),
        None,
    )
    .await;
    app.call(
        Method::POST,
        "/v1/guests/search",
        Some("pms"),
        Some("check_in"),
        Some(json!({"field":"mobile","value":CANARY_MOBILE})),
    )
    .await;
    app.call(
        Method::POST,
        "/v1/guests/search",
        Some("pms"),
        Some("check_in"),
        Some(json!({"field":"full_name","value":CANARY_NAME})),
    )
    .await;
    app.call(
        Method::POST,
        "/v1/guests",
        Some("pms"),
        Some("check_in"),
        Some(json!({"fields":{"id_type":"cn_resident_id","id_number":"440524198001010014"}})),
    )
    .await;
    app.call(
        Method::POST,
        "/v1/guests",
        Some("pms"),
        Some("check_in"),
        Some(json!({"fields":{"mobile": CANARY_EMAIL, CANARY_NAME: 1}})),
    )
    .await;
    app.call(
        Method::PATCH,
        &path,
        Some("pms"),
        Some("check_in"),
        Some(json!({"fields":{"email": CANARY_NAME}})),
    )
    .await;
    app.call(
        Method::POST,
        &format!("{path}/reveal"),
        Some("front_desk"),
        Some("check_in"),
        Some(json!({"fields":["id_number"]})),
    )
    .await;
    app.call(Method::GET, &path, Some("pms"), Some(CANARY_MOBILE), None)
        .await;
    app.call(
        Method::GET,
        &format!("/v1/guests/{CANARY_MOBILE}"),
        Some("pms"),
        Some("check_in"),
        None,
    )
    .await;
    app.call(
        Method::GET,
        &format!("{path}/stays"),
        Some("pms"),
        Some("check_in"),
        None,
    )
    .await;

    let metrics = app.call(Method::GET, "/metrics", None, None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let errors = app.error_bodies.lock().unwrap().join("\n");
    assert!(
        errors.len() > 100,
        "the error paths above must have produced bodies"
    );
    // While the server runs, the write-ahead log holds the recent writes (SQLite deletes it at
    // a clean close): read every file of the data dir now, the WAL included.
    // On PostgreSQL the database is not in the data dir: every table is scanned instead.
    let pg = crate::helpers::backend_is_postgres();
    let db_file = app.config.database_file();
    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        ("logs".into(), captured_logs().into_bytes()),
        ("error bodies".into(), errors.into_bytes()),
        ("metrics".into(), metrics.text.into_bytes()),
    ];
    if !pg {
        let wal_file = std::path::PathBuf::from(format!("{}-wal", db_file.display()));
        let wal = std::fs::read(&wal_file)
            .unwrap_or_else(|e| panic!("{} must exist while serving: {e}", wal_file.display()));
        assert!(!wal.is_empty(), "{} is empty", wal_file.display());
        haystacks.push((format!("{} (live)", wal_file.display()), wal));
    }
    let tables_of = |config: &guestvault::config::Config, when: &str| {
        crate::helpers::sql::dump_on(config)
            .into_iter()
            .map(|(t, bytes)| (format!("table {t} ({when})"), bytes))
            .collect::<Vec<_>>()
    };
    let files_of = |dir: &std::path::Path, when: &str| -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|entry| {
                let p = entry.unwrap().path();
                // A file SQLite removes between listing and reading is skipped.
                let bytes = std::fs::read(&p).ok().filter(|_| p.is_file())?;
                Some((format!("{} ({when})", p.display()), bytes))
            })
            .collect()
    };
    haystacks.extend(files_of(app.dir.path(), "live"));
    if pg {
        haystacks.extend(tables_of(&app.config, "live"));
    }
    let (dir, config) = app.stop().await;
    haystacks.extend(files_of(dir.path(), "after stop"));
    if pg {
        haystacks.extend(tables_of(&config, "after stop"));
        for when in ["live", "after stop"] {
            for table in ["guest_fields", "blind_index", "stays", "audit_events"] {
                let name = format!("table {table} ({when})");
                assert!(
                    haystacks.iter().any(|(n, b)| n == &name && !b.is_empty()),
                    "{name} was not scanned"
                );
            }
        }
    } else {
        let db_name = db_file.file_name().unwrap().to_string_lossy().into_owned();
        for (suffix, when) in [("", "live"), ("-wal", "live"), ("", "after stop")] {
            let name = format!("/{db_name}{suffix} ({when})");
            assert!(
                haystacks.iter().any(|(n, _)| n.ends_with(&name)),
                "{name} was not scanned"
            );
        }
    }
    for canary in [
        CANARY_NAME,
        CANARY_MOBILE,
        CANARY_EMAIL,
        CANARY_ID,
        CANARY_STREET,
        CANARY_DIET,
        CANARY_ROOM,
    ] {
        for (name, bytes) in &haystacks {
            let hit = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
            assert!(!hit, "canary {canary:?} found in {name}");
        }
    }
    // The scan can fail: the logs do contain what we expect to see there.
    assert!(captured_logs().contains("route=/v1/guests/{id}"));
    assert!(captured_logs().contains("role=pms purpose=check_in"));
    assert!(captured_logs().contains("purpose=(unknown)"));
}
