//! Upstreams over TLS: the CA bundle and server name are verified (on by default), a client
//! certificate is presented when configured, and HTTP/2 is negotiated by ALPN when asked for.

mod harness;
use harness::pki::*;
use harness::*;

/// A folder for the manifest holding `ca` as `ca.pem`.
fn trusting(ca: &Ca) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ca.write(&dir.path().join("ca.pem"));
    dir
}

/// Start weir with one upstream `app` at `target` whose `[upstreams.app]` table gets
/// `settings`, and return the GET reply for `/`.
async fn through(dir: tempfile::TempDir, target: std::net::SocketAddr, settings: &str) -> Reply {
    let weir = Weir::start_in(
        dir,
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
             [upstreams.app]\ntargets = [\"{target}\"]\n{settings}\n\n[[routes]]\nupstream = \"app\"\n"
        ),
    );
    get(&weir.url("/"), &[]).await
}

#[tokio::test]
async fn the_configured_ca_and_server_name_are_verified() {
    let ca = Ca::new();
    let dir = trusting(&ca);
    let up = tls_upstream(&ca.issue(&["backend.test"]), &[b"http/1.1"], None).await;

    let r = through(
        dir,
        up.addr,
        "tls = { ca = \"ca.pem\", server-name = \"backend.test\" }",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tls-sni"), Some("backend.test"));
    // HTTP/1.1 only: no ALPN offered (as nginx does towards upstreams).
    assert_eq!(r.header("x-tls-alpn"), Some(""));
    assert_eq!(r.header("x-http-version"), Some("HTTP/1.1"));
    assert_eq!(r.header("x-client-cert"), Some("no"));
    assert_eq!(r.body, "secure upstream\n");
}

#[tokio::test]
async fn the_target_address_is_verified_when_no_server_name_is_given() {
    let ca = Ca::new();
    let dir = trusting(&ca);
    let up = tls_upstream(&ca.issue(&["127.0.0.1"]), &[b"http/1.1"], None).await;
    let r = through(dir, up.addr, "tls = { ca = \"ca.pem\" }").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn an_untrusted_or_misnamed_certificate_is_refused_unless_verify_is_off() {
    let ca = Ca::new();
    let stranger = Ca::new();
    let by_stranger = tls_upstream(&stranger.issue(&["backend.test"]), &[], None).await;
    let misnamed = tls_upstream(&ca.issue(&["other.test"]), &[], None).await;

    for (up, what) in [(&by_stranger, "another CA"), (&misnamed, "another name")] {
        let dir = trusting(&ca);
        let r = through(
            dir,
            up.addr,
            "tls = { ca = \"ca.pem\", server-name = \"backend.test\" }",
        )
        .await;
        assert_eq!(r.status, 502, "certificate from {what} refused");
    }

    let r = through(
        tempfile::tempdir().unwrap(),
        by_stranger.addr,
        "tls = { verify = false }",
    )
    .await;
    assert_eq!(r.status, 200, "verify = false accepts it: {}", r.body);
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    let ca = Ca::new();
    let clients = Ca::new();
    let up = tls_upstream(&ca.issue(&["backend.test"]), &[], Some(&clients)).await;

    let dir = trusting(&ca);
    let r = through(
        dir,
        up.addr,
        "tls = { ca = \"ca.pem\", server-name = \"backend.test\" }",
    )
    .await;
    assert_eq!(r.status, 502, "the upstream requires a client certificate");

    let dir = trusting(&ca);
    clients.leaf(&["weir.test"], dir.path(), "client");
    let r = through(
        dir,
        up.addr,
        "tls = { ca = \"ca.pem\", server-name = \"backend.test\", cert = \"client.pem\", key = \"client.key\" }",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-client-cert"), Some("yes"));
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn() {
    let ca = Ca::new();
    let leaf = ca.issue(&["backend.test"]);
    let both = tls_upstream(&leaf, &[b"h2", b"http/1.1"], None).await;
    let h1_only = tls_upstream(&leaf, &[b"http/1.1"], None).await;
    let tls = "tls = { ca = \"ca.pem\", server-name = \"backend.test\" }";

    let cases = [
        (&both, "protocol = \"auto\"", "HTTP/2.0", "h2"),
        (&h1_only, "protocol = \"auto\"", "HTTP/1.1", "http/1.1"),
        (&both, "protocol = \"h2\"", "HTTP/2.0", "h2"),
        (&both, "protocol = \"http1\"", "HTTP/1.1", ""),
    ];
    for (up, protocol, version, alpn) in cases {
        let dir = trusting(&ca);
        let r = through(dir, up.addr, &format!("{tls}\n{protocol}")).await;
        assert_eq!(r.status, 200, "{protocol}: {}", r.body);
        assert_eq!(r.header("x-http-version"), Some(version), "{protocol}");
        assert_eq!(r.header("x-tls-alpn"), Some(alpn), "{protocol}");
    }
}

#[test]
fn upstream_tls_mistakes_are_reported_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = check_in(
        dir.path(),
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.a]\ntargets = [\"127.0.0.1:9\"]\nprotocol = \"h2\"\n\n\
         [upstreams.b]\ntargets = [\"127.0.0.1:9\"]\nprotocol = \"h2c\"\ntls = { verify = false }\n\n\
         [upstreams.c]\ntargets = [\"127.0.0.1:9\"]\ntls = { ca = \"missing.pem\", cert = \"c.pem\" }\n\n\
         [[routes]]\nupstream = \"a\"\n",
    );
    assert!(!ok);
    for expected in [
        "weir.toml:6:12: upstreams.a.protocol: h2 is negotiated by TLS ALPN and needs tls",
        "weir.toml:10:12: upstreams.b.protocol: h2c is cleartext",
        "weir.toml:15:36: upstreams.c.tls: a client certificate needs both cert and key",
        "weir.toml:15:7: upstreams.c.tls: cannot read",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[tokio::test]
async fn a_renewed_client_certificate_is_picked_up_without_a_restart() {
    let ca = Ca::new();
    let clients = Ca::new();
    let up = tls_upstream(&ca.issue(&["backend.test"]), &[], Some(&clients)).await;
    let dir = trusting(&ca);
    // At first the proxy holds a certificate the upstream does not accept.
    Ca::new().leaf(&["weir.test"], dir.path(), "client");
    let weir = Weir::start_in(
        dir,
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
             [upstreams.app]\ntargets = [\"{}\"]\nretries = 0\n\
             tls = {{ ca = \"ca.pem\", server-name = \"backend.test\", cert = \"client.pem\", key = \"client.key\" }}\n\n\
             [[routes]]\nupstream = \"app\"\n",
            up.addr
        ),
    );
    assert_eq!(get(&weir.url("/"), &[]).await.status, 502);

    clients.leaf(&["weir.test"], weir.dir(), "client");
    weir.wait_for_log("a file the manifest names changed: reloading");
    let mut status = 0;
    for _ in 0..50 {
        status = get(&weir.url("/"), &[]).await.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        200,
        "the renewed certificate is used; logs:\n{}",
        weir.logs()
    );
}
