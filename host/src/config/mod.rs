//! The manifest: reading, validating and resolving it into a [`Config`].
//!
//! Every problem is reported with the manifest's path, line and column, and all problems are
//! collected rather than stopping at the first.

mod diagnostic;
mod duration;
mod manifest;

pub use diagnostic::{Diagnostic, Diagnostics, SourceMap};
pub use duration::parse as parse_duration;

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
/// Default CPU deadline of one filter hook call.
pub const DEFAULT_CPU_DEADLINE: Duration = Duration::from_millis(5);
/// Default linear-memory limit of one filter instance.
pub const DEFAULT_MEMORY_LIMIT: usize = 16 << 20;

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
    /// Addresses to listen on.
    pub listeners: Vec<SocketAddr>,
    /// Upstreams, by index.
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, in manifest order (the route table orders them by specificity).
    pub routes: Vec<RouteConfig>,
    /// Filters, by index.
    pub filters: Vec<FilterConfig>,
}

/// A validated upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Its name in the manifest.
    pub name: String,
    /// `host:port` targets.
    pub targets: Vec<Authority>,
    /// Time to wait for the response head.
    pub timeout: Duration,
    /// Time to wait for a TCP connection.
    pub connect_timeout: Duration,
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Lower-case host without port, or `None` for any.
    pub host: Option<String>,
    /// Path prefix, starting with `/`.
    pub path: String,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// Indexes into [`Config::filters`], in request order.
    pub filters: Vec<usize>,
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
    /// Largest linear memory, in bytes; growing beyond it fails (and the guest usually traps).
    pub memory_limit: usize,
    /// Where the entry is in the manifest, for load errors.
    pub location: Diagnostic,
    /// False when the entry itself has errors, so its plugin is not worth loading.
    pub loadable: bool,
}

impl FilterConfig {
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
        let timeout = m.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        let connect_timeout = m.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0);

        let listeners = self.listeners(&m);
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
            .map(|(name, spec)| self.upstream(name, spec.get_ref(), timeout, connect_timeout))
            .collect();
        let routes = self.routes(&m, &upstream_index, &filter_index);
        let filters = m
            .filters
            .iter()
            .map(|(name, spec)| self.filter(&plugins_dir, name, spec))
            .collect();

        let config = Config {
            source: self.map,
            plugins_dir,
            shutdown_timeout: m.shutdown_timeout.map_or(DEFAULT_SHUTDOWN_TIMEOUT, |d| d.0),
            access_log: m.access_log.unwrap_or(true),
            workers,
            listeners,
            upstreams,
            routes,
            filters,
        };
        (config, self.errors)
    }

    fn listeners(&mut self, m: &Manifest) -> Vec<SocketAddr> {
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
            match a.get_ref().parse::<SocketAddr>() {
                Ok(addr) if !seen.insert(addr) => {
                    self.error(a.span(), format!("listeners.address: {addr} is listed twice"))
                }
                Ok(addr) => out.push(addr),
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

    fn upstream(
        &mut self,
        name: &toml::Spanned<String>,
        spec: &manifest::UpstreamSpec,
        timeout: Duration,
        connect_timeout: Duration,
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
        UpstreamConfig {
            name: name.get_ref().clone(),
            targets,
            timeout: spec.timeout.map_or(timeout, |d| d.0),
            connect_timeout: spec.connect_timeout.map_or(connect_timeout, |d| d.0),
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
            let host = r.host.as_ref().map(|h| {
                let host = h.get_ref().to_ascii_lowercase();
                if host.is_empty() || host.contains(['/', ' ', ':']) {
                    self.error(
                        h.span(),
                        format!(
                            "routes[{i}].host: {:?} is not a host name (no port, scheme or path)",
                            h.get_ref()
                        ),
                    );
                }
                host
            });
            let path = match &r.path {
                Some(p) if !p.get_ref().starts_with('/') => {
                    self.error(
                        p.span(),
                        format!("routes[{i}].path: {:?} must start with '/'", p.get_ref()),
                    );
                    p.get_ref().clone()
                }
                Some(p) => p.get_ref().clone(),
                None => "/".to_string(),
            };
            if !seen.insert((host.clone(), path.clone())) {
                self.error(
                    span.clone(),
                    format!("routes[{i}]: another route already matches host {host:?} and path {path:?}"),
                );
            }
            let upstream = match upstreams.get(r.upstream.get_ref().as_str()) {
                Some(&u) => u,
                None => {
                    self.error(
                        r.upstream.span(),
                        format!(
                            "routes[{i}].upstream: no upstream named {:?} (defined: {})",
                            r.upstream.get_ref(),
                            list(upstreams.keys())
                        ),
                    );
                    0
                }
            };
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
                upstream,
                filters: chain,
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
                Ok(n) if n >= 1 << 20 => n,
                Ok(_) => {
                    self.error(
                        text.span(),
                        format!(
                            "filters.{}.memory-limit: must be at least 1MiB",
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
        FilterConfig {
            name: name.get_ref().clone(),
            plugin_path: plugins_dir.join(plugin),
            config_json,
            inherit_stdio: s.inherit_stdio.unwrap_or(false),
            cpu_deadline: s.cpu_deadline.map_or(DEFAULT_CPU_DEADLINE, |d| d.0),
            memory_limit,
            location: self.map.at(Some(s.plugin.span()), String::new()),
            loadable: self.errors.len() == errors_before,
        }
    }
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
