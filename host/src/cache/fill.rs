//! A response body passed to the client while a copy fills the zone, and the handle the
//! proxy settles it with once response filters have decided.
//!
//! The copy is stored when both have happened: the body has all come (complete, within
//! `max-object-size`, as long as declared) and the filters' decisions are in (they may
//! refuse it, give it a TTL, tags). A body that fails or is cut short is never stored.

use super::decisions::Decisions;
use super::entry::Stored;
use super::zone::{FillGuard, Zone};
use super::Outcome;
use crate::body::{Body, BoxError};
use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

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
    /// Why it is not stored unless a filter gives it a TTL (`no-freshness`, `expired`).
    pub needs_ttl: Option<&'static str>,
}

#[derive(Default)]
struct State {
    pending: Option<Pending>,
    copy: BytesMut,
    body_done: bool,
    decided: bool,
}

impl State {
    fn take(&mut self, data: &Bytes) {
        let Some(p) = &self.pending else { return };
        if (self.copy.len() + data.len()) as u64 > p.zone.settings().max_object_size {
            self.abandon();
            return;
        }
        self.copy.extend_from_slice(data);
    }

    fn abandon(&mut self) {
        self.pending = None;
        self.copy = BytesMut::new();
    }

    /// Store the copy if the body is complete and the decisions are in.
    fn store_if_ready(&mut self) {
        if !(self.body_done && self.decided) {
            return;
        }
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let body = std::mem::take(&mut self.copy).freeze();
        if p.needs_ttl.is_some() || p.declared.is_some_and(|n| n != body.len() as u64) {
            return;
        }
        if p.stored.status != http::StatusCode::NO_CONTENT {
            p.stored.headers.insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(body.len() as u64),
            );
        }
        p.stored.body = body;
        p.zone.store(p.key, p.stored);
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A body copied into the zone as it passes.
pub struct Filling {
    inner: Pin<Box<Body>>,
    state: Arc<Mutex<State>>,
}

/// How a response that went upstream is settled once response filters ran: their
/// decisions applied, its `Cache-Status` written.
pub struct Settle {
    state: Option<Arc<Mutex<State>>>,
    outcome: Outcome,
}

impl Settle {
    /// A response that is not stored (or a hit: nothing to settle but its status).
    pub fn outcome(outcome: Outcome) -> Self {
        Settle {
            state: None,
            outcome,
        }
    }

    /// `response`'s body, copied for `pending`; the settle that decides it.
    pub fn filling(
        response: http::Response<Body>,
        pending: Pending,
        outcome: Outcome,
    ) -> (http::Response<Body>, Self) {
        let state = Arc::new(Mutex::new(State {
            pending: Some(pending),
            ..State::default()
        }));
        let (parts, body) = response.into_parts();
        // An empty body is never polled: it is complete now.
        lock(&state).body_done = body.is_end_stream();
        let filling = Filling {
            inner: Box::pin(body),
            state: state.clone(),
        };
        let response = http::Response::from_parts(parts, Body::Filling { inner: filling });
        (
            response,
            Settle {
                state: Some(state),
                outcome,
            },
        )
    }

    /// Apply the request's `decisions` and mark `headers` with the outcome.
    pub fn finish(mut self, decisions: &Decisions, headers: &mut http::HeaderMap) {
        if let Some(state) = self.state.take() {
            let mut s = lock(&state);
            if let Some(p) = s.pending.as_mut() {
                if decisions.uncacheable {
                    s.abandon();
                    self.outcome = self.outcome.refused("uncacheable");
                } else {
                    apply(p, decisions);
                    self.outcome = match p.needs_ttl {
                        Some(why) => self.outcome.refused(why),
                        None => self.outcome.stored(),
                    };
                }
            }
            s.decided = true;
            s.store_if_ready();
        }
        self.outcome.mark(headers);
    }
}

/// `response`'s body, copied for `pending` and stored once complete (no filter decides it).
pub fn tee(response: http::Response<Body>, pending: Pending) -> http::Response<Body> {
    let outcome = Outcome::Hit {
        ttl: 0,
        detail: None,
        collapsed: false,
    };
    let (response, settle) = Settle::filling(response, pending, outcome);
    let mut s = settle;
    if let Some(state) = s.state.take() {
        let mut st = lock(&state);
        st.decided = true;
        st.store_if_ready();
    }
    response
}

impl Drop for Settle {
    /// A settle dropped unfinished (the request ended another way) decides nothing more.
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            let mut s = lock(&state);
            s.decided = true;
            s.store_if_ready();
        }
    }
}

/// A filter's TTL, stale windows and tags on the response to store.
fn apply(p: &mut Pending, d: &Decisions) {
    if let Some(ttl) = d.ttl {
        p.stored.lifetime = p.stored.initial_age + Duration::from_secs(ttl.into());
        p.needs_ttl = None;
    }
    if let Some((swr, sie)) = d.stale {
        p.stored.stale_while_revalidate = Duration::from_secs(swr.into());
        p.stored.stale_if_error = Duration::from_secs(sie.into());
    }
    for tag in &d.tags {
        if !p.stored.tags.iter().any(|t| **t == **tag) {
            p.stored.tags.push(tag.as_str().into());
        }
    }
}

impl std::fmt::Debug for Filling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("Filling")
            .field("copied", &s.copy.len())
            .field("storing", &s.pending.is_some())
            .finish()
    }
}

impl Drop for Filling {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        if !s.body_done {
            // Cut short: nothing is stored, and requests waiting on this fetch go on.
            s.abandon();
        }
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
        let mut s = lock(&this.state);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    s.take(data);
                }
                if this.inner.is_end_stream() {
                    s.body_done = true;
                    s.store_if_ready();
                }
            }
            Poll::Ready(Some(Err(_))) => s.abandon(),
            Poll::Ready(None) => {
                s.body_done = true;
                s.store_if_ready();
            }
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
