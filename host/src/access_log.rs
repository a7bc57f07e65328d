//! One access-log line per request, on the `weir::access` tracing target.

use crate::filter::chain::Report;
use http::uri::Authority;
use http::{Method, StatusCode, Uri};
use std::net::IpAddr;
use std::time::Instant;

/// What the log line needs from the start of a request.
pub struct AccessLog {
    start: Instant,
    /// The client: the peer until the request's client address is settled.
    pub client: IpAddr,
    method: Method,
    uri: Uri,
    /// The request id, once settled (refused requests may have none).
    pub request_id: Option<http::HeaderValue>,
}

impl AccessLog {
    /// Remember the request as the client sent it.
    pub fn begin(client: IpAddr, method: &Method, uri: &Uri, start: Instant) -> Self {
        AccessLog {
            start,
            client,
            method: method.clone(),
            uri: uri.clone(),
            request_id: None,
        }
    }

    /// Write the line once the response head is known. The duration runs to the response
    /// head; bodies stream on afterwards.
    pub fn finish(
        self,
        status: StatusCode,
        upstream: Option<&str>,
        target: Option<&Authority>,
        filters: &Report<'_>,
    ) {
        let micros = self.start.elapsed().as_micros();
        tracing::info!(
            target: "weir::access",
            id = %self.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
            client = %self.client,
            method = %self.method,
            path = self.uri.path(),
            status = status.as_u16(),
            upstream = upstream.unwrap_or("-"),
            target = %target.map_or("-", |t| t.as_str()),
            duration_ms = format_args!("{}.{:03}", micros / 1000, micros % 1000),
            filters = %filters,
        );
    }
}
