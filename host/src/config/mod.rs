//! The manifest: reading, validating and resolving it into a [`Config`].
//!
//! Every problem is reported with the manifest's path, line and column, and all problems are
//! collected rather than stopping at the first.
//!
//! [`manifest`] is the file's schema as written; [`model`] the validated types; one validator
//! file per section: [`listeners`] (and client limits), [`tls`], [`upstreams`], [`routes`],
//! [`filters`], [`request`] (request rules), [`admin`]. This file holds the entry points, the
//! validator's walk over the sections and shared helpers.

mod access_log;
mod admin;
mod cache;
mod diagnostic;
mod duration;
mod file_grants;
mod filter_keys;
mod filters;
mod listeners;
mod manifest;
mod model;
mod request;
mod routes;
mod store;
mod tls;
mod upstreams;

pub use file_grants::{tree_stamp, FileGrant};
use upstreams::UpstreamDefaults;

pub use cache::RouteCacheConfig;
pub use diagnostic::{Diagnostic, Diagnostics, SourceMap};
pub use duration::parse as parse_duration;
pub use filter_keys::key_location;
pub use model::*;
pub use store::{DEFAULT_STORE_CONNECT_TIMEOUT, DEFAULT_STORE_TIMEOUT};

use crate::balance::{Algorithm, HashKey};
use crate::geo::GeoDb;
use crate::health::{ActiveCheck, Passive};
use crate::route::{GeoMatch, HeaderMatch, HostMatch, PathMatch};
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
/// Instances one filter may have at once, by default: a quarter of all there may be, so
/// one filter whose calls pile up (a slow outbound service) cannot take every instance.
pub const DEFAULT_MAX_INSTANCES: u32 = crate::filter::MAX_INSTANCES / 4;
/// Default outbound HTTP time budget of one hook call.
pub const DEFAULT_OUTBOUND_TIMEOUT: Duration = Duration::from_secs(1);
/// Default number of entries in a filter's shared store.
pub const DEFAULT_STORE_MAX_ENTRIES: usize = 10_000;
/// Most entries a filter's store may be given.
pub const MAX_STORE_ENTRIES: usize = 10_000_000;
/// Default number of keys a filter's rate limiter holds state for.
pub const DEFAULT_RATE_LIMIT_KEYS: usize = 100_000;
/// Most keys a filter's rate limiter may be given.
pub const MAX_RATE_LIMIT_KEYS: usize = 10_000_000;
/// Default bytes of a filter's shared store.
pub const DEFAULT_STORE_MAX_BYTES: usize = 64 << 20;
/// Most bytes a filter's store may be given.
pub const MAX_STORE_BYTES: usize = 4 << 30;
/// Largest `body-limit` (and never more than the filter's `memory-limit`).
pub const MAX_BODY_LIMIT: usize = 256 << 20;
/// Most `allow-hosts` entries per filter.
pub const MAX_ALLOW_HOSTS: usize = 64;
/// Default status of a fail-closed answer.
pub const DEFAULT_FAILURE_STATUS: u16 = 503;

/// Default longest silence within a request body (nginx's client_body_timeout is 60s).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default longest wait for a client to take response bytes (nginx's send_timeout is 60s).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time an idle client connection (HTTP/2 above all) is kept (nginx's
/// keepalive_timeout is 75s).
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default grace period for requests in flight on stop.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

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
        let validator = Validator {
            map: map.clone(),
            errors: Vec::new(),
        };
        let (mut config, errors) = validator.run(path, manifest);
        filter_keys::locate(&map, source, &mut config.filters);
        Ok((config, errors))
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

    /// The choice a keyword setting names (`field` is its key path): `default`'s when it is
    /// absent, and when it names none of the choices (an error that lists them).
    fn one_of<T: Copy>(
        &mut self,
        value: Option<&toml::Spanned<String>>,
        field: &str,
        default: (&str, T),
        others: &[(&str, T)],
    ) -> T {
        let Some(value) = value else {
            return default.1;
        };
        let mut choices = std::iter::once(&default).chain(others);
        if let Some((_, choice)) = choices.find(|(name, _)| *name == value.get_ref()) {
            return *choice;
        }
        let others: Vec<String> = others.iter().map(|(n, _)| format!("{n:?}")).collect();
        let listed = match others.split_last() {
            Some((last, rest)) => {
                let rest: String = rest.iter().map(|n| format!(", {n}")).collect();
                format!("{:?}{rest} or {last}", default.0)
            }
            None => format!("{:?}", default.0),
        };
        let other = value.get_ref();
        self.error(value.span(), format!("{field}: {other:?} is not {listed}"));
        default.1
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
        let default_store = match &m.store {
            Some(store) => self.store(store, "store", base),
            None => crate::store::StoreSettings::Memory,
        };
        let cache_zones = self.cache_zones(&m, base);
        let shared_purges = self.shared_purges(&m, &default_store);
        let otlp = m.otlp.as_ref().and_then(|o| self.otlp(o));
        let routes = self.routes(&m, &upstream_index, &filter_index);
        let filters = m
            .filters
            .iter()
            .map(|(name, spec)| self.filter(base, &plugins_dir, name, spec, &default_store))
            .collect();

        let geo = self.geo_databases(&m, base);
        let access_log_output = self.access_log_output(&m, base);
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
            access_log_output,
            metrics: m.metrics.unwrap_or(true),
            workers,
            listeners,
            limits,
            rules,
            upstreams,
            routes,
            filters,
            geo,
            cache_zones,
            shared_purges,
            otlp,
        };
        (config, self.errors)
    }

    /// Open `geo-databases`, reporting a file that cannot be read or is not a MaxMind DB at
    /// its entry.
    fn geo_databases(&mut self, m: &Manifest, base: &Path) -> Option<std::sync::Arc<GeoDb>> {
        if m.geo_databases.is_empty() {
            return None;
        }
        let mut opened = Vec::new();
        let mut ok = true;
        for entry in &m.geo_databases {
            match GeoDb::open(&[base.join(entry.get_ref())]) {
                Ok(db) => opened.push(db),
                Err(e) => {
                    self.error(entry.span(), format!("geo-databases: {e}"));
                    ok = false;
                }
            }
        }
        ok.then(|| std::sync::Arc::new(GeoDb::merge(opened)))
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
    /// `n`, if given, positive and at most `max`; else (with an error for a bad one) `default`.
    fn count_within(
        &mut self,
        n: Option<&toml::Spanned<i64>>,
        field: &str,
        max: usize,
        default: usize,
    ) -> usize {
        let Some(n) = n else { return default };
        match self.positive(n, field).map(usize::try_from) {
            Some(Ok(v)) if v <= max => v,
            Some(_) => {
                self.error(n.span(), format!("{field}: at most {max}"));
                default
            }
            None => default,
        }
    }

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
/// An `allow-hosts` entry: `host:port`, or `host` alone for the default port of either
/// scheme (80 for http://, 443 for https://).
fn parse_allowed_host(text: &str) -> Result<String, &'static str> {
    if text.contains(['/', '@', ' ']) || text.is_empty() {
        return Err("is not a host or host:port (no scheme, path or user)");
    }
    let authority: Authority = text.parse().map_err(|_| "is not a host or host:port")?;
    let host = authority.host().to_ascii_lowercase();
    Ok(match authority.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
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
