//! Timeouts: the response head (per upstream, overridden per route), the longest silence
//! within a response body (idle), the whole exchange (overall), idle client keep-alive
//! connections, and clients that stop sending their body or stop reading the response.

mod harness;
use bytes::Bytes;
use harness::*;
use http_body_util::{BodyExt, Full};
use std::time::{Duration, Instant};

/// What a client got: the status, the body bytes that arrived, whether the body ended
/// cleanly, and how long it all took.
struct Outcome {
    status: u16,
    body: String,
    complete: bool,
    took: Duration,
}

async fn fetch(url: &str) -> Outcome {
    let start = Instant::now();
    let client = keep_alive_client();
    let resp = client
        .request(
            http::Request::get(url)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .expect("response head");
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut text = String::new();
    let complete = loop {
        match body.frame().await {
            None => break true,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    text.push_str(&String::from_utf8_lossy(data));
                }
            }
            Some(Err(_)) => break false,
        }
    };
    Outcome {
        status,
        body: text,
        complete,
        took: start.elapsed(),
    }
}

#[tokio::test]
async fn a_route_timeout_overrides_the_upstreams() {
    let slow = Upstream::slow(Duration::from_millis(700)).await;
    let weir = Weir::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\ntimeout = \"5s\"\nretries = 0\n\n\
         [[routes]]\npath = \"/impatient\"\nupstream = \"app\"\ntimeout = \"200ms\"\n\n\
         [[routes]]\nupstream = \"app\"\n",
        slow.addr
    ));
    let r = fetch(&weir.url("/impatient")).await;
    assert_eq!(r.status, 504);
    assert!(r.took < Duration::from_millis(650), "{:?}", r.took);
    let r = fetch(&weir.url("/patient")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "late\n"));
}

#[tokio::test]
async fn a_silent_upstream_body_is_cut_off_after_the_idle_timeout() {
    let up = Upstream::streaming(vec![
        (Duration::ZERO, "hello "),
        (Duration::from_millis(1500), "world"),
    ])
    .await;
    let weir = Weir::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\nidle-timeout = \"300ms\"\n\n\
         [[routes]]\npath = \"/patient\"\nupstream = \"app\"\nidle-timeout = \"5s\"\n\n\
         [[routes]]\nupstream = \"app\"\n",
        up.addr
    ));
    let r = fetch(&weir.url("/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello ");
    assert!(
        !r.complete,
        "the client must see the body cut off, not ended"
    );
    assert!(r.took < Duration::from_millis(1200), "{:?}", r.took);
    weir.wait_for_log("idle longer than idle-timeout");

    // The route's longer idle timeout lets the same body finish.
    let r = fetch(&weir.url("/patient")).await;
    assert!(r.complete);
    assert_eq!(r.body, "hello world");
}

#[tokio::test]
async fn the_overall_timeout_bounds_a_busy_stream_and_a_slow_head() {
    // A chunk every 100 ms for 2 s: never idle, but long.
    let chunks = (0..20).map(|_| (Duration::from_millis(100), ".")).collect();
    let up = Upstream::streaming(chunks).await;
    let slow = Upstream::slow(Duration::from_secs(2)).await;
    let weir = Weir::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.stream]\ntargets = [\"{}\"]\nidle-timeout = \"1s\"\noverall-timeout = \"600ms\"\n\n\
         [upstreams.slow]\ntargets = [\"{}\"]\ntimeout = \"10s\"\noverall-timeout = \"300ms\"\nretries = 0\n\n\
         [[routes]]\npath = \"/slow\"\nupstream = \"slow\"\n\n\
         [[routes]]\nupstream = \"stream\"\n",
        up.addr, slow.addr
    ));
    let r = fetch(&weir.url("/")).await;
    assert_eq!(r.status, 200);
    assert!(!r.complete, "cut off");
    assert!(
        !r.body.is_empty() && r.body.len() < 20,
        "some chunks, not all: {:?}",
        r.body
    );
    assert!(r.took < Duration::from_millis(1500), "{:?}", r.took);

    let r = fetch(&weir.url("/slow")).await;
    assert_eq!(r.status, 504, "the overall limit applies to the head too");
    assert!(r.took < Duration::from_millis(1500), "{:?}", r.took);
}

#[tokio::test]
async fn idle_keep_alive_client_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&format!(
        "header-read-timeout = \"400ms\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n[[routes]]\nupstream = \"app\"\n",
        up.addr
    ));
    let mut conn = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Silent after the response: the proxy closes the connection.
    let start = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after 3 s");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

/// An HTTP/2 connection that opens no stream (or no more streams) for `client-idle-timeout`
/// gets a GOAWAY and is closed; one kept busy is not.
#[tokio::test]
async fn idle_http2_connections_are_closed_and_busy_ones_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&format!(
        "client-idle-timeout = \"600ms\"\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n[[routes]]\nupstream = \"app\"\n",
        up.addr
    ));
    // Raw bytes: the preface and an empty SETTINGS frame, then nothing.
    let mut conn = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut goaway = false;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        let mut at = 0;
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            // Frames: a 9-byte header (length, type, flags, stream) and the payload. PINGs
            // are answered, as a live client does.
            while at + 9 <= got.len() {
                let len = usize::from(got[at]) << 16
                    | usize::from(got[at + 1]) << 8
                    | usize::from(got[at + 2]);
                if at + 9 + len > got.len() {
                    break;
                }
                goaway |= got[at + 3] == 7;
                if got[at + 3] == 6 && got[at + 4] & 1 == 0 {
                    let mut ack = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                    ack.extend_from_slice(&got[at + 9..at + 17]);
                    let _ = conn.write_all(&ack).await;
                }
                at += 9 + len;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "an idle HTTP/2 connection is still open after 5 s"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "closed too soon: {took:?}"
    );
    assert!(goaway, "no GOAWAY in {got:?}");

    // One connection with a request every 200 ms outlives the timeout several times over.
    let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(weir.addr).await.unwrap());
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    for i in 0..15 {
        let req = http::Request::get(format!("/{i}"))
            .header("host", "a")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = sender
            .send_request(req)
            .await
            .expect("the busy connection keeps serving");
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!driver.is_finished(), "the busy connection is still open");
    // Once it falls silent, it is closed too.
    let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(ended.is_ok(), "the connection outlived its idleness");
}

/// A port whose connects hang: a listener with a full accept queue that never accepts
/// (Linux then drops further SYNs).
fn black_hole() -> (socket2::Socket, std::net::TcpStream, std::net::SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue.
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (socket, filler, addr)
}

#[tokio::test]
async fn a_hanging_connect_gives_up_after_the_connect_timeout() {
    let (_socket, _filler, addr) = black_hole();
    let weir = Weir::start(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{addr}\"]\nconnect-timeout = \"300ms\"\ntimeout = \"10s\"\nretries = 0\n\n\
         [[routes]]\nupstream = \"app\"\n"
    ));
    let r = fetch(&weir.url("/")).await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(
        r.took >= Duration::from_millis(250) && r.took < Duration::from_secs(3),
        "{:?}",
        r.took
    );
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(&[up.addr], &[], "").replace(
        "[[listeners]]",
        "body-read-timeout = \"300ms\"\n\n[[listeners]]",
    ));
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\nonly ten..")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("answered and closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        start.elapsed() >= Duration::from_millis(280),
        "{:?}",
        start.elapsed()
    );
    // A body that keeps coming, however slowly, is fine.
    let mut s = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 6\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    for byte in b"steady" {
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.write_all(&[*byte]).await.unwrap();
    }
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("steady"), "{answer}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_frees_the_upstream() {
    use tokio::io::AsyncWriteExt;
    let big = Bytes::from(vec![b'x'; 64 << 20]);
    let up = Upstream::start(move |_req| {
        let big = big.clone();
        async move { http::Response::new(Full::new(big)) }
    })
    .await;
    let weir = Weir::start(&manifest(&[up.addr], &[], "").replace(
        "[[listeners]]",
        "send-timeout = \"300ms\"\nadmin = \"127.0.0.1:0\"\n\n[[listeners]]",
    ));
    let mut s = tokio::net::TcpStream::connect(weir.addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    // Never read: the proxy's writes stall once the socket buffers are full.
    let in_flight =
        |status: serde_json::Value| status["upstreams"][0]["targets"][0]["in_flight"].as_u64();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        let n = in_flight(weir.status().await);
        seen.push(n);
        if n == Some(0) && seen.contains(&Some(1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the response still holds the upstream: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(s);
}
