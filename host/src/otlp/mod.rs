//! OpenTelemetry trace export (OTLP/HTTP, JSON), off unless the manifest has `otlp`: a
//! server span per request, a client span per upstream attempt and an internal span per
//! filter call, in the request's W3C trace ([`crate::request::trace`]).
//!
//! - [`span`]: the request's spans, gathered through a task-local collector.
//! - [`export`]: batching and sending them to the collector from one thread.

pub mod export;
pub mod span;

pub use export::OtlpSettings;
pub use span::Collector;
use span::{Kind, Span, Value};
use std::time::SystemTime;

/// What the server span of a request says.
pub struct ServerSpan<'a> {
    /// The request's method.
    pub method: &'a http::Method,
    /// Its path.
    pub path: &'a str,
    /// Its route's label, once routed.
    pub route: Option<&'a str>,
    /// The status answered.
    pub status: http::StatusCode,
    /// The client's address.
    pub client: std::net::IpAddr,
}

/// Send a request's spans: its children and its server span (child of the client's span
/// when the request came with a trace of its own). A request refused before its trace was
/// settled has none.
pub fn finish(collector: Collector, start: SystemTime, s: ServerSpan<'_>) {
    if collector.trace_id.is_empty() {
        return;
    }
    let mut spans = collector.spans;
    let mut attributes = vec![
        ("http.request.method", Value::Str(s.method.to_string())),
        ("url.path", Value::Str(s.path.to_string())),
        (
            "http.response.status_code",
            Value::Int(s.status.as_u16().into()),
        ),
        ("client.address", Value::Str(s.client.to_string())),
    ];
    if let Some(route) = s.route {
        attributes.push(("http.route", Value::Str(route.to_string())));
    }
    spans.push(Span {
        trace_id: collector.trace_id,
        span_id: collector.server_span,
        parent_id: collector.parent,
        name: match s.route {
            Some(route) => format!("{} {route}", s.method),
            None => s.method.to_string(),
        },
        kind: Kind::Server,
        start,
        end: SystemTime::now(),
        attributes,
        error: s.status.is_server_error(),
    });
    export::submit(spans);
}
