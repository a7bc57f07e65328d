//! One canonical request: routing, filters and the upstream agree on path, authority, method,
//! framing and headers, whatever bytes the client sends. Requests are written byte for byte
//! on raw sockets to a recording upstream that keeps exactly what it received; for each case
//! the proxy either refuses (4xx) or forwards exactly one unambiguous request.

mod harness;
use harness::raw::{exchange, h2_raw, h2_request, h2_send, H2Answer, Recorder};
use harness::*;

/// The demo's shape: `/` open but `/admin` blocked, `/api` behind an API key; host `admin`
/// blocked entirely.
fn guarded(up: &Recorder, extra: &str) -> String {
    format!(
        r#"
plugins-dir = "{{plugins}}"
{extra}

[[listeners]]
address = "127.0.0.1:0"

[upstreams.app]
targets = ["{up}"]

[[routes]]
path = "/"
upstream = "app"
filters = ["block-admin"]

[[routes]]
path = "/api"
upstream = "app"
filters = ["block-admin", "require-key"]

[[routes]]
host = "admin"
upstream = "app"
filters = ["block-all"]

[filters.block-admin]
plugin = "block.wasm"
config = {{ paths = ["/admin"] }}

[filters.block-all]
plugin = "block.wasm"
config = {{ paths = ["/"] }}

[filters.require-key]
plugin = "api-key.wasm"
config = {{ header = "x-api-key", keys = ["k1"] }}
"#,
        up = up.addr
    )
}

fn get_raw(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: public\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

/// The first line of what the upstream received.
fn request_line(recorded: &str) -> &str {
    recorded.lines().next().unwrap_or("")
}

const API_TRICKS: &[&str] = &[
    "/%61pi/items",
    "//api/items",
    "/x/../api/items",
    "/./api/items",
    "/%2e%2e/api/items",
    "/api/./items",
    "/%2E/api//items",
    "/api/x/%2e%2e/items",
];
const ADMIN_TRICKS: &[&str] = &[
    "/%61dmin",
    "//admin",
    "/x/../admin",
    "/admin/",
    "/%2e/admin",
    "/admin/.",
    "/public/../admin/users",
    "/%41dmin/../admin",
];

#[tokio::test]
async fn path_tricks_reach_the_route_and_filters_the_upstream_sees() {
    let up = Recorder::start().await;
    let weir = Weir::start(&guarded(&up, ""));
    let at = weir.addr;
    for path in API_TRICKS {
        let r = exchange(at, &get_raw(path, "")).await;
        assert_eq!(r.status, 401, "{path} without a key: {}", r.text);
        assert!(up.requests().is_empty(), "{path} reached the upstream");
        let r = exchange(at, &get_raw(path, "x-api-key: k1\r\n")).await;
        assert_eq!(r.status, 200, "{path} with a key: {}", r.text);
        assert_eq!(
            request_line(&up.only()),
            "GET /api/items HTTP/1.1",
            "{path}"
        );
        up.clear();
    }
    for path in ADMIN_TRICKS {
        let r = exchange(at, &get_raw(path, "")).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert!(up.requests().is_empty(), "{path} reached the upstream");
    }
    // The same over HTTP/2.
    for path in API_TRICKS {
        let r = send_h2(
            http::Request::get(weir.url(path))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401, "h2 {path}");
    }
    for path in ADMIN_TRICKS {
        let r = h2_request(at, &format!("http://public{path}"), &[]).await;
        assert_eq!(r, Ok(403), "h2 {path}");
    }
    assert!(up.requests().is_empty(), "nothing reached the upstream");
    // The query is left as sent.
    let r = exchange(
        at,
        &get_raw("/%61pi/items?q=%2e%2E/../x", "x-api-key: k1\r\n"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        request_line(&up.only()),
        "GET /api/items?q=%2e%2E/../x HTTP/1.1"
    );
}

#[tokio::test]
async fn ambiguous_paths_are_refused_unless_slashes_are_kept() {
    let up = Recorder::start().await;
    let weir = Weir::start(&guarded(&up, ""));
    let at = weir.addr;
    for path in [
        "/a%2fb",
        "/a%2Fadmin",
        "/a%5cb",
        "/a\\b",
        "/a%00",
        "/a%zz",
        "/a%4",
        "/a%",
    ] {
        let r = exchange(at, &get_raw(path, "")).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert!(r.closed, "{path}: the connection is closed after a refusal");
    }
    let r = h2_request(at, "http://public/a%2fb", &[]).await;
    assert_eq!(r, Ok(400), "h2 encoded slash");
    assert!(up.requests().is_empty());
    drop(weir);

    let weir = Weir::start(&guarded(&up, "escaped-slashes = \"keep\""));
    let r = exchange(weir.addr, &get_raw("/files/a%2fb/./c", "")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(request_line(&up.only()), "GET /files/a%2Fb/c HTTP/1.1");
    up.clear();
    let r = exchange(weir.addr, &get_raw("/%61dmin%2f", "")).await;
    assert_eq!(r.status, 200, "/admin%2F is not /admin: {}", r.text);
    assert_eq!(request_line(&up.only()), "GET /admin%2F HTTP/1.1");
}

#[tokio::test]
async fn one_authority_for_routing_filters_and_upstream() {
    let up = Recorder::start().await;
    let weir = Weir::start(&guarded(&up, ""));
    let at = weir.addr;
    // Absolute-form wins over Host (RFC 9112 §3.2.2).
    let r = exchange(
        at,
        b"GET http://Public/page HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "routed as public: {}", r.text);
    let seen = up.only().to_ascii_lowercase();
    assert!(seen.starts_with("get /page http/1.1\r\n"), "{seen}");
    assert!(seen.contains("\r\nhost: public\r\n"), "{seen}");
    assert!(seen.contains("\r\nx-forwarded-host: public\r\n"), "{seen}");
    assert_eq!(seen.matches("\r\nhost:").count(), 1, "{seen}");
    up.clear();
    let r = exchange(
        at,
        b"GET http://admin/page HTTP/1.1\r\nHost: public\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 403, "routed as admin: {}", r.text);

    for bad in [
        &b"GET / HTTP/1.1\r\nHost: [\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: public\r\nHost: admin\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@public\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: public:99999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        b"GET http://[/ HTTP/1.1\r\nHost: public\r\n\r\n",
        b"GET ftp://public/ HTTP/1.1\r\nHost: public\r\n\r\n",
    ] {
        let r = exchange(at, bad).await;
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            r.text
        );
    }
    assert!(up.requests().is_empty());
    // HTTP/1.0 may leave Host out.
    let r = exchange(at, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!up.only().to_ascii_lowercase().contains("x-forwarded-host"));
    up.clear();
    // HTTP/2: :authority and host must agree.
    assert_eq!(
        h2_request(at, "http://public/", &[("host", "admin")]).await,
        Ok(400)
    );
    assert_eq!(
        h2_request(at, "http://public/", &[("host", "PUBLIC")]).await,
        Ok(200)
    );
    assert_eq!(h2_request(at, "http://admin/", &[]).await, Ok(403));
    assert!(
        !weir.logs().contains("panicked"),
        "no connection task panicked"
    );
    let seen = up.only().to_ascii_lowercase();
    assert!(seen.contains("\r\nhost: public\r\n"), "{seen}");
}

#[tokio::test]
async fn framing_is_unambiguous_or_refused() {
    let up = Recorder::start().await;
    let weir = Weir::start(&guarded(&up, ""));
    let at = weir.addr;
    let smuggle_tail = "GET /admin HTTP/1.1\r\nHost: public\r\n\r\n";
    // CL.TE and TE.CL desync attempts: read by Transfer-Encoding alone (RFC 9112 §6.3),
    // forwarded once with one framing, and the connection closed, so the tail that a
    // Content-Length reader would take for a second request is never read as one.
    for bytes in [
        format!("POST / HTTP/1.1\r\nHost: public\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggle_tail}"),
        format!("POST / HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n{smuggle_tail}"),
    ] {
        let r = exchange(at, bytes.as_bytes()).await;
        assert!(r.closed, "{bytes:?}: closed after answering");
        assert!(!r.text.contains("403"), "{bytes:?}: the tail was not read as a request");
        let forwarded = up.requests();
        assert!(forwarded.len() <= 1, "{forwarded:#?}");
        for seen in &forwarded {
            let lower = seen.to_ascii_lowercase();
            assert!(lower.starts_with("post / http/1.1\r\n"), "{seen}");
            assert!(!lower.contains("content-length: 4") && !lower.contains("content-length: 40"), "{seen}");
            assert!(!lower.contains("/admin"), "{seen}");
        }
        up.clear();
    }
    let refused: Vec<(String, u16)> = vec![
        ("POST / HTTP/1.1\r\nHost: public\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".into(), 400),
        ("POST / HTTP/1.1\r\nHost: public\r\nContent-Length: 5, 6\r\n\r\nhello!".into(), 400),
        ("POST / HTTP/1.1\r\nHost: public\r\nContent-Length: +5\r\n\r\nhello".into(), 400),
        ("POST / HTTP/1.1\r\nHost: public\r\nContent-Length: 0x5\r\n\r\nhello".into(), 400),
        // Obfuscated Transfer-Encoding.
        ("POST / HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".into(), 501),
        ("POST / HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n".into(), 0),
        ("POST / HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".into(), 0),
        ("POST / HTTP/1.1\r\nHost: public\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n".into(), 400),
        ("POST / HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n".into(), 0),
        // Obs-fold, NUL and control bytes in the head.
        ("GET / HTTP/1.1\r\nHost: public\r\nX-A: a\r\n b\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: public\r\nX-A: a\0b\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: public\r\nX-A: a\x01b\r\n\r\n".into(), 400),
        ("GET /a\0b HTTP/1.1\r\nHost: public\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: pub\0lic\r\n\r\n".into(), 400),
        ("G(T / HTTP/1.1\r\nHost: public\r\n\r\n".into(), 400),
        // Bad chunk sizes.
        ("POST / HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".into(), 400),
        ("POST / HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n".into(), 400),
        ("POST / HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n".into(), 400),
    ];
    for (bytes, want) in &refused {
        let r = exchange(at, bytes.as_bytes()).await;
        if *want == 0 {
            assert!((400..=501).contains(&r.status), "{bytes:?}: {}", r.text);
        } else {
            assert_eq!(r.status, *want, "{bytes:?}: {}", r.text);
        }
        assert!(r.closed, "{bytes:?}: closed after refusing");
        assert!(
            up.requests().is_empty(),
            "{bytes:?} forwarded {:#?}",
            up.requests()
        );
    }

    // Accepted: each forwards exactly one request, framed once.
    let accepted = [
        ("POST /c HTTP/1.1\r\nHost: public\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", "hello"),
        ("POST /c HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n", "hello"),
        ("POST /c HTTP/1.1\r\nHost: public\r\nTransfer-Encoding:\tchunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello"),
        ("POST /c HTTP/1.1\nHost: public\nContent-Length: 5\nConnection: close\n\nhello", "hello"),
    ];
    for (bytes, body) in accepted {
        let r = exchange(at, bytes.as_bytes()).await;
        assert_eq!(r.status, 200, "{bytes:?}: {}", r.text);
        let seen = up.only();
        let lower = seen.to_ascii_lowercase();
        assert!(lower.starts_with("post /c http/1.1\r\n"), "{seen}");
        let framings = lower.matches("\r\ncontent-length:").count()
            + lower.matches("\r\ntransfer-encoding:").count();
        assert_eq!(framings, 1, "one framing header: {seen}");
        assert!(seen.contains(body), "{seen}");
        assert!(
            !seen.contains("ext=1"),
            "chunk extensions are not passed on"
        );
        up.clear();
    }
    assert!(!weir.logs().contains("panicked"));
}

/// The same framing rules over HTTP/2: a body that disagrees with its `content-length` is
/// refused and never forwarded; DATA frames are forwarded as one body with one framing.
#[tokio::test]
async fn http2_framing_is_unambiguous_or_refused() {
    let up = Recorder::start().await;
    let weir = Weir::start(&guarded(&up, ""));
    let at = weir.addr;
    for (cl, frames) in [
        ("10", &[&b"hello"[..]][..]),
        ("2", &[&b"hello"[..]][..]),
        ("5, 5", &[&b"hello"[..]][..]),
    ] {
        let r = h2_send(
            at,
            "POST",
            "http://public/c",
            &[("content-length", cl)],
            frames,
        )
        .await;
        assert!(r != Ok(200), "content-length {cl} with 5 bytes: {r:?}");
        assert!(
            up.requests().iter().all(|s| !s.contains("hello")),
            "{:#?}",
            up.requests()
        );
        up.clear();
    }
    let r = h2_send(at, "POST", "http://public/c", &[], &[b"hel", b"lo"]).await;
    assert_eq!(r, Ok(200));
    let seen = up.only();
    let lower = seen.to_ascii_lowercase();
    let framings = lower.matches("\r\ncontent-length:").count()
        + lower.matches("\r\ntransfer-encoding:").count();
    assert_eq!(framings, 1, "one framing header: {seen}");
    assert!(
        seen.ends_with("hello") || seen.contains("3\r\nhel\r\n2\r\nlo\r\n0\r\n"),
        "{seen}"
    );
    up.clear();
    // TRACE is refused over HTTP/2 as over HTTP/1.1.
    assert_eq!(
        h2_send(at, "TRACE", "http://public/", &[], &[]).await,
        Ok(405)
    );
    assert!(up.requests().is_empty());
    assert!(!weir.logs().contains("panicked"));
}

/// One HTTP/2 header field: name and value bytes.
type Field = (&'static [u8], &'static [u8]);

/// HTTP/2 header blocks written byte for byte (HPACK literals), with what no client library
/// sends: each malformed one (RFC 9113 §8.2, §8.3) is refused — a reset stream or a GOAWAY
/// with PROTOCOL_ERROR, or 400 — and nothing reaches the upstream; in particular no CR/LF in a value can become a
/// second header line of the HTTP/1.1 request upstream.
#[tokio::test]
async fn malformed_http2_header_blocks_are_refused() {
    let up = Recorder::start().await;
    let weir = Weir::start(&guarded(&up, ""));
    let pseudo: [Field; 4] = [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"public"),
        (b":path", b"/x"),
    ];
    let with = |extra: &[Field]| {
        let mut f = pseudo.to_vec();
        f.extend_from_slice(extra);
        f
    };
    // The well-formed request is forwarded (the control), with `te: trailers` allowed.
    let ok = h2_raw(weir.addr, &with(&[(b"te", b"trailers"), (b"x-a", b"1")])).await;
    assert_eq!(ok, H2Answer::Status(200));
    assert!(up.only().contains("x-a: 1"), "{}", up.only());
    up.clear();
    let cases: Vec<(&str, Vec<Field>)> = vec![
        ("connection", with(&[(b"connection", b"keep-alive")])),
        ("keep-alive", with(&[(b"keep-alive", b"5")])),
        ("proxy-connection", with(&[(b"proxy-connection", b"close")])),
        (
            "transfer-encoding",
            with(&[(b"transfer-encoding", b"chunked")]),
        ),
        ("upgrade", with(&[(b"upgrade", b"websocket")])),
        ("te other than trailers", with(&[(b"te", b"gzip")])),
        ("upper-case name", with(&[(b"X-Upper", b"1")])),
        (
            "CR LF in a value",
            with(&[(b"x-a", b"1\r\nx-injected: yes")]),
        ),
        ("LF in a value", with(&[(b"x-a", b"1\nx-injected: yes")])),
        ("NUL in a value", with(&[(b"x-a", b"1\0x")])),
        ("space in a name", with(&[(b"x a", b"1")])),
        ("colon in a name", with(&[(b"x:a", b"1")])),
        ("empty name", with(&[(b"", b"1")])),
        ("unknown pseudo-header", with(&[(b":protocol-x", b"1")])),
        (
            "pseudo-header after a regular one",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b"x-a", b"1"),
                (b":authority", b"public"),
                (b":path", b"/x"),
            ],
        ),
        ("two :path", with(&[(b":path", b"/admin")])),
        (
            "no :path",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"public"),
            ],
        ),
        (
            "empty :path",
            vec![
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"public"),
                (b":path", b""),
            ],
        ),
        (
            ":authority disagreeing with host",
            with(&[(b"host", b"admin")]),
        ),
        ("response pseudo-header", with(&[(b":status", b"200")])),
    ];
    for (what, fields) in cases {
        let answer = h2_raw(weir.addr, &fields).await;
        // PROTOCOL_ERROR (1) on the stream or the connection, or 400 from the proxy.
        let refused = matches!(
            answer,
            H2Answer::Reset(1) | H2Answer::GoAway(1) | H2Answer::Status(400)
        );
        assert!(refused, "{what}: {answer:?}");
        assert!(up.requests().is_empty(), "{what}: {:#?}", up.requests());
    }
    assert!(!weir.logs().contains("panicked"));
}

#[tokio::test]
async fn headers_the_proxy_owns_cannot_be_forged_or_removed() {
    let up = Recorder::start().await;
    let weir = Weir::start(&guarded(&up, ""));
    let at = weir.addr;
    let r = exchange(
        at,
        &get_raw(
            "/h",
            "Connection: x-secret, x-forwarded-for, host\r\nX-Secret: 1\r\n\
             X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\
             X-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\n\
             X-Client-Cert-Sha256: forged\r\nX_Client_Cert_Sha256: forged\r\nX_Api_Key: k1\r\n\
             Keep-Alive: 5\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\n",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = up.only().to_ascii_lowercase();
    for gone in [
        "x-secret:",
        "forwarded: for",
        "x-client-cert-sha256",
        "x_client_cert_sha256",
        "x_api_key",
        "keep-alive:",
        "proxy-connection",
        "6.6.6.6",
        "evil",
    ] {
        assert!(!seen.contains(gone), "{gone} reached the upstream: {seen}");
    }
    for kept in [
        "\r\nhost: public\r\n",
        "\r\nx-forwarded-for: 127.0.0.1\r\n",
        "\r\nx-forwarded-proto: http\r\n",
        "\r\nx-forwarded-host: public\r\n",
        "\r\nte: trailers\r\n",
    ] {
        assert!(seen.contains(kept), "{kept:?} missing: {seen}");
    }
    up.clear();

    // Over HTTP/2, split cookies arrive as one.
    let status = h2_request(
        at,
        "http://public/c",
        &[("cookie", "a=1"), ("cookie", "b=2"), ("x_forged", "1")],
    )
    .await;
    assert_eq!(status, Ok(200));
    let seen = up.only().to_ascii_lowercase();
    assert!(seen.contains("\r\ncookie: a=1; b=2\r\n"), "{seen}");
    assert!(!seen.contains("x_forged"), "{seen}");
    up.clear();
    drop(weir);

    let weir = Weir::start(&guarded(&up, "underscores-in-headers = true"));
    let r = exchange(weir.addr, &get_raw("/u", "X_Legacy: 1\r\n")).await;
    assert_eq!(r.status, 200);
    assert!(up
        .only()
        .to_ascii_lowercase()
        .contains("\r\nx_legacy: 1\r\n"));
}

#[tokio::test]
async fn trusted_proxies_name_the_client() {
    let up = Recorder::start().await;
    let manifest = format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
trusted-proxies = ["127.0.0.0/8", "10.0.0.0/8"]

[upstreams.app]
targets = ["{}"]

[[routes]]
upstream = "app"
"#,
        up.addr
    );
    let weir = Weir::start(&manifest);
    let at = weir.addr;
    let r = exchange(
        at,
        &get_raw("/", "X-Forwarded-For: 6.6.6.6, 198.51.100.7, 10.1.2.3\r\n"),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = up.only().to_ascii_lowercase();
    assert!(
        seen.contains("\r\nx-forwarded-for: 6.6.6.6, 198.51.100.7, 10.1.2.3, 127.0.0.1\r\n"),
        "{seen}"
    );
    assert!(seen.contains("\r\nx-real-ip: 198.51.100.7\r\n"), "{seen}");
    weir.wait_for_log("client=198.51.100.7");
    // A trusted proxy's request id is kept.
    up.clear();
    let r = exchange(at, &get_raw("/", "X-Request-Id: lb-0b5e-41c3\r\n")).await;
    assert_eq!(r.status, 200);
    assert!(up
        .only()
        .to_ascii_lowercase()
        .contains("\r\nx-request-id: lb-0b5e-41c3\r\n"));
    weir.wait_for_log("id=lb-0b5e-41c3");

    let (ok, _, err) = check(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\ntrusted-proxies = [\"10.0.0.0/33\"]\n\
         [upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"app\"\n",
    );
    assert!(!ok);
    assert!(
        err.contains("weir.toml:3:")
            && err.contains("trusted-proxies")
            && err.contains("10.0.0.0/33"),
        "{err}"
    );
}

#[tokio::test]
async fn connect_and_trace_are_refused_unless_a_route_allows_them() {
    let up = Recorder::start().await;
    let manifest = format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"

[upstreams.app]
targets = ["{}"]

[[routes]]
upstream = "app"

[[routes]]
path = "/debug"
methods = ["TRACE"]
upstream = "app"
"#,
        up.addr
    );
    let weir = Weir::start(&manifest);
    let at = weir.addr;
    let r = exchange(at, b"TRACE / HTTP/1.1\r\nHost: public\r\n\r\n").await;
    assert_eq!(r.status, 405, "{}", r.text);
    let r = exchange(
        at,
        b"CONNECT public:443 HTTP/1.1\r\nHost: public:443\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert!(up.requests().is_empty());
    let r = exchange(
        at,
        b"TRACE /debug HTTP/1.1\r\nHost: public\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(up.only().starts_with("TRACE /debug HTTP/1.1\r\n"));

    let (ok, _, err) = check(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n\
         [[routes]]\nupstream = \"app\"\nmethods = [\"CONNECT\"]\npath = \"/%61pi\"\n",
    );
    assert!(!ok);
    assert!(err.contains("CONNECT is not proxied"), "{err}");
    assert!(
        err.contains("never matches") && err.contains("\"/api\""),
        "{err}"
    );
}

/// The request id is the proxy's: a client's is replaced, over HTTP/1.1 and HTTP/2, and the
/// upstream and the access log get the same one.
#[tokio::test]
async fn the_request_id_is_the_proxys() {
    let up = Recorder::start().await;
    let weir = Weir::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n[upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nupstream = \"app\"\n",
        up.addr
    ));
    let id_seen = |up: &Recorder| {
        let seen = up.only().to_ascii_lowercase();
        let ids: Vec<String> = seen
            .lines()
            .filter_map(|l| l.strip_prefix("x-request-id: "))
            .map(|v| v.trim().to_string())
            .collect();
        assert_eq!(ids.len(), 1, "one id: {seen}");
        ids[0].clone()
    };
    let r = exchange(
        weir.addr,
        &get_raw("/", "X-Request-Id: forged\r\nx-request-id: again\r\n"),
    )
    .await;
    assert_eq!(r.status, 200);
    let first = id_seen(&up);
    assert!(
        first.len() == 32 && first.bytes().all(|b| b.is_ascii_hexdigit()),
        "{first}"
    );
    weir.wait_for_log(&format!("id={first}"));

    up.clear();
    let req = http::Request::get(weir.url("/h2"))
        .header("x-request-id", "forged")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(send_h2(req).await.status, 200);
    let second = id_seen(&up);
    assert!(second != "forged" && second != first, "{second}");
}
