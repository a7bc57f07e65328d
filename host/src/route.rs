//! The route table: which route (backends and filter chain) serves a request.
//!
//! A route matches on host (exact, or `*.example.com` for any subdomain), path (prefix by
//! whole segments, exact, or regex), methods, headers and the client's location (country,
//! continent, ASN). Precedence, most specific first:
//!
//! 1. host: exact, then wildcard (longer suffix first), then routes without a host;
//! 2. path: exact, then regex (in manifest order), then prefix (longest first);
//! 3. more method, header and location conditions first;
//! 4. manifest order.
//!
//! Prefixes match whole segments: `/api` matches `/api` and `/api/v1`, not `/apix`; a prefix
//! ending in `/` matches everything below it. A route sends to one of its weighted
//! backends (weight 0 drains one: it gets no new requests).

use crate::filter::Filter;
use crate::geo::Location;
use crate::upstream::Upstream;
use http::{HeaderMap, HeaderName, Method};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How a route matches the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// This host (lower-case, no port).
    Exact(String),
    /// Any subdomain of this suffix: `*.example.com` is stored as `.example.com`.
    Wildcard(String),
}

/// How a route matches the path.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// Segment-aware prefix.
    Prefix(String),
    /// Exactly this path.
    Exact(String),
    /// A regular expression searched in the path (anchor it with `^…$`).
    Regex(regex::Regex),
}

impl PathMatch {
    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Prefix(p) => prefix_matches(p, path),
            PathMatch::Exact(p) => p == path,
            PathMatch::Regex(r) => r.is_match(path),
        }
    }

    /// Its text, for messages.
    pub fn as_str(&self) -> &str {
        match self {
            PathMatch::Prefix(p) | PathMatch::Exact(p) => p,
            PathMatch::Regex(r) => r.as_str(),
        }
    }

    /// `prefix`, `exact` or `regex`.
    pub fn rank_name(&self) -> &'static str {
        match self {
            PathMatch::Prefix(_) => "prefix",
            PathMatch::Exact(_) => "exact",
            PathMatch::Regex(_) => "regex",
        }
    }

    /// Its precedence rank and, for prefixes, length (higher first).
    fn rank(&self) -> (u8, usize) {
        match self {
            PathMatch::Exact(_) => (3, 0),
            PathMatch::Regex(_) => (2, 0),
            PathMatch::Prefix(p) => (1, p.len()),
        }
    }
}

impl HostMatch {
    /// Whether `host` (lower-case, no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostMatch::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
            }
        }
    }

    fn rank(&self) -> (u8, usize) {
        match self {
            HostMatch::Exact(_) => (2, 0),
            HostMatch::Wildcard(s) => (1, s.len()),
        }
    }
}

/// A header condition: present (`None`) or with exactly this value.
pub type HeaderMatch = (HeaderName, Option<String>);

/// Conditions on the client's location: each non-empty list must hold the client's value
/// (a client the databases do not place matches none of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoMatch {
    /// Upper-case ISO 3166-1 alpha-2 country codes.
    pub countries: Vec<String>,
    /// Upper-case continent codes.
    pub continents: Vec<String>,
    /// Autonomous system numbers.
    pub asns: Vec<u32>,
}

impl GeoMatch {
    /// Whether there is no condition.
    pub fn is_empty(&self) -> bool {
        self.countries.is_empty() && self.continents.is_empty() && self.asns.is_empty()
    }

    /// How many kinds of condition there are, for precedence.
    fn conditions(&self) -> usize {
        [
            !self.countries.is_empty(),
            !self.continents.is_empty(),
            !self.asns.is_empty(),
        ]
        .iter()
        .filter(|c| **c)
        .count()
    }

    /// Whether a client at `at` matches.
    pub fn matches(&self, at: Option<&Location>) -> bool {
        if self.is_empty() {
            return true;
        }
        let Some(at) = at else { return false };
        let listed = |list: &[String], value: &Option<String>| {
            list.is_empty() || value.as_ref().is_some_and(|v| list.contains(v))
        };
        listed(&self.countries, &at.country)
            && listed(&self.continents, &at.continent)
            && (self.asns.is_empty() || at.asn.is_some_and(|a| self.asns.contains(&a)))
    }
}

/// A resolved route.
pub struct Route {
    /// Host condition, or `None` for any.
    pub host: Option<HostMatch>,
    /// Path condition.
    pub path: PathMatch,
    /// Allowed methods; empty for any.
    pub methods: Vec<Method>,
    /// Header conditions, all of which must hold.
    pub headers: Vec<HeaderMatch>,
    /// Client location conditions.
    pub geo: GeoMatch,
    /// Where matching requests go, with weights.
    pub backends: Backends,
    /// Filters in request order.
    pub filters: Vec<Arc<Filter>>,
    /// Time limits overriding the upstream's.
    pub timeouts: crate::config::RouteTimeouts,
    /// `Upgrade` protocols passed on (lower-case); others are ignored.
    pub upgrades: Vec<String>,
    /// Its host and path conditions as text (`api.example.com/v1`, `*.example.com/`,
    /// `~^/x$` for a regex): its label in metrics.
    pub label: Arc<str>,
    /// How its responses are cached, if they are.
    pub cache: Option<Arc<crate::cache::RoutePolicy>>,
    /// How its responses are compressed, if they are.
    pub compress: Option<crate::compress::CompressSettings>,
}

/// A route's label (see [`Route::label`]).
pub fn label(host: Option<&HostMatch>, path: &PathMatch) -> Arc<str> {
    let host = match host {
        None => String::new(),
        Some(HostMatch::Exact(h)) => h.clone(),
        Some(HostMatch::Wildcard(suffix)) => format!("*{suffix}"),
    };
    let tilde = if matches!(path, PathMatch::Regex(_)) {
        "~"
    } else {
        ""
    };
    Arc::from(format!("{host}{tilde}{}", path.as_str()))
}

/// A route's weighted backends, picked in proportion to their weights, interleaved.
pub struct Backends {
    /// (upstream, weight); weight 0 drains.
    list: Vec<(Arc<Upstream>, u32)>,
    total: u64,
    next: AtomicU64,
}

impl Backends {
    /// Backends with weights (at least one non-zero, checked by the manifest).
    pub fn new(list: Vec<(Arc<Upstream>, u32)>) -> Self {
        let total = list.iter().map(|(_, w)| u64::from(*w)).sum();
        Backends {
            list,
            total,
            next: AtomicU64::new(0),
        }
    }

    /// One upstream: the only one.
    pub fn single(upstream: Arc<Upstream>) -> Self {
        Backends::new(vec![(upstream, 1)])
    }

    /// The upstream for the next request: over `total` requests, each backend gets exactly
    /// its weight's share, spread out rather than in runs.
    pub fn pick(&self) -> Option<&Arc<Upstream>> {
        if let [(only, w)] = self.list.as_slice() {
            return (*w > 0).then_some(only);
        }
        if self.total == 0 {
            return None;
        }
        // Bit-reversing the counter spreads consecutive requests over the weight range.
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.total;
        let slot = spread(n, self.total);
        let mut acc = 0u64;
        for (u, w) in &self.list {
            acc += u64::from(*w);
            if slot < acc {
                return Some(u);
            }
        }
        None
    }

    /// The upstreams, with weights.
    pub fn list(&self) -> &[(Arc<Upstream>, u32)] {
        &self.list
    }
}

/// A permutation of `0..total` that interleaves: `n * step % total` with `step` coprime to
/// `total` and close to the golden ratio of it.
fn spread(n: u64, total: u64) -> u64 {
    let mut step = ((total as f64) * 0.618_033_988_75) as u64;
    step = step.max(1);
    while gcd(step, total) != 1 {
        step += 1;
    }
    n * step % total
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Route {
    /// Whether this route passes on an upgrade to every protocol `offered` lists.
    pub fn allows_upgrade(&self, offered: &http::HeaderValue) -> bool {
        let Ok(text) = offered.to_str() else {
            return false;
        };
        let mut protocols = text.split(',').map(str::trim).peekable();
        protocols.peek().is_some()
            && protocols.all(|p| {
                let name = p.split('/').next().unwrap_or(p);
                !name.eq_ignore_ascii_case("h2c")
                    && self.upgrades.iter().any(|u| u.eq_ignore_ascii_case(name))
            })
    }

    /// Whether the route takes `method`: TRACE only where the route lists it (it would echo
    /// the request, credentials included, back to whoever can make a browser send it).
    pub fn allows_method(&self, method: &Method) -> bool {
        method != Method::TRACE || self.methods.contains(method)
    }

    fn matches(&self, host: Option<&str>, req: &RouteQuery<'_>) -> bool {
        let RouteQuery {
            method,
            path,
            headers,
            ..
        } = *req;
        let host_ok = match (&self.host, host) {
            (None, _) => true,
            (Some(want), Some(have)) => want.matches(have),
            (Some(_), None) => false,
        };
        host_ok
            && self.path.matches(path)
            && (self.methods.is_empty() || self.methods.contains(method))
            && self.headers.iter().all(|(name, value)| match value {
                None => headers.contains_key(name),
                Some(v) => headers
                    .get_all(name)
                    .iter()
                    .any(|h| h.as_bytes() == v.as_bytes()),
            })
            && (self.geo.is_empty() || self.geo.matches(req.location()))
    }

    fn precedence(&self) -> impl Ord {
        (
            self.host.as_ref().map_or((0, 0), HostMatch::rank),
            self.path.rank(),
            self.methods.len().min(1) + self.headers.len() + self.geo.conditions(),
        )
    }
}

/// What a route is chosen by: the canonical request and, only if some route asks, where
/// the client is (looked up at most once per request, on first need).
pub struct RouteQuery<'a> {
    /// The method.
    pub method: &'a Method,
    /// The canonical path.
    pub path: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    locate: &'a dyn Fn() -> Option<Location>,
    located: std::cell::OnceCell<Option<Location>>,
}

impl<'a> RouteQuery<'a> {
    /// A query for a request; `locate` is called only if a location condition is met.
    pub fn new(
        method: &'a Method,
        path: &'a str,
        headers: &'a HeaderMap,
        locate: &'a dyn Fn() -> Option<Location>,
    ) -> Self {
        RouteQuery {
            method,
            path,
            headers,
            locate,
            located: std::cell::OnceCell::new(),
        }
    }

    /// Where the client is.
    pub fn location(&self) -> Option<&Location> {
        self.located.get_or_init(|| (self.locate)()).as_ref()
    }
}

/// Routes ordered by precedence.
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Order `routes` by precedence (stable: ties keep manifest order).
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.precedence()));
        RouteTable { routes }
    }

    /// The route for a request to `host`.
    pub fn find(&self, host: Option<&str>, req: &RouteQuery<'_>) -> Option<&Route> {
        let host = host.map(crate::request::authority::host_of);
        self.routes.iter().find(|r| r.matches(host, req))
    }

    /// The routes in the order they are tried.
    pub fn in_order(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}

/// Segment-aware prefix match.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Routes and upstreams for tests.
    use super::*;
    use crate::config::UpstreamConfig;
    use std::time::Duration;

    pub fn upstream(name: &str) -> Arc<Upstream> {
        let cfg = UpstreamConfig {
            name: name.into(),
            targets: vec!["127.0.0.1:1".parse().unwrap()],
            weights: vec![1],
            balance: crate::balance::Algorithm::RoundRobin,
            sticky: None,
            health: None,
            passive: Default::default(),
            retries: 1,
            max_requests: 10_000,
            upgrade_idle_timeout: Duration::from_secs(1),
            transport: Default::default(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            overall_timeout: None,
            max_pending: 1_000,
            pool_idle_timeout: Duration::from_secs(1),
            resolve_interval: Duration::from_secs(1),
        };
        Arc::new(Upstream::new(0, &cfg))
    }

    pub fn route(host: Option<&str>, path: PathMatch, name: &str) -> Route {
        let host = host.map(|h| match h.strip_prefix('*') {
            Some(suffix) => HostMatch::Wildcard(suffix.into()),
            None => HostMatch::Exact(h.into()),
        });
        Route {
            label: label(host.as_ref(), &path),
            host,
            path,
            methods: vec![],
            headers: vec![],
            geo: GeoMatch::default(),
            backends: Backends::single(upstream(name)),
            filters: vec![],
            timeouts: Default::default(),
            upgrades: vec![],
            cache: None,
            compress: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{route, upstream};
    use super::*;

    fn prefix(p: &str) -> PathMatch {
        PathMatch::Prefix(p.into())
    }

    fn find<'a>(t: &'a RouteTable, host: Option<&str>, path: &str) -> Option<&'a str> {
        find_with(t, host, &Method::GET, path, &HeaderMap::new())
    }

    fn find_with<'a>(
        t: &'a RouteTable,
        host: Option<&str>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<&'a str> {
        let nowhere = || None;
        t.find(host, &RouteQuery::new(method, path, headers, &nowhere))
            .and_then(|r| r.backends.pick())
            .map(|u| u.name())
    }

    #[test]
    fn most_specific_route_wins() {
        let t = RouteTable::new(vec![
            route(None, prefix("/"), "default"),
            route(None, prefix("/api"), "api"),
            route(Some("example.com"), prefix("/"), "example"),
            route(Some("example.com"), prefix("/api/v2/"), "example-v2"),
        ]);
        assert_eq!(find(&t, Some("other.org"), "/"), Some("default"));
        assert_eq!(find(&t, Some("other.org"), "/api"), Some("api"));
        assert_eq!(find(&t, Some("other.org"), "/api/x"), Some("api"));
        assert_eq!(find(&t, Some("other.org"), "/apix"), Some("default"));
        assert_eq!(find(&t, Some("EXAMPLE.com:8080"), "/api"), Some("example"));
        assert_eq!(
            find(&t, Some("example.com"), "/api/v2/items"),
            Some("example-v2")
        );
        assert_eq!(find(&t, None, "/api"), Some("api"));
    }

    #[test]
    fn hosts_exact_then_longest_wildcard_then_any() {
        let t = RouteTable::new(vec![
            route(None, prefix("/"), "any"),
            route(Some("*.example.com"), prefix("/"), "wild"),
            route(Some("*.eu.example.com"), prefix("/"), "wild-eu"),
            route(Some("www.eu.example.com"), prefix("/"), "www-eu"),
        ]);
        assert_eq!(find(&t, Some("a.example.com"), "/"), Some("wild"));
        assert_eq!(find(&t, Some("x.y.example.com"), "/"), Some("wild"));
        assert_eq!(find(&t, Some("shop.eu.example.com"), "/"), Some("wild-eu"));
        assert_eq!(find(&t, Some("www.eu.example.com"), "/"), Some("www-eu"));
        assert_eq!(
            find(&t, Some("example.com"), "/"),
            Some("any"),
            "the apex is not a subdomain"
        );
        assert_eq!(find(&t, Some("badexample.com"), "/"), Some("any"));
    }

    #[test]
    fn paths_exact_then_regex_then_longest_prefix() {
        let t = RouteTable::new(vec![
            route(None, prefix("/"), "root"),
            route(None, prefix("/users"), "users"),
            route(
                None,
                PathMatch::Regex(regex::Regex::new(r"^/users/[0-9]+$").unwrap()),
                "user-id",
            ),
            route(None, PathMatch::Exact("/users/me".into()), "me"),
        ]);
        assert_eq!(find(&t, None, "/users/me"), Some("me"));
        assert_eq!(find(&t, None, "/users/42"), Some("user-id"));
        assert_eq!(find(&t, None, "/users/ann"), Some("users"));
        assert_eq!(find(&t, None, "/users/me/x"), Some("users"));
        assert_eq!(find(&t, None, "/other"), Some("root"));
    }

    #[test]
    fn methods_and_headers_narrow_a_route() {
        let mut writes = route(None, prefix("/"), "writes");
        writes.methods = vec![Method::POST, Method::PUT];
        let mut canary = route(None, prefix("/"), "canary");
        canary.headers = vec![(HeaderName::from_static("x-canary"), Some("1".into()))];
        let mut debug = route(None, prefix("/"), "debug");
        debug.headers = vec![(HeaderName::from_static("x-debug"), None)];
        let t = RouteTable::new(vec![route(None, prefix("/"), "all"), writes, canary, debug]);
        let none = HeaderMap::new();
        let mut h = HeaderMap::new();
        h.insert("x-canary", "1".parse().unwrap());
        assert_eq!(find_with(&t, None, &Method::GET, "/", &none), Some("all"));
        assert_eq!(
            find_with(&t, None, &Method::POST, "/", &none),
            Some("writes")
        );
        assert_eq!(find_with(&t, None, &Method::GET, "/", &h), Some("canary"));
        h.insert("x-canary", "2".parse().unwrap());
        assert_eq!(find_with(&t, None, &Method::GET, "/", &h), Some("all"));
        h.insert("x-debug", "".parse().unwrap());
        assert_eq!(find_with(&t, None, &Method::GET, "/", &h), Some("debug"));
    }

    #[test]
    fn weighted_backends_get_their_share_interleaved_and_zero_drains() {
        let b = Backends::new(vec![
            (upstream("blue"), 3),
            (upstream("green"), 1),
            (upstream("old"), 0),
        ]);
        let picks: Vec<&str> = (0..400).map(|_| b.pick().unwrap().name()).collect();
        assert_eq!(picks.iter().filter(|n| **n == "blue").count(), 300);
        assert_eq!(picks.iter().filter(|n| **n == "green").count(), 100);
        assert!(!picks.contains(&"old"), "weight 0 drains");
        let longest_run = picks.chunk_by(|a, b| a == b).map(<[_]>::len).max().unwrap();
        assert!(longest_run <= 3, "interleaved, not in runs: {longest_run}");
        assert!(Backends::new(vec![(upstream("x"), 0)]).pick().is_none());
    }

    #[test]
    fn no_match_is_none() {
        let t = RouteTable::new(vec![route(Some("a.test"), prefix("/only"), "a")]);
        assert_eq!(find(&t, Some("a.test"), "/"), None);
        assert_eq!(find(&t, Some("b.test"), "/only"), None);
        assert_eq!(find(&t, None, "/only"), None);
    }
}
