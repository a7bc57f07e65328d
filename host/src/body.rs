//! The one body type of the data path: a streamed hyper body or a small buffered one, and
//! the wrappers a response may pass through (filling the cache, compression).
//!
//! An enum instead of a boxed trait object keeps the per-request path free of allocations
//! for the body itself; streamed bodies pass through frame by frame, never buffered.

use crate::upstream::pending::Uploading;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// The error of a body: the stream's, or [`TooLarge`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client's request body failed (malformed chunked framing, reset, closed early): the
/// client's fault, answered 400 and not held against the upstream.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read: {0}")]
pub struct ClientBodyError(#[source] pub hyper::Error);

/// The client sent nothing of its request body for `body-read-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body for {0:?}")]
pub struct BodyTimeout(pub Duration);

/// A streamed request body went over the manifest's `max-body-size`.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than max-body-size ({0} bytes)")]
pub struct TooLarge(pub u64);

pin_project! {
    /// A request or response body.
    #[derive(Debug)]
    #[project = BodyProj]
    pub enum Body {
        /// Streamed from the client, failing once more than `limit` bytes have come or when
        /// nothing came for `idle`.
        Client {
            #[pin] inner: Incoming,
            limit: Option<u64>,
            seen: u64,
            idle: Option<Duration>,
            // Made on the first wait; pushed back after each frame.
            sleep: Option<Pin<Box<Sleep>>>,
            // Told when the body has all been read (the max-pending count starts then).
            uploaded: Option<Arc<Uploading>>,
            // Counts the body as running on its connection until it has all been read.
            reading: Option<crate::conn::Running>,
        },
        /// Made by the proxy or a filter.
        Full { #[pin] inner: Full<Bytes> },
        /// An upstream's response, with its in-flight count and time limits.
        Upstream { #[pin] inner: crate::upstream::body::UpstreamBody },
        /// A response copied into a cache zone as it passes.
        Filling { #[pin] inner: crate::cache::fill::Filling },
        /// A response compressed on its way to the client (boxed: an encoder's state is
        /// large, and every body would otherwise be as large as it).
        Encoded { #[pin] inner: Box<crate::compress::Encoding> },
    }
}

impl Body {
    /// A buffered body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Body::Full {
            inner: Full::new(bytes.into()),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Body::full(Bytes::new())
    }

    /// The client's streamed body, failing after `limit` bytes or `idle` without a frame,
    /// holding `reading` until it has all been read.
    pub fn client(
        inner: Incoming,
        limit: Option<u64>,
        idle: Option<Duration>,
        reading: Option<crate::conn::Running>,
    ) -> Self {
        Body::Client {
            inner,
            limit,
            seen: 0,
            idle,
            sleep: None,
            uploaded: None,
            reading,
        }
    }

    /// Have `hook` told when this body has been read to its end. A body that is not streamed
    /// from the client is complete already: `hook` is told at once.
    pub fn on_uploaded(&mut self, hook: Arc<Uploading>) {
        match self {
            Body::Client {
                inner, uploaded, ..
            } if !inner.is_end_stream() => {
                *uploaded = Some(hook);
            }
            _ => hook.finished(),
        }
    }
}

impl From<crate::upstream::body::UpstreamBody> for Body {
    fn from(inner: crate::upstream::body::UpstreamBody) -> Self {
        Body::Upstream { inner }
    }
}

fn client_error(e: hyper::Error) -> BoxError {
    Box::new(ClientBodyError(e))
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            BodyProj::Client {
                mut inner,
                limit,
                seen,
                idle,
                sleep,
                uploaded,
                reading,
            } => match inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        *seen += data.len() as u64;
                        crate::metrics::body_bytes().client_read(data.len());
                        if let Some(limit) = *limit {
                            if *seen > limit {
                                return Poll::Ready(Some(Err(Box::new(TooLarge(limit)))));
                            }
                        }
                    }
                    if let (Some(idle), Some(s)) = (*idle, sleep.as_mut()) {
                        s.as_mut().reset(tokio::time::Instant::now() + idle);
                    }
                    if inner.is_end_stream() {
                        if let Some(hook) = uploaded.take() {
                            hook.finished();
                        }
                        *reading = None;
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(None) => {
                    if let Some(hook) = uploaded.take() {
                        hook.finished();
                    }
                    *reading = None;
                    Poll::Ready(None)
                }
                Poll::Pending => {
                    let Some(idle) = *idle else {
                        return Poll::Pending;
                    };
                    let s = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    match s.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(idle))))),
                        Poll::Pending => Poll::Pending,
                    }
                }
                other => other.map_err(client_error),
            },
            BodyProj::Upstream { inner } => {
                let polled = inner.poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled {
                    if let Some(data) = frame.data_ref() {
                        crate::metrics::body_bytes().upstream_read(data.len());
                    }
                }
                polled
            }
            BodyProj::Filling { inner } => inner.poll_frame(cx),
            BodyProj::Encoded { inner } => inner.poll_frame(cx),
            BodyProj::Full { inner } => match inner.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Client { inner, .. } => inner.is_end_stream(),
            Body::Full { inner } => inner.is_end_stream(),
            Body::Upstream { inner } => inner.is_end_stream(),
            Body::Filling { inner } => inner.is_end_stream(),
            Body::Encoded { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Client { inner, .. } => inner.size_hint(),
            Body::Full { inner } => inner.size_hint(),
            Body::Upstream { inner } => inner.size_hint(),
            Body::Filling { inner } => inner.size_hint(),
            Body::Encoded { inner } => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Bodies are moved on every request: no variant may make all of them large.
    #[test]
    fn a_body_stays_small() {
        assert!(
            std::mem::size_of::<super::Body>() <= 128,
            "{}",
            std::mem::size_of::<super::Body>()
        );
    }
}
