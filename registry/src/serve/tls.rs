//! HTTPS: a rustls server configuration whose certificate is re-read on SIGHUP. Connections already open keep
//! the certificate they started with; new handshakes get the new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
}

/// The certificate and key files, and what was last loaded from them.
#[derive(Debug)]
pub struct CertSource {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |path: &Path, reason: String| TlsError::Read { path: path.into(), reason };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| read(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(read(cert, "no certificate in the file".into()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| read(key, e.to_string()))?;
    let signing = default_provider().key_provider.load_private_key(der).map_err(|e| read(key, e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| TlsError::Config(format!("{} does not match {}: {e}", key.display(), cert.display())))?;
    Ok(Arc::new(certified))
}

impl CertSource {
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<CertSource>, TlsError> {
        let current = RwLock::new(load(cert, key)?);
        Ok(Arc::new(CertSource { cert: cert.into(), key: key.into(), current }))
    }

    /// Re-reads the files; on failure the previous certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// An acceptor offering HTTP/2 and HTTP/1.1 through ALPN.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reloads on every SIGHUP while the server runs.
    pub fn spawn_reload_on_hangup(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hup = signal(SignalKind::hangup()).ok()?;
            let source = Arc::clone(self);
            Some(tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match source.reload() {
                        Ok(()) => tracing::info!(cert = %source.cert.display(), "reloaded the TLS certificate"),
                        Err(e) => tracing::error!(error = %e, "TLS certificate not reloaded; keeping the old one"),
                    }
                }
            }))
        }
        #[cfg(not(unix))]
        None
    }
}

impl ResolvesServerCert for CertSource {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner())))
    }
}
