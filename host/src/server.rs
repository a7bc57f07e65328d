//! Assembling a running proxy from a validated manifest, and stopping it gracefully.

use crate::admin;
use crate::config::{Config, Diagnostic};
use crate::filter::{Filter, FilterEngine};
use crate::listener;
use crate::live::Live;
use crate::proxy::Proxy;
use crate::tls::TlsListener;
use anyhow::Context as _;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
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
    let tls = tls_listeners(&config)?;
    // Sockets handed over by the process this one replaces (a binary upgrade), if any.
    let mut inherited = crate::handover::Inherited::take();
    let (addrs, sockets) = bind_all(&config, &mut inherited)?;
    let mut handed: crate::handover::Handed = Vec::new();
    for (index, socket) in sockets.iter().flatten() {
        if let Ok(copy) = socket.try_clone() {
            handed.push((index.to_string(), copy.into()));
        }
    }
    let admin = match config.admin {
        Some(addr) => Some(match inherited.admin(addr) {
            Some(socket) => TcpListener::from_std(socket)?,
            None => admin::bind(addr)
                .await
                .with_context(|| format!("cannot listen on the admin address {addr}"))?,
        }),
        None => None,
    };
    if let Some(copy) = admin
        .as_ref()
        .and_then(|a| socket2::SockRef::from(a).try_clone().ok())
    {
        handed.push(("admin".into(), copy.into()));
    }
    // Signals are watched before "ready" is printed: one sent after it finds its handler.
    use tokio::signal::unix::{signal, SignalKind};
    let usr1 = signal(SignalKind::user_defined1())
        .map_err(|e| tracing::warn!("cannot watch SIGUSR1 (access log reopening): {e}"))
        .ok();
    let usr2 = signal(SignalKind::user_defined2())
        .map_err(|e| tracing::warn!("cannot watch SIGUSR2 (binary upgrades): {e}"))
        .ok();
    {
        // A stable line on stdout for scripts and tests; logs go to stderr.
        let mut out = std::io::stdout().lock();
        // The admin line first: a reader waiting for the listeners has then seen it.
        if let Some(a) = admin.as_ref().and_then(|l| l.local_addr().ok()) {
            let _ = writeln!(out, "weir: admin on http://{a}");
        }
        for (a, t) in addrs.iter().zip(&tls) {
            let scheme = if t.is_some() { "https" } else { "http" };
            let _ = writeln!(out, "weir: listening on {scheme}://{a}");
        }
        let _ = writeln!(out, "weir: ready");
        let _ = out.flush();
    }
    // SIGUSR1: reopen the access log file (after logrotate moved it).
    if let Some(usr1) = usr1 {
        tokio::spawn(reopen_access_log_on(usr1));
    }
    tracing::info!(listeners = ?addrs, workers = config.workers, routes = config.routes.len(), filters = config.filters.len(), "weir started");

    let mut background = Vec::new();
    if let Some(listener) = admin {
        let admin = admin::Admin {
            live: live.clone(),
            engine: engine.clone(),
            manifest: manifest.clone(),
        };
        background.push(tokio::spawn(admin::serve(listener, admin)));
    }
    let watched: Vec<_> = tls.iter().flatten().cloned().collect();
    if !watched.is_empty() {
        background.push(tokio::spawn(crate::tls::watch(watched)));
    }
    background.push(tokio::spawn(crate::reload::run(
        live.clone(),
        engine,
        manifest,
    )));

    let (stop_tx, stop_rx) = watch::channel(false);
    // Connection limits count over all workers.
    let slots: Vec<Arc<listener::ConnectionSlots>> = config
        .listeners
        .iter()
        .map(|l| Arc::new(listener::ConnectionSlots::new(l.max_connections)))
        .collect();
    listener::publish(
        addrs
            .iter()
            .zip(&tls)
            .zip(&slots)
            .map(|((a, t), s)| (a.to_string(), t.is_some(), s.clone()))
            .collect(),
    );
    let mut threads = Vec::new();
    for (id, listeners) in sockets.into_iter().enumerate() {
        let (live, stop, grace) = (live.clone(), stop_rx.clone(), config.shutdown_timeout);
        let slots = slots.clone();
        let tls = tls.clone();
        let thread = std::thread::Builder::new()
            .name(format!("weir-worker-{id}"))
            .spawn(move || worker(id, live, grace, listeners, slots, tls, stop))
            .context("cannot start a worker thread")?;
        threads.push(thread);
    }

    // SIGUSR2: start the binary again with these sockets; stop once it serves.
    let upgraded = Arc::new(tokio::sync::Notify::new());
    if let Some(usr2) = usr2 {
        background.push(tokio::spawn(upgrade_on(usr2, handed, upgraded.clone())));
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
    let _ = stop_tx.send(true);
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
    handed: crate::handover::Handed,
    upgraded: Arc<tokio::sync::Notify>,
) {
    while usr2.recv().await.is_some() {
        tracing::info!("SIGUSR2: upgrading: starting the binary again with the listening sockets");
        match crate::handover::upgrade(&handed).await {
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

/// Load the certificates of the TLS listeners (in listener order; `None` for plaintext).
fn tls_listeners(config: &Config) -> anyhow::Result<Vec<Option<Arc<TlsListener>>>> {
    config
        .listeners
        .iter()
        .map(|l| match &l.tls {
            None => Ok(None),
            Some(settings) => TlsListener::new(settings.clone())
                .map(|t| Some(Arc::new(t)))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}",
                        Diagnostic {
                            message: format!("listeners.tls: {e}"),
                            ..l.location.clone()
                        }
                    )
                }),
        })
        .collect()
}

/// Each worker's sockets, with the index of the listener each is for.
type WorkerSockets = Vec<Vec<(usize, std::net::TcpListener)>>;

/// The listeners' addresses, and each worker's sockets: at least one per listener and
/// worker. Sockets `inherited` from the process this one replaces are used first (each by
/// one worker, so none is left unaccepted); the rest are bound afresh. The first socket of
/// a listener fixes its port (so port 0 works), the others share it (`SO_REUSEPORT`).
fn bind_all(
    config: &Config,
    inherited: &mut crate::handover::Inherited,
) -> anyhow::Result<(Vec<SocketAddr>, WorkerSockets)> {
    let workers = config.workers.max(1);
    let mut addrs = Vec::new();
    let mut per_worker: WorkerSockets = (0..workers).map(|_| Vec::new()).collect();
    for (index, configured) in config.listeners.iter().enumerate() {
        let configured = configured.address;
        let mut addr = configured;
        let handed = inherited.listener(index, configured);
        let count = handed.len();
        for (i, socket) in handed.into_iter().enumerate() {
            addr = socket.local_addr()?;
            if let Some(sockets) = per_worker.get_mut(i % workers) {
                sockets.push((index, socket));
            }
        }
        for sockets in per_worker.iter_mut().skip(count) {
            let socket =
                bind_reuseport(addr).with_context(|| format!("cannot listen on {configured}"))?;
            addr = socket.local_addr()?;
            sockets.push((index, socket));
        }
        addrs.push(addr);
    }
    Ok((addrs, per_worker))
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// A worker thread: serve `listeners` until `stop`, then drain its connections.
fn worker(
    id: usize,
    live: Arc<Live>,
    shutdown_timeout: std::time::Duration,
    listeners: Vec<(usize, std::net::TcpListener)>,
    connection_slots: Vec<Arc<listener::ConnectionSlots>>,
    tls: Vec<Option<Arc<TlsListener>>>,
    stop: watch::Receiver<bool>,
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
        let builder = listener::connection_builder(&limits);
        let handshake_timeout = limits.header_read_timeout;
        let send_timeout = limits.send_timeout;
        let idle_timeout = limits.client_idle_timeout;
        let listener_modes: Vec<(Option<u16>, bool)> = live
            .current()
            .config
            .listeners
            .iter()
            .map(|l| (l.redirect_https, l.proxy_protocol))
            .collect();
        let proxy = Arc::new(Proxy::new(live));
        let drain = Arc::new(crate::conn::Drain::default());
        let mut loops = Vec::new();
        for (index, l) in listeners {
            let (Some(slots), Some(tls), Some(&(redirect_https, proxy_protocol))) = (
                connection_slots.get(index).cloned(),
                tls.get(index).cloned(),
                listener_modes.get(index),
            ) else {
                tracing::error!(worker = id, index, "internal error: a socket for no listener");
                continue;
            };
            match TcpListener::from_std(l) {
                Ok(l) => loops.push(tokio::spawn(
                    listener::AcceptLoop {
                        listener: l,
                        slots,
                        tls,
                        proxy: proxy.clone(),
                        builder: builder.clone(),
                        drain: drain.clone(),
                        stop: stop.clone(),
                        handshake_timeout,
                        send_timeout,
                        idle_timeout,
                        redirect_https,
                        proxy_protocol,
                        index,
                    }
                    .run(),
                )),
                Err(e) => tracing::error!(worker = id, "cannot use a listening socket: {e}"),
            }
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
