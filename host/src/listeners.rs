//! The running listeners: each one's sockets (one per worker, `SO_REUSEPORT`), what it does
//! with a connection, and a reload's changes to them, applied without a restart.
//!
//! A listener is known by its configured address. A reload that keeps an address keeps its
//! sockets (so no connection waiting to be accepted is lost) and swaps what it does with new
//! connections: TLS on or off, certificates, client-certificate checks, `proxy-protocol`,
//! `redirect-https`, `max-connections`. A new address is bound on every worker before the
//! reload takes effect (a failure refuses the reload, naming the listener); a removed one
//! stops accepting and its connections finish gracefully.

use crate::config::{Config, Diagnostic, ListenerConfig};
use crate::listener::{ConnectionSlots, ListenerMode};
use crate::tls::{TlsListener, TlsSettings};
use arc_swap::ArcSwap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// What a worker is told to do: accept on one more socket.
pub struct Start {
    /// The worker's socket of the listener.
    pub socket: TcpListener,
    /// The listener's connection count over all workers.
    pub slots: Arc<ConnectionSlots>,
    /// What the listener does with a connection (swapped by reloads).
    pub mode: Arc<ArcSwap<ListenerMode>>,
    /// Turns true when the listener is removed or the process stops.
    pub stop: watch::Receiver<bool>,
}

/// One listener.
struct Running {
    /// Its manifest address (port 0 included) and the one bound.
    configured: SocketAddr,
    bound: SocketAddr,
    /// What it was last configured with, to tell a change.
    settings: Settings,
    mode: Arc<ArcSwap<ListenerMode>>,
    slots: Arc<ConnectionSlots>,
    stop: watch::Sender<bool>,
    /// Copies of its sockets, for a binary upgrade.
    sockets: Vec<TcpListener>,
}

/// A listener of the new configuration, prepared before anything changes.
enum Prepared {
    /// Running already (index into the running list), with its new mode if it changed.
    Kept(usize, Option<ListenerMode>),
    /// To be started on these sockets (one per worker).
    New(Running, Vec<TcpListener>),
}

/// The process's listeners.
pub struct ListenerSet {
    workers: Vec<mpsc::UnboundedSender<Start>>,
    running: Mutex<Vec<Running>>,
}

/// What one listener has seen, for `/metrics` and `/status`.
pub struct ListenerCounts {
    /// Its address.
    pub address: String,
    /// Whether it terminates TLS.
    pub tls: bool,
    /// Connections open now.
    pub open: usize,
    /// Connections accepted and refused (max-connections) so far.
    pub accepted: u64,
    pub refused: u64,
    /// TLS handshakes completed, failed and timed out so far.
    pub handshakes: [u64; 3],
}

impl ListenerSet {
    /// No listeners yet, for `workers` workers; each receiver goes to its worker.
    pub fn new(workers: usize) -> (ListenerSet, Vec<mpsc::UnboundedReceiver<Start>>) {
        let (senders, receivers) = (0..workers.max(1))
            .map(|_| mpsc::unbounded_channel())
            .unzip();
        let set = ListenerSet {
            workers: senders,
            running: Mutex::new(Vec::new()),
        };
        (set, receivers)
    }

    /// Make the listeners those of `config`: bind the new ones (on the sockets `inherited`
    /// from a process this one replaces first), change the kept ones, stop the removed ones.
    /// Nothing changes unless every new listener could be bound and its TLS loaded. The
    /// addresses bound for new listeners, with whether they speak TLS.
    pub fn apply(
        &self,
        config: &Config,
        mut inherited: Option<&mut crate::handover::Inherited>,
    ) -> Result<Vec<(SocketAddr, bool)>, String> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut prepared = Vec::new();
        let mut matched = vec![false; running.len()];
        for (index, l) in config.listeners.iter().enumerate() {
            let settings = settings_of(l);
            // Each running listener is kept at most once (two may be configured at port 0).
            let found =
                (0..running.len()).find(|&i| !matched[i] && running[i].configured == l.address);
            if let Some(i) = found {
                matched[i] = true;
            }
            let p = match found {
                Some(i) if running[i].settings == settings => Prepared::Kept(i, None),
                Some(i) => {
                    let tls = match (&running[i].settings.0, &l.tls) {
                        (Some(old), Some(new)) if old == new => running[i].mode.load().tls.clone(),
                        _ => tls_of(l)?,
                    };
                    Prepared::Kept(i, Some(mode_of(l, tls)))
                }
                None => {
                    let tls = tls_of(l)?;
                    let (bound, sockets) =
                        bind(index, l, inherited.as_deref_mut(), self.workers.len())?;
                    let copies = sockets.iter().filter_map(|s| s.try_clone().ok()).collect();
                    let (stop, _) = watch::channel(false);
                    let r = Running {
                        configured: l.address,
                        bound,
                        settings,
                        mode: Arc::new(ArcSwap::from_pointee(mode_of(l, tls))),
                        slots: Arc::new(ConnectionSlots::new(l.max_connections)),
                        stop,
                        sockets: copies,
                    };
                    Prepared::New(r, sockets)
                }
            };
            prepared.push(p);
        }
        // Everything is ready: change.
        let mut kept: Vec<Option<Running>> = running.drain(..).map(Some).collect();
        let mut next = Vec::new();
        let mut added = Vec::new();
        for (p, l) in prepared.into_iter().zip(&config.listeners) {
            match p {
                Prepared::Kept(i, mode) => {
                    let Some(mut r) = kept.get_mut(i).and_then(Option::take) else {
                        continue;
                    };
                    if let Some(mode) = mode {
                        tracing::info!(address = %r.bound, tls = mode.tls.is_some(), "listener changed: new connections use its new settings");
                        r.mode.store(Arc::new(mode));
                        r.slots.set_max(l.max_connections);
                        r.settings = settings_of(l);
                    }
                    next.push(r);
                }
                Prepared::New(r, sockets) => {
                    // More inherited sockets than workers: some workers take two, so that
                    // none is left with connections nobody accepts.
                    let workers = self.workers.iter().cycle();
                    for (socket, worker) in sockets.into_iter().zip(workers) {
                        let _ = worker.send(Start {
                            socket,
                            slots: r.slots.clone(),
                            mode: r.mode.clone(),
                            stop: r.stop.subscribe(),
                        });
                    }
                    added.push((r.bound, r.mode.load().tls.is_some()));
                    next.push(r);
                }
            }
        }
        for gone in kept.into_iter().flatten() {
            tracing::info!(address = %gone.bound, "listener removed: no longer accepting; its connections finish");
            let _ = gone.stop.send(true);
        }
        *running = next;
        Ok(added)
    }

    /// Stop accepting everywhere; connections finish gracefully.
    pub fn stop_all(&self) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for r in running.iter() {
            let _ = r.stop.send(true);
        }
    }

    /// The bound addresses, in manifest order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.iter().map(|r| r.bound).collect()
    }

    /// The TLS listeners, for certificate reloading.
    pub fn tls(&self) -> Vec<Arc<TlsListener>> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .iter()
            .filter_map(|r| r.mode.load().tls.clone())
            .collect()
    }

    /// Copies of the listening sockets by manifest index, for a binary upgrade.
    pub fn handed(&self) -> crate::handover::Handed {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (index, r) in running.iter().enumerate() {
            for s in &r.sockets {
                if let Ok(copy) = s.try_clone() {
                    out.push((index.to_string(), copy.into()));
                }
            }
        }
        out
    }

    /// What each listener has seen.
    pub fn counts(&self) -> Vec<ListenerCounts> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .iter()
            .map(|r| {
                let (open, accepted, refused, handshakes) = r.slots.counts();
                ListenerCounts {
                    address: r.bound.to_string(),
                    tls: r.mode.load().tls.is_some(),
                    open,
                    accepted,
                    refused,
                    handshakes,
                }
            })
            .collect()
    }
}

/// A listener's settings besides its address, to tell a change.
type Settings = (
    Option<TlsSettings>,
    Option<u16>,
    bool,
    Option<usize>,
    crate::request::client::TrustedProxies,
);

/// `http://addr` or `https://addr`.
pub fn url(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}

/// The stdout line saying where a listener listens (at start and after a reload adds one),
/// for scripts and tests.
pub fn print_listening(addr: SocketAddr, tls: bool) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "weir: listening on {}", url(addr, tls));
    let _ = out.flush();
}

fn settings_of(l: &ListenerConfig) -> Settings {
    (
        l.tls.clone(),
        l.redirect_https,
        l.proxy_protocol,
        l.max_connections,
        l.trusted_proxies.clone(),
    )
}

fn mode_of(l: &ListenerConfig, tls: Option<Arc<TlsListener>>) -> ListenerMode {
    ListenerMode {
        tls,
        redirect_https: l.redirect_https,
        proxy_protocol: l.proxy_protocol,
        trusted_proxies: l.trusted_proxies.clone(),
    }
}

/// The listener's certificates, loaded now; an error names the listener.
fn tls_of(l: &ListenerConfig) -> Result<Option<Arc<TlsListener>>, String> {
    let Some(settings) = &l.tls else {
        return Ok(None);
    };
    TlsListener::new(settings.clone())
        .map(|t| Some(Arc::new(t)))
        .map_err(|e| {
            Diagnostic {
                message: format!("listeners.tls: {e}"),
                ..l.location.clone()
            }
            .to_string()
        })
}

/// One socket per worker for listener `index` at `l.address`: those `inherited` first, the
/// rest bound afresh. The first fixes the port (so port 0 works), the others share it.
fn bind(
    index: usize,
    l: &ListenerConfig,
    inherited: Option<&mut crate::handover::Inherited>,
    workers: usize,
) -> Result<(SocketAddr, Vec<TcpListener>), String> {
    let configured = l.address;
    let cannot = |e: std::io::Error| {
        Diagnostic {
            message: format!("listeners[{index}]: cannot listen on {configured}: {e}"),
            ..l.location.clone()
        }
        .to_string()
    };
    let mut sockets = inherited.map_or_else(Vec::new, |i| i.listener(index, configured));
    let mut addr = match sockets.first() {
        Some(s) => s.local_addr().map_err(cannot)?,
        None => configured,
    };
    while sockets.len() < workers {
        let socket = bind_reuseport(addr).map_err(cannot)?;
        addr = socket.local_addr().map_err(cannot)?;
        sockets.push(socket);
    }
    Ok((addr, sockets))
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}
