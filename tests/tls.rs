//! TLS termination: the certificate is chosen by SNI (exact, wildcard, default), ALPN offers
//! h2 and http/1.1, requests are proxied with `X-Forwarded-Proto: https`, certificates are
//! reloaded from disk without a restart (a broken one keeps the old serving), and `weir check`
//! reports unreadable and mismatched files.

mod harness;
use harness::*;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A test CA issuing leaf certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Write a leaf for `names` to `dir/<file>.pem` and `.key`; returns its DER.
    fn leaf(&self, names: &[&str], dir: &Path, file: &str) -> Vec<u8> {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }
}

/// Accepts any server certificate: these tests look at which one was served.
#[derive(Debug)]
struct AnyCert;

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

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Connect with SNI `name`, offering `alpn`.
async fn connect(weir: &Weir, name: &str, alpn: &[&[u8]]) -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    connector
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

fn served(tls: &Tls) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn tls_manifest(up: std::net::SocketAddr) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         tls = {{ certificates = [{{ cert = \"a.pem\", key = \"a.key\" }}, {{ cert = \"b.pem\", key = \"b.key\" }}] }}\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n[[routes]]\nupstream = \"app\"\n"
    )
}

#[tokio::test]
async fn sni_picks_the_certificate_and_requests_are_proxied_over_h1_and_h2() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let a = ca.leaf(&["a.test"], dir.path(), "a");
    let b = ca.leaf(&["*.b.test"], dir.path(), "b");
    let weir = Weir::start_in(dir, &tls_manifest(up.addr));

    assert_eq!(
        served(&connect(&weir, "a.test", &[]).await),
        a,
        "exact name"
    );
    assert_eq!(
        served(&connect(&weir, "shop.b.test", &[]).await),
        b,
        "wildcard"
    );
    assert_eq!(
        served(&connect(&weir, "other.test", &[]).await),
        a,
        "default: the first"
    );

    // HTTP/1.1 over TLS.
    let tls = connect(&weir, "a.test", &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            http::Request::get("/secure")
                .header("host", "a.test")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("x-forwarded-proto: https"), "{body}");

    // HTTP/2 chosen by ALPN.
    let tls = connect(&weir, "a.test", &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            http::Request::get("https://a.test/over-h2")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "app");
}

#[tokio::test]
async fn certificates_reload_from_disk_and_broken_ones_keep_the_old() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let first = ca.leaf(&["a.test"], dir.path(), "a");
    ca.leaf(&["*.b.test"], dir.path(), "b");
    let weir = Weir::start_in(dir, &tls_manifest(up.addr));
    assert_eq!(served(&connect(&weir, "a.test", &[]).await), first);

    let renewed = ca.leaf(&["a.test"], weir.dir(), "a");
    let mut swapped = false;
    for _ in 0..60 {
        if served(&connect(&weir, "a.test", &[]).await) == renewed {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        swapped,
        "the renewed certificate is served; logs:\n{}",
        weir.logs()
    );
    weir.wait_for_log("TLS certificates reloaded");

    // A key that does not match: the renewed certificate keeps serving.
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(weir.dir().join("a.key"), other.serialize_pem()).unwrap();
    weir.wait_for_log("does not match the certificate");
    assert_eq!(served(&connect(&weir, "a.test", &[]).await), renewed);
}

#[test]
fn check_reports_unreadable_and_mismatched_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    ca.leaf(&["a.test"], dir.path(), "a");
    ca.leaf(&["b.test"], dir.path(), "b");
    std::fs::copy(dir.path().join("a.key"), dir.path().join("b.key")).unwrap();
    let manifest = dir.path().join("weir.toml");
    std::fs::write(
        &manifest,
        "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = { certificates = [{ cert = \"missing.pem\", key = \"a.key\" }] }\n\n\
         [[listeners]]\naddress = \"127.0.0.1:1\"\ntls = { certificates = [{ cert = \"b.pem\", key = \"b.key\" }] }\n\n\
         [upstreams.app]\ntargets = [\"127.0.0.1:9\"]\n\n[[routes]]\nupstream = \"app\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("check")
        .arg(&manifest)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("weir.toml:2:11: listeners.tls: cannot read"),
        "{err}"
    );
    assert!(err.contains("missing.pem"), "{err}");
    assert!(
        err.contains("b.key does not match the certificate in"),
        "{err}"
    );
}
