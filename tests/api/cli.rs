//! The `guestvault` binary itself: `policy check` on a broken file, `token` for an unknown
//! role, and `demo` serving on a fresh data dir with a self-contained sample.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_guestvault");

/// The binary run in `cwd` (so no stray `guestvault.toml` is picked up) with no inherited
/// `GUESTVAULT_*` settings.
fn guestvault(cwd: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("GUESTVAULT_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

use crate::helpers::copy_policies;

#[test]
fn policy_check_names_the_file_and_key_of_a_broken_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let ok = guestvault(dir.path())
        .args(["policy", "check", "--dir"])
        .arg(&policies)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let access = policies.join("access.toml");
    let text = std::fs::read_to_string(&access).unwrap();
    let broken = text.replacen(
        "[roles.pms.views]\nfull_name = \"plain\"",
        "[roles.pms.views]\nfull_name = \"plainly\"",
        1,
    );
    assert_ne!(broken, text, "the fixture must change");
    std::fs::write(&access, broken).unwrap();
    let out = guestvault(dir.path())
        .args(["policy", "check", "--dir"])
        .arg(&policies)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("access.toml"), "{stderr}");
    assert!(stderr.contains("roles.pms.views.full_name"), "{stderr}");
}

/// REQ-08, REQ-10: `notice render` writes, for each language, exactly the shipped text of the
/// latest notice (2026-12, generated from the policy), minors' section included; `policy check`
/// fails, naming file and key, when the latest notice discloses less than the policy (a field
/// dropped from `marketing`, a legal-hold reason dropped).
#[test]
fn notice_render_writes_the_shipped_text_and_policy_check_refuses_a_notice_that_discloses_less() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    for lang in ["zh-CN", "en"] {
        let out = guestvault(dir.path())
            .args(["notice", "render", "--lang", lang, "--dir"])
            .arg(&policies)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shipped =
            std::fs::read_to_string(policies.join(format!("notices/2026-12.{lang}.md"))).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), shipped, "{lang}");
        for purpose in ["check_in", "marketing", "personalization", "police_report"] {
            assert!(
                shipped.contains(&format!("### `{purpose}`")),
                "{lang}: {purpose}"
            );
        }
        let minors = if lang == "en" {
            "## Processing rules for minors"
        } else {
            "## 未成年人个人信息的处理规则"
        };
        assert!(shipped.contains(minors), "{lang}: no minors' section");
        assert!(shipped.contains("`police_investigation`"), "{lang}: holds");
    }
    let out = guestvault(dir.path())
        .args(["notice", "render", "--lang", "fr", "--dir"])
        .arg(&policies)
        .output()
        .unwrap();
    assert!(!out.status.success());

    let notices = policies.join("notices.toml");
    let text = std::fs::read_to_string(&notices).unwrap();
    // Only the latest version (2026-12, last in the file) is held to the policy.
    let start = text.find("[notices.\"2026-12\"]").unwrap();
    let less = format!(
        "{}{}",
        &text[..start],
        text[start..]
            .replacen(
                "fields = [\"full_name\", \"email\", \"mobile\", \"birth_date\", \"membership_level\"]",
                "fields = [\"full_name\", \"email\", \"mobile\", \"membership_level\"]",
                1,
            )
            .replacen("\"litigation\", ", "", 1)
    );
    assert_ne!(less, text, "the fixture must change");
    std::fs::write(&notices, less).unwrap();
    let out = guestvault(dir.path())
        .args(["policy", "check", "--dir"])
        .arg(&policies)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notices.toml")
            && stderr.contains("`notices.\"2026-12\".purposes.marketing.fields`")
            && stderr.contains("`birth_date`")
            && stderr.contains("`notices.\"2026-12\".holds`")
            && stderr.contains("`litigation`"),
        "{stderr}"
    );
}

#[test]
fn token_refuses_a_role_the_policy_does_not_define() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = guestvault::config::Config::default();
    config.storage.data_dir = data.clone();
    guestvault::cli::init(&config).unwrap();
    let run = |role: &str| {
        guestvault(dir.path())
            .env("GUESTVAULT_STORAGE_DATA_DIR", &data)
            .args(["token", "--role", role, "--sub", "someone"])
            .output()
            .unwrap()
    };
    let ok = run("front_desk");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );
    let out = run("nosuch");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no token is printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown role `nosuch`"), "{stderr}");
}

/// Kills the demo server when the test ends, passing or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_serves_a_fresh_data_dir_and_prints_a_self_contained_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut child = Running(
        guestvault(dir.path())
            .env("GUESTVAULT_STORAGE_DATA_DIR", &data)
            .env("GUESTVAULT_SERVER_LISTEN", "127.0.0.1:0")
            .arg("demo")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // Read until the read-back curl (the last line of the sample).
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines
        .iter()
        .any(|l: &String| l.starts_with("curl -s ") && l.contains("/v1/guests/$ID"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("demo output ended early ({e}): {lines:#?}"),
        }
    }
    let addr = lines
        .iter()
        .find_map(|l| l.strip_prefix("GuestVault demo on "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {lines:#?}"))
        .to_string();
    assert!(addr.starts_with("http://127.0.0.1:"), "{addr}");
    assert!(!addr.ends_with(":0"), "{addr}");
    assert!(
        data.join("keyring.json").exists(),
        "demo creates the data dir"
    );
    for role in ["PMS", "FRONT_DESK", "CONCIERGE"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("export {role}_TOKEN=ey"))),
            "{lines:#?}"
        );
    }
    // The sample uses no variable but the `ID` it sets itself.
    let sample: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("curl ") || l.trim_start().starts_with("-d "))
        .collect();
    assert_eq!(sample.len(), 3, "{sample:#?}");
    for l in &sample {
        assert!(!l.contains("_TOKEN"), "{l}");
    }
    let bearer = |l: &str| {
        l.split("Authorization: Bearer ")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no inline token in {l}"))
    };
    let create_token = bearer(sample[0]);
    let read_token = bearer(sample[2]);

    let client = reqwest::Client::new();
    let ready = client.get(format!("{addr}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    // The inline tokens do what the sample says: create as pms, read back masked.
    let created = client
        .post(format!("{addr}/v1/guests"))
        .bearer_auth(&create_token)
        .header("X-Purpose", "check_in")
        .json(
            &serde_json::json!({"fields":{"full_name":"张三丰","mobile":"138 1234 5678",
            "id_type":"cn_resident_id","id_number":"11010519491231002X","gender":"F"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<serde_json::Value>().await.unwrap()["guest_id"]
        .as_str()
        .unwrap()
        .to_string();
    let read = client
        .get(format!("{addr}/v1/guests/{id}"))
        .bearer_auth(&read_token)
        .header("X-Purpose", "check_in")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let body: serde_json::Value = read.json().await.unwrap();
    assert_eq!(body["views"]["mobile"], "masked", "{body}");
    assert_eq!(body["fields"]["mobile"], "+86 138****5678", "{body}");
    drop(child);
}
