//! Validating `[[routes]]`: host and path conditions, methods, headers, backends, filters.

use super::*;

impl Validator {
    pub(super) fn routes(
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
            let methods = self.route_methods(i, r);
            let headers = self.route_headers(i, r);
            let geo = self.route_geo(i, r, m);
            let key = format!(
                "{host:?} {:?} {} {methods:?} {headers:?} {geo:?}",
                path.rank_name(),
                path.as_str()
            );
            if !seen.insert(key) {
                self.error(
                    span.clone(),
                    format!(
                        "routes[{i}]: another route already matches the same host, path, methods, headers and location"
                    ),
                );
            }
            let backends = self.route_backends(i, r, span, upstreams);
            let chain = self.route_filters(i, r, filters);
            out.push(RouteConfig {
                host,
                path,
                methods,
                headers,
                geo,
                backends,
                filters: chain,
                timeouts: RouteTimeouts {
                    timeout: r.timeout.map(|d| d.0),
                    idle: r.idle_timeout.map(|d| d.0),
                    overall: r.overall_timeout.map(|d| d.0),
                },
                upgrades: self.route_upgrades(i, r),
                cache: r.cache.as_ref().and_then(|c| self.route_cache(i, c, m)),
                compress: r.compress.as_ref().and_then(|c| self.route_compress(i, c)),
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

    /// `methods`: known methods, CONNECT refused.
    fn route_methods(&mut self, i: usize, r: &manifest::RouteSpec) -> Vec<http::Method> {
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
        methods
    }

    /// `headers`: names that must be present, each with the value it must have (`*`: any).
    fn route_headers(
        &mut self,
        i: usize,
        r: &manifest::RouteSpec,
    ) -> Vec<(http::HeaderName, Option<String>)> {
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
        headers
    }

    /// `filters`: defined filters, each once, as indexes into the filter list.
    fn route_filters(
        &mut self,
        i: usize,
        r: &manifest::RouteSpec,
        filters: &BTreeMap<&str, usize>,
    ) -> Vec<usize> {
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
        chain
    }

    /// `countries`, `continents` and `asns`: well-formed codes, and databases to look in.
    fn route_geo(&mut self, i: usize, r: &manifest::RouteSpec, m: &Manifest) -> GeoMatch {
        const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];
        let mut geo = GeoMatch::default();
        for c in &r.countries {
            let code = c.get_ref().to_ascii_uppercase();
            if code == "UK" {
                self.error(
                    c.span(),
                    format!("routes[{i}].countries: \"UK\" is not an ISO 3166-1 code: the United Kingdom is \"GB\""),
                );
            } else if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
                geo.countries.push(code);
            } else {
                self.error(
                    c.span(),
                    format!(
                        "routes[{i}].countries: {:?} is not an ISO 3166-1 alpha-2 country code (e.g. \"DE\")",
                        c.get_ref()
                    ),
                );
            }
        }
        for c in &r.continents {
            let code = c.get_ref().to_ascii_uppercase();
            if CONTINENTS.contains(&code.as_str()) {
                geo.continents.push(code);
            } else {
                self.error(
                    c.span(),
                    format!(
                        "routes[{i}].continents: {:?} is not a continent code (one of {})",
                        c.get_ref(),
                        CONTINENTS.join(", ")
                    ),
                );
            }
        }
        for a in &r.asns {
            match u32::try_from(*a.get_ref()) {
                Ok(n) if n > 0 => geo.asns.push(n),
                _ => self.error(
                    a.span(),
                    format!("routes[{i}].asns: {} is not an AS number", a.get_ref()),
                ),
            }
        }
        let first = r
            .countries
            .first()
            .map(|c| c.span())
            .or_else(|| r.continents.first().map(|c| c.span()))
            .or_else(|| r.asns.first().map(|a| a.span()));
        if let (Some(span), true) = (first, m.geo_databases.is_empty()) {
            self.error(
                span,
                format!(
                    "routes[{i}]: location conditions need `geo-databases` (MaxMind .mmdb files) at the top of the manifest"
                ),
            );
        }
        geo
    }

    pub(super) fn route_host(&mut self, i: usize, h: &toml::Spanned<String>) -> HostMatch {
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

    pub(super) fn route_path(
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

    pub(super) fn route_backends(
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
}
