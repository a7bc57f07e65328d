//! `cache-policy`: caching and compression decisions from configuration, for routes with
//! a `cache` setting: per path, content type and status, bypass the cache, add a request
//! header to the key, refuse storage, give a TTL, stale windows and tags, or switch
//! compression off.
//!
//! ```toml
//! [filters.policy]
//! plugin = "cache-policy.wasm"
//! [filters.policy.config]
//! rules = [
//!   { path = "/account/", bypass = true, no-compress = true },
//!   { path = "/api/", key-header = "x-tenant" },              # one entry per tenant
//!   { path-regex = "\\.(css|js|png)$", ttl = "168h", tags = ["static"] },
//!   { content-type = "text/html", ttl = "60s", stale-while-revalidate = "30s", stale-if-error = "1h" },
//!   { status = [404, 410], ttl = "10s" },
//!   { status = [500, 502, 503], uncacheable = true },
//! ]
//! ```
//! A rule matches when all its conditions hold: `path` (a prefix, segment-aware),
//! `path-regex`, `content-type` (media type of the response, `text/*` allowed) and
//! `status` (of the response). In the request phase the first rule whose path conditions
//! match (and that has no response condition) decides `bypass` and `key-header`; in the
//! response phase the first rule that matches decides the rest. A `ttl` makes a response
//! without freshness information storable; responses the cache refuses by their headers
//! (`no-store`, `private`, `Set-Cookie`) stay refused.

use serde::Deserialize;
use weir_sdk::units::Duration;
use weir_sdk::{cache, Action, Config, Filter, Hooks, Request, Response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RuleSpec {
    path: Option<String>,
    path_regex: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    status: Vec<u16>,
    #[serde(default)]
    bypass: bool,
    key_header: Option<String>,
    #[serde(default)]
    uncacheable: bool,
    ttl: Option<Duration>,
    stale_while_revalidate: Option<Duration>,
    stale_if_error: Option<Duration>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    no_compress: bool,
}

struct Rule {
    path: Option<String>,
    path_regex: Option<regex_lite::Regex>,
    content_type: Option<String>,
    status: Vec<u16>,
    bypass: bool,
    key_header: Option<String>,
    uncacheable: bool,
    ttl: Option<std::time::Duration>,
    stale: Option<(std::time::Duration, std::time::Duration)>,
    tags: Vec<String>,
    no_compress: bool,
}

impl Rule {
    fn from_spec(i: usize, s: RuleSpec) -> Result<Rule, String> {
        let at = |e: String| format!("rules[{i}]: {e}");
        if let Some(p) = &s.path {
            if !p.starts_with('/') {
                return Err(at(format!("path {p:?} does not start with /")));
            }
        }
        let path_regex = match &s.path_regex {
            Some(r) => Some(regex_lite::Regex::new(r).map_err(|e| at(format!("path-regex: {e}")))?),
            None => None,
        };
        if let Some(h) = &s.key_header {
            weir_sdk::header::validate_name(h).map_err(|e| at(format!("key-header: {e}")))?;
        }
        if s.status.iter().any(|c| !(100..=599).contains(c)) {
            return Err(at("status: codes are 100..=599".into()));
        }
        for t in &s.tags {
            if t.is_empty() || t.contains([' ', ',']) {
                return Err(at(format!("tags: {t:?} is empty or has spaces or commas")));
            }
        }
        let responds = s.content_type.is_some() || !s.status.is_empty();
        if responds && (s.bypass || s.key_header.is_some()) {
            return Err(at("bypass and key-header are request decisions: a rule with content-type or status cannot make them".into()));
        }
        let stale = match (s.stale_while_revalidate, s.stale_if_error) {
            (None, None) => None,
            (w, e) => Some((
                w.map_or_else(Default::default, Into::into),
                e.map_or_else(Default::default, Into::into),
            )),
        };
        Ok(Rule {
            path: s.path,
            path_regex,
            content_type: s.content_type.map(|c| c.to_ascii_lowercase()),
            status: s.status,
            bypass: s.bypass,
            key_header: s.key_header.map(|h| h.to_ascii_lowercase()),
            uncacheable: s.uncacheable,
            ttl: s.ttl.map(Into::into),
            stale,
            tags: s.tags,
            no_compress: s.no_compress,
        })
    }

    fn path_matches(&self, path: &str) -> bool {
        let prefix_ok = self.path.as_deref().is_none_or(|p| {
            let p = p.trim_end_matches('/');
            path == p || path.starts_with(&format!("{p}/")) || p.is_empty()
        });
        prefix_ok && self.path_regex.as_ref().is_none_or(|r| r.is_match(path))
    }

    fn response_matches(&self, status: u16, content_type: Option<&str>) -> bool {
        let status_ok = self.status.is_empty() || self.status.contains(&status);
        let type_ok = self.content_type.as_deref().is_none_or(|want| {
            let essence = content_type
                .and_then(|c| c.split(';').next())
                .map(|c| c.trim().to_ascii_lowercase())
                .unwrap_or_default();
            match want.strip_suffix("/*") {
                Some(major) => essence.split('/').next() == Some(major),
                None => essence == want,
            }
        });
        status_ok && type_ok
    }

    fn is_request_rule(&self) -> bool {
        self.content_type.is_none() && self.status.is_empty()
    }
}

/// The filter: its rules, in order.
pub struct CachePolicy {
    rules: Vec<Rule>,
}

impl Filter for CachePolicy {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        let rules = s
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| Rule::from_spec(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CachePolicy { rules })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ALL
    }

    fn on_request(&self, req: &mut Request) -> Action {
        let path = req.path();
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.is_request_rule() && r.path_matches(&path))
        else {
            return Action::Continue;
        };
        if rule.bypass {
            cache::bypass();
        }
        if let Some(h) = &rule.key_header {
            // An absent header is a value too: requests without it share one entry.
            let value = req.header(h).unwrap_or_default();
            if let Err(e) = cache::add_to_key(&format!("{h}={value}")) {
                weir_sdk::log(
                    weir_sdk::Level::Warn,
                    &format!("cache-policy: key-header {h}: {e}"),
                );
            }
        }
        if rule.no_compress {
            cache::no_compress();
        }
        Action::Continue
    }

    fn on_response(&self, req: &Request<'_>, resp: &mut Response<'_>) -> Action {
        let path = req.path();
        let content_type = resp.header("content-type");
        let status = resp.status();
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.path_matches(&path) && r.response_matches(status, content_type.as_deref()))
        else {
            return Action::Continue;
        };
        if rule.uncacheable {
            cache::uncacheable();
        }
        if let Some(ttl) = rule.ttl {
            cache::set_ttl(ttl);
        }
        if let Some((swr, sie)) = rule.stale {
            cache::set_stale(swr, sie);
        }
        for t in &rule.tags {
            let _ = cache::add_tag(t);
        }
        if rule.no_compress {
            cache::no_compress();
        }
        Action::Continue
    }
}

weir_sdk::export_filter!(CachePolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, MockRequest, MockResponse};

    fn policy(json: &str) -> CachePolicy {
        testing::init(json).unwrap()
    }

    #[test]
    fn request_rules_bypass_and_key() {
        let p = policy(
            r#"{"rules":[{"path":"/account/","bypass":true},{"path":"/api","key-header":"X-Tenant"}]}"#,
        );
        testing::reset_cache_decisions();
        testing::assert_continues(&testing::on_request(
            &p,
            &mut MockRequest::get("/account/me"),
        ));
        assert!(testing::cache_decisions().bypass);
        testing::reset_cache_decisions();
        testing::assert_continues(&testing::on_request(&p, &mut MockRequest::get("/accounts")));
        assert!(!testing::cache_decisions().bypass, "segment-aware prefix");
        let mut req = MockRequest::get("/api/items").with_header("x-tenant", "t7");
        testing::assert_continues(&testing::on_request(&p, &mut req));
        assert_eq!(testing::cache_decisions().key_parts, ["x-tenant=t7"]);
    }

    #[test]
    fn response_rules_match_type_and_status_first_wins() {
        let p = policy(
            r#"{"rules":[
                {"path-regex":"\\.css$","ttl":"168h","tags":["static"]},
                {"content-type":"text/*","ttl":"60s","stale-while-revalidate":"30s"},
                {"status":[500,502],"uncacheable":true}
            ]}"#,
        );
        let run = |path: &str, status: u16, ct: &str| {
            testing::reset_cache_decisions();
            let mut resp = MockResponse::new(status).with_header("content-type", ct);
            let _ = testing::on_response(&p, &mut MockRequest::get(path), &mut resp);
            testing::cache_decisions()
        };
        let css = run("/a.css", 200, "text/css");
        assert_eq!(css.ttl, Some(7 * 86400));
        assert_eq!(css.tags, ["static"]);
        let html = run("/", 200, "text/html; charset=utf-8");
        assert_eq!((html.ttl, html.stale), (Some(60), Some((30, 0))));
        assert!(run("/x", 502, "application/json").uncacheable);
        assert_eq!(
            run("/x", 200, "image/png"),
            weir_sdk::cache::Decisions::default()
        );
    }

    #[test]
    fn bad_rules_are_refused_with_their_index() {
        for (json, want) in [
            (
                r#"{"rules":[{"path":"x"}]}"#,
                "rules[0]: path \"x\" does not start with /",
            ),
            (
                r#"{"rules":[{},{"path-regex":"("}]}"#,
                "rules[1]: path-regex",
            ),
            (
                r#"{"rules":[{"status":[200],"bypass":true}]}"#,
                "rules[0]: bypass and key-header are request decisions",
            ),
            (r#"{"rules":[{"tags":["a b"]}]}"#, "rules[0]: tags"),
            (r#"{"rules":[{"ttl":"soon"}]}"#, "ttl"),
            (r#"{"rules":[{"cache":true}]}"#, "unknown field"),
        ] {
            let err = testing::init::<CachePolicy>(json).err().unwrap_or_default();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
