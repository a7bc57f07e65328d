//! The request path: route, request filters, upstream, response filters, access log.

use crate::access_log::AccessLog;
use crate::body::Body;
use crate::error::ProxyError;
use crate::filter::chain::{self, Report};
use crate::filter::RequestHead;
use crate::forward;
use crate::route::RouteTable;
use crate::upstream::pool::UpstreamClient;
use crate::upstream::Upstream;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Serves requests: one per hyper service call. One per worker thread, shared by that
/// worker's connections.
pub struct Proxy {
    routes: Arc<RouteTable>,
    /// This worker's pooled client per upstream, indexed by [`Upstream::id`].
    clients: Vec<UpstreamClient>,
    access_log: bool,
}

impl Proxy {
    /// A proxy over `routes`, with this worker's `clients`.
    pub fn new(routes: Arc<RouteTable>, clients: Vec<UpstreamClient>, access_log: bool) -> Self {
        Proxy {
            routes,
            clients,
            access_log,
        }
    }

    /// Answer one request from `client`.
    /// `client_ip` is the client's address as a header value, made once per connection.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        client_ip: http::HeaderValue,
    ) -> Response<Body> {
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let mut head = RequestHead {
            parts,
            client: client.ip(),
            scheme: "http",
        };
        let log = self.access_log.then(|| AccessLog::begin(&head, start));

        let Some(route) = self.routes.find(head.authority(), head.parts.uri.path()) else {
            let resp = ProxyError::NoRoute.response();
            if let Some(log) = log {
                log.finish(resp.status(), None, None, &Report::default());
            }
            return resp;
        };

        let mut report = Report::default();
        // Filter futures are large (they hold wasmtime call state): box them so the request
        // future that hyper stores and moves stays small, and plain routes pay nothing.
        let (ran, local) = if route.filters.is_empty() {
            (0, None)
        } else {
            Box::pin(chain::on_request(&route.filters, &mut head, &mut report)).await
        };
        // Only filters that ran and asked for `on-response` need the response phase.
        let respond_phase = route.filters[..ran].iter().any(|f| f.wants_response());
        let (response, target) = match local {
            Some(resp) => (resp, None),
            None => {
                // The response phase sees the request as it was sent upstream.
                let sent = if respond_phase {
                    head.clone()
                } else {
                    std::mem::replace(&mut head, RequestHead::placeholder())
                };
                self.forward_to(&route.upstream, sent, &client_ip, Body::from(body))
                    .await
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
                Some(route.upstream.name()),
                target.as_ref(),
                &report,
            );
        }
        response
    }

    /// Send the request to one of the upstream's targets; map failures to 502/504.
    async fn forward_to(
        &self,
        upstream: &Upstream,
        head: RequestHead,
        client_ip: &http::HeaderValue,
        body: Body,
    ) -> (Response<Body>, Option<Authority>) {
        let (Some(target), Some(client)) = (upstream.pick(), self.clients.get(upstream.id)) else {
            return (ProxyError::BadGateway.response(), None);
        };
        let req = match forward::upstream_request(head, client_ip, target, body) {
            Ok(req) => req,
            Err(e) => {
                tracing::warn!(
                    upstream = upstream.name(),
                    "cannot build the upstream request: {e}"
                );
                return (ProxyError::Internal.response(), Some(target.clone()));
            }
        };
        let sent = tokio::time::timeout(upstream.timeout, client.request(req)).await;
        let resp = match sent {
            Err(_) => {
                tracing::warn!(upstream = upstream.name(), %target, timeout = ?upstream.timeout, "upstream timed out");
                ProxyError::GatewayTimeout.response()
            }
            Ok(Err(e)) => {
                let error = if is_timeout(&e) {
                    ProxyError::GatewayTimeout
                } else {
                    ProxyError::BadGateway
                };
                tracing::warn!(upstream = upstream.name(), %target, "upstream failed: {}", chain_text(&e));
                error.response()
            }
            Ok(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                forward::strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Body::from(body))
            }
        };
        (resp, Some(target.clone()))
    }
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
