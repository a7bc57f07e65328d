//! Accepting client connections and serving HTTP/1.1 and HTTP/2 (cleartext, detected from
//! the connection preface) on them, each connection watched for graceful shutdown.

use crate::config::ClientLimits;
use crate::conn::{self, Drain};
use crate::proxy::{Peer, Proxy};
use crate::send_timeout::SendTimeout;
use crate::tls::TlsListener;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Headers the proxy may add to a request (`X-Forwarded-For`, `X-Real-IP`,
/// `X-Forwarded-Proto`, `X-Forwarded-Host`, `x-client-cert-sha256`, `x-request-id`): they
/// count against `max-headers`, so a request the proxy lets in is not one too many for an
/// upstream with the same limit.
pub const ADDED_HEADERS: usize = 6;

/// Streams an HTTP/2 client may reset before the server accepted them (rapid reset,
/// CVE-2023-44487) before the connection is closed.
const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams the server may reset for protocol errors on one connection before closing it.
const H2_MAX_ERROR_RESETS: usize = 100;

/// The connection builder shared by all listeners, enforcing the client limits: a request
/// head over `max-header-size` or with more than `max-headers` headers (the proxy's own
/// included) gets 431, a client slower than `header-read-timeout` to send its head is
/// disconnected, and so is an HTTP/1.1 keep-alive connection silent that long between
/// requests. HTTP/2 clients are pinged, limited to `http2-max-concurrent-streams` streams and
/// a header list of `max-header-size`, and a connection that resets streams faster than the
/// server accepts them (rapid reset) or provokes many stream errors is closed; the `h2`
/// crate also bounds CONTINUATION frames and pending control-frame replies.
pub fn connection_builder(limits: &ClientLimits) -> conn::Builders {
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_size)
        .max_headers(limits.max_headers.saturating_sub(ADDED_HEADERS).max(1))
        .keep_alive(true);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        // Pings find HTTP/2 clients that went away without closing.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_ERROR_RESETS);
    conn::Builders {
        h1,
        h2,
        header_read: limits.header_read_timeout,
    }
}

/// Open connections of one listener over all workers, against its `max-connections`.
#[derive(Debug)]
pub struct ConnectionSlots {
    open: AtomicUsize,
    /// `usize::MAX`: no limit. A reload may change it.
    max: AtomicUsize,
    /// Connections accepted, and refused for want of a slot.
    accepted: AtomicU64,
    refused: AtomicU64,
    /// TLS handshakes completed, failed and timed out.
    handshakes: [AtomicU64; 3],
}

/// What a listener does with a connection; a reload swaps it.
pub struct ListenerMode {
    /// TLS, when it terminates it.
    pub tls: Option<Arc<TlsListener>>,
    /// Answer every request with a redirect to https on this port instead of proxying it.
    pub redirect_https: Option<u16>,
    /// Every connection starts with a PROXY protocol header naming the client.
    pub proxy_protocol: bool,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: crate::request::client::TrustedProxies,
}

impl std::fmt::Debug for ListenerMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerMode")
            .field("tls", &self.tls.is_some())
            .field("redirect_https", &self.redirect_https)
            .field("proxy_protocol", &self.proxy_protocol)
            .finish()
    }
}

impl ConnectionSlots {
    /// Slots for at most `max` connections (`None`: no limit).
    pub fn new(max: Option<usize>) -> Self {
        ConnectionSlots {
            open: AtomicUsize::new(0),
            max: AtomicUsize::new(max.unwrap_or(usize::MAX)),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            handshakes: Default::default(),
        }
    }

    /// Allow `max` connections from now on (those open beyond it stay).
    pub fn set_max(&self, max: Option<usize>) {
        self.max.store(max.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// Open now, accepted and refused so far, and TLS handshakes completed, failed and
    /// timed out so far.
    pub fn counts(&self) -> (usize, u64, u64, [u64; 3]) {
        (
            self.open.load(Ordering::Relaxed),
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            std::array::from_fn(|i| self.handshakes[i].load(Ordering::Relaxed)),
        )
    }

    /// Take a slot for a new connection, unless the listener is full.
    fn take(self: &Arc<Self>) -> Option<SlotGuard> {
        let prev = self.open.fetch_add(1, Ordering::Relaxed);
        if prev >= self.max.load(Ordering::Relaxed) {
            self.open.fetch_sub(1, Ordering::Relaxed);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Some(SlotGuard(self.clone()))
    }
}

/// Gives its slot back when the connection ends.
struct SlotGuard(Arc<ConnectionSlots>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One listener's accept loop on one worker: its socket, and what its connections share.
pub struct AcceptLoop {
    /// The worker's socket of the listener.
    pub listener: TcpListener,
    /// What the loop's connections share.
    pub serving: Serving,
}

/// What an accept loop's connections share with it and each other (not the socket: a
/// stopped loop closes that at once, while its connections finish).
pub struct Serving {
    /// The listener's connection count over all workers.
    pub slots: Arc<ConnectionSlots>,
    /// What the listener does with a connection (read once per connection).
    pub mode: Arc<arc_swap::ArcSwap<ListenerMode>>,
    /// The worker's proxy.
    pub proxy: Arc<Proxy>,
    /// HTTP/1.1 and HTTP/2 settings.
    pub builders: Arc<conn::Builders>,
    /// The worker's connections, for a graceful stop.
    pub drain: Arc<Drain>,
    /// Turns true when the listener is removed or the process stops.
    pub stop: watch::Receiver<bool>,
    /// Time a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// Longest a write to the client may stall.
    pub send_timeout: Duration,
    /// A connection without a request this long is closed gracefully.
    pub idle_timeout: Duration,
}

impl AcceptLoop {
    /// Accept connections until `stop` turns true, then close the socket: the port refuses
    /// new connections at once (rather than queueing them where nobody accepts), while the
    /// connections accepted before finish.
    pub async fn run(self) {
        let AcceptLoop { listener, serving } = self;
        let mut stopped = serving.stop.clone();
        let this = Arc::new(serving);
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stopped.wait_for(|s| *s) => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = this.slots.take() else {
                tracing::warn!(%peer, "max-connections reached: closing the new connection");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let open = this.drain.open();
            let this = this.clone();
            tokio::spawn(async move {
                let _held = (slot, open);
                this.connection(stream, peer).await;
            });
        }
    }
}

/// A connection ready for HTTP: its stream, and who is at the other end.
enum Accepted {
    Plain(TcpStream, Arc<Peer>),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, Arc<Peer>),
}

impl Serving {
    /// One accepted connection: its PROXY header and TLS handshake, then HTTP until it ends.
    /// Each phase is boxed, so that the connection's task holds only a pointer to the one it
    /// is in: an idle connection keeps none of the handshake's state.
    async fn connection(&self, stream: TcpStream, peer: SocketAddr) {
        match Box::pin(self.accept(stream, peer)).await {
            Some(Accepted::Plain(stream, client)) => Box::pin(self.serve(stream, client)).await,
            Some(Accepted::Tls(stream, client)) => Box::pin(self.serve(*stream, client)).await,
            None => {}
        }
    }

    /// Read the PROXY header (when the listener takes one) and shake hands (when it
    /// terminates TLS); `None` when the connection is to close.
    async fn accept(&self, mut stream: TcpStream, mut peer: SocketAddr) -> Option<Accepted> {
        let mode = self.mode.load_full();
        // The PROXY header and the TLS handshake are bounded like a request head.
        if mode.proxy_protocol {
            let header = crate::proxy_protocol::read_header(&mut stream);
            match tokio::time::timeout(self.handshake_timeout, header).await {
                Ok(Ok(Some(client))) => peer = client,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "closing the connection: {e}");
                    return None;
                }
                Err(_) => {
                    tracing::debug!(%peer, "closing the connection: no PROXY protocol header in time");
                    return None;
                }
            }
        }
        let scheme = if mode.tls.is_some() { "https" } else { "http" };
        let Some(tls) = &mode.tls else {
            let client = Arc::new(Peer::new(peer, scheme, mode.clone()));
            return Some(Accepted::Plain(stream, client));
        };
        let handshake = tls.acceptor().accept(stream);
        let result = tokio::time::timeout(self.handshake_timeout, handshake).await;
        let outcome = match &result {
            Ok(Ok(_)) => 0,
            Ok(Err(_)) => 1,
            Err(_) => 2,
        };
        if let Some(n) = self.slots.handshakes.get(outcome) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        let stream = match result {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return None;
            }
        };
        let client = Peer::new(peer, scheme, mode.clone());
        let client = match stream.get_ref().1.peer_certificates() {
            Some([leaf, ..]) => client.with_certificate(leaf),
            _ => client,
        };
        Some(Accepted::Tls(Box::new(stream), Arc::new(client)))
    }

    /// Serve HTTP/1.1 or HTTP/2 on `stream` from `client` until the connection ends. Not an
    /// `async fn`: the future is the connection's own, with nothing of this set-up in it.
    fn serve<S: conn::Socket>(
        &self,
        stream: S,
        client: Arc<Peer>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let redirect_https = client.listener.redirect_https;
        let proxy = self.proxy.clone();
        let peer = client.addr;
        let service = {
            let client = client.clone();
            service_fn(move |req| {
                let proxy = proxy.clone();
                let client = client.clone();
                async move {
                    // Held to the end of the response body.
                    let running = client.activity.begin();
                    let h1 = req.version() < http::Version::HTTP_2;
                    let mut resp = match redirect_https {
                        Some(port) => crate::redirect::to_https(&req, port),
                        // Boxed: HTTP/2 moves each request's future into a task of its
                        // own, and a pointer moves cheaper than the request's whole state.
                        None => Box::pin(proxy.handle(req, &client)).await,
                    };
                    // A stopping connection's next response closes it, whenever the
                    // graceful shutdown catches up: a client never reuses it for a
                    // request nobody reads.
                    if h1
                        && client.activity.closing()
                        && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS
                    {
                        resp.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                    }
                    Ok::<_, Infallible>(resp.map(|body| conn::Held::new(body, running)))
                }
            })
        };
        let io = conn::ConnIo::new(
            SendTimeout::new(stream, self.send_timeout),
            client.activity.clone(),
        );
        let watch = conn::Watch {
            stop: self.stop.clone(),
            activity: client.activity.clone(),
            idle: self.idle_timeout,
        };
        let served = conn::serve(self.builders.clone(), io, service, watch);
        async move {
            if let Err(e) = served.await {
                tracing::debug!(%peer, "connection ended with an error: {e}");
            }
        }
    }
}
