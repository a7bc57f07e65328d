//! HTTP/1.1 connections parked between requests. Once a connection is quiet with nothing in
//! hand, a few tenths of a second after its last response ([`Activity::parkable`](super::Activity::parkable)), hyper's
//! state for it, with its read and write buffers (16 KiB), is dropped, and the connection
//! waits for its next bytes holding no buffer at all; when they come, hyper serves it again.
//! What hyper had read of a next head is kept, and a next head is due within
//! `header-read-timeout` of the park, however often the connection is parked on the way.

use super::io::{ConnIo, Socket};
use super::{drive, linger, Activity, BoxError, Driven, Watch};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
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

/// Serve HTTP/1.1 on `io` until the connection ends, parking it whenever it is quiet.
/// `late` is when the first request must have started by.
pub(super) async fn serve<T, S, B>(
    builder: &http1::Builder,
    mut io: ConnIo<T>,
    mut service: S,
    mut w: Watch,
    mut late: Late,
    header_read: Duration,
) -> hyper::Result<()>
where
    T: Socket,
    S: HttpService<Incoming, ResBody = B> + Unpin,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    loop {
        let conn = match drive(connect(builder, io, service), &mut w, true, Some(late)).await {
            Driven::Ended(r) => return r,
            Driven::Park(conn) => conn,
        };
        let Some(parts) = Pin::into_inner(conn).into_parts() else {
            return Ok(());
        };
        io = parts.io.into_inner();
        io.unread(parts.read_buf);
        service = parts.service;
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
    let until = until.min(Instant::now() + w.idle);
    let _parked = Parked::new();
    tokio::select! {
        // An error shows in the next read.
        _ = poll_fn(|cx| io.get_ref().poll_read_ready(cx)) => true,
        () = tokio::time::sleep_until(until) => {
            tracing::debug!("no request within header-read-timeout or client-idle-timeout: closing");
            false
        }
        stopped = async { w.stop.wait_for(|s| *s).await.is_ok() } => {
            if !stopped {
                return false;
            }
            w.activity.close();
            let linger = linger();
            if linger.is_zero() {
                return false;
            }
            let ready = poll_fn(|cx| io.get_ref().poll_read_ready(cx));
            tokio::time::timeout(linger, ready).await.is_ok()
        }
    }
}
