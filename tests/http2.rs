//! HTTP/2 cleartext (prior knowledge) clients are served through the same path.

mod harness;
use bytes::Bytes;
use harness::*;
use http_body_util::Full;

#[tokio::test]
async fn h2c_client_through_the_proxy() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(
        &[up.addr],
        &["tag"],
        "[filters.tag]\nplugin = \"headers.wasm\"\nconfig = { response = { set = { \"x-h2\" = \"yes\" } } }\n",
    ));
    let url = format!("http://h2.test:{}/over/h2?q=1", weir.addr.port());
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    // Connect to the proxy's address while addressing h2.test.
    let req = {
        let (mut parts, body) = req.into_parts();
        parts.uri = format!("http://{}/over/h2?q=1", weir.addr).parse().unwrap();
        parts.headers.insert("host", "h2.test".parse().unwrap());
        http::Request::from_parts(parts, body)
    };
    let r = send_h2(req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-h2"), Some("yes"));
    assert!(r.body.starts_with("GET /over/h2?q=1\n"), "{}", r.body);
    // The upstream (HTTP/1.1) gets the authority as Host.
    let host_line = format!("host: {}\n", weir.addr);
    assert!(
        r.body.contains(&host_line) || r.body.contains("host: h2.test\n"),
        "{}",
        r.body
    );
}
