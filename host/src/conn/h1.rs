//! A client connection from its first bytes, and HTTP/1.1 connections parked between
//! requests. A new connection waits for its first bytes holding no buffer, then goes to HTTP/2
//! (the preface) or HTTP/1.1. Once an HTTP/1.1 connection is quiet with nothing in hand, a few
//! tenths of a second after its last response
//! ([`Activity::parkable`](super::Activity::parkable)), hyper's state for it, with its read and
//! write buffers (16 KiB), is dropped, and the connection waits for its next bytes holding no
//! buffer at all; when they come, hyper serves it again. What hyper had read of a next head is
//! kept, and a next head is due within `header-read-timeout` of the park, however often the
//! connection is parked on the way.

use super::io::{ConnIo, Socket};
use super::{drive, linger, serve_h2, version, Activity, BoxError, Builders, Driven, Watch};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// What hyper's state for a connection holds at least, in its read and write buffers.
const HYPER_BUFFERS: usize = 16 << 10;

/// Client connections waiting with no buffer for their first bytes or their next request.
static PARKED: AtomicUsize = AtomicUsize::new(0);

/// Client connections waiting with no buffer now, over all listeners and workers.
pub fn parked() -> usize {
    PARKED.load(Ordering::Relaxed)
}

/// Counts a connection as parked until dropped.
struct Parked;

impl Parked {
    fn new() -> Self {
        PARKED.fetch_add(1, Ordering::Relaxed);
        Parked
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        PARKED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// When a next request must have started by, and how many had started when it was set.
#[derive(Debug, Clone, Copy)]
pub(super) struct Late {
    pub at: Instant,
    pub started: u64,
}

/// Completes once `late` has passed with no request started since it was set; never
/// without one.
pub(super) async fn overdue(activity: &Activity, late: Option<Late>) {
    if let Some(late) = late {
        tokio::time::sleep_until(late.at).await;
        if activity.started() == late.started {
            return;
        }
    }
    std::future::pending().await
}

/// Serve a new connection until it ends: wait for its first bytes holding no buffer, hand it
/// to HTTP/2 if they are the HTTP/2 preface, and otherwise serve HTTP/1.1, parking it
/// whenever it is quiet. One future holds the connection's stream and service: a wrapper
/// `async fn` would keep a second copy of them (it did: 1 KiB more per idle connection).
pub async fn serve<T, S, B>(
    builders: Arc<Builders>,
    mut io: ConnIo<T>,
    mut service: S,
    mut w: Watch,
) -> Result<(), BoxError>
where
    T: Socket,
    S: HttpService<Incoming, ResBody = B> + Unpin + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let header_read = builders.header_read;
    let mut late = Late {
        at: Instant::now() + header_read,
        started: w.activity.started(),
    };
    if !wait(&io, &mut w, late.at).await {
        return Ok(());
    }
    match tokio::time::timeout_at(late.at, version::is_h2(&mut io)).await {
        Ok(Ok(false)) => {}
        // Boxed: an HTTP/1.1 connection's task has no room for it.
        Ok(Ok(true)) => return Box::pin(serve_h2(&builders.h2, io, service, w)).await,
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {
            tracing::debug!("no request head within header-read-timeout: closing");
            return Ok(());
        }
    }
    loop {
        let conn = connect(&builders.h1, io, service);
        let conn = match drive(conn, &mut w, true, Some(late)).await {
            Driven::Ended(r) => return Ok(r?),
            Driven::Park(conn) => conn,
        };
        // In a block of its own: `parts` is then not kept in the parked connection's state.
        {
            let Some(parts) = Pin::into_inner(conn).into_parts() else {
                return Ok(());
            };
            io = parts.io.into_inner();
            io.unread(parts.read_buf);
            service = parts.service;
        }
        let started = w.activity.started();
        if started != late.started {
            late = Late {
                at: Instant::now() + header_read,
                started,
            };
        }
        tracing::trace!(ahead = io.has_ahead(), "parking the quiet connection");
        crate::trim::freed(HYPER_BUFFERS);
        if !io.has_ahead() && !wait(&io, &mut w, late.at).await {
            return Ok(());
        }
    }
}

/// Hyper's HTTP/1.1 connection on `io`, boxed: made here, not in the serving loop's state,
/// so that a parked connection's task has no room for one.
fn connect<T, S, B>(
    builder: &http1::Builder,
    io: ConnIo<T>,
    service: S,
) -> Pin<Box<http1::UpgradeableConnection<TokioIo<ConnIo<T>>, S>>>
where
    T: Socket,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    Box::pin(
        builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades(),
    )
}

/// Wait, holding no buffer, for the connection's next bytes. True when they come; false when
/// it is to close: `until` or `client-idle-timeout` passed, or a stop with no linger or
/// nothing sent within it.
pub(super) async fn wait<T: Socket>(io: &ConnIo<T>, w: &mut Watch, until: Instant) -> bool {
    let _parked = Parked::new();
    // One timer for both the deadline and a stop's linger.
    let sleep = tokio::time::sleep_until(until.min(Instant::now() + w.idle));
    tokio::pin!(sleep);
    let ready = || poll_fn(|cx| io.get_ref().poll_read_ready(cx));
    let stopped = tokio::select! {
        // An error shows in the next read.
        _ = ready() => return true,
        () = &mut sleep => {
            tracing::debug!("no request within header-read-timeout or client-idle-timeout: closing");
            return false;
        }
        stopped = async { w.stop.wait_for(|s| *s).await.is_ok() } => stopped,
    };
    let linger = linger();
    if !stopped || linger.is_zero() {
        return false;
    }
    w.activity.close();
    sleep.as_mut().reset(Instant::now() + linger);
    tokio::select! {
        _ = ready() => true,
        () = &mut sleep => false,
    }
}
