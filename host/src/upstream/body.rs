//! An upstream's response body on its way to the client: it keeps the request counted in
//! flight on its target until it ends, and enforces the idle timeout (longest silence between
//! two frames) and the overall deadline of the exchange. A body that times out ends with an
//! error, so the client sees a cut-off response rather than a complete-looking one.
//!
//! The timer is created only when the upstream makes the body wait, so a body that is already
//! there costs no timer.

use crate::balance::InFlight;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Why a response body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    /// The upstream sent nothing for longer than the idle timeout.
    #[error("the upstream's response body was idle longer than idle-timeout ({0:?})")]
    Idle(Duration),
    /// The exchange took longer than the overall timeout.
    #[error("the exchange took longer than overall-timeout")]
    Overall,
}

/// The time limits of one response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyLimits {
    /// Longest silence between frames.
    pub idle: Option<Duration>,
    /// When the whole exchange must be over.
    pub deadline: Option<Instant>,
}

pin_project! {
    /// A streamed upstream response body.
    #[derive(Debug)]
    pub struct UpstreamBody {
        #[pin]
        inner: Incoming,
        in_flight: Option<InFlight>,
        limits: BodyLimits,
        // Created on the first wait; re-armed on the next wait after a frame.
        sleep: Option<Pin<Box<Sleep>>>,
        armed: bool,
    }
}

impl UpstreamBody {
    /// `inner`, counted in flight by `in_flight` until it ends, within `limits`.
    pub fn new(inner: Incoming, in_flight: Option<InFlight>, limits: BodyLimits) -> Self {
        UpstreamBody {
            inner,
            in_flight,
            limits,
            sleep: None,
            armed: false,
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.armed = false;
                if frame.is_none() {
                    // Done: the target is no longer busy with this request.
                    this.in_flight.take();
                } else if this.limits.deadline.is_some_and(|d| Instant::now() >= d) {
                    this.in_flight.take();
                    tracing::warn!("response cut off: {}", BodyTimeout::Overall);
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout::Overall))));
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let (idle, deadline) = (this.limits.idle, this.limits.deadline);
                let Some(at) = wait_until(idle, deadline) else {
                    return Poll::Pending;
                };
                if !*this.armed {
                    match this.sleep {
                        Some(sleep) => sleep.as_mut().reset(at),
                        None => *this.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
                    }
                    *this.armed = true;
                }
                let Some(sleep) = this.sleep.as_mut() else {
                    return Poll::Pending;
                };
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.in_flight.take();
                let why = match (idle, deadline) {
                    (_, Some(d)) if sleep.deadline() >= d => BodyTimeout::Overall,
                    (Some(idle), _) => BodyTimeout::Idle(idle),
                    (None, _) => BodyTimeout::Overall,
                };
                tracing::warn!("response cut off: {why}");
                Poll::Ready(Some(Err(Box::new(why))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The earlier of the idle timeout from now and the deadline.
fn wait_until(idle: Option<Duration>, deadline: Option<Instant>) -> Option<Instant> {
    let idle_at = idle.map(|d| Instant::now() + d);
    match (idle_at, deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
