//! A filter instance's stderr, kept in memory (its last few KiB, and echoed to the proxy's
//! stderr under `inherit-stdio`): where Rust's panic hook writes, so a trap can be reported
//! with the panic's message and location instead of a bare "`unreachable` executed".

use bytes::Bytes;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of stderr kept per instance.
const KEEP: usize = 4096;
/// Longest panic message reported.
const MAX_MESSAGE: usize = 1024;

/// The tail of one instance's stderr. Clones share it.
#[derive(Clone, Default)]
pub struct StderrTail {
    kept: Arc<Mutex<Vec<u8>>>,
    /// Also write through to the proxy's stderr (`inherit-stdio`).
    echo: bool,
}

impl StderrTail {
    /// A tail that also echoes to the proxy's stderr when `echo`.
    pub fn new(echo: bool) -> Self {
        StderrTail {
            kept: Arc::default(),
            echo,
        }
    }

    fn push(&self, bytes: &[u8]) {
        if self.echo {
            let _ = std::io::stderr().write_all(bytes);
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.extend_from_slice(bytes);
        if kept.len() > KEEP {
            let cut = kept.len() - KEEP;
            kept.drain(..cut);
        }
    }

    /// The last panic written, as one line — `panicked at src/lib.rs:62:48: <message>` — or
    /// `None` if the instance never panicked. (A panicking instance traps and is dropped, so a
    /// panic found here is the one that ended it.)
    pub fn panic(&self) -> Option<String> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        panic_message(&String::from_utf8_lossy(&kept))
    }
}

/// The last panic in `text` (as Rust's default hook writes it: "thread '..' panicked at
/// <file:line:col>:\n<message>\nnote: ..."), on one line.
fn panic_message(text: &str) -> Option<String> {
    let at = text.rfind("panicked at ")?;
    let rest = text.get(at..)?;
    let mut line = String::new();
    for part in rest.lines().take_while(|l| !l.starts_with("note: ")) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(part);
    }
    if line.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    Some(line)
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready: what doesn't fit pushes the oldest bytes out.
        Ok(KEEP)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_panic_on_one_line() {
        let tail = StderrTail::new(false);
        assert_eq!(tail.panic(), None);
        tail.push(b"debug output\n");
        tail.push(
            b"\nthread '<unnamed>' panicked at src/lib.rs:62:48:\nunit must be ms, s, m or h\n",
        );
        tail.push(
            b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(
            tail.panic().as_deref(),
            Some("panicked at src/lib.rs:62:48: unit must be ms, s, m or h")
        );
    }

    #[test]
    fn keeps_only_the_tail_and_bounds_the_message() {
        let tail = StderrTail::new(false);
        tail.push(b"thread 'x' panicked at a.rs:1:1:\nold\n");
        tail.push(&vec![b'.'; KEEP]);
        assert_eq!(tail.panic(), None, "pushed out");
        tail.push(b"panicked at b.rs:2:2:\n");
        tail.push(&vec![b'x'; 3 * MAX_MESSAGE]);
        let msg = tail.panic().unwrap();
        assert!(msg.starts_with("panicked at b.rs:2:2: xxx"), "{msg}");
        assert!(msg.len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}
