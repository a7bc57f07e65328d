//! HTTP/1.1 connections parked between requests (hyper's state and buffers dropped while a
//! connection is quiet): a parked connection, plain or TLS, serves its next request as
//! before; nothing in flight is ever parked (a head or a body the client pauses in, pipelined
//! bytes, a response still streaming); a parked connection is still held to
//! `header-read-timeout` and does not hold up a stop.

mod harness;
use harness::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longer than a connection takes to park after a single request (0.1 to 0.3 s).
const QUIET: Duration = Duration::from_millis(800);

fn manifest(up: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "admin = \"127.0.0.1:0\"\n{extra}\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\n\
         [upstreams.app]\ntargets = [\"{up}\"]\n\n[[routes]]\nupstream = \"app\"\n"
    )
}

/// Weir with one TLS listener (a certificate for `a.test`) proxying to `up`.
fn tls_weir(up: std::net::SocketAddr) -> Weir {
    let dir = tempfile::tempdir().unwrap();
    harness::pki::Ca::new().leaf(&["a.test"], dir.path(), "a");
    let tls = "tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }] }";
    let listener = "address = \"127.0.0.1:0\"\n";
    Weir::start_in(
        dir,
        &manifest(up, "").replace(listener, &format!("{listener}{tls}\n")),
    )
}

/// `weir_connections_parked` from the admin listener's metrics.
async fn parked(weir: &Weir) -> u64 {
    let admin = weir.admin.expect("admin address");
    let metrics = get(&format!("http://{admin}/metrics"), &[]).await.body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("weir_connections_parked "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no weir_connections_parked in\n{metrics}"))
}

/// Read one response from `s` (bytes past it stay in `buf`): its status and body, the body
/// de-chunked.
async fn response<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> (u16, String) {
    async fn fill<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(s, buf).await;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    buf.drain(..end);
    let status = head[9..12].parse().expect("status");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse::<usize>().expect("length"));
    let mut body = Vec::new();
    if let Some(n) = length {
        while buf.len() < n {
            fill(s, buf).await;
        }
        body.extend(buf.drain(..n));
    } else if head.contains("transfer-encoding: chunked") {
        loop {
            let line = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                fill(s, buf).await;
            };
            let size = usize::from_str_radix(std::str::from_utf8(&buf[..line]).unwrap(), 16)
                .expect("chunk size");
            while buf.len() < line + 2 + size + 2 {
                fill(s, buf).await;
            }
            body.extend_from_slice(&buf[line + 2..line + 2 + size]);
            buf.drain(..line + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Send `bytes` and read one response.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    bytes: &[u8],
) -> (u16, String) {
    s.write_all(bytes).await.unwrap();
    response(s, buf).await
}

/// Whether the server closes `s` within `within` (reading and dropping anything it sends).
async fn closes(s: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, s.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_requests() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(up.addr, ""));
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    let mut buf = Vec::new();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
    let (status, body) = exchange(&mut s, &mut buf, &get("/a")).await;
    assert_eq!((status, body.lines().next()), (200, Some("GET /a")));
    tokio::time::sleep(QUIET).await;
    assert_eq!(parked(&weir).await, 1, "quiet between requests: parked");
    for path in ["/b", "/c"] {
        let (status, body) = exchange(&mut s, &mut buf, &get(path)).await;
        assert_eq!(status, 200);
        assert!(body.starts_with(&format!("GET {path}\n")), "{body}");
        tokio::time::sleep(QUIET).await;
    }
    assert_eq!(parked(&weir).await, 1);

    // Pipelined: a whole request and the start of the next. The part-head hyper had read
    // when the connection went quiet is kept; the connection is not parked while it holds
    // it, and the rest completes the request.
    let (status, _) = exchange(
        &mut s,
        &mut buf,
        b"GET /d HTTP/1.1\r\nHost: x\r\n\r\nGET /e HTTP/1.1\r\nHo",
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(QUIET).await;
    assert_eq!(parked(&weir).await, 0, "part of a head in hand: not parked");
    let (status, body) = exchange(&mut s, &mut buf, b"st: x\r\n\r\n").await;
    assert_eq!((status, body.lines().next()), (200, Some("GET /e")));

    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(parked(&weir).await, 0, "a closed connection is not counted");
}

#[tokio::test]
async fn a_head_or_body_paused_mid_way_is_never_cut() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(up.addr, ""));
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    let mut buf = Vec::new();

    // A head paused in.
    s.write_all(b"GET /split HT").await.unwrap();
    tokio::time::sleep(QUIET).await;
    let (status, body) = exchange(&mut s, &mut buf, b"TP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((status, body.lines().next()), (200, Some("GET /split")));

    // A body paused in (length, then chunked). Were the connection parked mid-body, the
    // rest would be read as a request of its own: a 400, and the echo would lack it.
    s.write_all(b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::sleep(QUIET).await;
    let (status, body) = exchange(&mut s, &mut buf, b"world").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("\n\nhelloworld"), "{body}");
    s.write_all(
        b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(QUIET).await;
    s.write_all(b"5\r\nGET /\r\n").await.unwrap();
    tokio::time::sleep(QUIET).await;
    let (status, body) = exchange(&mut s, &mut buf, b"0\r\n\r\n").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("\n\nhelloGET /"), "{body}");

    // And the connection is still in step.
    let (status, body) =
        exchange(&mut s, &mut buf, b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((status, body.lines().next()), (200, Some("GET /after")));
}

#[tokio::test]
async fn a_body_still_coming_after_its_response_is_never_cut() {
    // The upstream answers at once and reads the body afterwards: the whole response is
    // sent while the client is still sending its body, paused.
    let up = Upstream::start(|req: hyper::Request<hyper::body::Incoming>| async move {
        let line = format!("{} {}", req.method(), req.uri());
        tokio::spawn(http_body_util::BodyExt::collect(req.into_body()));
        hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(line)))
    })
    .await;
    let weir = Weir::start(&manifest(up.addr, ""));
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    let mut buf = Vec::new();
    let head = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello";
    let (status, body) = exchange(&mut s, &mut buf, head).await;
    assert_eq!((status, body.as_str()), (200, "POST /up"));
    tokio::time::sleep(QUIET).await;
    assert_eq!(parked(&weir).await, 0, "parked with a body still coming");
    // Were the connection parked mid-body, "world" would be read as the start of a request
    // of its own: "worldGET /after". The rest of the body goes on to the upstream instead.
    let next = b"worldGET /after HTTP/1.1\r\nHost: x\r\n\r\n";
    let (status, body) = exchange(&mut s, &mut buf, next).await;
    assert_eq!((status, body.as_str()), (200, "GET /after"));
}

#[tokio::test]
async fn a_response_streaming_with_pauses_is_never_cut() {
    let up = Upstream::streaming(vec![
        (Duration::ZERO, "one "),
        (QUIET, "two "),
        (QUIET, "three"),
    ])
    .await;
    let weir = Weir::start(&manifest(up.addr, ""));
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    let mut buf = Vec::new();
    let (status, body) = exchange(&mut s, &mut buf, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((status, body.as_str()), (200, "one two three"));
}

#[tokio::test]
async fn a_parked_connection_is_held_to_header_read_timeout() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(up.addr, "header-read-timeout = \"1s\""));
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    // Silent after a request: closed about a second after it went quiet.
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(exchange(&mut s, &mut buf, get).await.0, 200);
    let start = Instant::now();
    assert!(closes(&mut s, Duration::from_secs(3)).await, "still open");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );

    // A client trickling a next head a byte at a time gets no more: each byte unparks the
    // connection, but the head stays due a second after the first park.
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    assert_eq!(exchange(&mut s, &mut buf, get).await.0, 200);
    let start = Instant::now();
    let trickle = async {
        for b in b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), trickle).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "the trickling client was held open for {:?}",
        start.elapsed()
    );

    // A connection that never sends anything is closed too.
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    assert!(
        closes(&mut s, Duration::from_secs(3)).await,
        "silent: still open"
    );
}

#[tokio::test]
async fn a_stop_does_not_wait_for_parked_connections() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(up.addr, ""));
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    let mut buf = Vec::new();
    let (status, _) = exchange(&mut s, &mut buf, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 200);
    tokio::time::sleep(QUIET).await;
    assert_eq!(parked(&weir).await, 1);
    let start = Instant::now();
    let exit = weir.terminate();
    assert!(exit.success(), "{exit:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        closes(&mut s, Duration::from_secs(1)).await,
        "the parked connection was left open"
    );
}

#[tokio::test]
async fn a_parked_tls_connection_serves_its_next_request() {
    use harness::pki::*;
    let up = Upstream::echo("app").await;
    let weir = tls_weir(up.addr);
    let mut tls = connect_as(weir.addr, "a.test", &[b"http/1.1"], None)
        .await
        .expect("TLS handshake");
    let mut buf = Vec::new();
    for path in ["/one", "/two", "/three"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n");
        let (status, body) = exchange(&mut tls, &mut buf, req.as_bytes()).await;
        assert_eq!(status, 200);
        assert!(body.starts_with(&format!("GET {path}\n")), "{body}");
        tokio::time::sleep(QUIET).await;
        assert_eq!(parked(&weir).await, 1, "after {path}");
    }
}

#[tokio::test]
async fn a_tls_request_sent_with_the_handshake_is_served() {
    // The request goes out in the same flight as the client's Finished (as wrk and browsers
    // send it), so the server reads it during the handshake: it waits in the TLS session,
    // not on the socket, and a connection waiting for socket readiness would never see it.
    use harness::pki::*;
    let up = Upstream::echo("app").await;
    let weir = tls_weir(up.addr);
    let addr = weir.addr;
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let config = any_cert_client();
        let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
        let mut session = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        // Written before the handshake: sent with the client's Finished.
        session
            .writer()
            .write_all(b"GET /early HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut tls = rustls::Stream::new(&mut session, &mut tcp);
        let mut out = Vec::new();
        let read = tls.read_to_end(&mut out);
        (
            read.map_err(|e| e.to_string()),
            String::from_utf8_lossy(&out).into_owned(),
        )
    })
    .await
    .unwrap();
    let (read, text) = answer;
    assert!(text.starts_with("HTTP/1.1 200"), "{read:?}: {text}");
    assert!(text.contains("GET /early\n"), "{text}");
}

#[tokio::test]
async fn http2_after_a_pause_in_its_preface() {
    let up = Upstream::echo("app").await;
    let weir = Weir::start(&manifest(up.addr, ""));
    let mut s = TcpStream::connect(weir.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The rest of the preface and an empty SETTINGS frame.
    s.write_all(b"\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut head))
        .await
        .expect("an answer")
        .expect("read");
    assert_eq!(
        head[3], 4,
        "the server's first frame is HTTP/2 SETTINGS: {head:?}"
    );
}
