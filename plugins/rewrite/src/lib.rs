//! `rewrite`: rewrite the path, query and host sent upstream, or redirect the client, by
//! exact, prefix or regex rules over the canonical path.
//!
//! ```toml
//! [filters.moves]
//! plugin = "rewrite.wasm"
//! [[filters.moves.config.rules]]
//! prefix = "/old"                     # or exact = "/home", or regex = '^/u/(?P<id>\d+)$'
//! redirect = "/new{rest}"             # Location template; or rewrite = "/v2{rest}"
//! status = 301                        # 301, 302 (default), 303, 307 or 308
//! [[filters.moves.config.rules]]
//! regex = '^/api/v1/(.*)$'
//! rewrite = "/v2/{1}"                 # path (and ?query) the upstream gets
//! host = "api.internal"               # Host the upstream gets (a template too)
//! query-set = { source = "weir" }     # query parameters added or replaced
//! query-remove = ["debug"]            # query parameters removed
//! hosts = ["example.com"]             # only for these hosts; default any
//! continue = false                    # true: later rules see the result too
//! ```
//! Templates: `{1}`..`{9}` and `{name}` (regex captures), `{rest}` (after a prefix),
//! `{path}`, `{query}`, `{host}`, `{scheme}`. The request's query is kept unless the template
//! writes a `?` or `keep-query = false`. The first matching rule applies; with `continue`,
//! the following ones are tried too, each at most once, so rewrites cannot loop. A redirect
//! to the URL the request already has is not sent (logged as a loop), and a relative target
//! never starts with `//` (which browsers read as another host).

mod query;
mod template;

use regex_lite::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use template::{Template, Vars};
use weir_sdk::{metrics, Action, Config, Filter, Level, LocalResponse, Request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    rules: Vec<RuleSettings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RuleSettings {
    exact: Option<String>,
    prefix: Option<String>,
    regex: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
    redirect: Option<String>,
    rewrite: Option<String>,
    host: Option<String>,
    status: Option<u16>,
    #[serde(default)]
    query_set: BTreeMap<String, String>,
    #[serde(default)]
    query_remove: Vec<String>,
    #[serde(default = "yes")]
    keep_query: bool,
    #[serde(default, rename = "continue")]
    go_on: bool,
}

fn yes() -> bool {
    true
}

enum Match {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

enum Effect {
    Redirect {
        to: Template,
        status: u16,
    },
    Rewrite {
        path: Option<Template>,
        host: Option<Template>,
    },
}

struct Rule {
    matcher: Match,
    hosts: Vec<String>,
    effect: Effect,
    query_set: Vec<(String, String)>,
    query_remove: Vec<String>,
    keep_query: bool,
    go_on: bool,
}

impl Rule {
    fn from_settings(i: usize, s: RuleSettings) -> Result<Self, String> {
        let at = |why: String| format!("rules[{i}]: {why}");
        let (matcher, groups, names, rest) = match (s.exact, s.prefix, s.regex) {
            (Some(e), None, None) => (Match::Exact(e), 0, Vec::new(), false),
            (None, Some(p), None) => {
                let p = p.trim_end_matches('/').to_string();
                (Match::Prefix(p), 0, Vec::new(), true)
            }
            (None, None, Some(r)) => {
                let re = Regex::new(&r).map_err(|e| at(format!("regex: {e}")))?;
                let names: Vec<String> = re.capture_names().flatten().map(str::to_string).collect();
                let groups = re.captures_len() - 1;
                (Match::Regex(re), groups, names, false)
            }
            _ => return Err(at("give exactly one of exact, prefix or regex".into())),
        };
        if let Match::Exact(p) | Match::Prefix(p) = &matcher {
            if !p.is_empty() && !p.starts_with('/') {
                return Err(at(format!("{p:?} does not start with '/'")));
            }
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let tpl = |field: &str, t: &str| {
            Template::parse(t, groups, &names, rest).map_err(|e| at(format!("{field}: {e}")))
        };
        let effect = match (s.redirect, s.rewrite.as_deref(), s.host.as_deref()) {
            (Some(r), None, None) => {
                let status = s.status.unwrap_or(302);
                if ![301, 302, 303, 307, 308].contains(&status) {
                    return Err(at(format!(
                        "status: {status} is not a redirect (301, 302, 303, 307, 308)"
                    )));
                }
                Effect::Redirect {
                    to: tpl("redirect", &r)?,
                    status,
                }
            }
            (Some(_), _, _) => {
                return Err(at("a redirect rule cannot also rewrite or set host".into()))
            }
            (None, path, host) => {
                if s.status.is_some() {
                    return Err(at("status: only for redirect rules".into()));
                }
                if let Some(p) = path {
                    if !p.starts_with('/') && !p.starts_with('{') {
                        return Err(at(format!("rewrite: {p:?} does not start with '/'")));
                    }
                }
                let query_only = !s.query_set.is_empty() || !s.query_remove.is_empty();
                if path.is_none() && host.is_none() && !query_only {
                    return Err(at(
                        "give redirect, rewrite, host, query-set or query-remove".into(),
                    ));
                }
                Effect::Rewrite {
                    path: path.map(|p| tpl("rewrite", p)).transpose()?,
                    host: host.map(|h| tpl("host", h)).transpose()?,
                }
            }
        };
        for (k, v) in &s.query_set {
            if !query::is_clean(k) || !query::is_clean(v) || k.is_empty() {
                return Err(at(format!(
                    "query-set: {k:?} = {v:?} needs percent-encoding ('&', '=', '#', spaces)"
                )));
            }
        }
        Ok(Rule {
            matcher,
            hosts: s.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            effect,
            query_set: s.query_set.into_iter().collect(),
            query_remove: s.query_remove,
            keep_query: s.keep_query,
            go_on: s.go_on,
        })
    }
}

pub struct Rewrite {
    rules: Vec<Rule>,
}

/// The request as the rules see it, updated by each rewrite.
struct Target {
    path: String,
    query: Option<String>,
    host: String,
    scheme: String,
}

impl Target {
    fn url(&self) -> String {
        let q = self
            .query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        format!("{}://{}{}{q}", self.scheme, self.host, self.path)
    }
}

/// Split a rendered `path?query` and apply the query rules.
fn with_query(
    rule: &Rule,
    rendered: &str,
    old_query: Option<&str>,
    keep: bool,
) -> (String, Option<String>) {
    let (path, query) = match rendered.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None if keep => (rendered.to_string(), old_query.map(str::to_string)),
        None => (rendered.to_string(), None),
    };
    let query = query::edit(query.as_deref(), &rule.query_set, &rule.query_remove);
    (path, query)
}

impl Rewrite {
    fn redirect(
        &self,
        to: &Template,
        status: u16,
        rule: &Rule,
        t: &Target,
        vars: &Vars,
    ) -> Option<Action> {
        let rendered = to.render(vars);
        let keep = rule.keep_query && !to.uses_query();
        let (mut path, query) = with_query(rule, &rendered, t.query.as_deref(), keep);
        let absolute = path.contains("://");
        if !absolute {
            // "//evil.example" or "/\evil.example" would leave this site.
            let trimmed = path.trim_start_matches(['/', '\\']);
            path = format!("/{trimmed}");
        }
        let location = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let same = if absolute {
            location == t.url()
        } else {
            path == t.path && query == t.query
        };
        if same {
            metrics::counter_add("loops", 1);
            weir_sdk::log(
                Level::Warn,
                &format!("redirect loop: {location} redirects to itself; not sent"),
            );
            return None;
        }
        metrics::counter_add("redirects", 1);
        Some(Action::Respond(
            LocalResponse::text(status, format!("redirecting to {location}\n"))
                .header("location", location),
        ))
    }
}

impl Filter for Rewrite {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if s.rules.is_empty() {
            return Err("rules: name at least one rule".into());
        }
        let rules = s
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| Rule::from_settings(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rewrite { rules })
    }

    fn on_request(&self, req: &mut Request) -> Action {
        let mut t = Target {
            path: req.path(),
            query: req.query(),
            host: req.authority().unwrap_or_default(),
            scheme: req.scheme(),
        };
        let mut changed = (false, false);
        for rule in &self.rules {
            let host_only = t.host.split(':').next().unwrap_or("");
            if !rule.hosts.is_empty() && !rule.hosts.iter().any(|h| h == host_only || *h == t.host)
            {
                continue;
            }
            let (caps, rest) = match &rule.matcher {
                Match::Exact(p) if *p == t.path => (None, String::new()),
                Match::Prefix(p) => match t.path.strip_prefix(p.as_str()) {
                    Some(r) if r.is_empty() || r.starts_with('/') || p.is_empty() => {
                        (None, r.to_string())
                    }
                    _ => continue,
                },
                Match::Regex(re) => match re.captures(&t.path) {
                    Some(c) => (Some(c), String::new()),
                    None => continue,
                },
                Match::Exact(_) => continue,
            };
            let path_now = t.path.clone();
            let vars = Vars {
                captures: caps.as_ref(),
                rest: &rest,
                path: &path_now,
                query: t.query.as_deref().unwrap_or(""),
                host: &t.host,
                scheme: &t.scheme,
            };
            match &rule.effect {
                Effect::Redirect { to, status } => {
                    if let Some(act) = self.redirect(to, *status, rule, &t, &vars) {
                        return act;
                    }
                }
                Effect::Rewrite { path, host } => {
                    let new_host = host.as_ref().map(|h| h.render(&vars));
                    let (p, q) = match path {
                        Some(tpl) => {
                            let keep = rule.keep_query && !tpl.uses_query();
                            with_query(rule, &tpl.render(&vars), t.query.as_deref(), keep)
                        }
                        None => (
                            t.path.clone(),
                            query::edit(t.query.as_deref(), &rule.query_set, &rule.query_remove),
                        ),
                    };
                    changed.0 |= p != t.path || q != t.query;
                    t.path = p;
                    t.query = q;
                    if let Some(h) = new_host {
                        changed.1 = true;
                        t.host = h;
                    }
                }
            }
            if !rule.go_on {
                break;
            }
        }
        if changed.0 {
            let pq = match &t.query {
                Some(q) => format!("{}?{q}", t.path),
                None => t.path.clone(),
            };
            if let Err(e) = req.set_path_and_query(&pq) {
                weir_sdk::log(Level::Warn, &format!("rewrite to {pq:?} refused: {e}"));
                return Action::respond_text(500, "rewrite failed\n");
            }
            metrics::counter_add("rewrites", 1);
        }
        if changed.1 {
            if let Err(e) = req.set_header("host", &t.host) {
                weir_sdk::log(Level::Warn, &format!("host {:?} refused: {e}", t.host));
                return Action::respond_text(500, "rewrite failed\n");
            }
        }
        Action::Continue
    }
}

weir_sdk::export_filter!(Rewrite);

#[cfg(test)]
mod tests;
