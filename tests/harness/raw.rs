//! Raw sockets: requests written byte for byte (no client library to tidy them up), and a
//! recording upstream that keeps exactly the bytes of each request it received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An HTTP/1.1 upstream that parses only as far as framing needs, records each complete
/// request as received (head and body bytes, as text), and answers `200 ok`.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    /// Listen on a fresh port.
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(record(stream, log.clone()));
            }
        });
        Recorder { addr, seen, task }
    }

    /// Every complete request received so far.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }

    /// Forget what was received.
    pub fn clear(&self) {
        self.seen.lock().expect("lock").clear();
    }

    /// The request line and lower-cased header lines of the only request received, which
    /// must be exactly one.
    pub fn only(&self) -> String {
        let all = self.requests();
        assert_eq!(all.len(), 1, "exactly one request forwarded: {all:#?}");
        all[0].clone()
    }
}

/// One connection: requests until it closes or a request is incomplete.
async fn record(mut stream: TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_until(&mut stream, &mut buf, b"\r\n\r\n").await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let lower = head.to_ascii_lowercase();
        let mut rest = buf.split_off(head_end);
        let body = if lower.contains("\ntransfer-encoding: chunked") {
            let end = if rest.starts_with(b"0\r\n\r\n") {
                Some(5)
            } else {
                read_until(&mut stream, &mut rest, b"\r\n0\r\n\r\n").await
            };
            let Some(end) = end else {
                return;
            };
            rest.drain(..end).collect::<Vec<u8>>()
        } else {
            let len = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while rest.len() < len {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => rest.extend_from_slice(&chunk[..n]),
                }
            }
            rest.drain(..len).collect()
        };
        buf = rest;
        log.lock()
            .expect("lock")
            .push(format!("{head}{}", String::from_utf8_lossy(&body)));
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-upstream: recorder\r\n\r\nok";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// Read into `buf` until it holds `end`; the index just past it.
async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, end: &[u8]) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(end.len()).position(|w| w == end) {
            return Some(i + end.len());
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What came back on a raw connection.
#[derive(Debug)]
pub struct RawReply {
    /// The status of the first response (0 if none came).
    pub status: u16,
    /// Everything read, as text.
    pub text: String,
    /// Whether the proxy closed the connection after it.
    pub closed: bool,
}

/// Write `bytes` to `addr` and read the first response (head and a `content-length` body),
/// then whether the connection closes within a moment.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> RawReply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let head_end = read_until(&mut stream, &mut buf, b"\r\n\r\n").await?;
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        Some(())
    })
    .await;
    let mut closed = read.is_ok();
    if read.is_ok() {
        let mut more = [0u8; 256];
        closed = matches!(
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut more)).await,
            Ok(Ok(0)) | Ok(Err(_))
        );
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawReply {
        status,
        text,
        closed,
    }
}

/// An HTTP/2 (prior knowledge) request with headers exactly as given, pseudo-headers
/// included, through the `h2` crate: the status, or the stream error's text.
pub async fn h2_request(
    addr: SocketAddr,
    uri: &str,
    headers: &[(&str, &str)],
) -> Result<u16, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut client, conn) = h2::client::handshake(tcp)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::get(uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(()).map_err(|e| e.to_string())?;
    let (resp, _) = client.send_request(req, true).map_err(|e| e.to_string())?;
    let resp = resp.await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// An HTTP/2 (prior knowledge) request with a body sent as the given DATA frames, headers
/// exactly as given: the status, or the stream error's text.
pub async fn h2_send(
    addr: SocketAddr,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    frames: &[&[u8]],
) -> Result<u16, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut client, conn) = h2::client::handshake(tcp)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(()).map_err(|e| e.to_string())?;
    let (resp, mut body) = client
        .send_request(req, frames.is_empty())
        .map_err(|e| e.to_string())?;
    for (i, f) in frames.iter().enumerate() {
        body.send_data(bytes::Bytes::copy_from_slice(f), i + 1 == frames.len())
            .map_err(|e| e.to_string())?;
    }
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .map_err(|_| "no answer in 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// How the proxy answered a hand-encoded HTTP/2 request.
#[derive(Debug, PartialEq, Eq)]
pub enum H2Answer {
    /// A response with this status.
    Status(u16),
    /// A response head whose status this decoder doesn't read (the HPACK bytes).
    Head(Vec<u8>),
    /// The stream was reset with this error code.
    Reset(u32),
    /// The connection was closed with GOAWAY and this error code.
    GoAway(u32),
    /// Nothing within 5 s, or the connection closed without a frame.
    Nothing,
}

/// Send one HTTP/2 request on stream 1 whose header block is exactly `fields`, in order
/// (pseudo-headers included), each an HPACK literal that no client library would refuse to
/// write: connection-specific headers, upper-case names, CR/LF/NUL in values, misplaced or
/// unknown pseudo-headers. Reads frames until the stream is answered or reset.
pub async fn h2_raw(addr: SocketAddr, fields: &[(&[u8], &[u8])]) -> H2Answer {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0x00); // literal without indexing, new name
        hpack_string(&mut block, name);
        hpack_string(&mut block, value);
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&frame(0x4, 0, 0, &[])); // SETTINGS
    out.extend_from_slice(&frame(0x1, 0x5, 1, &block)); // HEADERS, END_STREAM | END_HEADERS
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return H2Answer::Nothing;
    };
    if stream.write_all(&out).await.is_err() {
        return H2Answer::Nothing;
    }
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await.ok()?;
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let (kind, flags) = (head[3], head[4]);
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).await.ok()?;
            let code = |at: usize| {
                payload
                    .get(at..at + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(u32::MAX)
            };
            match kind {
                0x4 if flags & 1 == 0 => {
                    let _ = stream.write_all(&frame(0x4, 1, 0, &[])).await; // ACK
                }
                0x1 if id == 1 => return Some(status_of(&payload)),
                0x3 if id == 1 => return Some(H2Answer::Reset(code(0))),
                0x7 => return Some(H2Answer::GoAway(code(4))),
                _ => {}
            }
        }
    })
    .await;
    answer.ok().flatten().unwrap_or(H2Answer::Nothing)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK string literal, not Huffman-coded (RFC 7541 §5.2).
fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128 + 128) as u8);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}

/// The status of a response header block when it is a static-table entry (how servers send
/// the common ones).
fn status_of(block: &[u8]) -> H2Answer {
    match block.first() {
        Some(0x88) => H2Answer::Status(200),
        Some(0x89) => H2Answer::Status(204),
        Some(0x8c) => H2Answer::Status(400),
        Some(0x8d) => H2Answer::Status(404),
        Some(0x8e) => H2Answer::Status(500),
        _ => H2Answer::Head(block.to_vec()),
    }
}
