//! TLS termination: the certificate is chosen by SNI (exact, wildcard, default), ALPN offers
//! h2 and http/1.1, requests are proxied with `X-Forwarded-Proto: https`, certificates are
//! reloaded from disk without a restart (a broken one keeps the old serving), and `weir check`
//! reports unreadable and mismatched files.

mod harness;
use harness::pki::*;
use harness::*;
use std::time::Duration;

/// Connect with SNI `name`, offering `alpn`.
async fn connect(weir: &Weir, name: &str, alpn: &[&[u8]]) -> Tls {
    connect_as(weir.addr, name, alpn, None)
        .await
        .expect("TLS handshake")
}

fn served(tls: &Tls) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One TLS listener with `tls` as its table, proxying to `up`.
fn with_tls(up: std::net::SocketAddr, tls: &str) -> String {
    format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ {tls} }}\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n[[routes]]\nupstream = \"app\"\n"
    )
}

fn tls_manifest(up: std::net::SocketAddr) -> String {
    with_tls(
        up,
        "certificates = [{ cert = \"a.pem\", key = \"a.key\" }, { cert = \"b.pem\", key = \"b.key\" }]",
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
    let body = text(get_over(tls, "a.test", "/secure").await.unwrap()).await;
    assert!(body.contains("x-forwarded-proto: https"), "{body}");

    // HTTP/2 chosen by ALPN.
    let tls = connect(&weir, "a.test", &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let resp = get_h2_over(tls, "https://a.test/over-h2").await.unwrap();
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
    let (ok, _, err) = check_in(
        dir.path(),
        "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = { certificates = [{ cert = \"missing.pem\", key = \"a.key\" }] }\n\n\
         [[listeners]]\naddress = \"127.0.0.1:1\"\ntls = { certificates = [{ cert = \"b.pem\", key = \"b.key\" }] }\n\n\
         [upstreams.app]\ntargets = [\"127.0.0.1:9\"]\n\n[[routes]]\nupstream = \"app\"\n",
    );
    assert!(!ok);
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

/// Whether a GET over a connection presenting `client` is answered (the handshake or the
/// request fails when the proxy refuses the certificate).
async fn answered(weir: &Weir, client: Option<&Leaf>) -> bool {
    let Ok(tls) = connect_as(weir.addr, "a.test", &[b"http/1.1"], client).await else {
        return false;
    };
    matches!(get_over(tls, "a.test", "/mtls").await, Ok(r) if r.status() == 200)
}

fn mtls_manifest(up: std::net::SocketAddr, client_auth: &str) -> String {
    with_tls(
        up,
        &format!("certificates = [{{ cert = \"a.pem\", key = \"a.key\" }}], client-ca = \"clients.pem\"{client_auth}"),
    )
}

#[tokio::test]
async fn mtls_accepts_clients_of_the_configured_ca_and_refuses_the_others() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new();
    server_ca.leaf(&["a.test"], dir.path(), "a");
    let clients = Ca::new();
    clients.write(&dir.path().join("clients.pem"));
    let stranger = Ca::new();
    let weir = Weir::start_in(dir, &mtls_manifest(up.addr, ""));

    assert!(
        answered(&weir, Some(&clients.issue(&["client.test"]))).await,
        "a client certificate from client-ca is accepted"
    );
    assert!(
        !answered(&weir, None).await,
        "no client certificate: refused"
    );
    assert!(
        !answered(&weir, Some(&stranger.issue(&["client.test"]))).await,
        "a certificate from another CA: refused"
    );
}

#[tokio::test]
async fn optional_client_auth_serves_anonymous_clients_but_still_refuses_bad_certificates() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    Ca::new().leaf(&["a.test"], dir.path(), "a");
    let clients = Ca::new();
    clients.write(&dir.path().join("clients.pem"));
    let weir = Weir::start_in(dir, &mtls_manifest(up.addr, ", client-auth = \"optional\""));

    assert!(answered(&weir, None).await, "anonymous client served");
    assert!(answered(&weir, Some(&clients.issue(&["c"]))).await);
    assert!(
        !answered(&weir, Some(&Ca::new().issue(&["c"]))).await,
        "an untrusted certificate is refused even when optional"
    );
}

#[test]
fn client_ca_problems_and_unusable_files_are_reported_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    Ca::new().leaf(&["a.test"], dir.path(), "a");
    std::fs::write(dir.path().join("clients.pem"), "no PEM here\n").unwrap();
    let (ok, _, err) = check_in(
        dir.path(),
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }], client-ca = \"clients.pem\" }\n\n\
         [[listeners]]\naddress = \"127.0.0.1:1\"\n\
         tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }], client-auth = \"sometimes\" }\n\n\
         [upstreams.app]\ntargets = [\"127.0.0.1:9\"]\n\n[[routes]]\nupstream = \"app\"\n",
    );
    assert!(!ok);
    assert!(
        err.contains("is not required or optional") && err.contains("needs client-ca"),
        "{err}"
    );
    assert!(
        err.contains("weir.toml:7:75: listeners.tls.client-auth:"),
        "located: {err}"
    );
    assert!(
        err.contains("weir.toml:2:11: listeners.tls:")
            && err.contains("clients.pem: no CERTIFICATE in the file"),
        "an unusable client-ca file: {err}"
    );
}

#[tokio::test]
async fn a_plaintext_listener_redirects_to_https() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    Ca::new().leaf(&["a.test"], dir.path(), "a");
    let weir = Weir::start_in(
        dir,
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\nredirect-https = true\nhttps-port = 8443\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\n\
             tls = {{ certificates = [{{ cert = \"a.pem\", key = \"a.key\" }}] }}\n\n\
             [upstreams.app]\ntargets = [\"{}\"]\n\n[[routes]]\nupstream = \"app\"\n",
            up.addr
        ),
    );
    assert_eq!(weir.addrs.len(), 2);
    let r = get(
        &format!("http://{}/cart?item=7", weir.addrs[0]),
        &[("host", "shop.test")],
    )
    .await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some("https://shop.test:8443/cart?item=7")
    );
    assert!(!r.body.contains("x-upstream"), "not proxied");

    // The TLS listener proxies as usual.
    let tls = connect_as(weir.addrs[1], "a.test", &[b"http/1.1"], None)
        .await
        .unwrap();
    let resp = get_over(tls, "a.test", "/cart").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "app");
}

#[tokio::test]
async fn sessions_resume_without_a_full_handshake() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    ca.leaf(&["a.test"], dir.path(), "a");
    ca.leaf(&["*.b.test"], dir.path(), "b");
    let weir = Weir::start_in(dir, &tls_manifest(up.addr));

    // One client configuration (and so one session cache) for both connections.
    let config = any_cert_client();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
        let tls = connector
            .connect(
                rustls::pki_types::ServerName::try_from("a.test").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        kinds.push(tls.get_ref().1.handshake_kind());
        // A request, so that the TLS 1.3 ticket sent after the handshake is read.
        let resp = get_over(tls, "a.test", "/").await.unwrap();
        assert_eq!(resp.status(), 200);
        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
    }
    assert_eq!(
        kinds,
        vec![
            Some(rustls::HandshakeKind::Full),
            Some(rustls::HandshakeKind::Resumed)
        ]
    );
}

/// The echo upstream's view of a GET over `tls` that claims a client certificate.
async fn echoed(tls: Tls) -> String {
    let forged = [("x-client-cert-sha256", "forged")];
    text(get_over_with(tls, "a.test", "/who", &forged).await.unwrap()).await
}

#[tokio::test]
async fn the_verified_client_certificate_is_passed_on_and_forgeries_are_dropped() {
    use sha2::Digest;
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    Ca::new().leaf(&["a.test"], dir.path(), "a");
    let clients = Ca::new();
    clients.write(&dir.path().join("clients.pem"));
    let weir = Weir::start_in(dir, &mtls_manifest(up.addr, ", client-auth = \"optional\""));

    let leaf = clients.issue(&["client.test"]);
    let hex = weir::hex::encode(&sha2::Sha256::digest(leaf.der()));
    let tls = connect_as(weir.addr, "a.test", &[b"http/1.1"], Some(&leaf))
        .await
        .unwrap();
    let seen = echoed(tls).await;
    assert!(
        seen.contains(&format!("x-client-cert-sha256: {hex}\n")),
        "{seen}"
    );
    assert!(!seen.contains("forged"), "{seen}");

    let anonymous = connect_as(weir.addr, "a.test", &[b"http/1.1"], None)
        .await
        .unwrap();
    let seen = echoed(anonymous).await;
    assert!(!seen.contains("x-client-cert-sha256"), "{seen}");
}

#[tokio::test]
async fn handshakes_are_counted_in_the_metrics() {
    let up = Upstream::echo("app").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    ca.leaf(&["a.test"], dir.path(), "a");
    let m = format!(
        "admin = \"127.0.0.1:0\"\n{}",
        with_tls(
            up.addr,
            "certificates = [{ cert = \"a.pem\", key = \"a.key\" }]"
        )
    );
    let weir = Weir::start_in(dir, &m);
    let tls = connect_as(weir.addr, "a.test", &[b"http/1.1"], None)
        .await
        .expect("handshake");
    assert_eq!(get_over(tls, "a.test", "/").await.unwrap().status(), 200);
    // Not TLS at all: a failed handshake.
    let raw = raw::exchange(weir.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    assert_eq!(raw.status, 0, "{raw:?}");
    let admin = weir.admin.unwrap();
    let text = get(&format!("http://{admin}/metrics"), &[]).await.body;
    let listener = weir.addr.to_string();
    let count = |result: &str| {
        let series =
            format!("weir_tls_handshakes_total{{listener=\"{listener}\",result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {series} in {text}"))
    };
    assert_eq!(count("ok"), 1);
    assert_eq!(count("failed"), 1);
    assert_eq!(count("timeout"), 0);
    let open = format!("weir_connections_open{{listener=\"{listener}\",tls=\"true\"}}");
    assert!(text.contains(&open), "{text}");
}
