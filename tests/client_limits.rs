//! Client-side limits: request heads over `max-header-size` or with more than `max-headers`
//! get 431, bodies over `max-body-size` 413 (declared or streamed), clients slow to send
//! their head are cut off after `header-read-timeout`, a listener holds at most
//! `max-connections` connections, and clients trickling bodies don't fill `max-pending`.

mod harness;
use harness::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn manifest(up: std::net::SocketAddr, top: &str, listener: &str) -> String {
    format!(
        "{top}\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n{listener}\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n[[routes]]\nupstream = \"app\"\n"
    )
}

/// Send raw bytes, return what comes back until the server closes or 3 s pass.
async fn raw(weir: &Weir, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn oversized_heads_get_431_and_bodies_413() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(
        up.addr,
        "max-header-size = \"8KiB\"\nmax-headers = 10\nmax-body-size = \"1KiB\"",
        "",
    ));
    let big = "x".repeat(10_000);
    assert_eq!(get(&weir.url("/"), &[("x-big", &big)]).await.status, 431);
    let names: Vec<String> = (0..20).map(|i| format!("x-h{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    assert_eq!(get(&weir.url("/"), &many).await.status, 431);
    // The six headers the proxy may add count too: with Host, three more fit.
    let r = get(&weir.url("/"), &many[..3]).await;
    assert_eq!(r.status, 200);
    let forwarded = r.body.split("\n\n").next().unwrap_or("").lines().count() - 1;
    assert!(
        forwarded <= 10,
        "the upstream got {forwarded} headers: {}",
        r.body
    );
    assert_eq!(get(&weir.url("/"), &many[..4]).await.status, 431);
    // HTTP/2 is held to the same count.
    let h2 = |n: usize| {
        let mut b = http::Request::get(weir.url("/"));
        for name in &names[..n] {
            b = b.header(name.as_str(), "1");
        }
        send_h2(
            b.body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
    };
    assert_eq!(h2(20).await.status, 431);
    assert_eq!(h2(4).await.status, 200);

    assert_eq!(
        post(&weir.url("/"), &[], &"b".repeat(2000)).await.status,
        413
    );
    assert_eq!(
        post(&weir.url("/"), &[], &"b".repeat(500)).await.status,
        200
    );
    let chunk = format!("258\r\n{}\r\n", "c".repeat(600));
    let streamed = format!(
        "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunk}{chunk}{chunk}0\r\n\r\n"
    );
    let answer = raw(&weir, streamed.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "a streamed body over the limit: {answer}"
    );
}

#[tokio::test]
async fn slow_heads_are_cut_off() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(up.addr, "header-read-timeout = \"300ms\"", ""));
    let start = Instant::now();
    let answer = raw(&weir, b"GET / HTTP/1.1\r\nhost: a\r\n").await;
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "cut off after the timeout, not kept: {took:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn a_listener_holds_at_most_max_connections() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(up.addr, "", "max-connections = 2"));
    let held1 = TcpStream::connect(weir.addr).await.unwrap();
    let held2 = TcpStream::connect(weir.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(weir.addr).await.unwrap();
    let _ = third.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "the third connection is closed");
    weir.wait_for_log("max-connections reached");
    drop(held1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        get(&weir.url("/"), &[]).await.status,
        200,
        "a slot is free again"
    );
    drop(held2);
}

/// A thousand clients trickling request bodies (one byte a second, inside
/// `body-read-timeout`) must not fill `max-pending`: they wait on themselves, not on the
/// upstream, and ordinary clients keep being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_flood_does_not_turn_others_away() {
    let up = Upstream::echo("app").await;
    let m = manifest(up.addr, "body-read-timeout = \"10s\"", "").replace(
        &format!("targets = [\"{}\"]", up.addr),
        &format!("targets = [\"{}\"]\nmax-pending = 50", up.addr),
    );
    let weir = Weir::start(&m);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tricklers = Vec::new();
    for _ in 0..1000 {
        let addr = weir.addr;
        let stop = stop.clone();
        tricklers.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(addr).await else {
                return false;
            };
            let head = b"POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 1000\r\n\r\n";
            if s.write_all(head).await.is_err() {
                return false;
            }
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if s.write_all(b"x").await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            true
        }));
    }
    // Let the flood reach the upstream before the ordinary clients come.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = keep_alive_client();
    let mut ok = 0;
    let total = 300;
    for i in 0..total {
        let req = http::Request::get(weir.url(&format!("/item/{i}")))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
            if r.status() == 200 {
                ok += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut held = 0;
    for t in tricklers {
        if t.await.unwrap_or(false) {
            held += 1;
        }
    }
    assert!(
        held >= 990,
        "the flood was held open throughout: {held} of 1000"
    );
    assert!(
        ok * 100 >= total * 99,
        "{ok} of {total} ordinary requests succeeded during the flood"
    );
}
