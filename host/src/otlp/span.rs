//! The spans of one request, gathered where they happen (filter calls, upstream attempts)
//! through a task-local collector that exists only while OTLP export is on.

use std::cell::RefCell;
use std::time::SystemTime;

/// OTLP span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Work inside the proxy (a filter call).
    Internal = 1,
    /// The request as the proxy served it.
    Server = 2,
    /// An attempt on an upstream target.
    Client = 3,
}

/// An attribute value.
#[derive(Debug, Clone)]
pub enum Value {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
}

/// A finished span.
#[derive(Debug, Clone)]
pub struct Span {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, if it has a parent.
    pub parent_id: Option<String>,
    /// What it was.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// When it started and ended.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes.
    pub attributes: Vec<(&'static str, Value)>,
    /// Whether it failed.
    pub error: bool,
}

/// The spans a request has gathered so far, and the ids its children hang from.
#[derive(Debug, Default)]
pub struct Collector {
    /// The request's trace.
    pub trace_id: String,
    /// The proxy's (server) span of the request.
    pub server_span: String,
    /// The client's span the request came with, if it came in a trace.
    pub parent: Option<String>,
    /// Finished child spans.
    pub spans: Vec<Span>,
}

tokio::task_local! {
    static SPANS: RefCell<Collector>;
}

/// Run `fut` with `collector` gathering its spans; the collector afterwards.
pub async fn gather<F: std::future::Future>(
    collector: Collector,
    fut: F,
) -> (F::Output, Collector) {
    let cell = RefCell::new(collector);
    let (out, cell) = SPANS
        .scope(cell, async move {
            let out = fut.await;
            let taken = SPANS.with(|c| std::mem::take(&mut *c.borrow_mut()));
            (out, taken)
        })
        .await;
    (out, cell)
}

/// Name the request's trace, once its `traceparent` is settled: `incoming` is the one the
/// client sent (its span is the parent when the trace was kept).
pub fn begin(incoming: Option<&http::HeaderValue>, settled: Option<&http::HeaderValue>) {
    use crate::request::trace::{span_id_of, trace_id_of};
    let _ = SPANS.try_with(|c| {
        let mut c = c.borrow_mut();
        let Some(settled) = settled else { return };
        c.trace_id = trace_id_of(settled).unwrap_or_default().to_string();
        c.server_span = span_id_of(settled).unwrap_or_default().to_string();
        c.parent = incoming
            .filter(|i| trace_id_of(i) == trace_id_of(settled))
            .and_then(span_id_of)
            .map(str::to_string);
    });
}

/// Whether this request gathers spans.
pub fn active() -> bool {
    SPANS.try_with(|_| ()).is_ok()
}

/// A new child span id of the request's server span, if this request gathers spans.
pub fn child_id() -> Option<String> {
    SPANS
        .try_with(|_| crate::request::trace::new_span_id())
        .ok()
}

/// Record a finished child of the request's server span (with `id` if one was taken for it
/// already), if this request gathers spans.
pub fn record(
    id: Option<String>,
    name: impl FnOnce() -> String,
    kind: Kind,
    start: SystemTime,
    attributes: Vec<(&'static str, Value)>,
    error: bool,
) {
    let _ = SPANS.try_with(|c| {
        let mut c = c.borrow_mut();
        let span = Span {
            trace_id: c.trace_id.clone(),
            span_id: id.unwrap_or_else(crate::request::trace::new_span_id),
            parent_id: Some(c.server_span.clone()),
            name: name(),
            kind,
            start,
            end: SystemTime::now(),
            attributes,
            error,
        };
        // A request with a runaway number of children keeps the first ones.
        if c.spans.len() < 256 {
            c.spans.push(span);
        }
    });
}
