//! The admin endpoint: `GET /status` answers JSON with the live generation, each filter's
//! plugin version (SHA-256), load time, instances and metrics, each upstream target's health,
//! load and resolved addresses, and the reload history.
//! It is for operators, not clients: loopback only unless `admin-token` is set, in which case
//! every request needs `Authorization: Bearer <token>`. A client slower than 10 s to send its
//! request head is disconnected.

use crate::filter::metrics::MetricsSnapshot;
use crate::live::Live;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The live generation's id (1 at start, +1 per successful reload).
    pub generation: u64,
    /// When it went live, seconds since the Unix epoch.
    pub loaded_at: f64,
    /// The reload history.
    pub reloads: Reloads,
    /// The live filters, in manifest order.
    pub filters: Vec<FilterStatus>,
    /// The live upstreams, in manifest order.
    pub upstreams: Vec<UpstreamStatus>,
    /// The shared stores (Redis) the live filters use.
    pub stores: Vec<StoreStatus>,
}

/// One shared store.
#[derive(Debug, Serialize)]
pub struct StoreStatus {
    /// `"redis"` or `"redis-cluster"`.
    pub backend: &'static str,
    /// Its URLs, passwords redacted.
    pub urls: String,
    /// The filters using it.
    pub filters: Vec<String>,
    /// Its counters.
    #[serde(flatten)]
    pub metrics: crate::store::metrics::StoreSnapshot,
}

/// One upstream.
#[derive(Debug, Serialize)]
pub struct UpstreamStatus {
    /// Its name in the manifest.
    pub name: String,
    /// Its targets, in manifest order.
    pub targets: Vec<TargetStatus>,
}

/// One target of an upstream.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// `host:port` as configured.
    pub address: String,
    /// Up per the active check (always true without one).
    pub up: bool,
    /// Left out by passive ejection right now.
    pub ejected: bool,
    /// Requests in flight (until their response body ends).
    pub in_flight: u64,
    /// Response-head latency EWMA in milliseconds (0 before the first response).
    pub latency_ewma_ms: f64,
    /// The addresses its host name resolves to (empty for an IP address or before the first
    /// resolution).
    pub resolved: Vec<String>,
}

/// Reload history.
#[derive(Debug, Serialize)]
pub struct Reloads {
    /// Successful reloads.
    pub succeeded: u64,
    /// Refused reloads.
    pub failed: u64,
    /// The last refused reload's reason, unless a later one succeeded.
    pub last_error: Option<String>,
    /// When that was, seconds since the Unix epoch.
    pub last_error_at: Option<f64>,
}

/// One live filter.
#[derive(Debug, Serialize)]
pub struct FilterStatus {
    /// Its name in the manifest.
    pub name: String,
    /// Its plugin file.
    pub plugin: String,
    /// SHA-256 of the plugin file that is live.
    pub sha256: String,
    /// When this version was loaded, seconds since the Unix epoch.
    pub loaded_at: f64,
    /// `"direct"` when hooks are plain function calls, `"fiber"` when they run on a fiber
    /// because the filter imports something that can wait (outbound HTTP, timers).
    pub calls: &'static str,
    /// Instances created so far.
    pub instances_created: u64,
    /// Idle instances kept.
    pub instances_idle: usize,
    /// Host-recorded and filter-defined metrics.
    pub metrics: MetricsSnapshot,
}

/// The shared stores of `filters`, each once, with the filters using it.
fn stores(filters: &[Arc<crate::filter::Filter>]) -> Vec<StoreStatus> {
    let mut out: Vec<(Arc<crate::store::RedisStore>, Vec<String>)> = Vec::new();
    for f in filters {
        let Some(redis) = f.shared_store() else {
            continue;
        };
        match out.iter_mut().find(|(r, _)| Arc::ptr_eq(r, &redis)) {
            Some((_, names)) => names.push(f.name().to_string()),
            None => out.push((redis, vec![f.name().to_string()])),
        }
    }
    out.into_iter()
        .map(|(r, filters)| StoreStatus {
            backend: if r.settings().cluster {
                "redis-cluster"
            } else {
                "redis"
            },
            urls: r.settings().shown(),
            filters,
            metrics: r.metrics().snapshot(),
        })
        .collect()
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The status now.
pub fn status(live: &Live) -> Status {
    let g = live.current();
    let r = live.reload_status();
    Status {
        generation: g.id,
        loaded_at: unix(g.loaded_at),
        reloads: Reloads {
            succeeded: r.succeeded,
            failed: r.failed,
            last_error_at: r.last_error.as_ref().map(|(t, _)| unix(*t)),
            last_error: r.last_error.map(|(_, e)| e),
        },
        filters: g
            .filters
            .iter()
            .map(|f| FilterStatus {
                name: f.name().to_string(),
                plugin: f.config().plugin_path.display().to_string(),
                sha256: f.version().sha256.clone(),
                loaded_at: unix(f.version().loaded_at),
                calls: if f.runs_on_fiber() { "fiber" } else { "direct" },
                instances_created: f.instances_created(),
                instances_idle: f.idle_instances(),
                metrics: f.metrics(),
            })
            .collect(),
        stores: stores(&g.filters),
        upstreams: g
            .upstreams
            .iter()
            .map(|u| UpstreamStatus {
                name: u.name().to_string(),
                targets: u
                    .targets()
                    .iter()
                    .map(|t| TargetStatus {
                        address: t.authority.to_string(),
                        up: t.health.is_up(),
                        ejected: t.health.ejected(),
                        in_flight: t.in_flight(),
                        latency_ewma_ms: t.ewma_ns() / 1e6,
                        resolved: crate::upstream::resolve::DnsCache::global()
                            .get(t.authority.host())
                            .map(|addrs| addrs.iter().map(|a| a.ip().to_string()).collect())
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Whether the scraper prefers OpenMetrics (`Accept: application/openmetrics-text`).
fn wants_openmetrics(req: &Request<hyper::body::Incoming>) -> bool {
    req.headers()
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// How long an admin client may take to send its request head.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether `req` carries the bearer `token` (compared in constant time).
fn authorized(req: &Request<hyper::body::Incoming>, token: &str) -> bool {
    let Some(given) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    given.len() == token.len()
        && given
            .iter()
            .zip(token.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn answer(req: &Request<hyper::body::Incoming>, live: &Arc<Live>) -> Response<Full<Bytes>> {
    let token = live.current().config.admin_token.clone();
    if let Some(token) = token {
        if !authorized(req, &token) {
            let mut resp = Response::new(Full::new(Bytes::from_static(
                b"401 Unauthorized: send Authorization: Bearer <admin-token>\n",
            )));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
    }
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/status") => match serde_json::to_vec_pretty(&status(live)) {
            Ok(json) => (StatusCode::OK, "application/json", json),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("cannot encode the status: {e}\n").into_bytes(),
            ),
        },
        (&http::Method::GET, "/metrics") => {
            let openmetrics = wants_openmetrics(req);
            match crate::metrics::render(live, openmetrics) {
                Ok(text) => (
                    StatusCode::OK,
                    crate::metrics::content_type(openmetrics),
                    text.into_bytes(),
                ),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("cannot encode the metrics: {e}\n").into_bytes(),
                ),
            }
        }
        (_, "/status" | "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"use GET\n".to_vec(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            b"not found: try GET /status or GET /metrics\n".to_vec(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

/// Bind the admin endpoint.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve the admin endpoint on `listener` until the process ends.
pub async fn serve(listener: TcpListener, live: Arc<Live>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("admin endpoint: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let live = live.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let resp = answer(&req, &live);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(io, service)
                .await;
        });
    }
}
