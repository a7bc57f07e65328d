//! A response body passed to the client while a copy fills the zone: stored once it has
//! all come, complete and within `max-object-size`; dropped (and never stored) when it
//! fails, is cut short or grows too large.

use super::entry::Stored;
use super::zone::{FillGuard, Zone};
use crate::body::{Body, BoxError};
use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What is stored when the body is complete.
pub struct Pending {
    /// Where it goes.
    pub zone: Arc<Zone>,
    /// Under which key.
    pub key: Arc<str>,
    /// The response, its body still empty.
    pub stored: Stored,
    /// The length the response declared, checked at the end.
    pub declared: Option<u64>,
    /// The coalescing lead of this fetch, released when the body ends (either way).
    pub guard: Option<FillGuard>,
}

/// A body copied into the zone as it passes.
pub struct Filling {
    inner: Pin<Box<Body>>,
    pending: Option<Pending>,
    copy: BytesMut,
}

impl Filling {
    /// `inner`, stored as `pending` says once it has all been read.
    pub fn new(inner: Body, pending: Pending) -> Self {
        let mut filling = Filling {
            inner: Box::pin(inner),
            copy: BytesMut::new(),
            pending: Some(pending),
        };
        // An empty body is never polled: it is complete now.
        if filling.inner.is_end_stream() {
            filling.complete();
        }
        filling
    }

    fn take(&mut self, data: &Bytes) {
        let Some(p) = &self.pending else { return };
        let limit = p.zone.settings().max_object_size;
        if (self.copy.len() + data.len()) as u64 > limit {
            self.pending = None;
            self.copy = BytesMut::new();
            return;
        }
        self.copy.extend_from_slice(data);
    }

    fn complete(&mut self) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let body = std::mem::take(&mut self.copy).freeze();
        if p.declared.is_some_and(|n| n != body.len() as u64) {
            return;
        }
        p.stored.headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(body.len() as u64),
        );
        p.stored.body = body;
        p.zone.store(p.key, p.stored);
    }
}

impl std::fmt::Debug for Filling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filling")
            .field("copied", &self.copy.len())
            .field("storing", &self.pending.is_some())
            .finish()
    }
}

impl HttpBody for Filling {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.take(data);
                }
                if this.inner.is_end_stream() {
                    this.complete();
                }
            }
            Poll::Ready(Some(Err(_))) => this.pending = None,
            Poll::Ready(None) => this.complete(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
