//! A client connection's byte stream as hyper sees it: bytes read ahead of it (the HTTP/2
//! preface sniff, the head a parked connection's hyper state had read) come first, and every
//! read and write tells the connection's [`Activity`] whether anything is in hand.

use super::activity::Activity;
use crate::send_timeout::SendTimeout;
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A socket whose readiness can be waited for without reading: a parked connection holds no
/// buffer.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {
    /// Ready once the socket has something to read (or has ended).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Socket for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

/// Plaintext the TLS session holds already (a request that came in the same flight as the
/// client's last handshake message, read during the handshake) is ready at once: the socket
/// has nothing more to say about it. Otherwise the socket's readiness tells.
impl Socket for tokio_rustls::server::TlsStream<TcpStream> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (tcp, session) = self.get_ref();
        // False when plaintext (or the peer's close) waits to be read.
        if !session.wants_read() {
            return Poll::Ready(Ok(()));
        }
        tcp.poll_read_ready(cx)
    }
}

impl<T: Socket> Socket for SendTimeout<T> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().poll_read_ready(cx)
    }
}

/// `inner`, with bytes read ahead served first, reporting to `activity`.
pub struct ConnIo<T> {
    ahead: Bytes,
    inner: T,
    activity: Arc<Activity>,
}

impl<T> ConnIo<T> {
    /// `inner`, reporting to `activity`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        ConnIo {
            ahead: Bytes::new(),
            inner,
            activity,
        }
    }

    /// Serve `bytes` before whatever is read ahead already and the socket.
    pub fn unread(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        if self.ahead.is_empty() {
            // Copied: `bytes` may be a slice of a buffer many times its size.
            self.ahead = Bytes::copy_from_slice(&bytes);
        } else {
            let mut joined = BytesMut::with_capacity(bytes.len() + self.ahead.len());
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&self.ahead);
            self.ahead = joined.freeze();
        }
    }

    /// Whether bytes read ahead wait to be served.
    pub fn has_ahead(&self) -> bool {
        !self.ahead.is_empty()
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The stream, for reads that bypass the read-ahead and the reporting.
    pub(super) fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.ahead.is_empty() {
            let n = this.ahead.len().min(buf.remaining());
            buf.put_slice(this.ahead.get(..n).unwrap_or_default());
            this.ahead.advance(n);
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.activity.read(polled.is_pending());
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.activity.wrote();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.activity.wrote();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled {
            self.activity.flushed();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_read_ahead_come_first_and_reads_and_writes_are_reported() {
        let (client, server) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::default());
        let mut io = ConnIo::new(server, activity.clone());
        io.unread(Bytes::from_static(b"cd"));
        io.unread(Bytes::from_static(b"ab"));
        let mut client = client;
        client.write_all(b"ef").await.unwrap();
        let mut got = [0u8; 6];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdef");
        assert!(!io.has_ahead());

        // A read that finds nothing says so; a write is in hand until flushed.
        let mut one = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_millis(20), io.read(&mut one));
        assert!(read.await.is_err());
        io.write_all(b"x").await.unwrap();
        assert!(!activity.parkable(), "written, not flushed");
        io.flush().await.unwrap();
        assert!(
            activity.parkable(),
            "flushed, and the last read found nothing"
        );
        client.write_all(b"y").await.unwrap();
        io.read_exact(&mut one).await.unwrap();
        assert!(!activity.parkable(), "the last read found something");
    }
}
