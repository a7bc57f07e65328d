//! What crosses the proxy: Host preserved, X-Forwarded-* set, hop-by-hop headers removed,
//! bodies streamed both ways; graceful stop finishes requests in flight.

mod harness;
use bytes::Bytes;
use harness::*;
use http_body_util::Full;
use std::time::Duration;

#[tokio::test]
async fn forwards_headers_and_body() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(&[up.addr], &[], ""));
    let req = http::Request::post(weir.url("/submit?x=1"))
        .header("host", "shop.test")
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "x-hop")
        .header("x-hop", "drop me")
        .header("keep-alive", "timeout=5")
        .body(Full::new(Bytes::from("hello body")))
        .unwrap();
    let r = send(req).await;
    assert_eq!(r.status, 200);
    let b = &r.body;
    assert!(b.starts_with("POST /submit?x=1\n"), "{b}");
    assert!(b.contains("host: shop.test\n"), "{b}");
    // The client is not a trusted proxy: its X-Forwarded-For is replaced, not appended to.
    assert!(b.contains("x-forwarded-for: 127.0.0.1\n"), "{b}");
    assert!(b.contains("x-forwarded-proto: http\n"), "{b}");
    assert!(b.contains("x-forwarded-host: shop.test\n"), "{b}");
    assert!(!b.contains("x-hop") && !b.contains("keep-alive"), "{b}");
    assert!(b.ends_with("\nhello body"), "{b}");
}

#[tokio::test]
async fn graceful_stop_finishes_requests_in_flight() {
    let slow = Upstream::slow(Duration::from_millis(800)).await;
    let weir = Weir::start(&manifest(&[slow.addr], &[], ""));
    let url = weir.url("/");
    let in_flight = tokio::spawn(async move { get(&url, &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = tokio::task::spawn_blocking(move || weir.terminate())
        .await
        .unwrap();
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "the request in flight finished");
    assert_eq!(r.body, "late\n");
    assert!(status.success(), "{status}");
}
