//! The one body type of the data path: a streamed hyper body or a small buffered one.
//!
//! An enum instead of a boxed trait object keeps the per-request path free of allocations
//! for the body itself; streamed bodies pass through frame by frame, never buffered.

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// A request or response body.
    #[derive(Debug)]
    #[project = BodyProj]
    pub enum Body {
        /// Streamed from the client or the upstream.
        Incoming { #[pin] inner: Incoming },
        /// Made by the proxy or a filter.
        Full { #[pin] inner: Full<Bytes> },
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
}

impl From<Incoming> for Body {
    fn from(inner: Incoming) -> Self {
        Body::Incoming { inner }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            BodyProj::Incoming { inner } => inner.poll_frame(cx),
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
            Body::Incoming { inner } => inner.is_end_stream(),
            Body::Full { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Incoming { inner } => inner.size_hint(),
            Body::Full { inner } => inner.size_hint(),
        }
    }
}
