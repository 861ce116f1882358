//! HTTPS (issue 12, REQ-11): served with rustls from PEM files, plain HTTP refused, the
//! certificate reloaded on SIGHUP (a bad new one keeps the old), client certificates required
//! when `server.tls_client_ca_file` is set, and bad files stop the start naming the key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::helpers::{spawn_app_with, TestApp};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn make_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

/// A leaf for `names` signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn port(app: &TestApp) -> u16 {
    app.addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn roots(ca_pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

fn client_config(ca_pem: &str, client: Option<&(String, String)>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_pem));
    match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    }
}

/// An HTTPS client trusting `ca_pem` (and presenting `client`, if given).
fn https_client(ca_pem: &str, client: Option<&(String, String)>) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_config(ca_pem, client))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The DER of the certificate the server presents now.
async fn served_cert(port: u16, ca_pem: &str) -> Vec<u8> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca_pem, None)));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn spawn_tls(ca: &Ca, client_ca: Option<&str>) -> TestApp {
    let (cert, key) = leaf(ca, &["localhost", "127.0.0.1"]);
    let client_ca = client_ca.map(str::to_string);
    spawn_app_with(move |c, dir| {
        c.server.tls_cert_file = Some(write(dir, "server.crt", &cert));
        c.server.tls_key_file = Some(write(dir, "server.key", &key));
        c.server.tls_client_ca_file = client_ca.map(|pem| write(dir, "clients.crt", &pem));
    })
    .await
}

#[tokio::test]
async fn https_serves_and_plain_http_to_the_tls_port_fails() {
    let ca = make_ca("test ca");
    let app = spawn_tls(&ca, None).await;
    let port = port(&app);
    let client = https_client(&ca.pem, None);
    let r = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("https://localhost:{port}/v1/policy"))
        .bearer_auth(app.token("compliance_officer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
    // Nor does a client that does not trust the certificate.
    let other = make_ca("other ca");
    assert!(https_client(&other.pem, None)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .is_err());
    app.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_one_keeps_the_old() {
    let ca = make_ca("test ca");
    let app = spawn_tls(&ca, None).await;
    let port = port(&app);
    let first = served_cert(port, &ca.pem).await;
    let hup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    // A new pair on disk, then SIGHUP: the next handshake shows it.
    let (cert, key) = leaf(&ca, &["localhost"]);
    let dir = app.dir.path();
    write(dir, "server.crt", &cert);
    write(dir, "server.key", &key);
    hup();
    let mut second = first.clone();
    for _ in 0..100 {
        second = served_cert(port, &ca.pem).await;
        if second != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(second, first, "the certificate did not change after SIGHUP");
    let expected = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    assert_eq!(second, expected.to_vec());

    // A broken pair: SIGHUP keeps serving the one before, and says so.
    write(dir, "server.crt", "not a certificate");
    hup();
    let mut logged = false;
    for _ in 0..100 {
        if crate::helpers::captured_logs().contains("TLS certificate not reloaded") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged);
    assert_eq!(served_cert(port, &ca.pem).await, second);
    app.stop().await;
}

#[tokio::test]
async fn with_a_client_ca_a_connection_without_a_client_certificate_is_refused() {
    let ca = make_ca("server ca");
    let clients = make_ca("client ca");
    let app = spawn_tls(&ca, Some(&clients.pem)).await;
    let port = port(&app);
    let url = format!("https://localhost:{port}/healthz");
    // No certificate: the handshake fails.
    assert!(https_client(&ca.pem, None).get(&url).send().await.is_err());
    // A certificate from another CA: refused too.
    let stranger = leaf(&ca, &["pms.example"]);
    assert!(https_client(&ca.pem, Some(&stranger))
        .get(&url)
        .send()
        .await
        .is_err());
    // Signed by the client CA: served.
    let pms = leaf(&clients, &["pms.example"]);
    let r = https_client(&ca.pem, Some(&pms))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn bad_or_missing_certificate_files_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(dir.path());
    guestvault::cli::init(&config).unwrap();
    let ca = make_ca("test ca");
    let (cert, key) = leaf(&ca, &["localhost"]);
    let (_, other_key) = leaf(&ca, &["localhost"]);
    let cases = [
        ("missing.crt", None, "server.tls_cert_file"),
        ("server.crt", Some("garbage"), "server.tls_key_file"),
        (
            "server.crt",
            Some(other_key.as_str()),
            "server.tls_key_file",
        ),
    ];
    write(dir.path(), "server.crt", &cert);
    for (cert_name, key_text, named) in cases {
        config.server.tls_cert_file = Some(dir.path().join(cert_name));
        let key_file = write(dir.path(), "server.key", key_text.unwrap_or(&key));
        config.server.tls_key_file = Some(key_file);
        let err = format!(
            "{:#}",
            guestvault::startup::App::build(config.clone())
                .await
                .unwrap_err()
        );
        assert!(err.contains(named), "{cert_name}: {err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
    // A key file alone is a config error naming the missing key.
    let err = guestvault::config::Config::load_with_env(
        None,
        [(
            "GUESTVAULT_SERVER_TLS_KEY_FILE".to_string(),
            "/x.key".to_string(),
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.tls_cert_file"), "{err}");
}
