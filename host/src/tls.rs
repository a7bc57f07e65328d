//! TLS termination with rustls: TLS 1.2 and 1.3 only with rustls's safe cipher suites, ALPN
//! `h2` and `http/1.1`, session resumption (tickets and a session cache), and several
//! certificates chosen by SNI: the first listed certificate valid for the requested name
//! (exact or wildcard, as its SANs say), else the first one (the default).
//!
//! A listener may verify client certificates (mTLS) against a CA bundle, requiring one or
//! accepting clients without one.
//!
//! Certificate, key and client-CA files are polled for changes and reloaded without a
//! restart; a file that does not parse, or a key that does not match its certificate, keeps
//! the old certificates serving and logs why.

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

/// Client-certificate verification of a listener (mTLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM bundle of the CAs that issue client certificates.
    pub ca: PathBuf,
    /// Refuse clients without a certificate (`false`: accept them, still refusing invalid
    /// ones).
    pub required: bool,
}

/// A TLS listener's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Certificates chosen by SNI; the first is the default.
    pub certificates: Vec<CertFiles>,
    /// Client-certificate verification, if any.
    pub client_auth: Option<ClientAuth>,
}

impl TlsSettings {
    /// Every file the settings name.
    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.certificates
            .iter()
            .flat_map(|f| [&f.cert, &f.key])
            .chain(self.client_auth.as_ref().map(|c| &c.ca))
    }

    /// Load and check every file, as a listener would (for `weir check`).
    pub fn check(&self) -> Result<(), TlsError> {
        load_all(&self.certificates)?;
        if let Some(auth) = &self.client_auth {
            client_verifier(auth)?;
        }
        Ok(())
    }
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

/// Read a PEM bundle of CA certificates (at least one).
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|e| TlsError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsError::Pem {
            path: shown.clone(),
            reason: format!("not a PEM certificate bundle: {e}"),
        })?;
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: shown.clone(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::Pem {
            path: shown,
            reason: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(roots)
}

/// The verifier of client certificates for `auth`.
fn client_verifier(
    auth: &ClientAuth,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let roots = Arc::new(load_roots(&auth.ca)?);
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
    let builder = if auth.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| TlsError::Pem {
        path: auth.ca.display().to_string(),
        reason: format!("cannot verify clients with these CAs: {e}"),
    })
}

/// The crypto of every TLS configuration in Weir (server and upstream sides): ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions Weir speaks, on both sides: TLS 1.3 and 1.2.
pub const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A configuration builder the provider refused (cannot happen with ring and [`VERSIONS`]).
pub fn unsupported(e: rustls::Error) -> TlsError {
    TlsError::Pem {
        path: String::new(),
        reason: e.to_string(),
    }
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

/// A TLS listener's state: its server configuration, and the files to watch.
pub struct TlsListener {
    config: ArcSwap<rustls::ServerConfig>,
    resolver: Arc<SniResolver>,
    /// Kept across client-CA reloads so that session tickets stay valid.
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
    settings: TlsSettings,
    /// Its files' stamps taken just before they were first read: a change after that is
    /// seen by the watch.
    loaded: Vec<Option<SystemTime>>,
}

impl TlsListener {
    /// Load the certificates (and client CAs) and build the server configuration.
    pub fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        let loaded = stamps(settings.files());
        let resolver = Arc::new(SniResolver::new(load_all(&settings.certificates)?));
        let ticketer = rustls::crypto::ring::Ticketer::new().ok();
        let config = server_config(&settings, resolver.clone(), ticketer.clone())?;
        Ok(TlsListener {
            config: ArcSwap::from_pointee(config),
            resolver,
            ticketer,
            settings,
            loaded,
        })
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }

    /// Reload the certificates and client CAs; on failure the current ones stay and the
    /// error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certs = load_all(&self.settings.certificates)?;
        if self.settings.client_auth.is_some() {
            let config =
                server_config(&self.settings, self.resolver.clone(), self.ticketer.clone())?;
            self.config.store(Arc::new(config));
        }
        self.resolver.replace(certs);
        Ok(())
    }

    /// The modification times of the listener's files.
    fn stamp(&self) -> Vec<Option<SystemTime>> {
        stamps(self.settings.files())
    }
}

/// The modification time of each file (`None`: missing or unreadable), to poll for changes.
pub fn stamps<'a>(files: impl IntoIterator<Item = &'a PathBuf>) -> Vec<Option<SystemTime>> {
    files
        .into_iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// TLS 1.3 and 1.2, ALPN h2 then http/1.1, certificates from `resolver`.
fn server_config(
    settings: &TlsSettings,
    resolver: Arc<SniResolver>,
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(unsupported)?;
    let builder = match &settings.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => builder.with_client_cert_verifier(client_verifier(auth)?),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if let Some(ticketer) = ticketer {
        config.ticketer = ticketer;
    }
    Ok(config)
}

/// Poll the listeners' certificate files and reload those that changed, until the process
/// ends.
pub async fn watch(listeners: impl Fn() -> Vec<Arc<TlsListener>>) {
    // Each listener with the stamps its files had when last loaded.
    let mut seen: Vec<(Arc<TlsListener>, Vec<Option<SystemTime>>)> = Vec::new();
    loop {
        tokio::time::sleep(POLL).await;
        let now = listeners();
        // Listeners a reload removed are forgotten; new ones start from what they loaded.
        seen.retain(|(l, _)| now.iter().any(|n| Arc::ptr_eq(n, l)));
        for l in now {
            let stamp = l.stamp();
            if !seen.iter().any(|(s, _)| Arc::ptr_eq(s, &l)) {
                seen.push((l.clone(), l.loaded.clone()));
            }
            let Some((_, was)) = seen.iter_mut().find(|(s, _)| Arc::ptr_eq(s, &l)) else {
                continue;
            };
            if stamp == *was {
                continue;
            }
            *was = stamp;
            match l.reload() {
                Ok(()) => tracing::info!("TLS certificates reloaded"),
                Err(e) => {
                    tracing::error!("TLS certificates not reloaded, the old ones keep serving: {e}")
                }
            }
        }
    }
}
