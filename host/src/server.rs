//! Assembling a running proxy from a validated manifest, and stopping it gracefully.

use crate::config::{Config, Diagnostic};
use crate::filter::{Filter, FilterEngine};
use crate::listener;
use crate::proxy::Proxy;
use crate::route::{Route, RouteTable};
use crate::upstream::Upstream;
use anyhow::Context as _;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Load every filter of `config`; failures are located at their manifest entries.
pub async fn load_filters(
    engine: &FilterEngine,
    config: &Config,
) -> Result<Vec<Arc<Filter>>, Vec<Diagnostic>> {
    engine.load_all(&config.filters).await.map_err(|errors| {
        errors
            .into_iter()
            .map(|(i, e)| {
                let f = &config.filters[i];
                Diagnostic {
                    message: format!("filters.{}: {e}", f.name),
                    ..f.location.clone()
                }
            })
            .collect()
    })
}

/// Build the proxy (routes, upstreams) from `config` and loaded `filters`.
pub fn build_proxy(config: &Config, filters: &[Arc<Filter>]) -> Proxy {
    let upstreams: Vec<Arc<Upstream>> = config
        .upstreams
        .iter()
        .map(|u| Arc::new(Upstream::new(u)))
        .collect();
    let routes = config
        .routes
        .iter()
        .map(|r| Route {
            host: r.host.clone(),
            path: r.path.clone(),
            upstream: upstreams[r.upstream].clone(),
            filters: r.filters.iter().map(|&i| filters[i].clone()).collect(),
        })
        .collect();
    Proxy::new(RouteTable::new(routes), config.access_log)
}

/// Bind the listeners, print where they listen, serve until `shutdown` completes, then stop
/// gracefully: stop accepting, let requests in flight finish (bounded by the manifest's
/// `shutdown-timeout`).
pub async fn serve(
    config: &Config,
    proxy: Proxy,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let proxy = Arc::new(proxy);
    let mut bound = Vec::new();
    for addr in &config.listeners {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        bound.push(listener);
    }
    let addrs: Vec<SocketAddr> = bound.iter().filter_map(|l| l.local_addr().ok()).collect();
    {
        // A stable line on stdout for scripts and tests; logs go to stderr.
        let mut out = std::io::stdout().lock();
        for a in &addrs {
            let _ = writeln!(out, "weir: listening on http://{a}");
        }
        let _ = out.flush();
    }
    tracing::info!(listeners = ?addrs, routes = config.routes.len(), filters = config.filters.len(), "weir started");

    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = listener::connection_builder();
    let mut loops = Vec::new();
    for l in bound {
        loops.push(tokio::spawn(listener::accept_loop(
            l,
            proxy.clone(),
            builder.clone(),
            graceful.clone(),
            stop_rx.clone(),
        )));
    }

    shutdown.await;
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    let open = graceful.count();
    tracing::info!(connections = open, timeout = ?config.shutdown_timeout, "stopping: finishing requests in flight");
    // The accept loops are done, so this is the last handle.
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        anyhow::bail!("internal error: connections still being accepted after stop");
    };
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("stopped"),
        _ = tokio::time::sleep(config.shutdown_timeout) => {
            tracing::warn!("shutdown timeout reached: closing the remaining connections");
        }
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
