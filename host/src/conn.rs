//! One client connection's life after accept: served until it ends; shut down gracefully
//! (GOAWAY on HTTP/2, no more keep-alive on HTTP/1.1, requests in flight finish) when the
//! worker stops or when no request has started or run for `client-idle-timeout`; counted, so
//! a stopping worker can wait for its connections to drain.

use hyper::body::{Body, Incoming};
use hyper::service::{HttpService, Service};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::sync::{watch, Notify};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A served connection that can be asked to finish gracefully.
pub trait Connection: Future<Output = Result<(), BoxError>> {
    /// Stop taking new requests; the future completes once those in flight are done.
    fn shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Connection for auto::UpgradeableConnection<'static, I, S, TokioExecutor>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>>
        + HttpService<Incoming, ResBody = B>,
    <S as Service<http::Request<Incoming>>>::Future: Send + 'static,
    <S as Service<http::Request<Incoming>>>::Error: Into<BoxError>,
    <S as HttpService<Incoming>>::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
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

/// What a connection's requests are doing, for its idle timeout: requests running and
/// requests started so far. Two relaxed atomics per request, no clock read.
#[derive(Debug, Default)]
pub struct Activity {
    running: AtomicUsize,
    started: AtomicU64,
    /// Set when the connection is to close: HTTP/1 responses from then on say
    /// `Connection: close`, so that the client does not reuse it.
    closing: std::sync::atomic::AtomicBool,
}

/// Counts a request as running until dropped.
pub struct Running<'a>(&'a Activity);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    /// A request starts.
    pub fn begin(&self) -> Running<'_> {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.running.fetch_add(1, Ordering::Relaxed);
        Running(self)
    }

    /// Whether the connection is closing (its HTTP/1 responses say `Connection: close`).
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> (usize, u64) {
        (
            self.running.load(Ordering::Relaxed),
            self.started.load(Ordering::Relaxed),
        )
    }

    /// Completes when a request starts, or after `linger`: a connection that is closed on
    /// stop is first given that long for the request a client may already have sent on it
    /// (a just-accepted connection, or a kept-alive one about to be reused). A request
    /// running at the stop may have sent its response head without `Connection: close`, so
    /// the client may reuse the connection once more: that next request is waited for too,
    /// and its response says `Connection: close`.
    async fn next_request(&self, linger: Duration) {
        let (_, started) = self.snapshot();
        if linger.is_zero() {
            return;
        }
        let until = tokio::time::Instant::now() + linger;
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if self.snapshot().1 != started {
                return;
            }
        }
    }

    /// Completes once the connection has been idle (nothing running, nothing started) for
    /// at least `idle`: between 1× and 1.5× `idle` after its last request.
    async fn idle_for(&self, idle: Duration) {
        let tick = idle / 2;
        let mut last = self.snapshot();
        let mut quiet_ticks = 0;
        loop {
            tokio::time::sleep(tick).await;
            let now = self.snapshot();
            if now.0 == 0 && now.1 == last.1 {
                quiet_ticks += 1;
                if quiet_ticks >= 2 {
                    return;
                }
            } else {
                quiet_ticks = 0;
            }
            last = now;
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

/// Serve `conn` to its end: shut it down gracefully once `stop` turns true or the
/// connection has been idle for `idle`.
pub async fn serve<C: Connection>(
    conn: C,
    mut stop: watch::Receiver<bool>,
    activity: &Activity,
    idle: Duration,
) -> Result<(), BoxError> {
    let mut conn = pin!(conn);
    let watcher = async {
        let stopped = tokio::select! {
            seen = stop.wait_for(|s| *s) => seen.is_ok(),
            _ = activity.idle_for(idle) => false,
        };
        if stopped {
            activity.closing.store(true, Ordering::Relaxed);
            activity.next_request(linger()).await;
            tracing::trace!("stopping: closing the connection gracefully");
        } else {
            tracing::debug!(?idle, "client-idle-timeout: closing the idle connection");
        }
    };
    let mut watcher = pin!(Gated::new(watcher));
    let ended = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        watcher.as_mut().poll(cx).map(|()| None)
    })
    .await;
    if let Some(r) = ended {
        return r;
    }
    conn.as_mut().shutdown();
    conn.await
}

/// A future polled only when its own waker fired, not each time the task that holds it is
/// woken: the connection's stop and idle watchers would otherwise be polled on every read
/// and write of every request.
struct Gated<F> {
    inner: Pin<Box<F>>,
    gate: Arc<Gate>,
    waker: Waker,
}

/// Whether the gated future was woken, and the task to wake when it is.
struct Gate {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

impl<F: Future> Gated<F> {
    fn new(inner: F) -> Self {
        let gate = Arc::new(Gate {
            // Polled once at first, to register its own wakers.
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        Gated {
            inner: Box::pin(inner),
            waker: Waker::from(gate.clone()),
            gate,
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut task = self.gate.task.lock().unwrap_or_else(|p| p.into_inner());
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        // Registered before the flag is read: a wake after this read wakes the task again.
        if !self.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let this = &mut *self;
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_gated_future_is_polled_only_when_it_was_woken() {
        let polls = Arc::new(AtomicUsize::new(0));
        let inner_waker: Arc<Mutex<Option<Waker>>> = Arc::default();
        let ready = Arc::new(AtomicBool::new(false));
        let inner = {
            let (polls, inner_waker, ready) = (polls.clone(), inner_waker.clone(), ready.clone());
            std::future::poll_fn(move |cx| {
                polls.fetch_add(1, Ordering::Relaxed);
                *inner_waker.lock().unwrap() = Some(cx.waker().clone());
                match ready.load(Ordering::Relaxed) {
                    true => Poll::Ready(()),
                    false => Poll::Pending,
                }
            })
        };
        let mut gated = pin!(Gated::new(inner));
        let task = Arc::new(Count::default());
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        for _ in 0..10 {
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1, "polled once, to register");
        ready.store(true, Ordering::Relaxed);
        inner_waker.lock().unwrap().take().unwrap().wake();
        assert_eq!(task.0.load(Ordering::Relaxed), 1, "its wake wakes the task");
        assert!(gated.as_mut().poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_means_nothing_running_and_nothing_started() {
        let a = Activity::default();
        let idle = Duration::from_secs(10);
        let start = tokio::time::Instant::now();
        a.idle_for(idle).await;
        let took = start.elapsed();
        assert!(took >= idle && took <= idle * 3 / 2, "{took:?}");

        // A request running all along keeps the connection busy.
        let running = a.begin();
        let waited = tokio::time::timeout(idle * 3, a.idle_for(idle)).await;
        assert!(waited.is_err(), "busy, not idle");
        drop(running);
        a.idle_for(idle).await;
    }

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
