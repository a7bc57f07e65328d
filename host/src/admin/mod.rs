//! The admin endpoint, for operators, not clients: loopback only unless `admin-token` is
//! set, in which case every request needs `Authorization: Bearer <token>`. A client slower
//! than 10 s to send its request head is disconnected. What it answers:
//! - `GET /status` ([`status`]) and `GET /metrics` (Prometheus, [`crate::metrics`]);
//! - `GET /healthz`, `GET /readyz`, `POST /reload`, draining targets ([`ops`]);
//! - `GET /routes`, `GET /config` (the manifest with its secrets redacted) ([`view`]);
//! - `GET /dashboard`, a live page for people ([`dashboard`]).

mod cache;
mod dashboard;
mod ops;
pub mod status;
mod view;

pub use status::{status, Status};

use crate::filter::FilterEngine;
use crate::live::Live;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the admin endpoint acts on.
#[derive(Clone)]
pub struct Admin {
    /// The generation being served.
    pub live: Arc<Live>,
    /// For `POST /reload`.
    pub engine: FilterEngine,
    /// The manifest reloads read.
    pub manifest: PathBuf,
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

/// A response: status, content type, body.
type Answer = (StatusCode, &'static str, Vec<u8>);

fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    (
        status,
        "text/plain; charset=utf-8",
        body.into().into_bytes(),
    )
}

fn json(value: &impl serde::Serialize) -> Answer {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            (StatusCode::OK, "application/json", body)
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}\n"),
        ),
    }
}

/// Every endpoint, by method and path.
const ENDPOINTS: &str = "GET /status, GET /metrics, GET /healthz, GET /readyz, POST /reload, \
     GET /routes, GET /config, GET /dashboard, GET /cache, POST /cache/purge, \
     POST /upstreams/{name}/targets/{host:port}/drain and /undrain";

async fn answer(req: Request<hyper::body::Incoming>, admin: &Admin) -> Response<Full<Bytes>> {
    let token = admin.live.current().config.admin_token.clone();
    // The dashboard page holds no data (its data endpoint is guarded): a browser can open it.
    let open_page = req.method() == http::Method::GET && req.uri().path() == "/dashboard";
    if let Some(token) = token.filter(|_| !open_page) {
        if !authorized(&req, &token) {
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
    let (status, content_type, body) = route(&req, admin).await;
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

async fn route(req: &Request<hyper::body::Incoming>, admin: &Admin) -> Answer {
    use http::Method;
    let live = &admin.live;
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/status") => json(&status(live)),
        (&Method::GET, "/metrics") => {
            let openmetrics = wants_openmetrics(req);
            match crate::metrics::render(live, openmetrics) {
                Ok(body) => (
                    StatusCode::OK,
                    crate::metrics::content_type(openmetrics),
                    body.into_bytes(),
                ),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot encode the metrics: {e}\n"),
                ),
            }
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => ops::ready(live),
        (&Method::POST, "/reload") => ops::reload(admin).await,
        (&Method::GET, "/routes") => json(&view::routes(live)),
        (&Method::GET, "/config") => view::config(admin),
        (&Method::GET, "/dashboard") => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            dashboard::PAGE.as_bytes().to_vec(),
        ),
        (&Method::GET, "/dashboard/data") => json(&dashboard::data(live)),
        (&Method::GET, "/cache") => cache::zones(live),
        (&Method::POST, "/cache/purge") => cache::purge(live, req.uri().query()),
        (&Method::POST, p) if p.starts_with("/upstreams/") => ops::drain(live, p),
        (
            _,
            "/status" | "/metrics" | "/healthz" | "/readyz" | "/routes" | "/config" | "/dashboard"
            | "/dashboard/data" | "/cache",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        (_, "/reload" | "/cache/purge") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            format!("not found; the endpoints: {ENDPOINTS}\n"),
        ),
    }
}

/// Bind the admin endpoint.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve the admin endpoint on `listener` until the process ends.
pub async fn serve(listener: TcpListener, admin: Admin) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("admin endpoint: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(req, &admin).await) }
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
