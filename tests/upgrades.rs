//! Protocol upgrades through the proxy: a WebSocket handshake reaches the upstream (with the
//! request filters applied), its 101 comes back, and bytes then flow both ways until the
//! connection is idle for the upstream's `upgrade-idle-timeout`.

mod harness;
use harness::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that switches to a byte echo on any `Upgrade` request, saying in its 101 what
/// the filter added to the request.
async fn echo_after_upgrade() -> Upstream {
    Upstream::start(|mut req: http::Request<hyper::body::Incoming>| async move {
        let seen = req
            .headers()
            .get("x-filtered")
            .cloned()
            .unwrap_or(http::HeaderValue::from_static("no"));
        let protocol = req.headers().get("upgrade").cloned();
        let Some(protocol) = protocol else {
            return http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
                b"no upgrade\n",
            )));
        };
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on.await {
                let mut io = hyper_util::rt::TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        http::Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", protocol)
            .header("x-saw-filter", seen)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    })
    .await
}

async fn read_head(s: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut byte))
            .await
            .expect("head in time")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed in the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn websocket_handshake_and_bytes_pass_both_ways_until_idle() {
    let up = echo_after_upgrade().await;
    let m = manifest(
        &[up.addr],
        &["mark"],
        "[filters.mark]\nplugin = \"headers.wasm\"\nconfig.request.set = { x-filtered = \"yes\" }\n",
    )
    .replace(
        &format!("targets = [\"{}\"]", up.addr),
        &format!("targets = [\"{}\"]\nupgrade-idle-timeout = \"400ms\"", up.addr),
    );
    let weir = Weir::start(&m);
    let mut s = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nhost: a\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
          sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains("x-saw-filter: yes"),
        "the request filter ran: {head}"
    );

    for msg in [&b"hello"[..], b"through weir", &[0u8, 159, 146, 150]] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
    }
    let start = Instant::now();
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed when idle")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_upgrade_the_upstream_refuses_is_a_plain_response() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(&[up.addr], &[], ""));
    let r = get(
        &weir.url("/"),
        &[("connection", "upgrade"), ("upgrade", "websocket")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.to_ascii_lowercase().contains("upgrade: websocket"),
        "forwarded: {}",
        r.body
    );
}

/// A raw upgrade request for `protocol` on `path`, and the response head.
async fn ask_upgrade(weir: &Weir, path: &str, protocol: &str, extra: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: a\r\nconnection: Upgrade, HTTP2-Settings\r\n\
         upgrade: {protocol}\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    read_head(&mut s).await.to_ascii_lowercase()
}

#[tokio::test]
async fn h2c_and_unlisted_upgrades_go_on_as_plain_requests() {
    // An upstream that would switch to anything: h2c must never reach it as an upgrade
    // (in such a tunnel, later requests would bypass every filter).
    let up = echo_after_upgrade().await;
    let m = manifest(&[up.addr], &[], "")
        + "[[routes]]\npath = \"/custom\"\nupstream = \"app\"\nupgrades = [\"x-custom\"]\n\n\
           [[routes]]\npath = \"/none\"\nupstream = \"app\"\nupgrades = []\n";
    let weir = Weir::start(&m);
    let head = ask_upgrade(
        &weir,
        "/",
        "h2c",
        "http2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
    )
    .await;
    assert!(
        head.starts_with("http/1.1 200"),
        "h2c is not passed on: {head}"
    );
    let head = ask_upgrade(&weir, "/", "websocket", "").await;
    assert!(
        head.starts_with("http/1.1 101"),
        "websocket by default: {head}"
    );
    let head = ask_upgrade(&weir, "/", "x-custom", "").await;
    assert!(
        head.starts_with("http/1.1 200"),
        "not on this route: {head}"
    );
    let head = ask_upgrade(&weir, "/custom", "x-custom", "").await;
    assert!(head.starts_with("http/1.1 101"), "listed: {head}");
    let head = ask_upgrade(&weir, "/custom", "x-custom, h2c", "").await;
    assert!(
        head.starts_with("http/1.1 200"),
        "an offer with h2c: {head}"
    );
    let head = ask_upgrade(&weir, "/none", "websocket", "").await;
    assert!(head.starts_with("http/1.1 200"), "none allowed: {head}");

    let (ok, _, err) = check(&manifest(&[up.addr], &[], "").replace(
        "upstream = \"app\"",
        "upstream = \"app\"\nupgrades = [\"websocket\", \"H2C\"]",
    ));
    assert!(!ok);
    assert!(
        err.contains("routes[0].upgrades: h2c upgrades are never passed on"),
        "{err}"
    );
}

#[tokio::test]
async fn a_request_filter_that_removes_upgrade_vetoes_it() {
    let up = echo_after_upgrade().await;
    let weir = Weir::start(&manifest(
        &[up.addr],
        &["veto"],
        "[filters.veto]\nplugin = \"headers.wasm\"\nconfig.request.remove = [\"upgrade\"]\n",
    ));
    let head = ask_upgrade(&weir, "/", "websocket", "").await;
    assert!(head.starts_with("http/1.1 200"), "vetoed: {head}");
}
