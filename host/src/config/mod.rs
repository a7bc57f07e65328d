//! The manifest: reading, validating and resolving it into a [`Config`].
//!
//! Every problem is reported with the manifest's path, line and column, and all problems are
//! collected rather than stopping at the first.

mod admin;
mod diagnostic;
mod duration;
mod manifest;
mod request;

pub use diagnostic::{Diagnostic, Diagnostics, SourceMap};
pub use duration::parse as parse_duration;

use crate::balance::{Algorithm, HashKey};
use crate::health::{ActiveCheck, Passive};
use crate::route::{HeaderMatch, HostMatch, PathMatch};
use crate::upstream::pool::{Protocol, Transport};
use http::uri::Authority;
use manifest::Manifest;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default time to wait for an upstream's response head.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time to wait for a TCP connection to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest silence within an upstream's response body (nginx's proxy_read_timeout).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default CPU deadline of one filter hook call.
pub const DEFAULT_CPU_DEADLINE: Duration = Duration::from_millis(5);
/// Default linear-memory limit of one filter instance.
pub const DEFAULT_MEMORY_LIMIT: usize = 16 << 20;

/// Default largest body a filter may buffer, per direction.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// Default outbound HTTP time budget of one hook call.
pub const DEFAULT_OUTBOUND_TIMEOUT: Duration = Duration::from_secs(1);
/// Default number of entries in a filter's shared store.
pub const DEFAULT_STORE_MAX_ENTRIES: usize = 10_000;
/// Default status of a fail-closed answer.
pub const DEFAULT_FAILURE_STATUS: u16 = 503;

/// Default grace period for requests in flight on stop.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Config {
    /// Resolves places in the manifest for later errors (e.g. a filter refusing its config).
    pub source: SourceMap,
    /// Folder holding the filters' `.wasm` files.
    pub plugins_dir: PathBuf,
    /// Grace period for requests in flight on stop.
    pub shutdown_timeout: Duration,
    /// Whether to log one line per request.
    pub access_log: bool,
    /// Worker threads (each a single-threaded runtime with its own listeners and pools).
    pub workers: usize,
    /// Where to listen.
    pub listeners: Vec<ListenerConfig>,
    /// Limits on what clients send.
    pub limits: ClientLimits,
    /// How requests are made canonical (escaped slashes, underscores).
    pub rules: crate::request::Rules,
    /// Address of the admin endpoint, if any.
    pub admin: Option<SocketAddr>,
    /// Bearer token the admin endpoint requires, if any.
    pub admin_token: Option<String>,
    /// Whether to watch the manifest and plugins and reload on change.
    pub watch: bool,
    /// Folder of the on-disk compile cache, or `None` to compile every time.
    pub compile_cache: Option<PathBuf>,
    /// Upstreams, by index.
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, in manifest order (the route table orders them by specificity).
    pub routes: Vec<RouteConfig>,
    /// Filters, by index.
    pub filters: Vec<FilterConfig>,
}

/// A validated listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Address to bind.
    pub address: SocketAddr,
    /// Most connections open at once.
    pub max_connections: Option<usize>,
    /// TLS settings when the listener terminates TLS.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Redirect every request to https on this port (plaintext listeners).
    pub redirect_https: Option<u16>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: crate::request::client::TrustedProxies,
    /// Where the listener is in the manifest, for certificate errors.
    pub location: Diagnostic,
}

/// Limits on what clients send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// Largest request head, in bytes (431 beyond).
    pub max_header_size: usize,
    /// Most request headers (431 beyond).
    pub max_headers: usize,
    /// Time to receive a request head.
    pub header_read_timeout: Duration,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_size: Option<u64>,
    /// Most concurrent streams per HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
}

/// A validated upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Its name in the manifest.
    pub name: String,
    /// `host:port` targets.
    pub targets: Vec<Authority>,
    /// Their weights, in the same order (1 unless configured).
    pub weights: Vec<u32>,
    /// How requests are spread over the targets.
    pub balance: Algorithm,
    /// Sticky sessions: (cookie name, secret).
    pub sticky: Option<(String, String)>,
    /// Further attempts after a retryable failure.
    pub retries: u32,
    /// Most requests in flight (circuit breaker).
    pub max_requests: u64,
    /// Idle timeout of upgraded connections.
    pub upgrade_idle_timeout: Duration,
    /// Protocol and TLS spoken to the targets.
    pub transport: Transport,
    /// Active health checks, if any.
    pub health: Option<ActiveCheck>,
    /// Passive outlier ejection.
    pub passive: Passive,
    /// Time to wait for the response head.
    pub timeout: Duration,
    /// Time to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Longest silence within a response body.
    pub idle_timeout: Duration,
    /// Time limit of a whole exchange.
    pub overall_timeout: Option<Duration>,
    /// Most requests waiting for a response head.
    pub max_pending: u64,
    /// How long idle keep-alive connections are kept.
    pub pool_idle_timeout: Duration,
    /// Time between two resolutions of target host names.
    pub resolve_interval: Duration,
}

/// Time limits a route sets instead of its upstream's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteTimeouts {
    /// Response head.
    pub timeout: Option<Duration>,
    /// Longest silence within the response body.
    pub idle: Option<Duration>,
    /// Whole exchange.
    pub overall: Option<Duration>,
}

/// Manifest-wide upstream defaults.
struct UpstreamDefaults<'a> {
    timeout: Duration,
    connect_timeout: Duration,
    idle_timeout: Duration,
    overall_timeout: Option<Duration>,
    /// The manifest's folder (relative file names).
    base: &'a Path,
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Host condition, or `None` for any.
    pub host: Option<HostMatch>,
    /// Path condition.
    pub path: PathMatch,
    /// Methods to match; empty for any.
    pub methods: Vec<http::Method>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
    /// (index into [`Config::upstreams`], weight).
    pub backends: Vec<(usize, u32)>,
    /// Indexes into [`Config::filters`], in request order.
    pub filters: Vec<usize>,
    /// Time limits overriding the upstream's.
    pub timeouts: RouteTimeouts,
    /// `Upgrade` protocols passed on (lower-case).
    pub upgrades: Vec<String>,
}

/// A validated filter entry.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    /// Its name in the manifest.
    pub name: String,
    /// Full path of the component file.
    pub plugin_path: PathBuf,
    /// The `config` table as JSON (`{}` when absent).
    pub config_json: String,
    /// Whether the filter may write to the proxy's stdout/stderr.
    pub inherit_stdio: bool,
    /// CPU time one hook call may take; beyond it the call traps.
    pub cpu_deadline: Duration,
    /// Largest linear memory, in bytes; growing beyond it traps the call.
    pub memory_limit: usize,
    /// Fuel one hook call may burn; `None` for unlimited.
    pub fuel: Option<u64>,
    /// What a failing call does to its request.
    pub on_failure: FailurePolicy,
    /// Instance reuse.
    pub isolation: Isolation,
    /// Recycle a pooled instance after this many requests.
    pub max_requests_per_instance: Option<u64>,
    /// Largest body the filter may buffer, per direction.
    pub body_limit: usize,
    /// Lower-case `host:port` authorities (port 80 when not given) outbound HTTP may reach.
    pub allow_hosts: Vec<String>,
    /// Outbound HTTP time budget per hook call.
    pub outbound_timeout: Duration,
    /// Entries the filter's shared store may hold.
    pub store_max_entries: usize,
    /// Where the entry is in the manifest, for load errors.
    pub location: Diagnostic,
    /// False when the entry itself has errors, so its plugin is not worth loading.
    pub loadable: bool,
}

/// What happens to a request whose filter traps, exceeds a budget or returns garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Answer the request with this status (no internal detail in the body).
    Closed(http::StatusCode),
    /// Skip the filter for this request (its changes are undone) and go on.
    Open,
}

/// How instances of a filter are shared between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Reuse initialised instances across requests.
    Pooled,
    /// A fresh instance for every hook call: no memory survives a request.
    PerRequest,
}

impl FilterConfig {
    /// Whether two entries load to the same filter (everything but the manifest location),
    /// so a reload can keep the loaded one and its warm instances.
    pub fn same_filter(&self, other: &FilterConfig) -> bool {
        let key = |c: &FilterConfig| {
            (
                c.name.clone(),
                c.plugin_path.clone(),
                c.config_json.clone(),
                c.inherit_stdio,
                c.cpu_deadline,
                c.memory_limit,
                c.fuel,
                c.on_failure,
                c.isolation,
                c.max_requests_per_instance,
                c.body_limit,
                (
                    c.allow_hosts.clone(),
                    c.outbound_timeout,
                    c.store_max_entries,
                ),
            )
        };
        key(self) == key(other)
    }

    /// A filter entry that does not come from a manifest (embedding, tests, benchmarks).
    pub fn standalone(name: &str, plugin_path: PathBuf, config_json: &str) -> Self {
        FilterConfig {
            name: name.to_string(),
            location: SourceMap::new(&plugin_path, "").at(None, String::new()),
            plugin_path,
            config_json: config_json.to_string(),
            inherit_stdio: false,
            cpu_deadline: DEFAULT_CPU_DEADLINE,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            fuel: None,
            on_failure: FailurePolicy::Closed(http::StatusCode::SERVICE_UNAVAILABLE),
            isolation: Isolation::Pooled,
            max_requests_per_instance: None,
            body_limit: DEFAULT_BODY_LIMIT,
            allow_hosts: Vec::new(),
            outbound_timeout: DEFAULT_OUTBOUND_TIMEOUT,
            store_max_entries: DEFAULT_STORE_MAX_ENTRIES,
            loadable: true,
        }
    }
}

impl Config {
    /// Read and validate the manifest at `path`.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        match Config::load_partial(path)? {
            (config, errors) if errors.is_empty() => Ok(config),
            (_, errors) => Err(Diagnostics(errors)),
        }
    }

    /// Validate manifest text `source`, read from `path` (relative paths resolve against it).
    pub fn parse(path: &Path, source: &str) -> Result<Config, Diagnostics> {
        match Config::parse_partial(path, source)? {
            (config, errors) if errors.is_empty() => Ok(config),
            (_, errors) => Err(Diagnostics(errors)),
        }
    }

    /// Read the manifest at `path`, keeping what is valid next to the problems found, so
    /// `weir check` can go on to load the filters. Fails only when the file cannot be read
    /// or is not TOML of the right shape.
    pub fn load_partial(path: &Path) -> Result<(Config, Vec<Diagnostic>), Diagnostics> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![
                SourceMap::new(path, "").at(None, format!("cannot read manifest: {e}"))
            ])
        })?;
        Config::parse_partial(path, &source)
    }

    fn parse_partial(path: &Path, source: &str) -> Result<(Config, Vec<Diagnostic>), Diagnostics> {
        let map = SourceMap::new(path, source);
        let manifest: Manifest = toml::from_str(source).map_err(|e| {
            let message = e.message().trim_end().to_string();
            Diagnostics(vec![map.at(e.span(), message)])
        })?;
        Ok(Validator {
            map,
            errors: Vec::new(),
        }
        .run(path, manifest))
    }
}

struct Validator {
    map: SourceMap,
    errors: Vec<Diagnostic>,
}

impl Validator {
    fn error(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        self.errors.push(self.map.at(Some(span), message));
    }

    fn run(mut self, path: &Path, m: Manifest) -> (Config, Vec<Diagnostic>) {
        let base = path.parent().unwrap_or(Path::new("."));
        let plugins_dir = match &m.plugins_dir {
            Some(dir) => base.join(dir.get_ref()),
            None => base.join("plugins"),
        };
        let defaults = UpstreamDefaults {
            timeout: m.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            connect_timeout: m.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
            idle_timeout: m.idle_timeout.map_or(DEFAULT_IDLE_TIMEOUT, |d| d.0),
            overall_timeout: m.overall_timeout.map(|d| d.0),
            base,
        };

        let listeners = self.listeners(&m, base);
        let limits = self.limits(&m);
        let rules = self.request_rules(&m);
        let workers = match &m.workers {
            Some(w) if *w.get_ref() == 0 || *w.get_ref() > 1024 => {
                self.error(
                    w.span(),
                    format!("workers: {} is not in 1..=1024", w.get_ref()),
                );
                1
            }
            Some(w) => *w.get_ref(),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let upstream_index: BTreeMap<&str, usize> = m
            .upstreams
            .keys()
            .enumerate()
            .map(|(i, k)| (k.get_ref().as_str(), i))
            .collect();
        let filter_index: BTreeMap<&str, usize> = m
            .filters
            .keys()
            .enumerate()
            .map(|(i, k)| (k.get_ref().as_str(), i))
            .collect();

        let upstreams = m
            .upstreams
            .iter()
            .map(|(name, spec)| self.upstream(name, spec.get_ref(), &defaults))
            .collect();
        let routes = self.routes(&m, &upstream_index, &filter_index);
        let filters = m
            .filters
            .iter()
            .map(|(name, spec)| self.filter(&plugins_dir, name, spec))
            .collect();

        let (admin, admin_token) = self.admin(&m);
        let compile_cache = m
            .compile_cache
            .unwrap_or(true)
            .then(|| match &m.compile_cache_dir {
                Some(dir) => base.join(dir.get_ref()),
                None => default_cache_dir(),
            });
        let config = Config {
            source: self.map,
            admin,
            admin_token,
            watch: m.watch.unwrap_or(true),
            compile_cache,
            plugins_dir,
            shutdown_timeout: m.shutdown_timeout.map_or(DEFAULT_SHUTDOWN_TIMEOUT, |d| d.0),
            access_log: m.access_log.unwrap_or(true),
            workers,
            listeners,
            limits,
            rules,
            upstreams,
            routes,
            filters,
        };
        (config, self.errors)
    }

    fn limits(&mut self, m: &Manifest) -> ClientLimits {
        let size = |v: &mut Self, text: &Option<toml::Spanned<String>>, key: &str| {
            text.as_ref().and_then(|t| match parse_size(t.get_ref()) {
                Ok(n) => Some((n, t.span())),
                Err(why) => {
                    v.error(t.span(), format!("{key}: {why}"));
                    None
                }
            })
        };
        let max_header_size = match size(self, &m.max_header_size, "max-header-size") {
            None => 64 << 10,
            Some((n, _)) if (8192..=(1 << 20)).contains(&n) => n,
            Some((_, span)) => {
                self.error(span, "max-header-size: must be between 8KiB and 1MiB");
                64 << 10
            }
        };
        let max_headers = m
            .max_headers
            .as_ref()
            .and_then(|n| self.in_range(n, "max-headers", 1..=10_000))
            .map_or(100, |n| n as usize);
        ClientLimits {
            max_header_size,
            max_headers,
            header_read_timeout: m
                .header_read_timeout
                .map_or(Duration::from_secs(30), |d| d.0),
            max_body_size: size(self, &m.max_body_size, "max-body-size").map(|(n, _)| n as u64),
            http2_max_concurrent_streams: m
                .http2_max_concurrent_streams
                .as_ref()
                .and_then(|n| self.in_range(n, "http2-max-concurrent-streams", 1..=10_000))
                .map_or(100, |n| n as u32),
        }
    }

    fn listeners(&mut self, m: &Manifest, base: &Path) -> Vec<ListenerConfig> {
        if m.listeners.is_empty() {
            self.errors.push(self.map.at(
                None,
                "no listeners: add a [[listeners]] table with an `address`",
            ));
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for l in &m.listeners {
            let a = &l.get_ref().address;
            let max_connections = l
                .get_ref()
                .max_connections
                .as_ref()
                .and_then(|n| self.positive(n, "listeners.max-connections"))
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            match a.get_ref().parse::<SocketAddr>() {
                // Port 0 asks for any free port: several such listeners do not collide.
                Ok(addr) if addr.port() != 0 && !seen.insert(addr) => {
                    self.error(a.span(), format!("listeners.address: {addr} is listed twice"))
                }
                Ok(address) => {
                    let tls = l
                        .get_ref()
                        .tls
                        .as_ref()
                        .map(|t| self.listener_tls(t, base));
                    let redirect_https = self.redirect_https(l.get_ref(), tls.is_some());
                    let trusted_proxies = self.trusted_proxies(l.get_ref());
                    out.push(ListenerConfig {
                        address,
                        max_connections,
                        tls,
                        redirect_https,
                        trusted_proxies,
                        location: self.map.at(Some(a.span()), String::new()),
                    })
                }
                Err(_) => self.error(
                    a.span(),
                    format!(
                        "listeners.address: {:?} is not an ip:port address (e.g. \"127.0.0.1:8080\")",
                        a.get_ref()
                    ),
                ),
            }
        }
        out
    }

    fn listener_tls(
        &mut self,
        t: &toml::Spanned<manifest::TlsSpec>,
        base: &Path,
    ) -> crate::tls::TlsSettings {
        let spec = t.get_ref();
        if spec.certificates.is_empty() {
            self.error(
                t.span(),
                "listeners.tls.certificates: at least one certificate is required",
            );
        }
        let certificates = spec
            .certificates
            .iter()
            .map(|c| crate::tls::CertFiles {
                cert: base.join(c.get_ref().cert.get_ref()),
                key: base.join(c.get_ref().key.get_ref()),
            })
            .collect();
        let required = match spec.client_auth.as_ref() {
            None => true,
            Some(a) => match a.get_ref().as_str() {
                "required" => true,
                "optional" => false,
                other => {
                    self.error(
                        a.span(),
                        format!("listeners.tls.client-auth: {other:?} is not required or optional"),
                    );
                    true
                }
            },
        };
        if let (None, Some(a)) = (&spec.client_ca, &spec.client_auth) {
            self.error(
                a.span(),
                "listeners.tls.client-auth: needs client-ca (the CAs that issue client certificates)",
            );
        }
        crate::tls::TlsSettings {
            certificates,
            client_auth: spec.client_ca.as_ref().map(|ca| crate::tls::ClientAuth {
                ca: base.join(ca.get_ref()),
                required,
            }),
        }
    }

    fn redirect_https(&mut self, l: &manifest::ListenerSpec, tls: bool) -> Option<u16> {
        let port = l
            .https_port
            .as_ref()
            .and_then(|p| self.in_range(p, "listeners.https-port", 1..=65535))
            .map_or(443, |p| p as u16);
        match &l.redirect_https {
            Some(r) if *r.get_ref() && tls => {
                self.error(
                    r.span(),
                    "listeners.redirect-https: this listener terminates TLS already; redirect from a plaintext listener",
                );
                None
            }
            Some(r) if *r.get_ref() => Some(port),
            _ => {
                if let Some(p) = &l.https_port {
                    self.error(
                        p.span(),
                        "listeners.https-port: only used with redirect-https = true",
                    );
                }
                None
            }
        }
    }

    fn transport(&mut self, name: &str, spec: &manifest::UpstreamSpec, base: &Path) -> Transport {
        let field = |f: &str| format!("upstreams.{name}.{f}");
        let tls = spec.tls.as_ref().and_then(|t| {
            let settings = self.upstream_tls(&field("tls"), t.get_ref(), base);
            match crate::upstream::tls::UpstreamTls::load(&settings) {
                Ok(tls) => Some(tls),
                Err(e) => {
                    self.error(t.span(), format!("{}: {e}", field("tls")));
                    None
                }
            }
        });
        let protocol = match spec
            .protocol
            .as_ref()
            .map(|p| (p.get_ref().as_str(), p.span()))
        {
            None | Some(("http1", _)) => Protocol::Http1,
            Some(("h2c", span)) if spec.tls.is_some() => {
                self.error(
                    span,
                    format!(
                        "{}: h2c is cleartext; over tls use h2 or auto",
                        field("protocol")
                    ),
                );
                Protocol::Http1
            }
            Some(("h2c", _)) => Protocol::H2c,
            Some((p @ ("h2" | "auto"), span)) if spec.tls.is_none() => {
                self.error(
                    span,
                    format!(
                        "{}: {p} is negotiated by TLS ALPN and needs tls; for cleartext HTTP/2 use h2c",
                        field("protocol")
                    ),
                );
                Protocol::Http1
            }
            Some(("h2", _)) => Protocol::H2,
            Some(("auto", _)) => Protocol::Auto,
            Some((other, span)) => {
                self.error(
                    span,
                    format!(
                        "{}: {other:?} is not http1, h2c, h2 or auto",
                        field("protocol")
                    ),
                );
                Protocol::Http1
            }
        };
        Transport { protocol, tls }
    }

    fn upstream_tls(
        &mut self,
        field: &str,
        t: &manifest::UpstreamTlsSpec,
        base: &Path,
    ) -> crate::upstream::tls::TlsSpec {
        let client_cert = match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => Some(crate::tls::CertFiles {
                cert: base.join(cert.get_ref()),
                key: base.join(key.get_ref()),
            }),
            (Some(only), None) | (None, Some(only)) => {
                self.error(
                    only.span(),
                    format!("{field}: a client certificate needs both cert and key"),
                );
                None
            }
            (None, None) => None,
        };
        let verify = t.verify.as_ref().is_none_or(|v| *v.get_ref());
        if let (false, Some(ca)) = (verify, &t.ca) {
            self.error(
                ca.span(),
                format!("{field}.ca: unused with verify = false (remove one of them)"),
            );
        }
        crate::upstream::tls::TlsSpec {
            ca: t.ca.as_ref().map(|c| base.join(c.get_ref())),
            server_name: t.server_name.as_ref().map(|n| n.get_ref().clone()),
            client_cert,
            verify,
        }
    }

    fn upstream(
        &mut self,
        name: &toml::Spanned<String>,
        spec: &manifest::UpstreamSpec,
        defaults: &UpstreamDefaults<'_>,
    ) -> UpstreamConfig {
        if spec.targets.get_ref().is_empty() {
            self.error(
                spec.targets.span(),
                format!(
                    "upstreams.{}.targets: at least one target is required",
                    name.get_ref()
                ),
            );
        }
        let mut targets = Vec::new();
        for t in spec.targets.get_ref() {
            match parse_target(t.get_ref()) {
                Ok(a) => targets.push(a),
                Err(why) => self.error(
                    t.span(),
                    format!(
                        "upstreams.{}.targets: {:?} {why}",
                        name.get_ref(),
                        t.get_ref()
                    ),
                ),
            }
        }
        let field = |key: &str| format!("upstreams.{}.{key}", name.get_ref());
        let mut weights = vec![1; targets.len()];
        for (target, w) in &spec.weights {
            let Some(i) = spec
                .targets
                .get_ref()
                .iter()
                .position(|t| t.get_ref() == target.get_ref())
            else {
                self.error(
                    target.span(),
                    format!(
                        "{}: {:?} is not one of the targets",
                        field("weights"),
                        target.get_ref()
                    ),
                );
                continue;
            };
            if let (Some(v), Some(slot)) = (
                self.in_range(w, &field("weights"), 1..=10_000),
                weights.get_mut(i),
            ) {
                *slot = v as u32;
            }
        }
        let hash_key = match &spec.hash_key {
            None => HashKey::ClientIp,
            Some(k) => {
                match k.get_ref().as_str() {
                    "client-ip" => HashKey::ClientIp,
                    other => {
                        let parsed = if let Some(h) = other.strip_prefix("header:") {
                            http::HeaderName::from_bytes(h.as_bytes())
                                .ok()
                                .map(HashKey::Header)
                        } else {
                            other
                                .strip_prefix("cookie:")
                                .filter(|c| !c.is_empty() && !c.contains([';', '=', ' ']))
                                .map(|c| HashKey::Cookie(c.to_string()))
                        };
                        parsed.unwrap_or_else(|| {
                        self.error(
                            k.span(),
                            format!("{}: {other:?} is not client-ip, header:<name> or cookie:<name>", field("hash-key")),
                        );
                        HashKey::ClientIp
                    })
                    }
                }
            }
        };
        let balance = match spec
            .balance
            .as_ref()
            .map(|b| (b.get_ref().as_str(), b.span()))
        {
            None | Some(("round-robin", _)) => Algorithm::RoundRobin,
            Some(("weighted", _)) => Algorithm::Weighted,
            Some(("least-connections", _)) => Algorithm::LeastConnections,
            Some(("p2c", _)) => Algorithm::PowerOfTwo,
            Some(("consistent-hash", _)) => Algorithm::ConsistentHash(hash_key.clone()),
            Some((other, span)) => {
                self.error(
                    span,
                    format!(
                        "{}: {other:?} is not round-robin, weighted, least-connections, p2c or consistent-hash",
                        field("balance")
                    ),
                );
                Algorithm::RoundRobin
            }
        };
        if let (Some(k), false) = (
            &spec.hash_key,
            matches!(balance, Algorithm::ConsistentHash(_)),
        ) {
            self.error(
                k.span(),
                format!(
                    "{}: only applies with balance = \"consistent-hash\"",
                    field("hash-key")
                ),
            );
        }
        let sticky = spec.sticky_cookie.as_ref().map(|c| {
            if c.get_ref().is_empty()
                || !c
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                self.error(
                    c.span(),
                    format!(
                        "{}: {:?} is not a cookie name (letters, digits, - and _)",
                        field("sticky-cookie"),
                        c.get_ref()
                    ),
                );
            }
            let secret = spec
                .sticky_secret
                .clone()
                .unwrap_or_else(|| process_secret().to_string());
            (c.get_ref().clone(), secret)
        });
        let count =
            |v: &mut Self, n: &Option<toml::Spanned<i64>>, key: &str, default: u32, max: u32| {
                n.as_ref()
                    .and_then(|n| v.in_range(n, &field(key), 1..=u64::from(max)))
                    .map_or(default, |n| n as u32)
            };
        let health = spec.health.as_ref().map(|h| {
            let h = h.get_ref();
            if let Some(p) = &h.path {
                if !p.get_ref().starts_with('/') {
                    self.error(
                        p.span(),
                        format!(
                            "{}: {:?} must start with '/'",
                            field("health.path"),
                            p.get_ref()
                        ),
                    );
                }
            }
            let expect_status = h.expect_status.as_ref().and_then(|st| {
                match u16::try_from(*st.get_ref())
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                {
                    Some(s) => Some(s),
                    None => {
                        self.error(
                            st.span(),
                            format!(
                                "{}: {} is not a status",
                                field("health.expect-status"),
                                st.get_ref()
                            ),
                        );
                        None
                    }
                }
            });
            ActiveCheck {
                path: h.path.as_ref().map(|p| p.get_ref().clone()),
                expect_status,
                interval: h.interval.map_or(Duration::from_secs(5), |d| d.0),
                timeout: h.timeout.map_or(Duration::from_secs(1), |d| d.0),
                rise: count(self, &h.rise, "health.rise", 2, 100),
                fall: count(self, &h.fall, "health.fall", 3, 100),
            }
        });
        let passive = match &spec.passive {
            None => Passive::default(),
            Some(p) => {
                let p = p.get_ref();
                Passive {
                    consecutive_failures: count(
                        self,
                        &p.consecutive_failures,
                        "passive.consecutive-failures",
                        5,
                        1000,
                    ),
                    cooldown: p.cooldown.map_or(Duration::from_secs(30), |d| d.0),
                    max_ejected_percent: p
                        .max_ejected_percent
                        .as_ref()
                        .and_then(|n| {
                            self.in_range(n, &field("passive.max-ejected-percent"), 0..=100)
                        })
                        .map_or(50, |n| n as u32),
                }
            }
        };
        let retries = spec
            .retries
            .as_ref()
            .and_then(|n| self.in_range(n, &field("retries"), 0..=10))
            .map_or(1, |n| n as u32);
        let max_requests = u64::from(count(
            self,
            &spec.max_requests,
            "max-requests",
            10_000,
            1_000_000,
        ));
        UpstreamConfig {
            name: name.get_ref().clone(),
            weights,
            balance,
            sticky,
            retries,
            max_requests,
            transport: self.transport(name.get_ref(), spec, defaults.base),
            upgrade_idle_timeout: spec
                .upgrade_idle_timeout
                .map_or(crate::upgrade::DEFAULT_IDLE_TIMEOUT, |d| d.0),
            health,
            passive,
            targets,
            timeout: spec.timeout.map_or(defaults.timeout, |d| d.0),
            connect_timeout: spec
                .connect_timeout
                .map_or(defaults.connect_timeout, |d| d.0),
            idle_timeout: spec.idle_timeout.map_or(defaults.idle_timeout, |d| d.0),
            overall_timeout: spec
                .overall_timeout
                .map(|d| d.0)
                .or(defaults.overall_timeout),
            max_pending: u64::from(count(
                self,
                &spec.max_pending,
                "max-pending",
                1_000,
                1_000_000,
            )),
            pool_idle_timeout: spec
                .pool_idle_timeout
                .map_or(crate::upstream::pool::POOL_IDLE_TIMEOUT, |d| d.0),
            resolve_interval: spec
                .resolve_interval
                .map_or(crate::upstream::resolve::DEFAULT_INTERVAL, |d| d.0),
        }
    }

    fn routes(
        &mut self,
        m: &Manifest,
        upstreams: &BTreeMap<&str, usize>,
        filters: &BTreeMap<&str, usize>,
    ) -> Vec<RouteConfig> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (i, r) in m.routes.iter().enumerate() {
            let span = r.span();
            let r = r.get_ref();
            let host = r.host.as_ref().map(|h| self.route_host(i, h));
            let path = self.route_path(i, r, span.clone());
            let mut methods = Vec::new();
            for meth in &r.methods {
                match http::Method::from_bytes(meth.get_ref().to_ascii_uppercase().as_bytes()) {
                    Ok(x) if x == http::Method::CONNECT => self.error(
                        meth.span(),
                        format!("routes[{i}].methods: CONNECT is not proxied"),
                    ),
                    Ok(x) => methods.push(x),
                    Err(_) => self.error(
                        meth.span(),
                        format!("routes[{i}].methods: {:?} is not a method", meth.get_ref()),
                    ),
                }
            }
            let mut headers = Vec::new();
            for (name, value) in &r.headers {
                match http::HeaderName::from_bytes(name.get_ref().as_bytes()) {
                    Ok(n) => {
                        headers.push((n, (value.get_ref() != "*").then(|| value.get_ref().clone())))
                    }
                    Err(_) => self.error(
                        name.span(),
                        format!(
                            "routes[{i}].headers: {:?} is not a header name",
                            name.get_ref()
                        ),
                    ),
                }
            }
            let key = format!(
                "{host:?} {:?} {} {methods:?} {headers:?}",
                path.rank_name(),
                path.as_str()
            );
            if !seen.insert(key) {
                self.error(
                    span.clone(),
                    format!(
                        "routes[{i}]: another route already matches the same host, path, methods and headers"
                    ),
                );
            }
            let backends = self.route_backends(i, r, span, upstreams);
            let mut chain = Vec::new();
            for f in &r.filters {
                match filters.get(f.get_ref().as_str()) {
                    Some(&idx) if chain.contains(&idx) => self.error(
                        f.span(),
                        format!("routes[{i}].filters: {:?} is listed twice", f.get_ref()),
                    ),
                    Some(&idx) => chain.push(idx),
                    None => self.error(
                        f.span(),
                        format!(
                            "routes[{i}].filters: no filter named {:?} (defined: {})",
                            f.get_ref(),
                            list(filters.keys())
                        ),
                    ),
                }
            }
            out.push(RouteConfig {
                host,
                path,
                methods,
                headers,
                backends,
                filters: chain,
                timeouts: RouteTimeouts {
                    timeout: r.timeout.map(|d| d.0),
                    idle: r.idle_timeout.map(|d| d.0),
                    overall: r.overall_timeout.map(|d| d.0),
                },
                upgrades: self.route_upgrades(i, r),
            });
        }
        if m.routes.is_empty() {
            self.errors.push(
                self.map
                    .at(None, "no routes: add a [[routes]] table with an `upstream`"),
            );
        }
        out
    }

    fn route_host(&mut self, i: usize, h: &toml::Spanned<String>) -> HostMatch {
        let host = h.get_ref().to_ascii_lowercase();
        let (name, wildcard) = match host.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (host.as_str(), false),
        };
        if name.is_empty() || name.contains(['/', ' ', ':', '*']) {
            self.error(
                h.span(),
                format!(
                    "routes[{i}].host: {:?} is not a host name or *.wildcard (no port, scheme or path)",
                    h.get_ref()
                ),
            );
        }
        if wildcard {
            HostMatch::Wildcard(format!(".{name}"))
        } else {
            HostMatch::Exact(host)
        }
    }

    fn route_path(
        &mut self,
        i: usize,
        r: &manifest::RouteSpec,
        span: std::ops::Range<usize>,
    ) -> PathMatch {
        let given: Vec<&toml::Spanned<String>> = [&r.path, &r.path_exact, &r.path_regex]
            .into_iter()
            .flatten()
            .collect();
        if given.len() > 1 {
            self.error(
                span,
                format!("routes[{i}]: give one of path, path-exact and path-regex"),
            );
        }
        let literal = |v: &mut Self, p: &toml::Spanned<String>, key: &str| {
            if !p.get_ref().starts_with('/') {
                v.error(
                    p.span(),
                    format!("routes[{i}].{key}: {:?} must start with '/'", p.get_ref()),
                );
            } else {
                v.normal_route_path(i, key, p);
            }
            p.get_ref().clone()
        };
        if let Some(p) = &r.path_exact {
            return PathMatch::Exact(literal(self, p, "path-exact"));
        }
        if let Some(p) = &r.path_regex {
            return match regex::Regex::new(p.get_ref()) {
                Ok(re) => PathMatch::Regex(re),
                Err(e) => {
                    let why = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    self.error(
                        p.span(),
                        format!(
                            "routes[{i}].path-regex: {:?} is not a valid regex: {why}",
                            p.get_ref()
                        ),
                    );
                    PathMatch::Prefix("/".into())
                }
            };
        }
        match &r.path {
            Some(p) => PathMatch::Prefix(literal(self, p, "path")),
            None => PathMatch::Prefix("/".into()),
        }
    }

    fn route_backends(
        &mut self,
        i: usize,
        r: &manifest::RouteSpec,
        span: std::ops::Range<usize>,
        upstreams: &BTreeMap<&str, usize>,
    ) -> Vec<(usize, u32)> {
        let lookup = |v: &mut Self, name: &toml::Spanned<String>, key: &str| match upstreams
            .get(name.get_ref().as_str())
        {
            Some(&u) => Some(u),
            None => {
                v.error(
                    name.span(),
                    format!(
                        "routes[{i}].{key}: no upstream named {:?} (defined: {})",
                        name.get_ref(),
                        list(upstreams.keys())
                    ),
                );
                None
            }
        };
        match (&r.upstream, r.backends.is_empty()) {
            (Some(u), true) => lookup(self, u, "upstream")
                .map(|u| vec![(u, 1)])
                .unwrap_or_default(),
            (None, false) => {
                let mut out = Vec::new();
                for b in &r.backends {
                    let b = b.get_ref();
                    let weight = b
                        .weight
                        .as_ref()
                        .and_then(|w| {
                            self.in_range(w, &format!("routes[{i}].backends.weight"), 0..=10_000)
                        })
                        .map_or(1, |w| w as u32);
                    if let Some(u) = lookup(self, &b.upstream, "backends.upstream") {
                        out.push((u, weight));
                    }
                }
                if !out.is_empty() && out.iter().all(|(_, w)| *w == 0) {
                    self.error(
                        span,
                        format!("routes[{i}].backends: every weight is 0, so the route could send nowhere"),
                    );
                }
                out
            }
            (Some(_), false) => {
                self.error(
                    span,
                    format!("routes[{i}]: give `upstream` or `backends`, not both"),
                );
                Vec::new()
            }
            (None, true) => {
                self.error(
                    span,
                    format!("routes[{i}]: no `upstream` (or `backends`) to send to"),
                );
                Vec::new()
            }
        }
    }

    fn filter(
        &mut self,
        plugins_dir: &Path,
        name: &toml::Spanned<String>,
        spec: &toml::Spanned<manifest::FilterSpec>,
    ) -> FilterConfig {
        let s = spec.get_ref();
        let plugin = s.plugin.get_ref();
        let errors_before = self.errors.len();
        if plugin.is_empty()
            || plugin.contains('/')
            || plugin.contains('\\')
            || plugin.starts_with('.')
        {
            self.error(
                s.plugin.span(),
                format!(
                    "filters.{}.plugin: {plugin:?} must be a file name inside the plugins directory {}",
                    name.get_ref(),
                    plugins_dir.display()
                ),
            );
        }
        let config_json = match &s.config {
            None => "{}".to_string(),
            Some(table) => match serde_json::to_string(table.get_ref()) {
                Ok(json) => json,
                Err(e) => {
                    self.error(
                        table.span(),
                        format!("filters.{}.config: {e}", name.get_ref()),
                    );
                    String::new()
                }
            },
        };
        let memory_limit = match &s.memory_limit {
            None => DEFAULT_MEMORY_LIMIT,
            Some(text) => match parse_size(text.get_ref()) {
                Ok(n) if (1 << 20..=crate::filter::MAX_MEMORY_LIMIT).contains(&n) => n,
                Ok(_) => {
                    self.error(
                        text.span(),
                        format!(
                            "filters.{}.memory-limit: must be between 1MiB and 1GiB",
                            name.get_ref()
                        ),
                    );
                    DEFAULT_MEMORY_LIMIT
                }
                Err(why) => {
                    self.error(
                        text.span(),
                        format!("filters.{}.memory-limit: {why}", name.get_ref()),
                    );
                    DEFAULT_MEMORY_LIMIT
                }
            },
        };
        let field = |key: &str| format!("filters.{}.{key}", name.get_ref());
        let fuel = s
            .fuel
            .as_ref()
            .and_then(|f| self.positive(f, &field("fuel")));
        let failure_status = match &s.failure_status {
            None => http::StatusCode::SERVICE_UNAVAILABLE,
            Some(st) => match u16::try_from(*st.get_ref()).ok().and_then(|n| {
                (400..=599)
                    .contains(&n)
                    .then(|| http::StatusCode::from_u16(n).ok())
                    .flatten()
            }) {
                Some(code) => code,
                None => {
                    self.error(
                        st.span(),
                        format!(
                            "{}: {} is not an error status (400..=599)",
                            field("failure-status"),
                            st.get_ref()
                        ),
                    );
                    http::StatusCode::SERVICE_UNAVAILABLE
                }
            },
        };
        let on_failure = match s
            .on_failure
            .as_ref()
            .map(|p| (p.get_ref().as_str(), p.span()))
        {
            None | Some(("fail-closed", _)) => FailurePolicy::Closed(failure_status),
            Some(("fail-open", _)) => {
                if let Some(st) = &s.failure_status {
                    self.error(
                        st.span(),
                        format!(
                            "{}: only applies with on-failure = \"fail-closed\"",
                            field("failure-status")
                        ),
                    );
                }
                FailurePolicy::Open
            }
            Some((other, span)) => {
                self.error(
                    span,
                    format!(
                        "{}: {other:?} is not \"fail-closed\" or \"fail-open\"",
                        field("on-failure")
                    ),
                );
                FailurePolicy::Closed(failure_status)
            }
        };
        let isolation = match s
            .isolation
            .as_ref()
            .map(|p| (p.get_ref().as_str(), p.span()))
        {
            None | Some(("pooled", _)) => Isolation::Pooled,
            Some(("per-request", _)) => Isolation::PerRequest,
            Some((other, span)) => {
                self.error(
                    span,
                    format!(
                        "{}: {other:?} is not \"pooled\" or \"per-request\"",
                        field("isolation")
                    ),
                );
                Isolation::Pooled
            }
        };
        let max_requests_per_instance = s
            .max_requests_per_instance
            .as_ref()
            .and_then(|n| self.positive(n, &field("max-requests-per-instance")));
        let body_limit = match &s.body_limit {
            None => DEFAULT_BODY_LIMIT,
            Some(text) => parse_size(text.get_ref()).unwrap_or_else(|why| {
                self.error(text.span(), format!("{}: {why}", field("body-limit")));
                DEFAULT_BODY_LIMIT
            }),
        };
        let mut allow_hosts = Vec::new();
        for h in &s.allow_hosts {
            match parse_allowed_host(h.get_ref()) {
                Ok(a) => allow_hosts.push(a),
                Err(why) => self.error(
                    h.span(),
                    format!("{}: {:?} {why}", field("allow-hosts"), h.get_ref()),
                ),
            }
        }
        let store_max_entries = s
            .store_max_entries
            .as_ref()
            .and_then(|n| self.positive(n, &field("store-max-entries")))
            .map_or(DEFAULT_STORE_MAX_ENTRIES, |n| n as usize);
        FilterConfig {
            name: name.get_ref().clone(),
            plugin_path: plugins_dir.join(plugin),
            config_json,
            inherit_stdio: s.inherit_stdio.unwrap_or(false),
            cpu_deadline: s.cpu_deadline.map_or(DEFAULT_CPU_DEADLINE, |d| d.0),
            memory_limit,
            fuel,
            on_failure,
            isolation,
            max_requests_per_instance,
            body_limit,
            allow_hosts,
            outbound_timeout: s.outbound_timeout.map_or(DEFAULT_OUTBOUND_TIMEOUT, |d| d.0),
            store_max_entries,
            location: self.map.at(Some(s.plugin.span()), String::new()),
            loadable: self.errors.len() == errors_before,
        }
    }
}

impl Validator {
    /// A whole number within `range`, or an error naming `field`.
    fn in_range(
        &mut self,
        n: &toml::Spanned<i64>,
        field: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        match u64::try_from(*n.get_ref()) {
            Ok(v) if range.contains(&v) => Some(v),
            _ => {
                self.error(
                    n.span(),
                    format!(
                        "{field}: {} is not in {}..={}",
                        n.get_ref(),
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A positive whole number, or an error naming `field`.
    fn positive(&mut self, n: &toml::Spanned<i64>, field: &str) -> Option<u64> {
        match u64::try_from(*n.get_ref()) {
            Ok(v) if v > 0 => Some(v),
            _ => {
                self.error(
                    n.span(),
                    format!("{field}: {} is not a positive number", n.get_ref()),
                );
                None
            }
        }
    }
}

/// A random key made once per process, so sticky cookies survive reloads.
fn process_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| {
        let mut b = [0u8; 16];
        let _ = getrandom::fill(&mut b);
        crate::hex::encode(&b)
    })
}

/// The compile cache's default folder: `$XDG_CACHE_HOME/weir`, `~/.cache/weir`, or a
/// per-user folder under the temporary directory.
fn default_cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("XDG_CACHE_HOME") {
        return dir.join("weir");
    }
    if let Some(home) = env("HOME") {
        return home.join(".cache").join("weir");
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("weir-cache-{uid}"))
}

/// `host` or `host:port` → lower-case `host:port` (port 80 when absent).
fn parse_allowed_host(text: &str) -> Result<String, &'static str> {
    if text.contains(['/', '@', ' ']) || text.is_empty() {
        return Err("is not a host or host:port (no scheme, path or user)");
    }
    let authority: Authority = text.parse().map_err(|_| "is not a host or host:port")?;
    let port = authority.port_u16().unwrap_or(80);
    Ok(format!("{}:{port}", authority.host().to_ascii_lowercase()))
}

fn list<'a>(names: impl Iterator<Item = &'a &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Parse a size such as `"16MiB"`, `"512KiB"` or `"1GiB"` into bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let bad = || {
        format!("invalid size {text:?}: expected a whole number followed by KiB, MiB or GiB (e.g. \"16MiB\")")
    };
    let (n, unit) = duration::split_quantity(text).ok_or_else(bad)?;
    let n = usize::try_from(n).map_err(|_| bad())?;
    let shift = match unit {
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(bad)
}

fn parse_target(text: &str) -> Result<Authority, &'static str> {
    let authority: Authority = text.parse().map_err(|_| "is not a host:port address")?;
    if authority.port_u16().is_none() {
        return Err("has no port (write host:port, e.g. \"127.0.0.1:9000\")");
    }
    if text.contains('@') {
        return Err("must not contain user information");
    }
    Ok(authority)
}

#[cfg(test)]
mod tests;
