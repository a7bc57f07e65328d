//! Sending spans to an OpenTelemetry collector: OTLP/HTTP with the JSON encoding, batched
//! by one exporter thread. The request path only appends its spans to a shared queue (no
//! wake-up per request: the exporter takes the queue every `flush-interval`); when the queue
//! is full, spans are dropped and counted.

use super::span::{Span, Value};
use bytes::Bytes;
use http_body_util::Full;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

/// Spans queued for the exporter beyond this are dropped.
const QUEUE: usize = 65_536;
/// Most spans in one export.
const BATCH: usize = 2048;

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The collector's OTLP/HTTP traces endpoint (`http://host:4318/v1/traces`).
    pub endpoint: http::Uri,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Longest spans wait before they are sent.
    pub flush_interval: Duration,
}

/// The exporter of this process.
struct Exporter {
    queue: Mutex<Vec<Span>>,
    settings: OtlpSettings,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static SENT: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// Spans sent, dropped (queue full) and lost to failed exports, for `/metrics`.
pub fn counts() -> (u64, u64, u64) {
    (
        SENT.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
    )
}

/// Start exporting to `settings` (once per process: the first settings win until a
/// restart; a reload that changes them is told so in the log).
pub fn start(settings: &OtlpSettings) {
    let mut started = false;
    let existing = EXPORTER.get_or_init(|| {
        started = true;
        Exporter {
            queue: Mutex::new(Vec::new()),
            settings: settings.clone(),
        }
    });
    if started {
        let spawned = std::thread::Builder::new()
            .name("weir-otlp".into())
            .spawn(move || run(existing));
        if let Err(e) = spawned {
            tracing::error!("OTLP exporter thread not started: {e}");
        }
    } else if existing.settings != *settings {
        tracing::warn!("otlp settings changed: they apply after a restart");
    }
}

fn lock(queue: &Mutex<Vec<Span>>) -> std::sync::MutexGuard<'_, Vec<Span>> {
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

/// Queue a request's spans for the exporter (dropped and counted when it is behind).
pub fn submit(spans: Vec<Span>) {
    let Some(e) = EXPORTER.get() else { return };
    let mut queue = lock(&e.queue);
    if queue.len() + spans.len() > QUEUE {
        drop(queue);
        DROPPED.fetch_add(spans.len() as u64, Ordering::Relaxed);
        return;
    }
    queue.extend(spans);
}

fn run(exporter: &'static Exporter) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("OTLP exporter runtime: {e}");
            return;
        }
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let settings = &exporter.settings;
    loop {
        std::thread::sleep(settings.flush_interval);
        let spans = std::mem::take(&mut *lock(&exporter.queue));
        for batch in spans.chunks(BATCH) {
            runtime.block_on(send(&client, settings, batch));
        }
    }
}

async fn send(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    settings: &OtlpSettings,
    spans: &[Span],
) {
    let n = spans.len() as u64;
    let body = encode(&settings.service_name, spans);
    let req = http::Request::post(settings.endpoint.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)));
    let Ok(req) = req else { return };
    let sent = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await;
    match sent {
        Ok(Ok(resp)) if resp.status().is_success() => {
            SENT.fetch_add(n, Ordering::Relaxed);
        }
        Ok(Ok(resp)) => {
            FAILED.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(
                status = resp.status().as_u16(),
                "OTLP export refused by the collector"
            );
        }
        Ok(Err(e)) => {
            FAILED.fetch_add(n, Ordering::Relaxed);
            tracing::warn!("OTLP export failed: {e}");
        }
        Err(_) => {
            FAILED.fetch_add(n, Ordering::Relaxed);
            tracing::warn!("OTLP export timed out");
        }
    }
}

fn nanos(t: std::time::SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// The OTLP/HTTP JSON body (`ExportTraceServiceRequest`) for `spans`, written straight into
/// the buffer (ids as hex strings, times and integers as decimal strings, as the OTLP JSON
/// mapping has them).
pub fn encode(service: &str, spans: &[Span]) -> Vec<u8> {
    use crate::json::Object;
    let mut out = Vec::with_capacity(256 + spans.len() * 512);
    let mut root = Object::open(&mut out);
    root.objects("resourceSpans", [()], |rs, ()| {
        let mut resource = rs.object("resource");
        resource.objects("attributes", [()], |a, ()| {
            a.str("key", "service.name");
            let mut v = a.object("value");
            v.str("stringValue", service);
            v.close();
        });
        resource.close();
        rs.objects("scopeSpans", [()], |ss, ()| {
            let mut scope = ss.object("scope");
            scope.str("name", "weir");
            scope.str("version", env!("CARGO_PKG_VERSION"));
            scope.close();
            ss.objects("spans", spans, |o, s| {
                o.str("traceId", &s.trace_id);
                o.str("spanId", &s.span_id);
                if let Some(p) = &s.parent_id {
                    o.str("parentSpanId", p);
                }
                o.str("name", &s.name);
                o.num("kind", s.kind as u8);
                o.display("startTimeUnixNano", nanos(s.start));
                o.display("endTimeUnixNano", nanos(s.end));
                o.objects("attributes", &s.attributes, |a, (key, value)| {
                    a.str("key", key);
                    let mut v = a.object("value");
                    match value {
                        Value::Str(text) => v.str("stringValue", text),
                        Value::Int(n) => v.display("intValue", n),
                    }
                    v.close();
                });
                let mut status = o.object("status");
                status.num("code", if s.error { 2 } else { 0 });
                status.close();
            });
        });
    });
    root.close();
    out
}
