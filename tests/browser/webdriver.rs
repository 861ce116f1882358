//! The few W3C WebDriver commands the console scenarios need, over `reqwest`, against a
//! `chromedriver` this test starts on a free loopback port (and kills when done).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a lookup or a wait may take.
const WAIT: Duration = Duration::from_secs(15);

/// A running chromedriver.
pub struct Driver {
    base: String,
    child: Child,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub async fn start(bin: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Self {
            base: format!("http://127.0.0.1:{port}"),
            child,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        let started = Instant::now();
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                .ok();
            if let Some(r) = ready {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(started.elapsed() < WAIT, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new headless Chromium with a fresh profile that downloads into `downloads`.
    pub async fn session(&self, chromium: &Path, downloads: &Path) -> Session {
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium.display().to_string(),
                    "args": [
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--no-first-run",
                        "--disable-dev-shm-usage",
                        "--window-size=1280,1000",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                    "prefs": {
                        "download.default_directory": downloads.display().to_string(),
                        "download.prompt_for_download": false,
                        "safebrowsing.enabled": false,
                    },
                },
            }}
        });
        let v = self.post("/session", caps).await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        let s = Session {
            base: format!("{}/session/{id}", self.base),
            http: self.http.clone(),
            _profile: profile,
        };
        // Downloads without a prompt in headless mode (Chrome DevTools command).
        let _ = s
            .raw_post(
                "/chromium/send_command",
                json!({"cmd": "Page.setDownloadBehavior", "params": {"behavior": "allow", "downloadPath": downloads.display().to_string()}}),
            )
            .await;
        s
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["value"].clone()
    }
}

/// One browser session.
pub struct Session {
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// An element on the current page.
pub struct Element<'a> {
    s: &'a Session,
    id: String,
}

impl Session {
    async fn raw_post(&self, path: &str, body: Value) -> Result<Value, Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let ok = r.status().is_success();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.raw_post(path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or("").to_string()
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let started = Instant::now();
        loop {
            if let Ok(v) = self
                .raw_post("/element", json!({"using": "css selector", "value": css}))
                .await
            {
                if let Some(id) = v[ELEMENT].as_str() {
                    return Element {
                        s: self,
                        id: id.to_string(),
                    };
                }
            }
            assert!(
                started.elapsed() < WAIT,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for(&self, css: &str) {
        self.find(css).await;
    }

    /// Waits until the page's path is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let started = Instant::now();
        loop {
            let url = self.url().await;
            if url
                .split_once("://")
                .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
                == Some(path)
            {
                return;
            }
            assert!(started.elapsed() < WAIT, "still on {url}, not {path}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The attribute `name` of every element matching `css`.
    pub async fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        let mut out = Vec::new();
        for e in v.as_array().cloned().unwrap_or_default() {
            let id = e[ELEMENT].as_str().unwrap_or_default();
            let a = self.get(&format!("/element/{id}/attribute/{name}")).await;
            out.push(a.as_str().unwrap_or_default().to_string());
        }
        out
    }

    /// The `lang` of the page's `<html>`.
    pub async fn lang(&self) -> String {
        self.find("html")
            .await
            .attr("lang")
            .await
            .unwrap_or_default()
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Element<'_> {
    pub async fn click(&self) {
        self.s
            .post(&format!("/element/{}/click", self.id), json!({}))
            .await;
    }

    pub async fn send_keys(&self, text: &str) {
        self.s
            .post(
                &format!("/element/{}/value", self.id),
                json!({ "text": text }),
            )
            .await;
    }

    pub async fn text(&self) -> String {
        self.s
            .get(&format!("/element/{}/text", self.id))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn attr(&self, name: &str) -> Option<String> {
        self.s
            .get(&format!("/element/{}/attribute/{name}", self.id))
            .await
            .as_str()
            .map(str::to_string)
    }
}
