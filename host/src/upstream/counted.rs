//! Counting an upstream's pooled connections: a connector around the pool's own that counts
//! each connection it makes, and a stream around each connection that counts it closed when
//! the pool drops it. The counts belong to the upstream (by name, across reloads).

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Connections made and closed.
#[derive(Debug, Default)]
pub struct ConnCounts {
    opened: AtomicU64,
    closed: AtomicU64,
}

impl ConnCounts {
    /// (made so far, open now).
    pub fn snapshot(&self) -> (u64, u64) {
        let opened = self.opened.load(Relaxed);
        let closed = self.closed.load(Relaxed);
        (opened, opened.saturating_sub(closed))
    }
}

/// A connector whose connections are counted in `counts` (when there are counts to keep).
#[derive(Clone)]
pub struct Counted<C> {
    inner: C,
    counts: Option<Arc<ConnCounts>>,
}

impl<C> Counted<C> {
    /// `inner`, counting into `counts`.
    pub fn new(inner: C, counts: Option<Arc<ConnCounts>>) -> Self {
        Counted { inner, counts }
    }
}

impl<C> tower_service::Service<http::Uri> for Counted<C>
where
    C: tower_service::Service<http::Uri>,
    C::Future: Send + 'static,
{
    type Response = CountedIo<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let counts = self.counts.clone();
        Box::pin(async move {
            let io = connecting.await?;
            if let Some(c) = &counts {
                c.opened.fetch_add(1, Relaxed);
            }
            Ok(CountedIo { io, counts })
        })
    }
}

pin_project! {
    /// A counted connection: counted closed when dropped.
    pub struct CountedIo<T> {
        #[pin]
        io: T,
        counts: Option<Arc<ConnCounts>>,
    }

    impl<T> PinnedDrop for CountedIo<T> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(c) = &this.counts {
                c.closed.fetch_add(1, Relaxed);
            }
        }
    }
}

impl<T: Connection> Connection for CountedIo<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read> Read for CountedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: Write> Write for CountedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
}
