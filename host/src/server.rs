//! Assembling a running proxy from a validated manifest, and stopping it gracefully.

use crate::admin;
use crate::config::{Config, Diagnostic};
use crate::filter::{Filter, FilterEngine};
use crate::listener;
use crate::listeners::ListenerSet;
use crate::live::Live;
use crate::proxy::Proxy;
use anyhow::Context as _;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Load every filter of `config` (at start: nothing to keep); failures are located at
/// their manifest entries.
pub async fn load_filters(
    engine: &FilterEngine,
    config: &Config,
) -> Result<Vec<Arc<Filter>>, Vec<Diagnostic>> {
    crate::reload::load_located(engine, &config.filters, &[]).await
}

/// Bind the listeners (and the admin endpoint), print where they listen, serve the live
/// generation until `shutdown` completes, reloading on change and SIGHUP, then stop
/// gracefully: stop accepting, let requests in flight finish (bounded by the manifest's
/// `shutdown-timeout`).
///
/// Threading is thread-per-core, as nginx's workers: each of `config.workers` threads runs a
/// single-threaded runtime with its own socket per listener (`SO_REUSEPORT`: the kernel
/// spreads connections) and its own upstream connection pools, so a request never crosses
/// threads. Filters (compiled code and instance pools) are shared. Reloads, compilation and
/// the admin endpoint run on the caller's runtime, never on a worker.
pub async fn serve(
    live: Arc<Live>,
    engine: FilterEngine,
    manifest: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = live.current().config.clone();
    engine.set_geo(config.geo.clone());
    // Sockets handed over by the process this one replaces (a binary upgrade), if any.
    let mut inherited = crate::handover::Inherited::take();
    let (listeners, starts) = ListenerSet::new(config.workers);
    let listeners = Arc::new(listeners);
    let bound = listeners
        .apply(&config, Some(&mut inherited))
        .map_err(anyhow::Error::msg)?;
    live.set_listeners(listeners.clone());
    let admin = match config.admin {
        Some(addr) => Some(bind_admin(addr, &mut inherited).await?),
        None => None,
    };
    let admin_copy = admin
        .as_ref()
        .and_then(|a| socket2::SockRef::from(a).try_clone().ok());
    // Signals are watched before "ready" is printed: one sent after it finds its handler.
    // So are the manifest and the files it names: a change right after is seen.
    let triggers = crate::reload::triggers(&live, &manifest);
    use tokio::signal::unix::{signal, SignalKind};
    let usr1 = signal(SignalKind::user_defined1())
        .map_err(|e| tracing::warn!("cannot watch SIGUSR1 (access log reopening): {e}"))
        .ok();
    let usr2 = signal(SignalKind::user_defined2())
        .map_err(|e| tracing::warn!("cannot watch SIGUSR2 (binary upgrades): {e}"))
        .ok();
    print_ready(admin.as_ref(), &bound);
    // SIGUSR1: reopen the access log file (after logrotate moved it).
    if let Some(usr1) = usr1 {
        tokio::spawn(reopen_access_log_on(usr1));
    }
    tracing::info!(listeners = ?listeners.addresses(), workers = config.workers, routes = config.routes.len(), filters = config.filters.len(), "weir started");

    let mut background = Vec::new();
    if let Some(listener) = admin {
        let admin = admin::Admin {
            live: live.clone(),
            engine: engine.clone(),
            manifest: manifest.clone(),
        };
        background.push(tokio::spawn(admin::serve(listener, admin)));
    }
    let watched = listeners.clone();
    background.push(tokio::spawn(crate::tls::watch(move || watched.tls())));
    background.push(tokio::spawn(crate::reload::run(
        live.clone(),
        engine,
        manifest,
        triggers,
    )));

    let (stop_tx, stop_rx) = watch::channel(false);
    let threads = start_workers(starts, &live, config.shutdown_timeout, &stop_rx)?;

    // SIGUSR2: start the binary again with the sockets; stop once it serves.
    let upgraded = Arc::new(tokio::sync::Notify::new());
    if let Some(usr2) = usr2 {
        let set = listeners.clone();
        background.push(tokio::spawn(upgrade_on(
            usr2,
            move || {
                let mut handed = set.handed();
                if let Some(copy) = admin_copy.as_ref().and_then(|a| a.try_clone().ok()) {
                    handed.push(("admin".into(), copy.into()));
                }
                handed
            },
            upgraded.clone(),
        )));
    }
    crate::handover::announce_ready();

    tokio::select! {
        _ = shutdown => {}
        _ = upgraded.notified() => {}
    }
    for task in &background {
        task.abort();
    }
    tracing::info!(timeout = ?config.shutdown_timeout, "stopping: finishing requests in flight");
    listeners.stop_all();
    let _ = stop_tx.send(true);
    join_workers(threads).await
}

/// One worker thread per receiver of listener starts, each told to stop by `stop` and given
/// `grace` to finish its requests.
fn start_workers(
    starts: Vec<tokio::sync::mpsc::UnboundedReceiver<crate::listeners::Start>>,
    live: &Arc<Live>,
    grace: std::time::Duration,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut threads = Vec::new();
    for (id, starts) in starts.into_iter().enumerate() {
        let (live, stop) = (live.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("weir-worker-{id}"))
            .spawn(move || worker(id, live, grace, starts, stop))
            .context("cannot start a worker thread")?;
        threads.push(thread);
    }
    Ok(threads)
}

/// Wait for the stopped workers to finish; an error if any panicked.
async fn join_workers(threads: Vec<std::thread::JoinHandle<()>>) -> anyhow::Result<()> {
    let joined = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| t.join())
            .filter(Result::is_err)
            .count()
    })
    .await?;
    if joined > 0 {
        anyhow::bail!("{joined} worker thread(s) panicked");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The admin listener: the socket the process this one replaces handed over, or a new one.
async fn bind_admin(
    addr: std::net::SocketAddr,
    inherited: &mut crate::handover::Inherited,
) -> anyhow::Result<TcpListener> {
    Ok(match inherited.admin(addr) {
        Some(socket) => TcpListener::from_std(socket)?,
        None => admin::bind(addr)
            .await
            .with_context(|| format!("cannot listen on the admin address {addr}"))?,
    })
}

/// The stable lines on stdout that scripts and tests wait for (logs go to stderr): the admin
/// address first (a reader waiting for the listeners has then seen it), the listeners, then
/// `weir: ready`.
fn print_ready(admin: Option<&TcpListener>, bound: &[(std::net::SocketAddr, bool)]) {
    let mut out = std::io::stdout().lock();
    if let Some(a) = admin.and_then(|l| l.local_addr().ok()) {
        let _ = writeln!(out, "weir: admin on http://{a}");
    }
    // (The lock is reentrant: these lines are written under it too.)
    for &(addr, tls) in bound {
        crate::listeners::print_listening(addr, tls);
    }
    let _ = writeln!(out, "weir: ready");
    let _ = out.flush();
}

/// Reopen the access log file on each signal of `usr1` (after logrotate moved it).
async fn reopen_access_log_on(mut usr1: tokio::signal::unix::Signal) {
    while usr1.recv().await.is_some() {
        tracing::info!("SIGUSR1: reopening the access log");
        crate::access_log::sink::global().reopen();
    }
}

/// On each signal of `usr2`, start the binary again with the `handed` sockets; once one
/// serves, tell `upgraded` (this process then stops).
async fn upgrade_on(
    mut usr2: tokio::signal::unix::Signal,
    handed: impl Fn() -> crate::handover::Handed,
    upgraded: Arc<tokio::sync::Notify>,
) {
    while usr2.recv().await.is_some() {
        tracing::info!("SIGUSR2: upgrading: starting the binary again with the listening sockets");
        match crate::handover::upgrade(&handed()).await {
            Ok(pid) => {
                tracing::info!(pid, "upgrade: the new process serves; this one stops accepting and finishes its requests");
                crate::conn::set_linger(std::time::Duration::from_secs(1));
                upgraded.notify_one();
                return;
            }
            Err(e) => tracing::error!("upgrade failed, this process keeps serving: {e}"),
        }
    }
}

/// A worker thread: accept on the sockets `starts` hands it (at start and when a reload
/// adds a listener) until `stop`, then drain its connections.
fn worker(
    id: usize,
    live: Arc<Live>,
    shutdown_timeout: std::time::Duration,
    mut starts: tokio::sync::mpsc::UnboundedReceiver<crate::listeners::Start>,
    mut stop: watch::Receiver<bool>,
) {
    // Idle filter instances are kept per worker: this thread reuses its own.
    crate::filter::set_worker_slot(id);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = id, "cannot start the worker's runtime: {e}");
            return;
        }
    };
    runtime.block_on(async {
        let limits = live.current().config.limits.clone();
        let builders = Arc::new(listener::connection_builder(&limits));
        let proxy = Arc::new(Proxy::new(live));
        let drain = Arc::new(crate::conn::Drain::default());
        let mut loops = Vec::new();
        loop {
            let start = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                start = starts.recv() => match start {
                    Some(start) => start,
                    None => break,
                },
            };
            match TcpListener::from_std(start.socket) {
                Ok(l) => loops.push(tokio::spawn(
                    listener::AcceptLoop {
                        listener: l,
                        serving: listener::Serving {
                            slots: start.slots,
                            mode: start.mode,
                            proxy: proxy.clone(),
                            builders: builders.clone(),
                            drain: drain.clone(),
                            stop: start.stop,
                            handshake_timeout: limits.header_read_timeout,
                            send_timeout: limits.send_timeout,
                            idle_timeout: limits.client_idle_timeout,
                        },
                    }
                    .run(),
                )),
                Err(e) => tracing::error!(worker = id, "cannot use a listening socket: {e}"),
            }
            loops.retain(|l| !l.is_finished());
        }
        for l in loops {
            let _ = l.await;
        }
        // The accept loops are done and every connection has seen `stop`: wait for them.
        let open = drain.count();
        tokio::select! {
            _ = drain.drained() => tracing::debug!(worker = id, connections = open, "worker drained"),
            _ = tokio::time::sleep(shutdown_timeout) => {
                tracing::warn!(worker = id, "shutdown timeout reached: closing the remaining connections");
            }
        }
    });
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
