//! The `security-headers` filter adds its preset's headers to every response, keeps the ones
//! the upstream set (unless told to override), drops `Server` / `X-Powered-By`, and sends
//! HSTS only on TLS connections — not when a plaintext client claims `https` in an
//! absolute-form request line or an HTTP/2 `:scheme`.

mod harness;
use harness::pki::*;
use harness::*;

async fn upstream() -> Upstream {
    Upstream::start(|_req| async {
        let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from("hi\n")));
        let h = resp.headers_mut();
        h.insert("server", http::HeaderValue::from_static("upstream/1.0"));
        h.insert("x-powered-by", http::HeaderValue::from_static("PHP/5"));
        h.insert(
            "x-frame-options",
            http::HeaderValue::from_static("SAMEORIGIN"),
        );
        resp
    })
    .await
}

const FILTER: &str = "[filters.secure]\nplugin = \"security-headers.wasm\"\n\
                      config = { preset = \"strict\", permissions-policy = false }\n";

fn route(up: std::net::SocketAddr) -> String {
    format!(
        "[upstreams.app]\ntargets = [\"{up}\"]\n\n[[routes]]\nupstream = \"app\"\n\
         filters = [\"secure\"]\n\n{FILTER}"
    )
}

fn check_strict(headers: &http::HeaderMap, hsts: bool, how: &str) {
    assert_eq!(
        headers.get("x-content-type-options").unwrap(),
        "nosniff",
        "{how}"
    );
    assert_eq!(
        headers
            .get_all("x-frame-options")
            .iter()
            .collect::<Vec<_>>(),
        ["SAMEORIGIN"],
        "{how}: the upstream's value, not duplicated"
    );
    assert!(headers.get("content-security-policy").is_some(), "{how}");
    assert_eq!(headers.get("permissions-policy"), None, "{how}: turned off");
    assert_eq!(headers.get("server"), None, "{how}");
    assert_eq!(headers.get("x-powered-by"), None, "{how}");
    assert_eq!(
        headers
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        hsts.then_some("max-age=63072000; includeSubDomains"),
        "{how}"
    );
}

#[tokio::test]
async fn plaintext_responses_get_the_headers_but_never_hsts() {
    let up = upstream().await;
    let m = format!(
        "plugins-dir = \"{{plugins}}\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n{}",
        route(up.addr)
    );
    let weir = Weir::start(&m);
    let r = get(&weir.url("/"), &[]).await;
    assert_eq!(r.status, 200);
    check_strict(&r.headers, false, "http/1.1");

    // A plaintext client claiming https: in the request line (raw bytes) ...
    let raw = harness::raw::exchange(
        weir.addr,
        b"GET https://shop.test/ HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    assert!(
        raw.text.contains("x-content-type-options: nosniff"),
        "{}",
        raw.text
    );
    assert!(
        !raw.text.contains("strict-transport-security"),
        "{}",
        raw.text
    );

    // ... and as the HTTP/2 :scheme over cleartext.
    let tcp = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    let resp = get_h2_over(tcp, "https://shop.test/").await.unwrap();
    assert_eq!(resp.status(), 200);
    check_strict(resp.headers(), false, "h2c claiming https");
}

#[tokio::test]
async fn tls_responses_get_hsts_over_h1_and_h2() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    ca.leaf(&["shop.test"], dir.path(), "a");
    let m = format!(
        "plugins-dir = \"{}\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         tls = {{ certificates = [{{ cert = \"a.pem\", key = \"a.key\" }}] }}\n\n{}",
        plugins_dir().display(),
        route(up.addr)
    );
    let weir = Weir::start_in(dir, &m);
    let tls = connect_as(weir.addr, "shop.test", &[b"http/1.1"], None)
        .await
        .unwrap();
    let resp = get_over(tls, "shop.test", "/").await.unwrap();
    assert_eq!(resp.status(), 200);
    check_strict(resp.headers(), true, "https h1");

    let tls = connect_as(weir.addr, "shop.test", &[b"h2"], None)
        .await
        .unwrap();
    let resp = get_h2_over(tls, "https://shop.test/").await.unwrap();
    check_strict(resp.headers(), true, "https h2");
}
