//! What a connection's requests are doing, for its idle timeout and for parking it: requests
//! running (to the end of their bodies, both ways) and started, and whether its socket has
//! anything in hand.

use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The first tick of an HTTP/1.1 connection's quiet watch. A connection found quiet at a
/// tick (nothing running, nothing started since the tick before) with nothing in hand is
/// parked; each tick that finds it busy doubles the next, up to [`PARK_TICK_MAX`], so a busy
/// connection is looked at about once a second, and is parked within two ticks of its last
/// response (0.1 to 0.3 s after a single request, at most 2 s after a long busy spell).
pub const PARK_TICK: Duration = Duration::from_millis(100);

/// The longest tick of an HTTP/1.1 connection's quiet watch.
pub const PARK_TICK_MAX: Duration = Duration::from_secs(1);

/// A connection's requests and socket. Relaxed atomics, a few per request, no clock read:
/// all of a connection's requests and reads run on its worker.
#[derive(Debug, Default)]
pub struct Activity {
    running: AtomicUsize,
    started: AtomicU64,
    /// Set when the connection is to close: HTTP/1 responses from then on say
    /// `Connection: close`, so that the client does not reuse it.
    closing: AtomicBool,
    /// The last read of the socket found nothing to read.
    read_waiting: AtomicBool,
    /// Something was written since the last flush that finished.
    write_dirty: AtomicBool,
}

/// Counts a request, or one of its bodies, as running until dropped.
#[derive(Debug)]
pub struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a quiet connection is due for.
#[derive(Debug, PartialEq, Eq)]
pub enum Quiet {
    /// Quiet for `client-idle-timeout`: close it.
    Idle,
    /// Quiet long enough to park (HTTP/1.1), with nothing in hand on its socket.
    Park,
}

impl Activity {
    /// A request starts; it runs until the guard (held to the end of its response body) drops.
    pub fn begin(self: &Arc<Self>) -> Running {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.hold()
    }

    /// Something of a request (its body, still being read) runs until the guard drops.
    pub fn hold(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::Relaxed);
        Running(self.clone())
    }

    /// Whether the connection is closing (its HTTP/1 responses say `Connection: close`).
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// The connection is to close.
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Requests started so far.
    pub(super) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// A read of the socket found nothing (`waiting`) or something.
    pub(super) fn read(&self, waiting: bool) {
        self.read_waiting.store(waiting, Ordering::Relaxed);
    }

    /// Something is being written.
    pub(super) fn wrote(&self) {
        self.write_dirty.store(true, Ordering::Relaxed);
    }

    /// Everything written has been flushed.
    pub(super) fn flushed(&self) {
        self.write_dirty.store(false, Ordering::Relaxed);
    }

    /// Nothing runs, nothing waits to be written, and the last read found nothing: the HTTP/1.1
    /// connection is between requests, and dropping hyper's state loses nothing but the bytes
    /// of a next head it has read (which it hands back).
    pub(super) fn parkable(&self) -> bool {
        self.running.load(Ordering::Relaxed) == 0
            && !self.write_dirty.load(Ordering::Relaxed)
            && self.read_waiting.load(Ordering::Relaxed)
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
    pub(super) async fn next_request(&self, linger: Duration) {
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
    /// `idle` (at most one tick more; ticks of half of it), or, when `park`, once a tick
    /// finds it quiet and [`parkable`](Self::parkable) (ticks from [`PARK_TICK`]).
    pub(super) async fn quiet(&self, idle: Duration, park: bool) -> Quiet {
        let longest = (idle / 2).max(Duration::from_millis(1));
        let mut tick = if park {
            PARK_TICK.min(longest)
        } else {
            longest
        };
        let mut last = self.snapshot();
        let mut quiet = Duration::ZERO;
        loop {
            tokio::time::sleep(tick).await;
            let now = self.snapshot();
            if now.0 == 0 && now.1 == last.1 {
                quiet += tick;
                if quiet >= idle {
                    return Quiet::Idle;
                }
                if park && self.parkable() {
                    return Quiet::Park;
                }
            } else {
                quiet = Duration::ZERO;
                if park {
                    tick = (tick * 2).min(PARK_TICK_MAX).min(longest);
                }
            }
            last = now;
        }
    }
}

pin_project! {
    /// A response body that keeps its request counted as running until it has all been
    /// sent (or dropped).
    pub struct Held<B> {
        #[pin]
        inner: B,
        running: Option<Running>,
    }
}

impl<B> Held<B> {
    /// `inner`, holding `running` to its end.
    pub fn new(inner: B, running: Running) -> Self {
        Held {
            inner,
            running: Some(running),
        }
    }
}

impl<B: http_body::Body> http_body::Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            *this.running = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_means_nothing_running_and_nothing_started() {
        let a = Arc::new(Activity::default());
        let idle = Duration::from_secs(10);
        let start = tokio::time::Instant::now();
        assert_eq!(a.quiet(idle, false).await, Quiet::Idle);
        let took = start.elapsed();
        assert!(took >= idle && took <= idle * 3 / 2, "{took:?}");

        // A request running all along keeps the connection busy.
        let running = a.begin();
        let waited = tokio::time::timeout(idle * 3, a.quiet(idle, false)).await;
        assert!(waited.is_err(), "busy, not idle");
        drop(running);
        assert_eq!(a.quiet(idle, false).await, Quiet::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_parks_only_with_nothing_in_hand() {
        let a = Arc::new(Activity::default());
        let idle = Duration::from_secs(60);
        // Written but not flushed, or not yet found the socket empty: not parkable.
        a.wrote();
        a.read(true);
        let waited = tokio::time::timeout(PARK_TICK * 4, a.quiet(idle, true)).await;
        assert!(waited.is_err(), "unflushed bytes keep it unparked");
        a.flushed();
        a.read(false);
        let waited = tokio::time::timeout(PARK_TICK * 4, a.quiet(idle, true)).await;
        assert!(waited.is_err(), "a read that found bytes keeps it unparked");
        // A request body still being read keeps it unparked.
        a.read(true);
        let body = a.hold();
        let waited = tokio::time::timeout(PARK_TICK * 4, a.quiet(idle, true)).await;
        assert!(waited.is_err(), "a body in progress keeps it unparked");
        drop(body);
        let start = tokio::time::Instant::now();
        assert_eq!(a.quiet(idle, true).await, Quiet::Park);
        assert_eq!(start.elapsed(), PARK_TICK);

        // Busy ticks back off: a connection busy for five seconds is looked at about once a
        // second, and parked within two ticks of going quiet.
        let start = tokio::time::Instant::now();
        let busy = {
            let a = a.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    drop(a.begin());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let (quiet, busy) = tokio::join!(a.quiet(idle, true), busy);
        busy.unwrap();
        assert_eq!(quiet, Quiet::Park);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took <= Duration::from_secs(5) + PARK_TICK_MAX * 2,
            "{took:?}"
        );
        // One that cannot be parked is closed once idle.
        a.wrote();
        let short = Duration::from_millis(300);
        assert_eq!(a.quiet(short, true).await, Quiet::Idle);
    }

    #[tokio::test]
    async fn a_held_body_counts_as_running_to_its_end() {
        use http_body_util::BodyExt;
        let a = Arc::new(Activity::default());
        let body = Held::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"hi")),
            a.begin(),
        );
        assert_eq!(a.snapshot(), (1, 1));
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"hi");
        assert_eq!(a.snapshot(), (0, 1));
        // Dropped unread, it stops counting too.
        let body = Held::new(http_body_util::Empty::<bytes::Bytes>::new(), a.begin());
        assert_eq!(a.snapshot(), (1, 2));
        drop(body);
        assert_eq!(a.snapshot(), (0, 2));
    }
}
