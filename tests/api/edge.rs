//! The hardened edge (issue 12): half-open connections cannot starve `/healthz`, the
//! connection cap refuses fast but keeps reserved slots for loopback, slow clients are cut off
//! by the header-read, idle and request timeouts, and audit verification is bounded.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{spawn_app_with, zhang_san, TestApp};

fn port(app: &TestApp) -> u16 {
    app.addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A connection from `source` that sends half a request line and then nothing.
async fn half_open(source: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut s = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    s.write_all(b"GET /v1/guests/").await.unwrap();
    s
}

/// Time of one `/healthz` on a fresh connection from loopback.
async fn timed_healthz(port: u16) -> (Duration, u16) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let status = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    (started.elapsed(), status)
}

/// Whether the server closes `s` (EOF or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a 408 or similar before the close
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_2000_idle_half_open_connections_healthz_answers_within_100ms() {
    // The defaults: 4,096 connections, a 10 s header-read timeout. The test process holds both
    // ends of every connection; this machine's soft limit must allow that.
    let app = spawn_app_with(|_, _| {}).await;
    let port = port(&app);
    let mut idle = Vec::with_capacity(2000);
    for _ in 0..2000 {
        idle.push(half_open("127.0.0.1", port).await);
    }
    // Let the server accept all of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let (t, status) = timed_healthz(port).await;
        assert_eq!(status, 200);
        times.push(t);
    }
    times.sort();
    assert!(times[2] < Duration::from_millis(100), "{times:?}");
    assert!(times[4] < Duration::from_millis(250), "{times:?}");
    // They were all still open (this was not a server that had dropped them).
    let mut buf = [0u8; 1];
    for s in idle.iter_mut().step_by(97) {
        assert!(
            tokio::time::timeout(Duration::from_millis(5), s.read(&mut buf))
                .await
                .is_err(),
            "an idle connection was closed early"
        );
    }
    drop(idle);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_connections_are_closed_at_once_but_reserved_peers_get_in() {
    let app = spawn_app_with(|c, _| {
        c.server.max_connections = 40;
        c.server.reserved_connections = 2;
        c.server.reserved_networks = vec!["127.0.0.1/32".into()];
    })
    .await;
    let port = port(&app);
    // Fill the cap from another loopback address (not in the reserved network).
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(half_open("127.0.0.2", port).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut refused = half_open("127.0.0.2", port).await;
    assert!(closed_within(&mut refused, Duration::from_secs(1)).await);
    assert!(started.elapsed() < Duration::from_millis(500));
    // A reserved peer still gets an answer, fast.
    let (t, status) = timed_healthz(port).await;
    assert_eq!(status, 200);
    assert!(t < Duration::from_millis(100), "{t:?}");
    // Freed slots are usable again.
    held.truncate(10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s = half_open("127.0.0.2", port).await;
    s.write_all(b"x HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 "), "{:?}", &buf[..n]);
    drop(held);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_header_is_cut_off() {
    let app = spawn_app_with(|c, _| c.server.header_read_timeout_secs = 1).await;
    let mut s = half_open("127.0.0.1", port(&app)).await;
    let started = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(4)).await);
    assert!(started.elapsed() >= Duration::from_millis(900));
    app.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let app = spawn_app_with(|c, _| {
        c.server.idle_timeout_secs = 1;
        c.server.header_read_timeout_secs = 30;
    })
    .await;
    let mut s = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(started.elapsed() >= Duration::from_millis(900));
    app.stop().await;
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_gets_408() {
    let app = spawn_app_with(|c, _| c.server.request_timeout_secs = 1).await;
    let token = app.token("pms");
    let mut s = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    let head = format!(
        "POST /v1/guests HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
         X-Purpose: check_in\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"fields\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn verify_defaults_to_the_newest_checkpoint_and_names_the_range() {
    let app = spawn_app_with(|_, _| {}).await;
    app.create_guest(zhang_san()).await;
    // An export ends with a signed checkpoint at the head.
    let r = app
        .call(
            Method::GET,
            "/v1/audit/export",
            Some("compliance_officer"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let cp = app.sql_i64("SELECT max(seq) FROM audit_checkpoints", &[]);
    app.create_guest(zhang_san()).await;
    let r = app
        .call(
            Method::GET,
            "/v1/audit/verify",
            Some("compliance_officer"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let head = app.audit_count();
    assert_eq!(r.body["intact"], true, "{}", r.text);
    assert_eq!(r.body["mode"], "since_checkpoint");
    assert_eq!(r.body["checkpoint_seq"], cp);
    assert_eq!(r.body["from_seq"], cp + 1);
    assert_eq!(r.body["to_seq"], head);
    assert_eq!(r.body["events"], head - cp);

    // A rewritten event after the checkpoint is found by the default check.
    app.tamper_audit_row(cp + 1, "actor = 'nobody'");
    let r = app
        .call(
            Method::GET,
            "/v1/audit/verify",
            Some("compliance_officer"),
            None,
            None,
        )
        .await;
    assert_eq!(r.body["intact"], false, "{}", r.text);
    assert_eq!(r.body["first_bad_seq"], cp + 1);
    // `full` takes `true` or `false` only.
    let r = app
        .call(
            Method::GET,
            "/v1/audit/verify?full=yes",
            Some("compliance_officer"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_verify_while_one_runs_gets_409() {
    let app = spawn_app_with(|_, _| {}).await;
    for _ in 0..3 {
        app.create_guest(zhang_san()).await;
    }
    let vault = app.vault.clone();
    let caller = guestvault::service::Caller {
        request_id: "t".into(),
        actor: "officer".into(),
        role: "compliance_officer".into(),
        purpose: None,
    };
    // Many at once: at least one must find another running, and every answer is either a
    // result or `VerifyInProgress`, never a second concurrent scan.
    let mut saw_busy = false;
    for _ in 0..20 {
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (v, c) = (vault.clone(), caller.clone());
                tokio::spawn(async move { v.verify_audit(&c, Some("full=true")).await })
            })
            .collect();
        for c in calls {
            match c.await.unwrap() {
                Ok(r) => assert!(r.result.intact),
                Err(guestvault::service::VaultError::VerifyInProgress) => saw_busy = true,
                Err(e) => panic!("{e}"),
            }
        }
        if saw_busy {
            break;
        }
    }
    assert!(saw_busy, "no verification ever overlapped another");
    drop(vault); // the writer stops once every handle on the vault is gone
                 // Over HTTP the answer is 409 with its code.
    let e = guestvault::http::ApiError::from(guestvault::service::VaultError::VerifyInProgress);
    let resp = axum::response::IntoResponse::into_response(e);
    assert_eq!(resp.status(), 409);
    app.stop().await;
}
