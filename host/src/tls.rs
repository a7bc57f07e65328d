//! TLS termination with rustls: TLS 1.2 and 1.3 only with rustls's safe cipher suites, ALPN
//! `h2` and `http/1.1`, session resumption (tickets and a session cache), and several
//! certificates chosen by SNI: the first listed certificate valid for the requested name
//! (exact or wildcard, as its SANs say), else the first one (the default).
//!
//! Certificate and key files are polled for changes and reloaded without a restart; a file
//! that does not parse, or a key that does not match its certificate, keeps the old
//! certificates serving and logs why.

use arc_swap::ArcSwap;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often certificate files are checked for changes.
pub const POLL: Duration = Duration::from_secs(2);

/// A certificate chain and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A certificate that could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or unreadable.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file holds no usable PEM item.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("{key} does not match the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
}

/// Load one certificate chain and key, checking that they belong together.
pub fn load(files: &CertFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| TlsError::Read {
            path: shown(p),
            reason: e.to_string(),
        })
    };
    let cert_pem = read(&files.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: shown(&files.cert),
            reason: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: shown(&files.cert),
            reason: "no CERTIFICATE in the file".into(),
        });
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: shown(&files.key),
        reason: format!("no usable private key: {e}"),
    })?;
    let signer = any_supported_type(&key).map_err(|e| TlsError::Pem {
        path: shown(&files.key),
        reason: format!("unsupported private key: {e}"),
    })?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| TlsError::Mismatch {
        cert: shown(&files.cert),
        key: shown(&files.key),
    })?;
    Ok(Arc::new(certified))
}

/// Load every certificate of a listener, in order (the first is the default).
pub fn load_all(files: &[CertFiles]) -> Result<Vec<Arc<CertifiedKey>>, TlsError> {
    files.iter().map(load).collect()
}

/// Chooses a certificate by SNI.
#[derive(Debug)]
pub struct SniResolver {
    certs: ArcSwap<Vec<Arc<CertifiedKey>>>,
}

impl SniResolver {
    /// A resolver over `certs` (at least one).
    pub fn new(certs: Vec<Arc<CertifiedKey>>) -> Self {
        SniResolver {
            certs: ArcSwap::from_pointee(certs),
        }
    }

    /// Serve `certs` from now on.
    pub fn replace(&self, certs: Vec<Arc<CertifiedKey>>) {
        self.certs.store(Arc::new(certs));
    }

    /// The certificate for `name` (`None`: the client sent no SNI).
    pub fn choose(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        let matching = name
            .and_then(|n| ServerName::try_from(n).ok())
            .and_then(|name| {
                certs.iter().find(|ck| {
                    ck.end_entity_cert()
                        .ok()
                        .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
                        .is_some_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
                })
            });
        matching.or_else(|| certs.first()).cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

/// A TLS listener's state: its acceptor, and the files to watch.
pub struct TlsListener {
    /// Accepts TLS connections with the current certificates.
    pub acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<SniResolver>,
    files: Vec<CertFiles>,
}

impl TlsListener {
    /// Load the certificates and build the server configuration.
    pub fn new(files: Vec<CertFiles>) -> Result<Self, TlsError> {
        let resolver = Arc::new(SniResolver::new(load_all(&files)?));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Pem {
                path: String::new(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
            config.ticketer = ticketer;
        }
        Ok(TlsListener {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            resolver,
            files,
        })
    }

    /// Reload the certificates; on failure the current ones stay and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.resolver.replace(load_all(&self.files)?);
        Ok(())
    }

    /// Latest modification time over the certificate and key files.
    fn stamp(&self) -> Option<SystemTime> {
        self.files
            .iter()
            .flat_map(|f| [&f.cert, &f.key])
            .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .max()
    }
}

/// Poll the listeners' certificate files and reload those that changed, until the process
/// ends.
pub async fn watch(listeners: Vec<Arc<TlsListener>>) {
    let mut stamps: Vec<Option<SystemTime>> = listeners.iter().map(|l| l.stamp()).collect();
    loop {
        tokio::time::sleep(POLL).await;
        for (l, seen) in listeners.iter().zip(stamps.iter_mut()) {
            let now = l.stamp();
            if now == *seen {
                continue;
            }
            *seen = now;
            match l.reload() {
                Ok(()) => tracing::info!("TLS certificates reloaded"),
                Err(e) => {
                    tracing::error!("TLS certificates not reloaded, the old ones keep serving: {e}")
                }
            }
        }
    }
}
