//! One request's way to its upstream: the attempts (with retries on other targets within
//! the retry budget), each under its timeouts, and how their failures map to 502/504.

use super::*;

/// One request's way to its upstream: where it goes and within which time limits.
pub(super) struct Outbound<'a> {
    pub(super) upstream: &'a Upstream,
    /// This worker's pooled client for the upstream.
    pub(super) client: &'a UpstreamClient,
    /// Time to wait for the response head, per attempt.
    pub(super) head_timeout: std::time::Duration,
    /// Idle timeout and overall deadline of the response body.
    pub(super) body: BodyLimits,
}

/// How one attempt on one target ended.
enum Attempt {
    /// The answer to send (a response, or an error that must not be retried).
    Done(Response<Body>),
    /// A failure another target might not have.
    Failed(Failure, Response<Body>),
}

impl Outbound<'_> {
    /// Send the request to one of the upstream's targets, retrying on others within the
    /// retry budget; map failures to 502/504.
    pub(super) async fn forward(
        self,
        mut head: RequestHead,
        mut body: Body,
        mut upgrade: Option<(http::HeaderValue, OnUpgrade)>,
    ) -> (Response<Body>, Option<Authority>) {
        let upstream = self.upstream;
        if upstream.saturated() {
            tracing::warn!(
                upstream = upstream.name(),
                "max-requests in flight reached: answering 503"
            );
            upstream.stats.refused(Refused::MaxRequests);
            return (ProxyError::Unavailable.response(), None);
        }
        // Counts this request as waiting for a response head, once its body is sent, until
        // it has one (or fails).
        let body_done = http_body::Body::is_end_stream(&body);
        let Some(pending) = upstream.begin_pending(body_done) else {
            tracing::warn!(
                upstream = upstream.name(),
                "max-pending requests waiting for a response head: answering 503"
            );
            upstream.stats.refused(Refused::MaxPending);
            return (ProxyError::Unavailable.response(), None);
        };
        if let Some(hook) = pending.uploading() {
            body.on_uploaded(hook);
        }
        upstream.retry_budget.deposit();
        // Only a request without a body can be sent again.
        let replayable = upstream.retries > 0 && upgrade.is_none() && body_done;
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
                upstream.stats.refused(Refused::NoTarget);
                return (ProxyError::Unavailable.response(), None);
            };
            tried.push(picked.lease.index);
            let target = picked.lease.target.authority.clone();
            let may_retry = replayable && (tried.len() as u32) <= upstream.retries;
            let method = head.parts.method.clone();
            let this_head = if may_retry {
                head.clone()
            } else {
                std::mem::replace(&mut head, RequestHead::placeholder())
            };
            let this_body = body.take().unwrap_or_else(Body::empty);
            let (failure, resp) = match self
                .attempt(picked, this_head, this_body, &mut upgrade)
                .await
            {
                Attempt::Done(resp) => return (resp, Some(target)),
                Attempt::Failed(failure, resp) => (failure, resp),
            };
            if !(may_retry
                && retry::retryable(failure, &method)
                && upstream.retry_budget.withdraw())
            {
                return (resp, Some(target));
            }
            let wait = retry::backoff(tried.len() as u32);
            tracing::info!(upstream = upstream.name(), %target, attempt = tried.len() + 1, ?wait, "retrying on another target");
            upstream.stats.retry();
            last = Some((resp, target));
            tokio::time::sleep(wait).await;
        }
    }

    /// Send the request to the target `picked` leases, within the head timeout.
    async fn attempt(
        &self,
        picked: crate::upstream::Picked<'_>,
        head: RequestHead,
        body: Body,
        upgrade: &mut Option<(http::HeaderValue, OnUpgrade)>,
    ) -> Attempt {
        let upstream = self.upstream;
        let index = picked.lease.index;
        let target = &picked.lease.target.authority;
        let req = match forward::upstream_request(head, target, upstream.transport.scheme(), body) {
            Ok(mut req) => {
                if let Some((protocol, _)) = upgrade {
                    upgrade::restore(req.headers_mut(), protocol.clone());
                }
                req
            }
            Err(e) => {
                tracing::warn!(
                    upstream = upstream.name(),
                    "cannot build the upstream request: {e}"
                );
                return Attempt::Done(ProxyError::Internal.response());
            }
        };
        // The head must come within the head timeout and the overall deadline.
        let wait = match self.body.deadline {
            Some(d) => self
                .head_timeout
                .min(d.saturating_duration_since(tokio::time::Instant::now())),
            None => self.head_timeout,
        };
        let asked = std::time::Instant::now();
        let mut req = req;
        let span = client_span(&mut req);
        let sent = tokio::time::timeout(wait, self.client.request(req)).await;
        if let Some((id, began)) = span {
            attempt_span(id, began, upstream.name(), target, &sent);
        }
        if let Ok(Err(e)) = &sent {
            // The client's fault, not the target's: not counted against it.
            if let Some(resp) = client_fault(e, upstream.name()) {
                return Attempt::Done(resp);
            }
        }
        // (The client's faults returned above are not the upstream's.)
        match &sent {
            Ok(Ok(_)) => upstream.stats.head(asked.elapsed()),
            Err(_) => upstream.stats.failure(true),
            Ok(Err(e)) => upstream.stats.failure(is_timeout(e)),
        }
        let ok = matches!(&sent, Ok(Ok(r)) if !r.status().is_server_error());
        upstream.report(index, ok);
        match sent {
            Err(_) => {
                tracing::warn!(upstream = upstream.name(), %target, timeout = ?wait, "upstream timed out waiting for the response head");
                Attempt::Failed(Failure::Other, ProxyError::GatewayTimeout.response())
            }
            Ok(Err(e)) => {
                tracing::warn!(upstream = upstream.name(), %target, "upstream failed: {}", chain_text(&e));
                upstream_failure(&e)
            }
            Ok(Ok(resp)) => self.response(picked, resp, upgrade),
        }
    }

    /// The upstream's response head: splice an accepted upgrade, strip hop-by-hop headers,
    /// add the sticky cookie, and hand the in-flight count over to the body.
    fn response(
        &self,
        picked: crate::upstream::Picked<'_>,
        mut resp: Response<Incoming>,
        upgrade: &mut Option<(http::HeaderValue, OnUpgrade)>,
    ) -> Attempt {
        let status = resp.status();
        let switched = match (status, upgrade.take()) {
            (http::StatusCode::SWITCHING_PROTOCOLS, Some((_, client_side))) => {
                let protocol = resp.headers().get(http::header::UPGRADE).cloned();
                upgrade::splice(
                    client_side,
                    hyper::upgrade::on(&mut resp),
                    self.upstream.upgrade_idle_timeout,
                );
                protocol
            }
            (http::StatusCode::SWITCHING_PROTOCOLS, None) => {
                tracing::warn!(
                    upstream = self.upstream.name(),
                    "upstream switched protocols without being asked: answering 502"
                );
                return Attempt::Done(ProxyError::BadGateway.response());
            }
            (_, not_taken) => {
                *upgrade = not_taken;
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
        let body = UpstreamBody::new(body, in_flight, self.body);
        let resp = Response::from_parts(parts, Body::from(body));
        if status == http::StatusCode::BAD_GATEWAY
            || status == http::StatusCode::SERVICE_UNAVAILABLE
        {
            Attempt::Failed(Failure::Unavailable, resp)
        } else {
            Attempt::Done(resp)
        }
    }
}

/// Whether `E` is somewhere in the error's source chain.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    find::<E>(e).is_some()
}

/// The first `E` in the error's source chain.
fn find<'a, E: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        cur = err.source();
    }
    None
}

/// Whether the connection closed or was reset before the response head began.
fn broke_before_response(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof
            ) {
                return true;
            }
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

/// When the request is traced, the attempt is a client span and the upstream's parent: its
/// id goes into the request's `traceparent`. Returns the span's id and start.
fn client_span(req: &mut http::Request<Body>) -> Option<(String, std::time::SystemTime)> {
    let id = crate::otlp::span::child_id()?;
    let headers = req.headers_mut();
    let next = headers
        .get(&crate::request::trace::TRACEPARENT)
        .and_then(|v| crate::request::trace::with_parent(v, &id));
    if let Some(v) = next {
        headers.insert(crate::request::trace::TRACEPARENT.clone(), v);
    }
    Some((id, std::time::SystemTime::now()))
}

/// The answer to an upstream request that failed through the client's fault (its body too
/// large, too slow or broken); `None` when the fault is not the client's.
fn client_fault(e: &hyper_util::client::legacy::Error, upstream: &str) -> Option<Response<Body>> {
    if caused_by::<TooLarge>(e) {
        return Some(ProxyError::PayloadTooLarge.response());
    }
    if let Some(t) = find::<BodyTimeout>(e) {
        tracing::debug!(upstream, "{t}");
        return Some(Refusal::TimedOut(t.to_string()).response());
    }
    if caused_by::<ClientBodyError>(e) {
        tracing::debug!(
            upstream,
            "the client's request body failed: {}",
            chain_text(e)
        );
        return Some(Refusal::bad("malformed or interrupted request body").response());
    }
    None
}

/// An upstream request that failed on the upstream's side: a timeout (connect-timeout
/// included, as nginx) is 504, anything else 502; only a failed connect is retried for any
/// method.
fn upstream_failure(e: &hyper_util::client::legacy::Error) -> Attempt {
    let resp = if is_timeout(e) {
        ProxyError::GatewayTimeout.response()
    } else {
        ProxyError::BadGateway.response()
    };
    let failure = if e.is_connect() {
        Failure::Connect
    } else if broke_before_response(e) {
        Failure::Reset
    } else {
        Failure::Other
    };
    Attempt::Failed(failure, resp)
}

/// The client span of one attempt on `target`.
fn attempt_span<B>(
    id: String,
    began: std::time::SystemTime,
    upstream: &str,
    target: &Authority,
    sent: &Result<
        Result<Response<B>, hyper_util::client::legacy::Error>,
        tokio::time::error::Elapsed,
    >,
) {
    use crate::otlp::span::{record, Kind, Value};
    let mut attributes = vec![
        ("server.address", Value::Str(target.to_string())),
        ("weir.upstream", Value::Str(upstream.to_string())),
    ];
    let error = match sent {
        Ok(Ok(r)) => {
            attributes.push((
                "http.response.status_code",
                Value::Int(r.status().as_u16().into()),
            ));
            r.status().is_server_error()
        }
        Ok(Err(_)) => {
            attributes.push(("error.type", Value::Str("connection".into())));
            true
        }
        Err(_) => {
            attributes.push(("error.type", Value::Str("timeout".into())));
            true
        }
    };
    record(
        Some(id),
        || format!("upstream {upstream}"),
        Kind::Client,
        began,
        attributes,
        error,
    );
}
