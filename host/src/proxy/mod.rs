//! The request path: canonical request, route, request filters, cache, upstream, response
//! filters, compression, access log. The way to the upstream (attempts and retries) is
//! [`outbound`]; the cache's part of it is [`cached`].

mod cached;
mod outbound;

use crate::access_log::{AccessLog, Served};
use crate::balance::RequestKey;
use crate::body::{Body, BodyTimeout, ClientBodyError, TooLarge};
use crate::error::ProxyError;
use crate::filter::chain::{self, Report};
use crate::filter::{Filter, RequestHead};
use crate::forward;
use crate::live::{Live, WorkerGeneration};
use crate::request::{self, Refusal};
use crate::retry::{self, Failure};
use crate::route::{Route, RouteQuery};
use crate::upgrade;
use crate::upstream::body::{BodyLimits, UpstreamBody};
use crate::upstream::pool::UpstreamClient;
use crate::upstream::stats::Refused;
use crate::upstream::Upstream;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use outbound::Outbound;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Set on requests of clients that presented a verified certificate (mTLS): the SHA-256 of
/// the certificate, in hex. Removed from every request that arrives with it.
pub const X_CLIENT_CERT_SHA256: http::HeaderName =
    http::HeaderName::from_static("x-client-cert-sha256");

/// The client end of a connection, as requests from it need it.
#[derive(Debug)]
pub struct Peer {
    /// The peer's address (the client, or a proxy in front of it).
    pub addr: SocketAddr,
    /// Its IP as a header value (for X-Forwarded-For), made once per connection.
    pub ip_header: http::HeaderValue,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The verified client certificate's SHA-256 (hex), on mTLS listeners.
    pub client_cert: Option<http::HeaderValue>,
    /// The settings of the listener it connected to, as they were when it connected.
    pub listener: Arc<crate::listener::ListenerMode>,
    /// Its requests running and started, and its socket, for `client-idle-timeout` and
    /// parking.
    pub activity: Arc<crate::conn::Activity>,
}

impl Peer {
    /// A peer at `addr` on listener `listener`, using `scheme`, with no client certificate.
    pub fn new(
        addr: SocketAddr,
        scheme: &'static str,
        listener: Arc<crate::listener::ListenerMode>,
    ) -> Self {
        Peer {
            addr,
            ip_header: crate::forward::client_ip_value(addr.ip()),
            scheme,
            client_cert: None,
            listener,
            activity: Arc::default(),
        }
    }

    /// The same peer, which presented `der` (verified by the TLS handshake).
    pub fn with_certificate(mut self, der: &[u8]) -> Self {
        use sha2::Digest;
        let hex = crate::hex::encode(&sha2::Sha256::digest(der));
        self.client_cert = http::HeaderValue::try_from(hex).ok();
        self
    }
}

/// Serves requests: one per hyper service call. One per worker thread, shared by that
/// worker's connections.
pub struct Proxy {
    live: Arc<Live>,
    /// The generation this worker serves, with its clients; replaced when a reload swaps
    /// the live generation.
    current: Mutex<Arc<WorkerGeneration>>,
}

/// How a request ended, for the access log.
struct Outcome<'g> {
    response: Response<Body>,
    /// The route's label, once routed.
    route: Option<&'g Arc<str>>,
    upstream_label: Option<&'g Arc<str>>,
    upstream: Option<&'g str>,
    target: Option<Authority>,
    report: Report<'g>,
}

impl Outcome<'_> {
    /// Answered by the proxy before any upstream or filter.
    fn local(response: Response<Body>) -> Self {
        Outcome {
            response,
            route: None,
            upstream_label: None,
            upstream: None,
            target: None,
            report: Report::default(),
        }
    }
}

impl Proxy {
    /// A worker's proxy over the live configuration.
    pub fn new(live: Arc<Live>) -> Self {
        let first = WorkerGeneration::new(live.current(), None);
        Proxy {
            live,
            current: Mutex::new(Arc::new(first)),
        }
    }

    /// The generation for a new request: the live one, with this worker's clients.
    fn generation(&self) -> Arc<WorkerGeneration> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.generation.id != self.live.current_id() {
            let next = WorkerGeneration::new(self.live.current(), Some(&current));
            *current = Arc::new(next);
        }
        current.clone()
    }

    /// Answer one request from the client at the other end of `peer`'s connection, and log
    /// it (one line, written here whatever way the request ended).
    pub async fn handle(&self, req: Request<Incoming>, peer: &Peer) -> Response<Body> {
        let start = Instant::now();
        // Held to the end: this request finishes on this generation whatever reloads do.
        let current = self.generation();
        let (parts, body) = req.into_parts();
        let method = parts.method.clone();
        let mut log = current.generation.config.access_log.then(|| {
            let output = current.generation.config.access_log_output.as_ref();
            AccessLog::begin(peer.addr.ip(), &parts, start, output)
        });
        let out = if current.generation.config.otlp.is_some() {
            // The request's spans are gathered as it goes, and sent when it is answered.
            let began = std::time::SystemTime::now();
            let path = parts.uri.path().to_string();
            let served = serve(&current, parts, body, peer, log.as_mut(), start);
            // Boxed: the plain path's future stays as small as it was.
            let (out, collector) =
                Box::pin(crate::otlp::span::gather(Default::default(), served)).await;
            let server = crate::otlp::ServerSpan {
                method: &method,
                path: &path,
                route: out.route.map(|r| &**r),
                status: out.response.status(),
                client: peer.addr.ip(),
            };
            crate::otlp::finish(collector, began, server);
            out
        } else {
            serve(&current, parts, body, peer, log.as_mut(), start).await
        };
        // One clock read for the duration the metrics and the log line both report.
        let now = Instant::now();
        if current.generation.config.metrics {
            crate::metrics::requests().record(
                out.route,
                out.upstream_label,
                &method,
                out.response.status(),
                now.saturating_duration_since(start),
            );
        }
        if let Some(log) = log {
            log.finish(
                now,
                current.generation.config.access_log_output.as_deref(),
                Served {
                    status: out.response.status(),
                    route: out.route.map(|r| &**r),
                    upstream: out.upstream,
                    target: out.target.as_ref(),
                    filters: &out.report,
                },
            );
        }
        out.response
    }
}

/// The request path of [`Proxy::handle`].
async fn serve<'g>(
    current: &'g Arc<WorkerGeneration>,
    mut parts: http::request::Parts,
    body: Incoming,
    peer: &Peer,
    log: Option<&mut AccessLog>,
    start: Instant,
) -> Outcome<'g> {
    let generation = &current.generation;
    let config = &generation.config;
    // HTTP/1.1 heads are counted by hyper; HTTP/2 ones here, with the same room for the
    // headers the proxy adds.
    let max_headers = config.limits.max_headers;
    if parts.version == http::Version::HTTP_2
        && parts.headers.len() + crate::listener::ADDED_HEADERS > max_headers
    {
        return Outcome::local(Refusal::TooManyHeaders(max_headers).response());
    }
    let canonical = match request::canonicalize(&mut parts, &config.rules) {
        Ok(c) => c,
        Err(refusal) => {
            tracing::debug!(peer = %peer.addr, "request refused: {refusal}");
            return Outcome::local(refusal.response());
        }
    };
    let trusted = &peer.listener.trusted_proxies;
    let client =
        request::client::resolve(&mut parts.headers, peer.addr.ip(), &peer.ip_header, trusted);
    let from_trusted = !trusted.is_empty() && trusted.contains(peer.addr.ip());
    request::id::settle(&mut parts.headers, from_trusted);
    let incoming = crate::otlp::span::active()
        .then(|| parts.headers.get(&request::trace::TRACEPARENT).cloned())
        .flatten();
    request::trace::settle(&mut parts.headers);
    crate::otlp::span::begin(
        incoming.as_ref(),
        parts.headers.get(&request::trace::TRACEPARENT),
    );
    if let Some(log) = log {
        log.client = client;
        log.request_id = parts.headers.get(&request::id::X_REQUEST_ID).cloned();
        log.traceparent = parts.headers.get(&request::trace::TRACEPARENT).cloned();
    }
    // Only the proxy vouches for a client certificate.
    parts.headers.remove(&X_CLIENT_CERT_SHA256);
    if let Some(cert) = &peer.client_cert {
        parts.headers.insert(X_CLIENT_CERT_SHA256, cert.clone());
    }
    let mut head = RequestHead::new(parts, client, peer.scheme);
    head.raw_path_and_query = canonical.raw_path_and_query;

    let route = {
        // The client is located only if a route has a location condition to check.
        let locate = || config.geo.as_ref().and_then(|db| db.lookup(client));
        let query = RouteQuery::new(
            &head.parts.method,
            head.parts.uri.path(),
            &head.parts.headers,
            &locate,
        );
        generation.routes.find(head.authority(), &query)
    };
    let Some(route) = route else {
        return Outcome::local(ProxyError::NoRoute.response());
    };
    if !route.allows_method(&head.parts.method) {
        let why = format!("{} is not allowed on this route", head.parts.method);
        return Outcome::local(Refusal::MethodNotAllowed(why).response());
    }
    // A protocol switch the route allows: filters see it (and may veto it by removing
    // `Upgrade`); any other is ignored and the request goes on as a plain one.
    let upgrade = match canonical.upgrade {
        Some(protocol) if route.allows_upgrade(&protocol) => {
            let client_side = head.parts.extensions.remove::<OnUpgrade>();
            upgrade::restore(&mut head.parts.headers, protocol.clone());
            client_side.map(|on| (protocol, on))
        }
        _ => None,
    };
    let Some(upstream) = route.backends.pick() else {
        // Every backend drained (weight 0): answer fast.
        return Outcome::local(ProxyError::Unavailable.response());
    };
    let Some(body) = client_body(body, &head, &config.limits, peer) else {
        return Outcome::local(ProxyError::PayloadTooLarge.response());
    };
    let exchange = Exchange {
        current,
        route,
        upstream,
        start,
    };
    exchange.run(head, body, upgrade).await
}

/// The client's body, failing past `max-body-size` or after `body-read-timeout` without
/// data; `None` when its declared length is over the size.
fn client_body(
    body: Incoming,
    head: &RequestHead,
    limits: &crate::config::ClientLimits,
    peer: &Peer,
) -> Option<Body> {
    let idle = Some(limits.body_read_timeout);
    // A body still coming keeps its connection from being parked.
    let reading = (!hyper::body::Body::is_end_stream(&body)).then(|| peer.activity.hold());
    let Some(limit) = limits.max_body_size else {
        return Some(Body::client(body, None, idle, reading));
    };
    let declared = head
        .parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return None;
    }
    // A body without a length is cut off at the limit (the upstream request then fails).
    Some(Body::client(body, Some(limit), idle, reading))
}

/// What compressing a response needs of its request, taken before the head is sent on.
struct Compression<'r> {
    settings: &'r crate::compress::CompressSettings,
    method: http::Method,
    accept: http::HeaderMap,
}

/// The route's compression, unless a request filter switched it off. Boxed: held across the
/// response phase, only on compressing routes.
fn compression_of<'r>(route: &'r Route, head: &RequestHead) -> Option<Box<Compression<'r>>> {
    let settings = route.compress.as_ref()?;
    if head.caching.as_ref().is_some_and(|d| d.no_compress) {
        return None;
    }
    let mut accept = http::HeaderMap::new();
    for v in head.parts.headers.get_all(http::header::ACCEPT_ENCODING) {
        accept.append(http::header::ACCEPT_ENCODING, v.clone());
    }
    Some(Box::new(Compression {
        settings,
        method: head.parts.method.clone(),
        accept,
    }))
}

impl Compression<'_> {
    /// `response` compressed for the request: a cache hit from (or into) its stored
    /// compressed copy, anything else now.
    fn apply(
        self,
        response: Response<Body>,
        hit: Option<Box<crate::cache::encoded::HitSource>>,
    ) -> Response<Body> {
        match hit {
            Some(hit) => hit.compress(response, &self.method, &self.accept, self.settings),
            None => crate::compress::apply(response, &self.method, &self.accept, self.settings),
        }
    }
}

/// A routed request: its filters, its upstream exchange and its response phase.
struct Exchange<'g> {
    current: &'g Arc<WorkerGeneration>,
    route: &'g Route,
    upstream: &'g Arc<Upstream>,
    start: Instant,
}

impl<'g> Exchange<'g> {
    async fn run(
        self,
        mut head: RequestHead,
        mut body: Body,
        mut upgrade: Option<(http::HeaderValue, OnUpgrade)>,
    ) -> Outcome<'g> {
        let Exchange {
            current,
            route,
            upstream,
            start,
        } = self;
        let mut report = Report::default();
        // The request phase (body buffering and the filter chain) is boxed: the request
        // future that hyper stores and moves has no room for it, and plain routes pay nothing.
        let (ran, local) = if route.filters.is_empty() {
            (0, None)
        } else {
            Box::pin(request_phase(route, &mut head, &mut body, &mut report)).await
        };
        // A filter that removed `Upgrade` vetoed the switch.
        if !head.parts.headers.contains_key(http::header::UPGRADE) {
            upgrade = None;
        }
        // Only filters that ran and asked for `on-response` need the response phase.
        // (`ran` counts filters of this route's chain, so it is never past its end.)
        let ran_filters = route.filters.get(..ran).unwrap_or(&route.filters);
        let respond_phase = ran_filters.iter().any(|f| f.wants_response());
        let compress = compression_of(route, &head);
        let (response, target, settle, hit) = match local {
            Some(resp) => (resp, None, None, None),
            None => {
                // The response phase sees the request as it was sent upstream.
                let mut sent = if respond_phase {
                    head.clone()
                } else {
                    std::mem::replace(&mut head, RequestHead::placeholder())
                };
                if let Some(buffered) = sent.body.take() {
                    body = Body::full(buffered);
                }
                let fetch = Fetch {
                    current: current.clone(),
                    upstream: upstream.id,
                    timeouts: route.timeouts,
                    start,
                };
                // Boxed: the forwarding state is large and most of it is needed only
                // after the filters ran.
                match &route.cache {
                    Some(policy) if upgrade.is_none() => {
                        let a = Box::pin(cached::exchange(policy, &fetch, sent, body)).await;
                        (a.response, a.target, a.settle, a.hit)
                    }
                    _ => {
                        let (response, target) = Box::pin(fetch.forward(sent, body, upgrade)).await;
                        (response, target, None, None)
                    }
                }
            }
        };
        let response = if respond_phase {
            Box::pin(chain::on_response(
                ran_filters,
                &mut head,
                response,
                &mut report,
            ))
            .await
        } else {
            response
        };
        let decisions = if respond_phase {
            head.caching.take().map(|d| *d).unwrap_or_default()
        } else {
            Default::default()
        };
        let response = settled(response, &decisions, settle, compress, hit);
        Outcome {
            response,
            route: Some(&route.label),
            upstream_label: Some(upstream.label()),
            upstream: Some(upstream.name()),
            target,
            report,
        }
    }
}

/// The response once the response filters have decided (`decisions`): a cacheable one
/// stored or not, with its `Cache-Status`, then compressed unless a filter said not to.
fn settled(
    mut response: Response<Body>,
    decisions: &crate::cache::decisions::Decisions,
    settle: Option<crate::cache::fill::Settle>,
    compress: Option<Box<Compression<'_>>>,
    hit: Option<Box<crate::cache::encoded::HitSource>>,
) -> Response<Body> {
    if let Some(settle) = settle {
        settle.finish(decisions, response.headers_mut());
    }
    match compress {
        Some(c) if !decisions.no_compress => c.apply(response, hit),
        _ => response,
    }
}

/// The route's filters' request phase, the request body buffered first when one of them
/// asked for it: how many filters ran, and the response if one answered (or the body was
/// over their limit).
async fn request_phase<'g>(
    route: &'g Route,
    head: &mut RequestHead,
    body: &mut Body,
    report: &mut Report<'g>,
) -> (usize, Option<Response<Body>>) {
    if let Some(limit) = chain::body_limit(&route.filters, Filter::wants_request_body) {
        match chain::buffer(std::mem::replace(body, Body::empty()), limit).await {
            Some(bytes) => head.body = Some(bytes),
            None => return (0, Some(ProxyError::PayloadTooLarge.response())),
        }
    }
    chain::on_request(&route.filters, head, report).await
}

/// What a request needs to go upstream, owned, so that a background refresh of a cached
/// response can go too.
#[derive(Clone)]
pub(super) struct Fetch {
    current: Arc<WorkerGeneration>,
    /// Index of the upstream (and of this worker's client for it).
    upstream: usize,
    timeouts: crate::config::RouteTimeouts,
    /// When the request began (the overall deadline counts from it).
    start: Instant,
}

impl Fetch {
    /// Send `head` and `body` upstream, with retries, under the route's time limits.
    pub(super) async fn forward(
        &self,
        head: RequestHead,
        body: Body,
        upgrade: Option<(http::HeaderValue, OnUpgrade)>,
    ) -> (Response<Body>, Option<Authority>) {
        let generation = &self.current.generation;
        // Each worker has a client per upstream of its generation, indexed by upstream id.
        let (Some(upstream), Some(client)) = (
            generation.upstreams.get(self.upstream),
            self.current.clients.get(self.upstream),
        ) else {
            tracing::error!("internal error: no pooled client for the upstream");
            return (ProxyError::Internal.response(), None);
        };
        let timeouts = &self.timeouts;
        let out = Outbound {
            upstream,
            client,
            head_timeout: timeouts.timeout.unwrap_or(upstream.timeout),
            body: BodyLimits {
                idle: Some(timeouts.idle.unwrap_or(upstream.idle_timeout)),
                deadline: timeouts
                    .overall
                    .or(upstream.overall_timeout)
                    .map(|d| tokio::time::Instant::from_std(self.start) + d),
            },
        };
        out.forward(head, body, upgrade).await
    }
}
