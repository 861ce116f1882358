//! Start-up refusals: a keyring that does not match the database, and invalid policies.

use reqwest::{Method, StatusCode};

use crate::helpers::{spawn_app, spawn_on, zhang_san};

#[tokio::test]
async fn restart_keeps_data_but_a_different_keyring_is_refused() {
    let app = spawn_app().await;
    let id = app.create_guest(zhang_san()).await;
    let (dir, config) = app.stop().await;

    // Same keyring: the data is still there after a restart.
    let app = spawn_on(dir, config).await;
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
    let (dir, config) = app.stop().await;

    std::fs::remove_file(config.keyring_file()).unwrap();
    guestvault::crypto::Keyring::create_file(&config.keyring_file()).unwrap();
    let err = format!(
        "{:#}",
        guestvault::startup::App::build(config).await.unwrap_err()
    );
    assert!(err.contains("keyring does not match"), "{err}");
    drop(dir);
}

#[tokio::test]
async fn an_invalid_policy_dir_stops_start_up_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(dir.path());
    guestvault::cli::init(&config).unwrap();
    let policies = dir.path().join("policies");
    crate::helpers::copy_policies(&policies);
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let access = std::fs::read_to_string(src.join("access.toml"))
        .unwrap()
        .replacen("mobile = \"reveal\"", "mobile = \"visible\"", 1);
    std::fs::write(policies.join("access.toml"), access).unwrap();
    config.policies.dir = Some(policies);
    let err = format!(
        "{:#}",
        guestvault::startup::App::build(config).await.unwrap_err()
    );
    assert!(
        err.contains("access.toml") && err.contains("`roles.front_desk.views.mobile`"),
        "{err}"
    );
}

/// Issue 14: PostgreSQL is configurable but not in this build; it must not start as if it
/// worked, whether the config comes from a file (the binary) or is built in code.
#[tokio::test]
async fn a_postgres_database_that_cannot_be_reached_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(dir.path());
    guestvault::cli::init(&config).unwrap();
    config.storage.backend = "postgres".into();
    // Nothing listens on port 1.
    config.storage.postgres_url = Some("postgres://guestvault@127.0.0.1:1/guestvault".into());
    let err = format!(
        "{:#}",
        guestvault::startup::App::build(config.clone())
            .await
            .unwrap_err()
    );
    assert!(err.contains("storage.postgres_url"), "{err}");
    assert!(err.contains("127.0.0.1"), "{err}");
    config.storage.backend = "mysql".into();
    let err = format!(
        "{:#}",
        guestvault::startup::App::build(config).await.unwrap_err()
    );
    assert!(err.contains("`storage.backend`"), "{err}");
    assert!(!err.contains("mysql"), "{err}");

    let file = dir.path().join("guestvault.toml");
    std::fs::write(
        &file,
        format!(
            "[storage]\nbackend = \"postgres\"\ndata_dir = {:?}\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_guestvault"));
    cmd.current_dir(dir.path()).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("GUESTVAULT_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(["--config"])
        .arg(&file)
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // No `storage.postgres_url`: the start stops naming it and the file.
    assert!(
        stderr.contains("`storage.postgres_url`") && stderr.contains("guestvault.toml"),
        "{stderr}"
    );
}
