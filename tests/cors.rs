//! The `cors` filter with a real browser: headless Chromium loads a page from one origin
//! (`http://localhost:<port>`) whose script calls Weir on another (`http://127.0.0.1:<port>`):
//! a simple request with an exposed header, a preflighted one, one refused for its header,
//! one refused for its origin, and credentialed ones (granted only where configured). The
//! same exchanges are also checked as raw bytes, so the headers are pinned, not only the
//! browser's verdict.

mod harness;
use bytes::Bytes;
use harness::*;
use http_body_util::Full;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn weir_manifest(app: std::net::SocketAddr, page_origin: &str) -> String {
    format!(
        r#"plugins-dir = "{{plugins}}"

[[listeners]]
address = "127.0.0.1:0"

[upstreams.app]
targets = ["{app}"]

[[routes]]
path = "/open"
upstream = "app"
filters = ["cors-open"]

[[routes]]
path = "/cred"
upstream = "app"
filters = ["cors-cred"]

[[routes]]
path = "/other"
upstream = "app"
filters = ["cors-other"]

[filters.cors-open]
plugin = "cors.wasm"
config = {{ allow-origins = ["{page_origin}"], allow-methods = ["GET", "PUT"], allow-headers = ["x-custom"], expose-headers = ["x-upstream"], max-age = "1m" }}

[filters.cors-cred]
plugin = "cors.wasm"
config = {{ allow-origins = ["http://*.invalid", "{page_origin}"], allow-credentials = true }}

[filters.cors-other]
plugin = "cors.wasm"
config = {{ allow-origins = ["https://elsewhere.example"] }}
"#
    )
}

/// An upstream answering like `echo` (with `x-upstream: app`) that counts the OPTIONS
/// requests reaching it.
async fn counting_app(options: Arc<AtomicUsize>) -> Upstream {
    Upstream::start(move |req: http::Request<hyper::body::Incoming>| {
        let options = options.clone();
        async move {
            if req.method() == http::Method::OPTIONS {
                options.fetch_add(1, Ordering::Relaxed);
            }
            http::Response::builder()
                .header("x-upstream", "app")
                .header("access-control-allow-origin", "*")
                .body(Full::new(Bytes::from(format!(
                    "{} {}",
                    req.method(),
                    req.uri()
                ))))
                .unwrap()
        }
    })
    .await
}

fn page(weir: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="out">running</pre><script>
const W = "{weir}";
async function attempt(name, url, init) {{
  try {{
    const r = await fetch(W + url, init);
    const exposed = r.headers.get("x-upstream");
    return name + "=" + r.status + (exposed ? ":" + exposed : "");
  }} catch (e) {{
    return name + "=blocked";
  }}
}}
(async () => {{
  const out = [];
  out.push(await attempt("simple", "/open/a"));
  out.push(await attempt("preflighted", "/open/b", {{ method: "PUT", headers: {{ "x-custom": "1" }} }}));
  out.push(await attempt("bad-header", "/open/c", {{ method: "PUT", headers: {{ "x-evil": "1" }} }}));
  out.push(await attempt("bad-method", "/open/d", {{ method: "DELETE" }}));
  out.push(await attempt("other-origin", "/other/e"));
  out.push(await attempt("credentials", "/cred/f", {{ credentials: "include" }}));
  out.push(await attempt("credentials-not-granted", "/open/g", {{ credentials: "include" }}));
  document.getElementById("out").textContent = "done " + out.join(" ");
}})();
</script></body></html>"#
    )
}

#[tokio::test]
async fn a_browser_on_another_origin_is_granted_and_refused_as_configured() {
    let options = Arc::new(AtomicUsize::new(0));
    let app = counting_app(options.clone()).await;
    let page_server_addr = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let weir_url = page_server_addr.clone();
    let pages = Upstream::start(move |_req| {
        let weir = weir_url.get().cloned().unwrap_or_default();
        async move {
            http::Response::builder()
                .header("content-type", "text/html; charset=utf-8")
                .body(Full::new(Bytes::from(page(&weir))))
                .unwrap()
        }
    })
    .await;
    let page_origin = format!("http://localhost:{}", pages.addr.port());
    let weir = Weir::start(&weir_manifest(app.addr, &page_origin));
    let weir_origin = weir.url("/").trim_end_matches('/').to_string();
    page_server_addr.set(weir_origin).unwrap();

    let out = browser::headless(&format!("{page_origin}/"), 15000, "--dump-dom").await;
    let dom = String::from_utf8_lossy(&out.stdout);
    let verdicts = dom
        .lines()
        .find_map(|l| l.split("done ").nth(1))
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "the page did not finish:\n{dom}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let verdicts: Vec<&str> = verdicts.split_whitespace().collect();
    assert_eq!(
        verdicts,
        [
            "simple=200:app",
            "preflighted=200:app",
            "bad-header=blocked",
            "bad-method=blocked",
            "other-origin=blocked",
            "credentials=200",
            "credentials-not-granted=blocked",
        ],
        "{dom}"
    );
    assert_eq!(
        options.load(Ordering::Relaxed),
        0,
        "preflights never reach the upstream"
    );
}

#[tokio::test]
async fn the_headers_on_the_wire_over_h1_and_h2() {
    let options = Arc::new(AtomicUsize::new(0));
    let app = counting_app(options.clone()).await;
    let origin = "http://localhost:9";
    let weir = Weir::start(&weir_manifest(app.addr, origin));
    let addr: std::net::SocketAddr = weir
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let pre = raw::exchange(
        addr,
        format!(
            "OPTIONS /open/x HTTP/1.1\r\nHost: a\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: X-Custom\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let text = pre.text.to_ascii_lowercase();
    assert_eq!(pre.status, 204, "{}", pre.text);
    for h in [
        "access-control-allow-origin: http://localhost:9\r\n",
        "access-control-allow-methods: put\r\n",
        "access-control-allow-headers: x-custom\r\n",
        "access-control-max-age: 60\r\n",
        "vary: origin, access-control-request-method, access-control-request-headers\r\n",
    ] {
        assert!(text.contains(h), "{h:?} in {}", pre.text);
    }
    // Refusals carry no CORS header at all, and nothing reaches the upstream.
    for (path, o, m) in [
        ("/open/x", "https://evil.example", "PUT"),
        ("/open/x", origin, "DELETE"),
        ("/other/x", origin, "GET"),
    ] {
        let r = raw::exchange(
            addr,
            format!("OPTIONS {path} HTTP/1.1\r\nHost: a\r\nOrigin: {o}\r\nAccess-Control-Request-Method: {m}\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(
            !r.text.to_ascii_lowercase().contains("access-control-"),
            "{}",
            r.text
        );
    }
    assert_eq!(options.load(Ordering::Relaxed), 0);
    // An actual request: the upstream's `*` is replaced by the grant, or removed.
    let granted = get(&weir.url("/open/x"), &[("origin", origin)]).await;
    assert_eq!(granted.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        granted.header("access-control-expose-headers"),
        Some("x-upstream")
    );
    assert_eq!(granted.header("vary"), Some("Origin"));
    let refused = get(&weir.url("/other/x"), &[("origin", origin)]).await;
    assert_eq!(
        refused.status, 200,
        "the browser, not the proxy, withholds the answer"
    );
    assert_eq!(refused.header("access-control-allow-origin"), None);
    assert_eq!(refused.header("vary"), Some("Origin"));
    // HTTP/2: the same grant, and credentials only where configured.
    let h2 = |path: &str| {
        http::Request::get(weir.url(path))
            .header("origin", origin)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let r = send_h2(h2("/cred/x")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let r = send_h2(h2("/open/x")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert_eq!(r.header("access-control-allow-credentials"), None);
}
