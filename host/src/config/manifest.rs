//! The manifest file's schema, exactly as written (before validation).

use super::duration::ManifestDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole manifest. Unknown keys anywhere are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Folder of `.wasm` filters, relative to the manifest file. Default: `plugins`.
    pub plugins_dir: Option<Spanned<String>>,
    /// Default time to wait for an upstream's response head. Default: 30s.
    pub timeout: Option<ManifestDuration>,
    /// Default time to wait for a TCP connection to an upstream. Default: 5s.
    pub connect_timeout: Option<ManifestDuration>,
    /// Default longest silence of an upstream within a response body. Default: 60s.
    pub idle_timeout: Option<ManifestDuration>,
    /// Default time limit of a whole exchange (request head to last response byte).
    /// Default: none.
    pub overall_timeout: Option<ManifestDuration>,
    /// How long a graceful stop waits for requests in flight. Default: 10s.
    pub shutdown_timeout: Option<ManifestDuration>,
    /// Write one access-log line per request. Default: true.
    pub access_log: Option<bool>,
    /// Access log lines as `"json"` or `"text"`, written off the request path to
    /// `access-log-to`; absent (with `access-log-to` absent too): text through the process
    /// log (`weir::access`).
    pub access_log_format: Option<Spanned<String>>,
    /// Where the access log goes: `"stdout"`, `"stderr"` or a file (relative to the
    /// manifest; reopened on SIGUSR1). Default: stdout.
    pub access_log_to: Option<Spanned<String>>,
    /// Log the query string too. Default: false (it may carry tokens).
    pub access_log_query: Option<bool>,
    /// Request headers to log (lower-case names). Default: none.
    #[serde(default)]
    pub access_log_headers: Vec<Spanned<String>>,
    /// Of those, headers whose values are logged as `[redacted]`. `authorization`, `cookie`
    /// and `proxy-authorization` always are.
    #[serde(default)]
    pub access_log_redact: Vec<Spanned<String>>,
    /// Bytes of log lines each worker may hold before the writer takes them; beyond, lines
    /// are dropped and counted. Default: 1MiB.
    pub access_log_buffer: Option<Spanned<String>>,
    /// Count and time requests for `GET /metrics`. Default: true.
    pub metrics: Option<bool>,
    /// Worker threads, each serving its own share of connections. Default: one per CPU.
    pub workers: Option<Spanned<usize>>,
    /// Largest request head (request line and headers), e.g. "64KiB"; beyond: 431.
    /// Default: 64KiB.
    pub max_header_size: Option<Spanned<String>>,
    /// Most request headers; beyond: 431. Default: 100.
    pub max_headers: Option<Spanned<i64>>,
    /// Longest silence within a request body; beyond: 408. Default: 30s.
    pub body_read_timeout: Option<ManifestDuration>,
    /// Longest a response write waits on a client that does not read; beyond, the
    /// connection is closed. Default: 30s.
    pub send_timeout: Option<ManifestDuration>,
    /// A client connection without a request this long is closed (GOAWAY on HTTP/2).
    /// Default: 60s.
    pub client_idle_timeout: Option<ManifestDuration>,
    /// Most concurrent streams per HTTP/2 client connection. Default: 100.
    pub http2_max_concurrent_streams: Option<Spanned<i64>>,
    /// Time a client may take to send its request head. Default: 30s.
    pub header_read_timeout: Option<ManifestDuration>,
    /// Largest request body, e.g. "10MiB"; beyond: 413. Default: no limit.
    pub max_body_size: Option<Spanned<String>>,
    /// `ip:port` of the admin endpoint (`GET /status`: live filter versions, reload state,
    /// filter metrics). Absent: no admin endpoint.
    pub admin: Option<Spanned<String>>,
    /// Export a trace span per request (and per upstream attempt and filter call) to an
    /// OpenTelemetry collector: `{ endpoint = "http://127.0.0.1:4318/v1/traces" }`.
    /// Default: off.
    pub otlp: Option<Spanned<OtlpSpec>>,
    /// Bearer token the admin endpoint requires (`Authorization: Bearer <token>`). Needed to
    /// bind the admin endpoint to a non-loopback address.
    pub admin_token: Option<Spanned<String>>,
    /// Watch the manifest and the plugins directory and reload on change. Default: true.
    pub watch: Option<bool>,
    /// Cache compiled filters on disk. Default: true.
    pub compile_cache: Option<bool>,
    /// Folder of the compile cache, relative to the manifest file. Default:
    /// `$XDG_CACHE_HOME/weir` or `~/.cache/weir`.
    pub compile_cache_dir: Option<Spanned<String>>,
    /// `%2F` / `%5C` in a request path: `"reject"` (400) or `"keep"` (passed on escaped, never
    /// decoded). Default: reject.
    pub escaped_slashes: Option<Spanned<String>>,
    /// Pass on request headers whose names have underscores. Default: false (dropped).
    pub underscores_in_headers: Option<bool>,
    /// MaxMind-format (`.mmdb`) databases locating client addresses (country, continent,
    /// ASN), relative to the manifest; for each field the first database that knows it
    /// wins. Needed by routes' `countries` / `continents` / `asns` and filters' geo lookups.
    #[serde(default)]
    pub geo_databases: Vec<Spanned<String>>,
    /// Where clients connect.
    #[serde(default)]
    pub listeners: Vec<Spanned<ListenerSpec>>,
    /// Named upstream services.
    #[serde(default)]
    pub upstreams: BTreeMap<Spanned<String>, Spanned<UpstreamSpec>>,
    /// Routes, matched most specific first (see `route`).
    #[serde(default)]
    pub routes: Vec<Spanned<RouteSpec>>,
    /// Where filters' key/value stores and rate limits live, unless a filter names its own:
    /// `{ backend = "memory" }` (the default) or `{ backend = "redis", url = ... }`.
    pub store: Option<Spanned<StoreSpec>>,
    /// Named filter instances: a plugin plus its configuration.
    #[serde(default)]
    pub filters: BTreeMap<Spanned<String>, Spanned<FilterSpec>>,
    /// Named response caches that routes store in (`cache = { zone = "..." }`).
    #[serde(default)]
    pub cache_zones: BTreeMap<Spanned<String>, Spanned<CacheZoneSpec>>,
}

/// `otlp = { ... }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OtlpSpec {
    /// The collector's OTLP/HTTP traces endpoint, `http://host:port/v1/traces`.
    pub endpoint: Spanned<String>,
    /// `service.name` of the spans. Default: "weir".
    pub service_name: Option<String>,
    /// Longest spans wait before they are sent. Default: 1s.
    pub flush_interval: Option<ManifestDuration>,
}

/// `[cache-zones.<name>]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheZoneSpec {
    /// Memory its entries may take, e.g. "256MiB" (bodies, fields, keys, bookkeeping).
    pub memory: Spanned<String>,
    /// Largest response body stored. Default: 8MiB (at most `memory`).
    pub max_object_size: Option<Spanned<String>>,
    /// Most variants (by `Vary`) kept per key. Default: 8.
    pub max_variants: Option<Spanned<i64>>,
    /// Longest a request waits for another's fetch of its key. Default: 5s.
    pub lock_timeout: Option<ManifestDuration>,
    /// Clients (CIDRs or addresses) allowed to send `PURGE`. Default: none.
    #[serde(default)]
    pub purge_from: Vec<Spanned<String>>,
    /// A disk tier: `{ path = "cache/main", size = "1GiB" }` (path relative to the manifest).
    pub disk: Option<Spanned<DiskSpec>>,
    /// Publish its purges to, and take them from, the other nodes on the top-level Redis
    /// `store`. Default: true when that store is Redis.
    pub share_purges: Option<Spanned<bool>>,
}

/// `[cache-zones.<name>].disk`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DiskSpec {
    /// The directory (made if missing), relative to the manifest.
    pub path: Spanned<String>,
    /// Bytes its files may take, e.g. "1GiB".
    pub size: Spanned<String>,
}

/// A route's `cache = { ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteCacheSpec {
    /// The `cache-zones` entry its responses go in.
    pub zone: Spanned<String>,
    /// Lifetime of responses without freshness information. Default: none (not stored).
    pub default_ttl: Option<ManifestDuration>,
    /// `stale-while-revalidate` for responses that do not set it. Default: none.
    pub stale_while_revalidate: Option<ManifestDuration>,
    /// `stale-if-error` for responses that do not set it. Default: none.
    pub stale_if_error: Option<ManifestDuration>,
    /// Request headers every response varies on, besides its own `Vary`.
    #[serde(default)]
    pub key_headers: Vec<Spanned<String>>,
    /// Only these query parameters are part of the key.
    pub query_allow: Option<Vec<Spanned<String>>>,
    /// These query parameters are not part of the key.
    pub query_deny: Option<Vec<Spanned<String>>>,
    /// Store responses that set cookies. Default: false.
    pub store_set_cookie: Option<bool>,
    /// Response header listing surrogate keys (tags) to purge by. Default: `surrogate-key`.
    pub tag_header: Option<Spanned<String>>,
}

/// `store = { ... }`, at top level or in a filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoreSpec {
    /// `"memory"` (this node only) or `"redis"` (shared by the nodes using the same Redis).
    pub backend: Spanned<String>,
    /// `redis://[user:password@]host:port/db` or `rediss://...` (TLS): one server.
    pub url: Option<Spanned<String>>,
    /// The seed nodes of a Redis Cluster, instead of `url`.
    #[serde(default)]
    pub cluster_nodes: Vec<Spanned<String>>,
    /// Longest one call may take (within the filter's `outbound-timeout`). Default: 50ms.
    pub timeout: Option<Spanned<ManifestDuration>>,
    /// Longest a (re)connection may take. Default: 1s.
    pub connect_timeout: Option<Spanned<ManifestDuration>>,
    /// Most calls in flight per node; beyond, calls fail at once. Default: 1000.
    pub max_pending: Option<Spanned<i64>>,
    /// First part of every key. Default: "weir".
    pub prefix: Option<Spanned<String>>,
    /// PEM bundle of the CAs that sign the server's certificate (`rediss://` only), relative
    /// to the manifest. Default: the system's.
    pub ca: Option<Spanned<String>>,
    /// Client certificate (PEM chain) for mutual TLS, with `key`.
    pub cert: Option<Spanned<String>>,
    /// Private key of `cert`.
    pub key: Option<Spanned<String>>,
}

/// `[[listeners]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenerSpec {
    /// `ip:port` to bind, e.g. `"0.0.0.0:8080"`.
    pub address: Spanned<String>,
    /// Most client connections open at once; more are closed on accept. Default: no limit.
    pub max_connections: Option<Spanned<i64>>,
    /// Terminate TLS on this listener.
    pub tls: Option<Spanned<TlsSpec>>,
    /// Answer every request with a permanent redirect (308) to the same URL over https
    /// (plaintext listeners only). Default: false.
    pub redirect_https: Option<Spanned<bool>>,
    /// Port of the https URLs that `redirect-https` sends clients to. Default: 443.
    pub https_port: Option<Spanned<i64>>,
    /// Peers (CIDRs or addresses) whose `X-Forwarded-For` names the real client. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Every connection starts with a PROXY protocol v1/v2 header (behind a TCP load
    /// balancer); connections without one are closed. Default: false.
    pub proxy_protocol: Option<bool>,
}

/// `[listeners.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsSpec {
    /// Certificates, chosen by SNI; the first is the default.
    pub certificates: Vec<Spanned<CertSpec>>,
    /// PEM bundle of CAs whose client certificates are accepted (mTLS), relative to the
    /// manifest. Absent: clients are not asked for a certificate.
    pub client_ca: Option<Spanned<String>>,
    /// With `client-ca`: `required` (default: clients without a valid certificate are
    /// refused) or `optional` (clients without one are served; invalid ones are refused).
    pub client_auth: Option<Spanned<String>>,
}

/// One certificate of `[listeners.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CertSpec {
    /// PEM certificate chain, relative to the manifest.
    pub cert: Spanned<String>,
    /// PEM private key, relative to the manifest.
    pub key: Spanned<String>,
}

/// `[upstreams.<name>]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpstreamSpec {
    /// `host:port` targets.
    pub targets: Spanned<Vec<Spanned<String>>>,
    /// Weights of targets (by their `host:port` as listed); others weigh 1.
    #[serde(default)]
    pub weights: BTreeMap<Spanned<String>, Spanned<i64>>,
    /// `round-robin` (default), `weighted`, `least-connections`, `p2c` or `consistent-hash`.
    pub balance: Option<Spanned<String>>,
    /// For `consistent-hash`: `client-ip` (default), `header:<name>` or `cookie:<name>`.
    pub hash_key: Option<Spanned<String>>,
    /// Pin clients to a target with this cookie, set by the proxy.
    pub sticky_cookie: Option<Spanned<String>>,
    /// Key of the sticky cookie's values (share it between proxies). Default: random per
    /// process.
    pub sticky_secret: Option<String>,
    /// Further attempts on other targets after a retryable failure. Default: 1.
    pub retries: Option<Spanned<i64>>,
    /// Most requests in flight to this upstream; beyond, 503 at once. Default: 10000.
    pub max_requests: Option<Spanned<i64>>,
    /// `http1` (default), `h2c` (HTTP/2 with prior knowledge, e.g. gRPC), and with `tls`:
    /// `h2` (HTTP/2 by ALPN) or `auto` (HTTP/2 or HTTP/1.1, as the upstream picks by ALPN).
    pub protocol: Option<Spanned<String>>,
    /// Connect to the targets over TLS (`tls = {}`: system CA roots, SNI = the target host).
    pub tls: Option<Spanned<UpstreamTlsSpec>>,
    /// How long an upgraded (e.g. WebSocket) connection may be silent. Default: 5m.
    pub upgrade_idle_timeout: Option<ManifestDuration>,
    /// Active health checks. Absent: none.
    pub health: Option<Spanned<HealthSpec>>,
    /// Passive outlier ejection (on by default).
    pub passive: Option<Spanned<PassiveSpec>>,
    /// Overrides the top-level `timeout`.
    pub timeout: Option<ManifestDuration>,
    /// Overrides the top-level `connect-timeout`.
    pub connect_timeout: Option<ManifestDuration>,
    /// Overrides the top-level `idle-timeout`.
    pub idle_timeout: Option<ManifestDuration>,
    /// Overrides the top-level `overall-timeout`.
    pub overall_timeout: Option<ManifestDuration>,
    /// Most requests waiting for a response head from this upstream; beyond, 503 at once.
    /// Default: 1000.
    pub max_pending: Option<Spanned<i64>>,
    /// How long an idle keep-alive connection to a target is kept. Default: 90s.
    pub pool_idle_timeout: Option<ManifestDuration>,
    /// Time between two resolutions of targets given by host name. Default: 30s.
    pub resolve_interval: Option<ManifestDuration>,
}

/// `[upstreams.<name>.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpstreamTlsSpec {
    /// PEM bundle of the CAs to trust, relative to the manifest. Default: the system's.
    pub ca: Option<Spanned<String>>,
    /// Name sent as SNI and verified in the certificate. Default: the target's host.
    pub server_name: Option<Spanned<String>>,
    /// Client certificate (PEM chain) presented to the upstream, with `key`.
    pub cert: Option<Spanned<String>>,
    /// Private key of `cert`.
    pub key: Option<Spanned<String>>,
    /// Verify the upstream's certificate. Default: true.
    pub verify: Option<Spanned<bool>>,
}

/// `[upstreams.<name>.health]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthSpec {
    /// Path of an HTTP GET check; absent: a TCP connect check.
    pub path: Option<Spanned<String>>,
    /// Expected status of the HTTP check. Default: any 2xx.
    pub expect_status: Option<Spanned<i64>>,
    /// Time between checks. Default: 5s.
    pub interval: Option<ManifestDuration>,
    /// Time one check may take. Default: 1s.
    pub timeout: Option<ManifestDuration>,
    /// Consecutive successes to bring a target up. Default: 2.
    pub rise: Option<Spanned<i64>>,
    /// Consecutive failures to take a target down. Default: 3.
    pub fall: Option<Spanned<i64>>,
}

/// `[upstreams.<name>.passive]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PassiveSpec {
    /// Consecutive connect failures or 5xx answers that eject a target. Default: 5.
    pub consecutive_failures: Option<Spanned<i64>>,
    /// How long an ejected target is left out. Default: 30s.
    pub cooldown: Option<ManifestDuration>,
    /// Most targets ejected at once, in percent. Default: 50.
    pub max_ejected_percent: Option<Spanned<i64>>,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteSpec {
    /// Host to match (case-insensitive, port ignored), or `*.example.com` for any
    /// subdomain. Absent: any host.
    pub host: Option<Spanned<String>>,
    /// Path prefix to match, segment-aware. Default: `/`.
    pub path: Option<Spanned<String>>,
    /// Exact path to match (instead of `path`).
    pub path_exact: Option<Spanned<String>>,
    /// Regular expression searched in the path (instead of `path`).
    pub path_regex: Option<Spanned<String>>,
    /// Methods to match. Absent: any.
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// Headers that must be present with this exact value (`"*"`: present with any value).
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
    /// The client's country (ISO 3166-1 alpha-2 codes) must be one of these (needs
    /// `geo-databases`). Absent: any.
    #[serde(default)]
    pub countries: Vec<Spanned<String>>,
    /// The client's continent (AF, AN, AS, EU, NA, OC, SA) must be one of these.
    #[serde(default)]
    pub continents: Vec<Spanned<String>>,
    /// The client's autonomous system number must be one of these.
    #[serde(default)]
    pub asns: Vec<Spanned<i64>>,
    /// Name of the upstream to forward to (or `backends`).
    pub upstream: Option<Spanned<String>>,
    /// Weighted upstreams, for canary and blue-green (instead of `upstream`).
    #[serde(default)]
    pub backends: Vec<Spanned<BackendSpec>>,
    /// Names of filters, in request order.
    #[serde(default)]
    pub filters: Vec<Spanned<String>>,
    /// Overrides the upstream's `timeout` (response head) for this route.
    pub timeout: Option<ManifestDuration>,
    /// Overrides the upstream's `idle-timeout` for this route.
    pub idle_timeout: Option<ManifestDuration>,
    /// Overrides the upstream's `overall-timeout` for this route.
    pub overall_timeout: Option<ManifestDuration>,
    /// `Upgrade` protocols passed on to the upstream. Default: `["websocket"]`.
    pub upgrades: Option<Spanned<Vec<Spanned<String>>>>,
    /// Cache responses in a zone: `{ zone = "main", ... }`. Default: no caching.
    pub cache: Option<Spanned<RouteCacheSpec>>,
    /// Compress responses: `true`, or `{ codings, types, min-size, gzip-level,
    /// brotli-level, zstd-level }`. Default: false.
    pub compress: Option<Spanned<toml::Value>>,
}

/// `[[routes.backends]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackendSpec {
    /// Name of the upstream.
    pub upstream: Spanned<String>,
    /// Share of requests relative to the route's other backends; 0 drains. Default: 1.
    pub weight: Option<Spanned<i64>>,
}

/// `[filters.<name>]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FilterSpec {
    /// File name of the component in the plugins directory.
    pub plugin: Spanned<String>,
    /// Configuration passed to the filter's `init`, as JSON.
    pub config: Option<Spanned<toml::Table>>,
    /// Let the filter write to the proxy's stdout/stderr. Default: false.
    pub inherit_stdio: Option<bool>,
    /// CPU time one hook call may take before it is stopped. Default: 5ms.
    pub cpu_deadline: Option<ManifestDuration>,
    /// Largest linear memory an instance may grow to, e.g. "16MiB". Default: 16MiB.
    pub memory_limit: Option<Spanned<String>>,
    /// Wasm fuel (roughly, instructions) one hook call may burn. Default: unlimited.
    pub fuel: Option<Spanned<i64>>,
    /// `fail-closed` (default: the request is answered with `failure-status`) or
    /// `fail-open` (the filter is skipped for that request).
    pub on_failure: Option<Spanned<String>>,
    /// Status of a fail-closed answer. Default: 503.
    pub failure_status: Option<Spanned<i64>>,
    /// `pooled` (default: instances are reused) or `per-request` (a fresh instance for
    /// every hook call: nothing in guest memory survives a call, not even from `on-request`
    /// to the same request's `on-response`; the request context carries state between them).
    pub isolation: Option<Spanned<String>>,
    /// `init` (default: every new instance runs `init`) or `snapshot` (`init` runs once when
    /// the filter loads, and new instances start from a copy of that instance's memory).
    pub instance_start: Option<Spanned<String>>,
    /// Recycle a pooled instance after this many requests. Default: never.
    pub max_requests_per_instance: Option<Spanned<i64>>,
    /// Instances of this filter that may exist at once (busy and idle); a call that would
    /// need one more fails per `on-failure`. Default 250, at most 1000 (all filters share
    /// 1000).
    pub max_instances: Option<Spanned<i64>>,
    /// Largest body the filter may ask to buffer, per direction, e.g. "1MiB". Beyond it the
    /// request gets 413 (request body) or 502 (response body). Default: 1MiB.
    pub body_limit: Option<Spanned<String>>,
    /// Hosts (`host` or `host:port`) the filter may call with outbound HTTP. Default: none.
    #[serde(default)]
    pub allow_hosts: Vec<Spanned<String>>,
    /// Outbound HTTP time budget per hook call. Default: 1s.
    pub outbound_timeout: Option<ManifestDuration>,
    /// Address ranges (CIDRs, or "private" for loopback, private, link-local and other
    /// non-public ranges) outbound HTTP may not connect to. Default: none.
    #[serde(default)]
    pub outbound_deny: Vec<Spanned<String>>,
    /// PEM bundle of the CAs trusted for `https://` outbound calls, relative to the manifest.
    /// Default: the system's CAs.
    pub outbound_ca: Option<Spanned<String>>,
    /// Entries the filter's shared key/value store may hold. Default: 10000.
    pub store_max_entries: Option<Spanned<i64>>,
    /// Bytes the filter's shared key/value store may hold, e.g. "64MiB". Default: 64MiB.
    pub store_max_bytes: Option<Spanned<String>>,
    /// Keys the filter's rate limiter holds state for (a key back to its full burst holds
    /// none). Default: 100000.
    pub rate_limit_keys: Option<Spanned<i64>>,
    /// Where this filter's key/value store and rate limits live; default: the top-level
    /// `store`.
    pub store: Option<Spanned<StoreSpec>>,
    /// What its store calls do while a shared store is unreachable: `"local"` (this node's
    /// store meanwhile), `"fail-open"` (the calls fail, the filter decides) or
    /// `"fail-closed"` (503). Default: local.
    pub on_store_failure: Option<Spanned<String>>,
    /// Host directories the filter may read, by the guest path it sees each at:
    /// `files = { "/rules" = "/usr/share/modsecurity-crs" }` (relative host paths are taken
    /// from the manifest's folder). Read-only. Default: no file system at all.
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, Spanned<String>>,
}
