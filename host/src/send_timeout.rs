//! Client connections whose writes stall: a client that stops reading its responses is
//! disconnected after `send-timeout`, so it frees the upstream connection and in-flight slot
//! its response holds instead of pinning them for ever.

use pin_project_lite::pin_project;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pin_project! {
    /// `inner`, whose writes fail with `TimedOut` once one has waited `limit` without progress.
    pub struct SendTimeout<T> {
        #[pin]
        inner: T,
        limit: Duration,
        // Made on the first stalled write; pushed back whenever a write makes progress.
        sleep: Option<Pin<Box<Sleep>>>,
        stalled: bool,
    }
}

impl<T> SendTimeout<T> {
    /// Guard `inner`'s writes with `limit`.
    pub fn new(inner: T, limit: Duration) -> Self {
        SendTimeout {
            inner,
            limit,
            sleep: None,
            stalled: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

/// Watch one write-side poll: pending starts (or continues) the stall clock, progress stops it.
fn watch<R>(
    poll: Poll<io::Result<R>>,
    cx: &mut Context<'_>,
    limit: Duration,
    sleep: &mut Option<Pin<Box<Sleep>>>,
    stalled: &mut bool,
) -> Poll<io::Result<R>> {
    match poll {
        Poll::Pending => {
            if !*stalled {
                *stalled = true;
                let deadline = Instant::now() + limit;
                match sleep {
                    Some(s) => s.as_mut().reset(deadline),
                    None => *sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
            }
            match sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client took nothing for {limit:?} (send-timeout)"),
                ))),
                _ => Poll::Pending,
            }
        }
        ready => {
            *stalled = false;
            ready
        }
    }
}

impl<T: AsyncRead> AsyncRead for SendTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write(cx, buf);
        watch(poll, cx, *this.limit, this.sleep, this.stalled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write_vectored(cx, bufs);
        watch(poll, cx, *this.limit, this.sleep, this.stalled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let poll = this.inner.poll_flush(cx);
        watch(poll, cx, *this.limit, this.sleep, this.stalled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_reader_that_stops_fails_the_writer_after_the_limit() {
        let (near, _far) = tokio::io::duplex(64);
        let mut guarded = SendTimeout::new(near, Duration::from_millis(100));
        let start = std::time::Instant::now();
        let err = guarded.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_slow_but_steady_reader_is_not_cut_off() {
        use tokio::io::AsyncReadExt;
        let (near, mut far) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 2048 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                total += far.read(&mut buf).await.unwrap();
            }
        });
        let mut guarded = SendTimeout::new(near, Duration::from_millis(100));
        guarded.write_all(&[0u8; 2048]).await.unwrap();
        reader.await.unwrap();
    }
}
