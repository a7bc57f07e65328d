//! The request path: route, request filters, upstream, response filters, access log.

use crate::access_log::AccessLog;
use crate::balance::RequestKey;
use crate::body::{Body, TooLarge};
use crate::error::ProxyError;
use crate::filter::chain::{self, Report};
use crate::filter::{Filter, RequestHead};
use crate::forward;
use crate::live::{Live, WorkerGeneration};
use crate::retry::{self, Failure};
use crate::upgrade;
use crate::upstream::body::{BodyLimits, UpstreamBody};
use crate::upstream::pool::UpstreamClient;
use crate::upstream::Upstream;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Set on requests of clients that presented a verified certificate (mTLS): the SHA-256 of
/// the certificate, in hex. Removed from every request that arrives with it.
pub const X_CLIENT_CERT_SHA256: http::HeaderName =
    http::HeaderName::from_static("x-client-cert-sha256");

/// The client end of a connection, as requests from it need it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// Its IP as a header value (for X-Forwarded-For), made once per connection.
    pub ip_header: http::HeaderValue,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The verified client certificate's SHA-256 (hex), on mTLS listeners.
    pub client_cert: Option<http::HeaderValue>,
}

impl Peer {
    /// A client at `addr` on a connection using `scheme`, with no client certificate.
    pub fn new(addr: SocketAddr, scheme: &'static str) -> Self {
        Peer {
            addr,
            ip_header: crate::forward::client_ip_value(addr.ip()),
            scheme,
            client_cert: None,
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

    /// Answer one request from the client at the other end of `peer`'s connection.
    pub async fn handle(&self, req: Request<Incoming>, peer: &Peer) -> Response<Body> {
        let client_ip = &peer.ip_header;
        let start = Instant::now();
        // Held to the end: this request finishes on this generation whatever reloads do.
        let current = self.generation();
        let generation = &current.generation;
        let mut req = req;
        // A protocol switch (WebSocket...): keep the client's side of it for later.
        let upgrade = upgrade::requested(req.headers())
            .map(|protocol| (protocol, hyper::upgrade::on(&mut req)));
        let (parts, body) = req.into_parts();
        let mut head = RequestHead::new(parts, peer.addr.ip(), peer.scheme);
        // Only the proxy vouches for a client certificate.
        head.parts.headers.remove(&X_CLIENT_CERT_SHA256);
        if let Some(cert) = &peer.client_cert {
            head.parts
                .headers
                .insert(X_CLIENT_CERT_SHA256, cert.clone());
        }
        let log = generation
            .config
            .access_log
            .then(|| AccessLog::begin(&head, start));

        let Some(route) = generation.routes.find(
            head.authority(),
            &head.parts.method,
            head.parts.uri.path(),
            &head.parts.headers,
        ) else {
            let resp = ProxyError::NoRoute.response();
            if let Some(log) = log {
                log.finish(resp.status(), None, None, &Report::default());
            }
            return resp;
        };

        let Some(upstream) = route.backends.pick() else {
            // Every backend drained (weight 0): answer fast.
            let resp = ProxyError::Unavailable.response();
            if let Some(log) = log {
                log.finish(resp.status(), None, None, &Report::default());
            }
            return resp;
        };
        let mut body = match generation.config.limits.max_body_size {
            None => Body::from(body),
            Some(limit) => {
                let declared = head
                    .parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_some_and(|n| n > limit) {
                    let resp = ProxyError::PayloadTooLarge.response();
                    if let Some(log) = log {
                        log.finish(resp.status(), None, None, &Report::default());
                    }
                    return resp;
                }
                // A body without a length is cut off at the limit (the upstream request
                // then fails).
                Body::limited(body, limit)
            }
        };
        let mut report = Report::default();
        // Filter futures are large (they hold wasmtime call state): box them so the request
        // future that hyper stores and moves stays small, and plain routes pay nothing.
        let (ran, local) = if route.filters.is_empty() {
            (0, None)
        } else {
            Box::pin(async {
                if let Some(limit) = chain::body_limit(&route.filters, Filter::wants_request_body) {
                    match chain::buffer(std::mem::replace(&mut body, Body::empty()), limit).await {
                        Some(bytes) => head.body = Some(bytes),
                        None => return (0, Some(ProxyError::PayloadTooLarge.response())),
                    }
                }
                chain::on_request(&route.filters, &mut head, &mut report).await
            })
            .await
        };
        // Only filters that ran and asked for `on-response` need the response phase.
        let respond_phase = route.filters[..ran].iter().any(|f| f.wants_response());
        let (response, target) = match local {
            Some(resp) => (resp, None),
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
                let timeouts = &route.timeouts;
                let out = Outbound {
                    upstream,
                    client: &current.clients[upstream.id],
                    client_ip,
                    head_timeout: timeouts.timeout.unwrap_or(upstream.timeout),
                    body: BodyLimits {
                        idle: Some(timeouts.idle.unwrap_or(upstream.idle_timeout)),
                        deadline: timeouts
                            .overall
                            .or(upstream.overall_timeout)
                            .map(|d| tokio::time::Instant::from_std(start) + d),
                    },
                };
                // Boxed: the forwarding state is large and most of it is needed only
                // after the filters ran.
                Box::pin(out.forward(sent, body, upgrade)).await
            }
        };
        let response = if respond_phase {
            Box::pin(chain::on_response(
                &route.filters[..ran],
                &mut head,
                response,
                &mut report,
            ))
            .await
        } else {
            response
        };
        if let Some(log) = log {
            log.finish(
                response.status(),
                Some(upstream.name()),
                target.as_ref(),
                &report,
            );
        }
        response
    }
}

/// One request's way to its upstream: where it goes and within which time limits.
struct Outbound<'a> {
    upstream: &'a Upstream,
    /// This worker's pooled client for the upstream.
    client: &'a UpstreamClient,
    client_ip: &'a http::HeaderValue,
    /// Time to wait for the response head, per attempt.
    head_timeout: std::time::Duration,
    /// Idle timeout and overall deadline of the response body.
    body: BodyLimits,
}

impl Outbound<'_> {
    /// Send the request to one of the upstream's targets; map failures to 502/504.
    async fn forward(
        self,
        mut head: RequestHead,
        body: Body,
        mut upgrade: Option<(http::HeaderValue, OnUpgrade)>,
    ) -> (Response<Body>, Option<Authority>) {
        let Outbound {
            upstream,
            client,
            client_ip,
            head_timeout,
            body: body_limits,
        } = self;
        if upstream.saturated() {
            tracing::warn!(
                upstream = upstream.name(),
                "max-requests in flight reached: answering 503"
            );
            return (ProxyError::Unavailable.response(), None);
        }
        // Counts this request as waiting for a response head until it has one (or fails).
        let Some(_pending) = upstream.begin_pending() else {
            tracing::warn!(
                upstream = upstream.name(),
                "max-pending requests waiting for a response head: answering 503"
            );
            return (ProxyError::Unavailable.response(), None);
        };
        upstream.retry_budget.deposit();
        // Only a request without a body can be sent again.
        let replayable =
            upstream.retries > 0 && upgrade.is_none() && http_body::Body::is_end_stream(&body);
        let mut body = Some(body);
        let mut tried: Vec<usize> = Vec::new();
        // The answer of the last failed attempt, sent if no other target is left to try.
        let mut last: Option<(Response<Body>, Authority)> = None;
        loop {
            let key = RequestKey {
                client: head.client,
                headers: &head.parts.headers,
            };
            let Some(picked) = upstream.pick(&key, &tried) else {
                if let Some((resp, target)) = last {
                    return (resp, Some(target));
                }
                tracing::warn!(
                    upstream = upstream.name(),
                    "no healthy target: answering 503"
                );
                return (ProxyError::Unavailable.response(), None);
            };
            let index = picked.lease.index;
            tried.push(index);
            // The lease counts this request in flight; at the response head it hands the
            // count over to the response body.
            let target = picked.lease.target.authority.clone();
            let may_retry = replayable && (tried.len() as u32) <= upstream.retries;
            let method = head.parts.method.clone();
            let this_head = if may_retry {
                head.clone()
            } else {
                std::mem::replace(&mut head, RequestHead::placeholder())
            };
            let this_body = body.take().unwrap_or_else(Body::empty);
            let req = match forward::upstream_request(
                this_head,
                client_ip,
                &target,
                upstream.transport.scheme(),
                this_body,
            ) {
                Ok(mut req) => {
                    if let Some((protocol, _)) = &upgrade {
                        upgrade::restore(req.headers_mut(), protocol.clone());
                    }
                    req
                }
                Err(e) => {
                    tracing::warn!(
                        upstream = upstream.name(),
                        "cannot build the upstream request: {e}"
                    );
                    return (ProxyError::Internal.response(), Some(target));
                }
            };
            // The head must come within the head timeout and the overall deadline.
            let wait = match body_limits.deadline {
                Some(d) => {
                    head_timeout.min(d.saturating_duration_since(tokio::time::Instant::now()))
                }
                None => head_timeout,
            };
            let sent = tokio::time::timeout(wait, client.request(req)).await;
            if let Ok(Err(e)) = &sent {
                if caused_by::<TooLarge>(e) {
                    // The client's fault, not the target's.
                    return (ProxyError::PayloadTooLarge.response(), Some(target));
                }
            }
            let ok = matches!(&sent, Ok(Ok(r)) if !r.status().is_server_error());
            upstream.report(index, ok);
            let (failure, resp) = match sent {
                Err(_) => {
                    tracing::warn!(upstream = upstream.name(), %target, timeout = ?wait, "upstream timed out waiting for the response head");
                    (Failure::Other, ProxyError::GatewayTimeout.response())
                }
                Ok(Err(e)) => {
                    tracing::warn!(upstream = upstream.name(), %target, "upstream failed: {}", chain_text(&e));
                    // A timeout (connect-timeout included, as nginx) is 504, anything
                    // else 502; only a failed connect is retried for any method.
                    let resp = if is_timeout(&e) {
                        ProxyError::GatewayTimeout.response()
                    } else {
                        ProxyError::BadGateway.response()
                    };
                    let failure = if e.is_connect() {
                        Failure::Connect
                    } else {
                        Failure::Other
                    };
                    (failure, resp)
                }
                Ok(Ok(mut resp)) => {
                    let status = resp.status();
                    let switched = match (status, upgrade.take()) {
                        (http::StatusCode::SWITCHING_PROTOCOLS, Some((_, client_side))) => {
                            let protocol = resp.headers().get(http::header::UPGRADE).cloned();
                            upgrade::splice(
                                client_side,
                                hyper::upgrade::on(&mut resp),
                                upstream.upgrade_idle_timeout,
                            );
                            protocol
                        }
                        (_, not_taken) => {
                            upgrade = not_taken;
                            None
                        }
                    };
                    let (mut parts, body) = resp.into_parts();
                    forward::strip_hop_by_hop(&mut parts.headers);
                    if let Some(protocol) = switched {
                        upgrade::restore(&mut parts.headers, protocol);
                    }
                    if let Some(cookie) = &picked.set_cookie {
                        parts
                            .headers
                            .append(http::header::SET_COOKIE, cookie.clone());
                    }
                    let in_flight = picked.lease.finish();
                    let failure = if status == http::StatusCode::BAD_GATEWAY
                        || status == http::StatusCode::SERVICE_UNAVAILABLE
                    {
                        Failure::Unavailable
                    } else {
                        Failure::Other
                    };
                    let body = UpstreamBody::new(body, in_flight, body_limits);
                    let resp = Response::from_parts(parts, Body::from(body));
                    if failure == Failure::Other {
                        return (resp, Some(target));
                    }
                    (failure, resp)
                }
            };
            if !(may_retry
                && retry::retryable(failure, &method)
                && upstream.retry_budget.withdraw())
            {
                return (resp, Some(target));
            }
            let wait = retry::backoff(tried.len() as u32);
            tracing::info!(upstream = upstream.name(), %target, attempt = tried.len() + 1, ?wait, "retrying on another target");
            last = Some((resp, target));
            tokio::time::sleep(wait).await;
        }
    }
}

/// Whether `E` is somewhere in the error's source chain.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<E>() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

fn chain_text(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cur = err.source();
    }
    text
}
