//! Test PKI: a CA that issues server and client certificates (rcgen), TLS clients that
//! present them, and a TLS upstream server that reports what it saw.

use super::Upstream;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A test CA issuing leaf certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A certificate chain and its key, in memory.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// The leaf certificate's DER.
    pub fn der(&self) -> Vec<u8> {
        self.chain[0].to_vec()
    }
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Write the CA certificate to `path` (PEM).
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).unwrap();
    }

    /// Issue a leaf for `names`, written to `dir/<file>.pem` and `.key`; returns its DER.
    pub fn leaf(&self, names: &[&str], dir: &Path, file: &str) -> Vec<u8> {
        let leaf = self.issue(names);
        std::fs::write(dir.join(format!("{file}.pem")), &leaf.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), &leaf.key_pem).unwrap();
        leaf.der()
    }

    /// Issue a leaf for `names` (server and client use), in memory.
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Accepts any server certificate: for tests that look at which one was served.
#[derive(Debug)]
pub struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A client configuration, up to the client certificate, that accepts any server
/// certificate.
fn any_cert_builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>
{
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
}

/// A client configuration that accepts any server certificate and presents none.
pub fn any_cert_client() -> rustls::ClientConfig {
    any_cert_builder().with_no_client_auth()
}

/// Connect to `addr` with SNI `name`, offering `alpn`, presenting `client` if given.
pub async fn connect_as(
    addr: std::net::SocketAddr,
    name: &str,
    alpn: &[&[u8]],
    client: Option<&Leaf>,
) -> std::io::Result<Tls> {
    let builder = any_cert_builder();
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(leaf.chain.clone(), leaf.key.clone_key())
            .unwrap(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
}

/// GET `path` over an established TLS connection with HTTP/1.1.
pub async fn get_over(
    tls: Tls,
    host: &str,
    path: &str,
) -> Result<Response<Incoming>, hyper::Error> {
    get_over_with(tls, host, path, &[]).await
}

/// GET `path` with `headers` over an established TLS connection with HTTP/1.1.
pub async fn get_over_with(
    tls: Tls,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>, hyper::Error> {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", host);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    send.send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
}

/// GET `uri` (absolute: its scheme and authority become `:scheme` and `:authority`) with
/// HTTP/2 over an established connection, TLS or cleartext.
pub async fn get_h2_over<IO>(io: IO, uri: &str) -> Result<Response<Incoming>, hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(conn);
    send.send_request(Request::get(uri).body(Full::new(Bytes::new())).unwrap())
        .await
}

/// A response's body as text.
pub async fn text(resp: Response<Incoming>) -> String {
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// A TLS upstream serving `leaf` with ALPN `alpn`, verifying client certificates against
/// `client_ca` when given. It answers 200 with headers `x-tls-sni` (the name the proxy
/// asked for), `x-tls-alpn`, `x-http-version` and `x-client-cert` (`yes`/`no`).
pub async fn tls_upstream(leaf: &Leaf, alpn: &[&[u8]], client_ca: Option<&Ca>) -> Upstream {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.cert.der().clone()).unwrap();
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap(),
            )
        }
    };
    let mut config = builder
        .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let (_, session) = tls.get_ref();
                let sni = session.server_name().unwrap_or("").to_string();
                let alpn = session
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default();
                let client_cert = if session.peer_certificates().is_some() {
                    "yes"
                } else {
                    "no"
                };
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = Response::builder()
                        .header("x-tls-sni", sni.clone())
                        .header("x-tls-alpn", alpn.clone())
                        .header("x-http-version", format!("{:?}", req.version()))
                        .header("x-client-cert", client_cert)
                        .body(Full::new(Bytes::from_static(b"secure upstream\n")))
                        .unwrap();
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Upstream { addr, task }
}

/// Serve `handler` over TLS with `leaf` (HTTP/1.1 and HTTP/2 by ALPN) on a fresh port.
pub async fn tls_start<F, Fut>(leaf: &Leaf, handler: F) -> Upstream
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, handler) = (acceptor.clone(), handler.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Upstream { addr, task }
}
