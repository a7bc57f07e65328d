//! Sending spans to an OpenTelemetry collector: OTLP/HTTP with the JSON encoding, batched
//! by one exporter thread. The request path only hands spans over (never waits): when the
//! queue is full, spans are dropped and counted.

use super::span::{Span, Value};
use bytes::Bytes;
use http_body_util::Full;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Requests' spans queued for the exporter beyond this are dropped.
const QUEUE: usize = 4096;
/// Most spans in one export.
const BATCH: usize = 512;

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
    tx: SyncSender<Vec<Span>>,
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
    let existing = EXPORTER.get_or_init(|| {
        let (tx, rx) = sync_channel(QUEUE);
        let s = settings.clone();
        let spawned = std::thread::Builder::new()
            .name("weir-otlp".into())
            .spawn(move || run(rx, s));
        if let Err(e) = spawned {
            tracing::error!("OTLP exporter thread not started: {e}");
        }
        Exporter {
            tx,
            settings: settings.clone(),
        }
    });
    if existing.settings != *settings {
        tracing::warn!("otlp settings changed: they apply after a restart");
    }
}

/// Hand a request's spans to the exporter (dropped and counted when it is behind).
pub fn submit(spans: Vec<Span>) {
    let Some(e) = EXPORTER.get() else { return };
    let n = spans.len() as u64;
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = e.tx.try_send(spans) {
        DROPPED.fetch_add(n, Ordering::Relaxed);
    }
}

fn run(rx: Receiver<Vec<Span>>, settings: OtlpSettings) {
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
    let mut batch: Vec<Span> = Vec::new();
    let mut since = Instant::now();
    loop {
        let wait = settings.flush_interval.saturating_sub(since.elapsed());
        match rx.recv_timeout(wait) {
            Ok(spans) => batch.extend(spans),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let due = since.elapsed() >= settings.flush_interval;
        if batch.len() >= BATCH || (due && !batch.is_empty()) {
            let spans = std::mem::take(&mut batch);
            runtime.block_on(send(&client, &settings, spans));
        }
        if due {
            since = Instant::now();
        }
    }
}

async fn send(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    settings: &OtlpSettings,
    spans: Vec<Span>,
) {
    let n = spans.len() as u64;
    let body = encode(&settings.service_name, &spans);
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

fn nanos(t: std::time::SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

/// The OTLP/HTTP JSON body (`ExportTraceServiceRequest`) for `spans`.
pub fn encode(service: &str, spans: &[Span]) -> Vec<u8> {
    use serde_json::{json, Value as J};
    let attr = |(k, v): &(&'static str, Value)| match v {
        Value::Str(s) => json!({ "key": k, "value": { "stringValue": s } }),
        Value::Int(i) => json!({ "key": k, "value": { "intValue": i.to_string() } }),
    };
    let spans: Vec<J> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": s.trace_id,
                "spanId": s.span_id,
                "name": s.name,
                "kind": s.kind as u8,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": s.attributes.iter().map(attr).collect::<Vec<_>>(),
                "status": { "code": if s.error { 2 } else { 0 } },
            });
            if let (Some(p), Some(obj)) = (&s.parent_id, span.as_object_mut()) {
                obj.insert("parentSpanId".into(), J::String(p.clone()));
            }
            span
        })
        .collect();
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": service } }] },
            "scopeSpans": [{ "scope": { "name": "weir", "version": env!("CARGO_PKG_VERSION") }, "spans": spans }]
        }]
    });
    serde_json::to_vec(&body).unwrap_or_default()
}
