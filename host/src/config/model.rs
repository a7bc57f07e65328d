//! The validated configuration: the plain types the rest of the proxy reads.

use super::*;

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
    /// Where and how those lines go: `None` for the process log (`weir::access`).
    pub access_log_output: Option<std::sync::Arc<crate::access_log::Output>>,
    /// Whether to count and time requests for `/metrics`.
    pub metrics: bool,
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
    /// The opened `geo-databases`, if any.
    pub geo: Option<std::sync::Arc<crate::geo::GeoDb>>,
    /// Where trace spans are exported, if they are.
    pub otlp: Option<crate::otlp::OtlpSettings>,
    /// Cache zones by name (manifest order: sorted by name).
    pub cache_zones: Vec<(String, crate::cache::ZoneSettings)>,
    /// The Redis store cache purges are shared through, and the zones sharing them.
    pub shared_purges: Option<(crate::store::RedisSettings, Vec<String>)>,
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
    /// Connections start with a PROXY protocol (v1 or v2) header naming the client.
    pub proxy_protocol: bool,
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
    /// Longest silence within a request body (408 and the connection closed after).
    pub body_read_timeout: Duration,
    /// Longest a response write may wait on a client that does not read (connection closed
    /// after).
    pub send_timeout: Duration,
    /// A client connection with no request started or running this long is closed
    /// gracefully (GOAWAY on HTTP/2).
    pub client_idle_timeout: Duration,
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
    /// Client location conditions.
    pub geo: crate::route::GeoMatch,
    /// (index into [`Config::upstreams`], weight).
    pub backends: Vec<(usize, u32)>,
    /// Indexes into [`Config::filters`], in request order.
    pub filters: Vec<usize>,
    /// Time limits overriding the upstream's.
    pub timeouts: RouteTimeouts,
    /// `Upgrade` protocols passed on (lower-case).
    pub upgrades: Vec<String>,
    /// How its responses are cached, if they are.
    pub cache: Option<super::cache::RouteCacheConfig>,
    /// How its responses are compressed, if they are.
    pub compress: Option<crate::compress::CompressSettings>,
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
    /// How a new instance gets its initialised state.
    pub instance_start: InstanceStart,
    /// Recycle a pooled instance after this many requests.
    pub max_requests_per_instance: Option<u64>,
    /// Instances of this filter that may exist at once.
    pub max_instances: u32,
    /// Largest body the filter may buffer, per direction.
    pub body_limit: usize,
    /// Lower-case `host:port` authorities outbound HTTP may reach (a bare `host`: port 80
    /// for `http://`, 443 for `https://`).
    pub allow_hosts: Vec<String>,
    /// Address ranges outbound HTTP may not connect to, whatever the host resolves to.
    pub outbound_deny: Vec<ipnet::IpNet>,
    /// Outbound HTTP time budget per hook call.
    pub outbound_timeout: Duration,
    /// CAs trusted for its `https://` calls (`None`: the system's).
    pub outbound_ca: Option<PathBuf>,
    /// When `outbound_ca` was last modified, as validated: a changed file loads the filter
    /// again.
    pub outbound_ca_modified: Option<std::time::SystemTime>,
    /// Host directories it may read (WASI preopens, read-only).
    pub files: Vec<super::FileGrant>,
    /// How large the filter's shared store may grow.
    pub store: crate::filter::kv::KvBounds,
    /// Keys its rate limiter holds state for.
    pub rate_limit_keys: usize,
    /// Where its key/value store and rate limits live.
    pub shared_store: crate::store::StoreSettings,
    /// What happens while a shared store is unreachable.
    pub on_store_failure: crate::store::StoreFailure,
    /// Where the entry is in the manifest, for load errors.
    pub location: Diagnostic,
    /// Where each key path of its `config` table is (`request.set`, `keys[0]`), for errors
    /// of an `init` that refuses its config.
    pub config_keys: Vec<(String, Diagnostic)>,
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
    /// A fresh instance for every hook call: no guest memory survives a call, not even from
    /// `on-request` to the same request's `on-response`.
    PerRequest,
}

/// How a new instance of a filter gets its initialised state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceStart {
    /// It runs `init` with the filter's config.
    Init,
    /// It starts from a copy of the memory and globals one instance had after `init` (made
    /// when the filter loads), without running `init`.
    Snapshot,
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
                (c.isolation, c.instance_start),
                (c.max_requests_per_instance, c.max_instances),
                c.body_limit,
                (
                    c.allow_hosts.clone(),
                    c.outbound_deny.clone(),
                    (c.outbound_ca.clone(), c.outbound_ca_modified),
                    c.outbound_timeout,
                    c.store,
                    c.rate_limit_keys,
                    c.files.clone(),
                    (c.shared_store.clone(), c.on_store_failure),
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
            config_keys: Vec::new(),
            plugin_path,
            config_json: config_json.to_string(),
            inherit_stdio: false,
            cpu_deadline: DEFAULT_CPU_DEADLINE,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            fuel: None,
            on_failure: FailurePolicy::Closed(http::StatusCode::SERVICE_UNAVAILABLE),
            isolation: Isolation::Pooled,
            instance_start: InstanceStart::Init,
            max_requests_per_instance: None,
            max_instances: DEFAULT_MAX_INSTANCES,
            body_limit: DEFAULT_BODY_LIMIT,
            allow_hosts: Vec::new(),
            outbound_deny: Vec::new(),
            outbound_ca: None,
            outbound_ca_modified: None,
            files: Vec::new(),
            outbound_timeout: DEFAULT_OUTBOUND_TIMEOUT,
            store: crate::filter::kv::KvBounds {
                max_entries: DEFAULT_STORE_MAX_ENTRIES,
                max_bytes: DEFAULT_STORE_MAX_BYTES,
            },
            rate_limit_keys: DEFAULT_RATE_LIMIT_KEYS,
            shared_store: crate::store::StoreSettings::Memory,
            on_store_failure: crate::store::StoreFailure::Local,
            loadable: true,
        }
    }
}
