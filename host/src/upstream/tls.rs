//! TLS to upstreams: which CAs are trusted (the system's, or a configured bundle), the
//! server name sent as SNI and verified (the target's host unless configured), an optional
//! client certificate, and ALPN for the configured protocol. Verification is on unless the
//! manifest turns it off explicitly. The files are polled: a change reloads the manifest (see
//! `reload`), which builds new clients with them, or keeps the old ones if they are broken.

use crate::tls::{CertFiles, TlsError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// An upstream's TLS settings, as the manifest gives them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSpec {
    /// PEM bundle of trusted CAs; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// Name sent as SNI and verified; `None`: each target's host.
    pub server_name: Option<String>,
    /// Client certificate presented to the upstream.
    pub client_cert: Option<CertFiles>,
    /// Verify the upstream's certificate (default true).
    pub verify: bool,
}

/// An upstream's loaded TLS client configuration.
#[derive(Clone)]
pub struct UpstreamTls {
    /// rustls's client configuration (ALPN is set per protocol when the client is built).
    pub config: Arc<rustls::ClientConfig>,
    /// The fixed server name, if configured.
    pub server_name: Option<ServerName<'static>>,
    /// SHA-256 over the settings and the files' contents: equal fingerprints, same client.
    fingerprint: [u8; 32],
    /// The files it was loaded from (CA bundle, client certificate and key), to watch.
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl UpstreamTls {
    /// Load the CA bundle (or the system's roots) and client certificate of `spec`.
    pub fn load(spec: &TlsSpec) -> Result<Self, TlsError> {
        let mut hash = Sha256::new();
        hash.update(format!("{spec:?}"));
        let provider = crate::tls::provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(crate::tls::VERSIONS)
            .map_err(crate::tls::unsupported)?;
        let builder = if !spec.verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            let roots = match &spec.ca {
                Some(ca) => {
                    hash.update(std::fs::read(ca).unwrap_or_default());
                    crate::tls::load_roots(ca)?
                }
                None => system_roots()?,
            };
            builder.with_root_certificates(roots)
        };
        let config = match &spec.client_cert {
            None => builder.with_no_client_auth(),
            Some(files) => {
                for f in [&files.cert, &files.key] {
                    hash.update(std::fs::read(f).unwrap_or_default());
                }
                let key = crate::tls::load(files)?;
                builder
                    .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
            }
        };
        let server_name = match &spec.server_name {
            None => None,
            Some(name) => Some(
                ServerName::try_from(name.clone()).map_err(|e| TlsError::Pem {
                    path: String::new(),
                    reason: format!("server-name {name:?}: {e}"),
                })?,
            ),
        };
        let files = spec
            .ca
            .iter()
            .chain(spec.client_cert.iter().flat_map(|c| [&c.cert, &c.key]))
            .cloned()
            .collect();
        Ok(UpstreamTls {
            config: Arc::new(config),
            server_name,
            fingerprint: hash.finalize().into(),
            files,
        })
    }

    /// The files it was loaded from (a change to one calls for a reload).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// The system's trusted roots (the platform's CA store), refused when there are none.
fn system_roots() -> Result<rustls::RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or("none found".to_string(), |e| e.to_string());
        return Err(TlsError::Read {
            path: "the system's CA certificates".into(),
            reason: format!("{why}; install ca-certificates or set tls.ca"),
        });
    }
    Ok(roots)
}

/// `verify = false`: any certificate is accepted (signatures are still checked, so the
/// connection is encrypted, but not authenticated).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
