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
    /// How long a graceful stop waits for requests in flight. Default: 10s.
    pub shutdown_timeout: Option<ManifestDuration>,
    /// Write one access-log line per request. Default: true.
    pub access_log: Option<bool>,
    /// Worker threads, each serving its own share of connections. Default: one per CPU.
    pub workers: Option<Spanned<usize>>,
    /// Where clients connect.
    #[serde(default)]
    pub listeners: Vec<Spanned<ListenerSpec>>,
    /// Named upstream services.
    #[serde(default)]
    pub upstreams: BTreeMap<Spanned<String>, Spanned<UpstreamSpec>>,
    /// Routes, matched most specific first (see `route`).
    #[serde(default)]
    pub routes: Vec<Spanned<RouteSpec>>,
    /// Named filter instances: a plugin plus its configuration.
    #[serde(default)]
    pub filters: BTreeMap<Spanned<String>, Spanned<FilterSpec>>,
}

/// `[[listeners]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenerSpec {
    /// `ip:port` to bind, e.g. `"0.0.0.0:8080"`.
    pub address: Spanned<String>,
}

/// `[upstreams.<name>]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpstreamSpec {
    /// `host:port` targets, balanced round robin.
    pub targets: Spanned<Vec<Spanned<String>>>,
    /// Overrides the top-level `timeout`.
    pub timeout: Option<ManifestDuration>,
    /// Overrides the top-level `connect-timeout`.
    pub connect_timeout: Option<ManifestDuration>,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteSpec {
    /// Host to match (case-insensitive, port ignored). Absent: any host.
    pub host: Option<Spanned<String>>,
    /// Path prefix to match, segment-aware. Default: `/`.
    pub path: Option<Spanned<String>>,
    /// Name of the upstream to forward to.
    pub upstream: Spanned<String>,
    /// Names of filters, in request order.
    #[serde(default)]
    pub filters: Vec<Spanned<String>>,
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
}
