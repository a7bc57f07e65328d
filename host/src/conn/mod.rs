//! One client connection's life after accept: served until it ends; shut down gracefully
//! (GOAWAY on HTTP/2, no more keep-alive on HTTP/1.1, requests in flight finish) when the
//! worker stops or when no request has started or run for `client-idle-timeout`; parked
//! between HTTP/1.1 requests without hyper's buffers; counted, so a stopping worker can wait
//! for its connections to drain.

mod activity;
mod gated;
mod h1;
mod io;
mod version;

pub use activity::{Activity, Held, Running, PARK_TICK, PARK_TICK_MAX};
pub use h1::{parked, serve};
pub use io::{ConnIo, Socket};

use gated::Gated;
use hyper::body::{Body, Incoming};
use hyper::rt::{Read, Write};
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{watch, Notify};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A served connection that can be asked to finish gracefully.
pub trait Connection: Future<Output = hyper::Result<()>> {
    /// Stop taking new requests; the future completes once those in flight are done.
    fn shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Connection for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    fn shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Connection for http2::Connection<I, S, TokioExecutor>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// How connections speak HTTP/1.1 and HTTP/2, and the time a client has to send a head.
pub struct Builders {
    /// HTTP/1.1 settings.
    pub h1: http1::Builder,
    /// HTTP/2 settings.
    pub h2: http2::Builder<TokioExecutor>,
    /// `header-read-timeout`: a new connection, and one parked between requests, must send
    /// its head within this.
    pub header_read: Duration,
}

/// The open connections of one worker.
#[derive(Default)]
pub struct Drain {
    open: AtomicUsize,
    closed: Notify,
}

/// Counts one connection as open until dropped.
pub struct Open(Arc<Drain>);

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

impl Drain {
    /// Count a new connection.
    pub fn open(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::AcqRel);
        Open(self.clone())
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Completes once no connection is open.
    pub async fn drained(&self) {
        loop {
            let closed = self.closed.notified();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// How long a connection stopped idle waits for a request before it closes (milliseconds):
/// zero on a plain stop, set by a binary upgrade so that the new process takes over with
/// no connection closed under a request in flight.
static LINGER_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Give idle connections `linger` for one more request when they are stopped.
pub fn set_linger(linger: Duration) {
    LINGER_MS.store(linger.as_millis() as u64, Ordering::Relaxed);
}

fn linger() -> Duration {
    Duration::from_millis(LINGER_MS.load(Ordering::Relaxed))
}

/// What a connection is watched for while it is served.
pub struct Watch {
    /// Turns true when the listener is removed or the worker stops.
    pub stop: watch::Receiver<bool>,
    /// Its requests and socket.
    pub activity: Arc<Activity>,
    /// `client-idle-timeout`.
    pub idle: Duration,
}

/// Serve HTTP/2 on `io` until the connection ends.
pub(super) async fn serve_h2<T, S, B>(
    builder: &http2::Builder<TokioExecutor>,
    io: ConnIo<T>,
    service: S,
    mut w: Watch,
) -> Result<(), BoxError>
where
    T: Socket,
    S: HttpService<Incoming, ResBody = B> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let conn = Box::pin(builder.serve_connection(TokioIo::new(io), service));
    match drive(conn, &mut w, false, None).await {
        Driven::Ended(r) => Ok(r?),
        Driven::Park(conn) => Ok(conn.await?),
    }
}

/// How driving a connection ended.
enum Driven<C> {
    /// It ended, with hyper's result.
    Ended(hyper::Result<()>),
    /// It is quiet with nothing in hand: park it (HTTP/1.1).
    Park(Pin<Box<C>>),
}

/// What the watcher of a served connection saw.
enum Woke {
    /// Stopped, or idle for `client-idle-timeout`: finish gracefully.
    Shutdown,
    /// Quiet with nothing in hand.
    Park,
    /// No request started by the deadline a park set.
    Late,
}

/// Poll `conn` until it ends, finishing it gracefully once `stop` turns true or it has been
/// idle for `idle`; when `park`, hand it back once it is quiet with nothing in hand; when
/// `late`, drop it if no request has started by then.
async fn drive<C: Connection>(
    mut conn: Pin<Box<C>>,
    w: &mut Watch,
    park: bool,
    late: Option<h1::Late>,
) -> Driven<C> {
    loop {
        let (activity, idle) = (&*w.activity, w.idle);
        let stop = &mut w.stop;
        let watcher = async move {
            tokio::select! {
                stopped = async { stop.wait_for(|s| *s).await.is_ok() } => {
                    if stopped {
                        activity.close();
                        activity.next_request(linger()).await;
                        tracing::trace!("stopping: closing the connection gracefully");
                    }
                    Woke::Shutdown
                }
                quiet = activity.quiet(idle, park) => match quiet {
                    activity::Quiet::Idle => {
                        tracing::debug!(?idle, "client-idle-timeout: closing the idle connection");
                        Woke::Shutdown
                    }
                    activity::Quiet::Park => Woke::Park,
                },
                () = h1::overdue(activity, late) => Woke::Late,
            }
        };
        let mut watcher = pin!(Gated::new(watcher));
        let woke = poll_fn(|cx| {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                return Poll::Ready(Err(r));
            }
            watcher.as_mut().poll(cx).map(Ok)
        })
        .await;
        match woke {
            Err(r) => return Driven::Ended(r),
            // Checked again in the same poll as hyper's last: nothing moved in between.
            Ok(Woke::Park) if w.activity.parkable() => return Driven::Park(conn),
            Ok(Woke::Park) => continue,
            Ok(Woke::Late) => {
                tracing::debug!("no request head within header-read-timeout of the park: closing");
                return Driven::Ended(Ok(()));
            }
            Ok(Woke::Shutdown) => {
                conn.as_mut().shutdown();
                return Driven::Ended(conn.await);
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_every_connection() {
        let d = Arc::new(Drain::default());
        d.drained().await;
        let a = d.open();
        let b = d.open();
        assert_eq!(d.count(), 2);
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.drained().await })
        };
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        waiter.await.unwrap();
    }
}
