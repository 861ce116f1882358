//! HTTPS (REQ-11): rustls on the `ring` provider, TLS 1.2 and 1.3 with rustls' default (modern,
//! forward-secret AEAD) suites. The certificate and key come from `server.tls_cert_file` and
//! `server.tls_key_file` (PEM); SIGHUP reloads both, and a new pair that does not load keeps
//! the old one (logged as an error). With `server.tls_client_ca_file`, every connection must
//! present a client certificate that CA signed (mutual TLS for system callers).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServerConfig;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate in force, swapped whole on reload.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    fn load_pair(cert_file: &Path, key_file: &Path) -> anyhow::Result<CertifiedKey> {
        let certs = CertificateDer::pem_file_iter(cert_file)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                anyhow::anyhow!(
                    "config key server.tls_cert_file: `{}`: not a PEM certificate chain: {e}",
                    cert_file.display()
                )
            })?;
        if certs.is_empty() {
            anyhow::bail!(
                "config key server.tls_cert_file: `{}` holds no certificate",
                cert_file.display()
            );
        }
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
            anyhow::anyhow!(
                "config key server.tls_key_file: `{}`: not a PEM private key: {e}",
                key_file.display()
            )
        })?;
        CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
            anyhow::anyhow!(
                "config key server.tls_key_file: `{}` does not fit server.tls_cert_file: {e}",
                key_file.display()
            )
        })
    }

    /// Reads the pair again; on failure the old one stays in force.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = Arc::new(Self::load_pair(&self.cert_file, &self.key_file)?);
        match self.current.write() {
            Ok(mut g) => *g = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    fn get(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The TLS side of the listener: the acceptor and the store SIGHUP reloads.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub certs: Arc<CertStore>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("certs", &self.certs)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// `None` without `server.tls_cert_file`; an error naming the key if a file is bad.
    pub fn from_config(server: &ServerConfig) -> anyhow::Result<Option<Self>> {
        let (Some(cert_file), Some(key_file)) = (&server.tls_cert_file, &server.tls_key_file)
        else {
            return Ok(None);
        };
        let pair = CertStore::load_pair(cert_file, key_file)?;
        let certs = Arc::new(CertStore {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            current: RwLock::new(Arc::new(pair)),
        });
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS protocol versions")?;
        let builder = match &server.tls_client_ca_file {
            None => builder.with_no_client_auth(),
            Some(ca_file) => {
                let mut roots = rustls::RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(ca_file)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "config key server.tls_client_ca_file: `{}`: not PEM certificates: {e}",
                            ca_file.display()
                        )
                    })?;
                let (added, _) = roots.add_parsable_certificates(cas);
                if added == 0 {
                    anyhow::bail!(
                        "config key server.tls_client_ca_file: `{}` holds no usable CA certificate",
                        ca_file.display()
                    );
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                        .build()
                        .map_err(|e| {
                            anyhow::anyhow!("config key server.tls_client_ca_file: {e}")
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            certs,
        }))
    }
}

/// The SIGHUP stream, registered when the server is built (so a SIGHUP sent as soon as the
/// server listens cannot hit the default action, which would end the process).
#[cfg(unix)]
pub type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
pub type Hangup = ();

#[cfg(unix)]
pub fn hangup() -> anyhow::Result<Hangup> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP (TLS certificate reloads)")
}

#[cfg(not(unix))]
pub fn hangup() -> anyhow::Result<Hangup> {
    Ok(())
}

/// Reloads the certificate on every SIGHUP until the task is aborted.
#[cfg(unix)]
pub async fn reload_on_sighup(certs: Arc<CertStore>, mut hup: Hangup) {
    while hup.recv().await.is_some() {
        match certs.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays")
            }
        }
    }
}

#[cfg(not(unix))]
pub async fn reload_on_sighup(_certs: Arc<CertStore>, _hup: Hangup) {
    std::future::pending::<()>().await;
}
