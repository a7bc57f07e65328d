//! The route table: which route (upstream and filter chain) serves a request.
//!
//! Precedence, most specific first: a route with a `host` beats one without; among those,
//! the longest path prefix wins. Prefixes match whole segments: `/api` matches `/api` and
//! `/api/v1`, not `/apix`; a prefix ending in `/` matches everything below it.

use crate::filter::Filter;
use crate::upstream::Upstream;
use std::sync::Arc;

/// A resolved route.
pub struct Route {
    /// Lower-case host, or `None` for any.
    pub host: Option<String>,
    /// Path prefix.
    pub path: String,
    /// Where matching requests go.
    pub upstream: Arc<Upstream>,
    /// Filters in request order.
    pub filters: Vec<Arc<Filter>>,
}

/// Routes ordered by precedence.
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Order `routes` by precedence.
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.path.len().cmp(&a.path.len()))
        });
        RouteTable { routes }
    }

    /// The route for a request to `host` (any case, port allowed) and `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let host = host.map(strip_port);
        self.routes.iter().find(|r| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
                (Some(_), None) => false,
            };
            host_ok && prefix_matches(&r.path, path)
        })
    }
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        // [v6]:port
        return authority
            .split(']')
            .next()
            .map_or(authority, |h| &authority[..h.len() + 1]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Segment-aware prefix match.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamConfig;
    use std::time::Duration;

    fn route(host: Option<&str>, path: &str, name: &str) -> Route {
        let cfg = UpstreamConfig {
            name: name.into(),
            targets: vec!["127.0.0.1:1".parse().unwrap()],
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        };
        Route {
            host: host.map(str::to_owned),
            path: path.into(),
            upstream: Arc::new(Upstream::new(0, &cfg)),
            filters: vec![],
        }
    }

    fn name<'a>(t: &'a RouteTable, host: Option<&str>, path: &str) -> Option<&'a str> {
        t.find(host, path).map(|r| r.upstream.name())
    }

    #[test]
    fn most_specific_route_wins() {
        let t = RouteTable::new(vec![
            route(None, "/", "default"),
            route(None, "/api", "api"),
            route(Some("example.com"), "/", "example"),
            route(Some("example.com"), "/api/v2/", "example-v2"),
        ]);
        assert_eq!(name(&t, Some("other.org"), "/"), Some("default"));
        assert_eq!(name(&t, Some("other.org"), "/api"), Some("api"));
        assert_eq!(name(&t, Some("other.org"), "/api/x"), Some("api"));
        assert_eq!(name(&t, Some("other.org"), "/apix"), Some("default"));
        assert_eq!(name(&t, Some("EXAMPLE.com:8080"), "/api"), Some("example"));
        assert_eq!(
            name(&t, Some("example.com"), "/api/v2/items"),
            Some("example-v2")
        );
        assert_eq!(name(&t, None, "/api"), Some("api"));
    }

    #[test]
    fn no_match_is_none() {
        let t = RouteTable::new(vec![route(Some("a.test"), "/only", "a")]);
        assert_eq!(name(&t, Some("a.test"), "/"), None);
        assert_eq!(name(&t, Some("b.test"), "/only"), None);
        assert_eq!(name(&t, None, "/only"), None);
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("a.test:80"), "a.test");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.test"), "a.test");
    }
}
