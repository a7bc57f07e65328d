//! `rate-limit`: limits on request rates, kept by the host's GCRA limiter (exact across
//! workers), keyed by what the operator names.
//!
//! ```toml
//! [filters.limits]
//! plugin = "rate-limit.wasm"
//! [filters.limits.config]
//! shadow = false              # true: count and log what would be refused, refuse nothing
//! headers = "refused"         # RateLimit / RateLimit-Policy headers: "refused" (on 429s),
//!                             #   "always" (on every response; adds a response hook) or "never"
//! status = 429                # default 429
//! body = "too many requests\n"
//! on-store-error = "allow"    # when a check fails (a shared store that is down, with the
//!                             #   filter's on-store-failure = "fail-open"): "allow" the
//!                             #   request, or "refuse" it with 503
//!
//! [[filters.limits.config.limits]]
//! name = "per-ip"             # letters, digits, '-', '_', '.'; part of every key
//! rate = 100                  # units per `per`
//! per = "1m"
//! burst = 20                  # units at once after a quiet spell; default `rate`
//! key = ["client-ip"]         # descriptors: client-ip, client-net (/24, /64), method, host,
//!                             #   path, path-prefix, header:<name>, cookie:<name>, context:<key>
//! cost = 1                    # units per request; default 1
//! methods = ["POST"]          # only these methods; default all
//! path-prefixes = ["/login"]  # only paths under these (segment-wise); default all
//! ```
//! Every limit that applies to a request is charged; the request is refused if one of them
//! is spent (the others keep the charge). A limit whose key has a missing part (no such
//! header, cookie or property) does not apply to the request.

mod key;

use key::Descriptor;
use serde::Deserialize;
use std::time::Duration;
use weir_sdk::rate_limit::{self, Decision, Quota};
use weir_sdk::{log, metrics, units, Action, Config, Filter, Hooks, Level, LocalResponse};
use weir_sdk::{Request, Response};

/// Context property carrying the RateLimit headers to the response phase ("always").
const CONTEXT_KEY: &str = "rate-limit.headers";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    limits: Vec<LimitSettings>,
    #[serde(default)]
    shadow: bool,
    #[serde(default)]
    headers: HeaderMode,
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default = "default_body")]
    body: String,
    #[serde(default)]
    on_store_error: StoreErrorMode,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "kebab-case")]
enum StoreErrorMode {
    #[default]
    Allow,
    Refuse,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LimitSettings {
    name: String,
    rate: u32,
    per: units::Duration,
    burst: Option<u32>,
    key: Vec<String>,
    #[serde(default = "one")]
    cost: u32,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    path_prefixes: Vec<String>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "kebab-case")]
enum HeaderMode {
    #[default]
    Refused,
    Always,
    Never,
}

fn default_status() -> u16 {
    429
}

fn default_body() -> String {
    "too many requests\n".into()
}

fn one() -> u32 {
    1
}

/// One limit, validated.
struct Limit {
    name: String,
    quota: Quota,
    key: Vec<Descriptor>,
    cost: u32,
    methods: Vec<String>,
    path_prefixes: Vec<String>,
}

impl Limit {
    fn from_settings(i: usize, s: LimitSettings) -> Result<Self, String> {
        let at = |field: &str| format!("limits[{i}].{field}");
        let name_ok = !s.name.is_empty()
            && s.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(format!(
                "{}: {:?} is not a name (letters, digits, '-', '_', '.')",
                at("name"),
                s.name
            ));
        }
        if s.rate == 0 {
            return Err(format!("{}: must be at least 1", at("rate")));
        }
        if s.per.get() < Duration::from_millis(1) {
            return Err(format!("{}: must be at least 1ms", at("per")));
        }
        let burst = s.burst.unwrap_or(s.rate);
        if burst == 0 {
            return Err(format!("{}: must be at least 1", at("burst")));
        }
        if s.cost == 0 || s.cost > burst {
            return Err(format!(
                "{}: {} must be 1..={burst} (the burst), or no request could pass",
                at("cost"),
                s.cost
            ));
        }
        if s.key.is_empty() {
            return Err(format!(
                "{}: name at least one descriptor, e.g. [\"client-ip\"]",
                at("key")
            ));
        }
        let key = s
            .key
            .iter()
            .enumerate()
            .map(|(j, d)| Descriptor::parse(d).map_err(|e| format!("{}[{j}]: {e}", at("key"))))
            .collect::<Result<Vec<_>, _>>()?;
        if key.contains(&Descriptor::PathPrefix) && s.path_prefixes.is_empty() {
            return Err(format!(
                "{}: path-prefix needs the limit's path-prefixes",
                at("key")
            ));
        }
        for (j, p) in s.path_prefixes.iter().enumerate() {
            if !p.starts_with('/') {
                return Err(format!(
                    "{}[{j}]: {p:?} does not start with '/'",
                    at("path-prefixes")
                ));
            }
        }
        Ok(Limit {
            name: s.name,
            quota: Quota::per(s.rate, s.per.get()).with_burst(burst),
            key,
            cost: s.cost,
            methods: s.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
            path_prefixes: s
                .path_prefixes
                .into_iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .collect(),
        })
    }

    /// Whether the limit applies to `req`, and the path prefix it matched (if it has any).
    fn applies(&self, req: &Request) -> Option<Option<&str>> {
        if !self.methods.is_empty() && !self.methods.contains(&req.method()) {
            return None;
        }
        if self.path_prefixes.is_empty() {
            return Some(None);
        }
        let path = req.path();
        let under = |p: &str| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        self.path_prefixes
            .iter()
            .find(|p| under(p))
            .map(|p| Some(if p.is_empty() { "/" } else { p.as_str() }))
    }

    /// `"name";q=100;w=60` (RateLimit-Policy, draft-ietf-httpapi-ratelimit-headers).
    fn policy(&self) -> String {
        let w = self.quota.period.as_millis().div_ceil(1000).max(1);
        format!("\"{}\";q={};w={w}", self.name, self.quota.rate)
    }
}

/// `"name";r=5;t=30` (RateLimit).
fn state(name: &str, d: &Decision) -> String {
    let t = d.reset.as_millis().div_ceil(1000);
    format!("\"{name}\";r={};t={t}", d.remaining)
}

pub struct RateLimit {
    limits: Vec<Limit>,
    shadow: bool,
    headers: HeaderMode,
    status: u16,
    body: String,
    on_store_error: StoreErrorMode,
    /// Set after a failed check was logged, until a check succeeds: one line per outage.
    failing: std::cell::Cell<bool>,
}

/// What the limits decided for one request.
#[derive(Default)]
struct Outcome<'a> {
    /// (limit, decision) for every limit checked.
    checked: Vec<(&'a Limit, Decision)>,
    /// The longest wait among the refusing limits, and the first of them.
    refused: Option<(&'a Limit, Duration)>,
    /// A limit whose check failed (the host could not decide).
    failed: Option<&'a Limit>,
}

impl RateLimit {
    fn check<'a>(&'a self, req: &Request) -> Outcome<'a> {
        let mut out = Outcome::default();
        for limit in &self.limits {
            let Some(prefix) = limit.applies(req) else {
                continue;
            };
            let Some(key) = key::build(&limit.name, &limit.key, req, prefix) else {
                continue;
            };
            match rate_limit::check(&key, limit.quota, limit.cost) {
                Ok(d) => {
                    self.failing.set(false);
                    if !d.allowed {
                        let wait = out
                            .refused
                            .map_or(d.retry_after, |(_, w)| w.max(d.retry_after));
                        let first = out.refused.map_or(limit, |(l, _)| l);
                        out.refused = Some((first, wait));
                    }
                    out.checked.push((limit, d));
                }
                // The quota and cost are validated at init: the host could not decide (its
                // shared store is down) or refused the key.
                Err(e) => {
                    metrics::counter_add("check-errors", 1);
                    if !self.failing.replace(true) {
                        log(Level::Error, &format!("limit {}: {e}", limit.name));
                    }
                    out.failed = out.failed.or(Some(limit));
                }
            }
        }
        out
    }

    fn header_values(checked: &[(&Limit, Decision)]) -> Option<(String, String)> {
        if checked.is_empty() {
            return None;
        }
        let policy: Vec<String> = checked.iter().map(|(l, _)| l.policy()).collect();
        let state: Vec<String> = checked.iter().map(|(l, d)| state(&l.name, d)).collect();
        Some((policy.join(", "), state.join(", ")))
    }
}

impl Filter for RateLimit {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if s.limits.is_empty() {
            return Err("limits: name at least one limit".into());
        }
        if !(100..=999).contains(&s.status) {
            return Err(format!("status: {} is not an HTTP status", s.status));
        }
        let limits = s
            .limits
            .into_iter()
            .enumerate()
            .map(|(i, l)| Limit::from_settings(i, l))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, l) in limits.iter().enumerate() {
            if limits[..i].iter().any(|o| o.name == l.name) {
                return Err(format!("limits[{i}].name: {:?} is used twice", l.name));
            }
        }
        Ok(RateLimit {
            limits,
            shadow: s.shadow,
            headers: s.headers,
            status: s.status,
            body: s.body,
            on_store_error: s.on_store_error,
            failing: std::cell::Cell::new(false),
        })
    }

    fn hooks(&self) -> Hooks {
        match self.headers {
            HeaderMode::Always => Hooks::ALL,
            _ => Hooks::REQUEST,
        }
    }

    fn on_request(&self, req: &mut Request) -> Action {
        let out = self.check(req);
        let headers = match self.headers {
            HeaderMode::Never => None,
            _ => Self::header_values(&out.checked),
        };
        if out.failed.is_some() && self.on_store_error == StoreErrorMode::Refuse && !self.shadow {
            metrics::counter_add("refused-unchecked", 1);
            return Action::Respond(
                LocalResponse::text(503, "rate limit unavailable\n").header("retry-after", "1"),
            );
        }
        if let Some((limit, wait)) = out.refused {
            if self.shadow {
                metrics::counter_add("shadow-refused", 1);
                log(
                    Level::Info,
                    &format!(
                        "shadow: limit {} would refuse {}",
                        limit.name,
                        req.client_addr()
                    ),
                );
            } else {
                metrics::counter_add("refused", 1);
                let secs = wait.as_millis().div_ceil(1000).max(1);
                let mut resp = LocalResponse::text(self.status, self.body.clone())
                    .header("retry-after", secs.to_string());
                if let Some((policy, state)) = headers {
                    resp = resp
                        .header("ratelimit-policy", policy)
                        .header("ratelimit", state);
                }
                return Action::Respond(resp);
            }
        }
        if self.headers == HeaderMode::Always {
            if let Some((policy, state)) = headers {
                let _ = req.set_context(CONTEXT_KEY, &format!("{policy}\n{state}"));
            }
        }
        Action::Continue
    }

    fn on_response(&self, req: &Request, resp: &mut Response) -> Action {
        if let Some(v) = req.context(CONTEXT_KEY) {
            if let Some((policy, state)) = v.split_once('\n') {
                let _ = resp.set_header("ratelimit-policy", policy);
                let _ = resp.set_header("ratelimit", state);
            }
        }
        Action::Continue
    }
}

weir_sdk::export_filter!(RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, MockRequest, MockResponse};

    fn filter(config: &str) -> RateLimit {
        testing::reset_rate_limits();
        testing::freeze_clock();
        testing::init::<RateLimit>(config).unwrap()
    }

    fn from(ip: &str) -> MockRequest {
        MockRequest::get("/").with_client_addr(ip)
    }

    #[test]
    fn per_ip_limit_refuses_with_retry_after_and_ratelimit_headers() {
        let f = filter(r#"{"limits":[{"name":"per-ip","rate":2,"per":"1s","key":["client-ip"]}]}"#);
        testing::assert_continues(&testing::on_request(&f, &mut from("192.0.2.1")));
        testing::assert_continues(&testing::on_request(&f, &mut from("192.0.2.1")));
        let refused = testing::on_request(&f, &mut from("192.0.2.1"));
        let resp = testing::assert_responds(&refused, 429);
        assert_eq!(resp.header_value("retry-after"), Some("1"));
        assert_eq!(
            resp.header_value("ratelimit-policy"),
            Some("\"per-ip\";q=2;w=1")
        );
        assert_eq!(resp.header_value("ratelimit"), Some("\"per-ip\";r=0;t=1"));
        // Another client has its own budget; half a second refills one unit.
        testing::assert_continues(&testing::on_request(&f, &mut from("192.0.2.2")));
        testing::advance_clock(Duration::from_millis(500));
        testing::assert_continues(&testing::on_request(&f, &mut from("192.0.2.1")));
        assert_eq!(testing::take_metrics().0["refused"], 1);
        testing::reset_clock();
    }

    #[test]
    fn a_store_that_is_down_allows_or_refuses_as_configured_and_logs_once() {
        let limits = r#""limits":[{"name":"per-ip","rate":1,"per":"1h","key":["client-ip"]}]"#;
        let allow = filter(&format!("{{{limits}}}"));
        let refuse = filter(&format!("{{{limits},\"on-store-error\":\"refuse\"}}"));
        testing::take_logs();
        testing::set_store_unavailable(true);
        for _ in 0..3 {
            testing::assert_continues(&testing::on_request(&allow, &mut from("192.0.2.1")));
            let refused = testing::on_request(&refuse, &mut from("192.0.2.1"));
            let resp = testing::assert_responds(&refused, 503);
            assert_eq!(resp.header_value("retry-after"), Some("1"));
        }
        let logs = testing::take_logs();
        assert_eq!(logs.len(), 2, "one line per filter per outage: {logs:?}");
        assert!(logs[0].1.contains("unavailable"), "{logs:?}");
        // Back: limits apply again, and a new outage is logged again.
        testing::set_store_unavailable(false);
        testing::assert_continues(&testing::on_request(&allow, &mut from("192.0.2.1")));
        testing::assert_responds(&testing::on_request(&allow, &mut from("192.0.2.1")), 429);
        testing::set_store_unavailable(true);
        testing::assert_continues(&testing::on_request(&allow, &mut from("192.0.2.1")));
        assert_eq!(testing::take_logs().len(), 1);
        testing::set_store_unavailable(false);
        assert!(testing::init::<RateLimit>(r#"{"limits":[],"on-store-error":"maybe"}"#).is_err());
    }

    #[test]
    fn several_limits_conditions_and_missing_parts() {
        let f = filter(
            r#"{"limits":[
                {"name":"login","rate":1,"per":"1m","key":["client-ip","path-prefix"],
                 "methods":["post"],"path-prefixes":["/login/"]},
                {"name":"per-key","rate":3,"per":"1h","key":["header:x-api-key"]}
            ]}"#,
        );
        let post = |path: &str| MockRequest::new("POST", path).with_client_addr("192.0.2.9");
        testing::assert_continues(&testing::on_request(&f, &mut post("/login")));
        testing::assert_responds(&testing::on_request(&f, &mut post("/login/x")), 429);
        // Not under the prefix, or not a POST: the login limit does not apply.
        testing::assert_continues(&testing::on_request(&f, &mut post("/loginx")));
        testing::assert_continues(&testing::on_request(&f, &mut from("192.0.2.9")));
        // Without the header, no per-key limit; with it, three per hour.
        let keyed = || from("192.0.2.9").with_header("x-api-key", "k");
        for _ in 0..3 {
            testing::assert_continues(&testing::on_request(&f, &mut keyed()));
        }
        testing::assert_responds(&testing::on_request(&f, &mut keyed()), 429);
        for _ in 0..10 {
            testing::assert_continues(&testing::on_request(&f, &mut from("192.0.2.9")));
        }
        testing::reset_clock();
    }

    #[test]
    fn shadow_mode_counts_and_logs_but_passes() {
        let f = filter(
            r#"{"shadow":true,"limits":[{"name":"l","rate":1,"per":"1h","key":["client-ip"]}]}"#,
        );
        let _ = testing::take_logs();
        for _ in 0..3 {
            testing::assert_continues(&testing::on_request(&f, &mut from("192.0.2.1")));
        }
        assert_eq!(testing::take_metrics().0["shadow-refused"], 2);
        assert!(testing::take_logs()
            .iter()
            .any(|(_, m)| m.contains("would refuse 192.0.2.1")));
        testing::reset_clock();
    }

    #[test]
    fn always_mode_puts_the_headers_on_passing_responses() {
        let f = filter(
            r#"{"headers":"always","limits":[{"name":"l","rate":10,"per":"10s","burst":5,"key":["client-ip"]}]}"#,
        );
        assert_eq!(f.hooks(), Hooks::ALL);
        let mut req = from("192.0.2.1");
        testing::assert_continues(&testing::on_request(&f, &mut req));
        let mut resp = MockResponse::new(200);
        testing::assert_continues(&testing::on_response(&f, &mut req, &mut resp));
        assert_eq!(
            resp.response().header("ratelimit").as_deref(),
            Some("\"l\";r=4;t=1")
        );
        assert_eq!(
            resp.response().header("ratelimit-policy").as_deref(),
            Some("\"l\";q=10;w=10")
        );
        testing::reset_clock();
    }

    #[test]
    fn bad_configs_name_the_field() {
        let bad = |limits: &str| {
            testing::init::<RateLimit>(&format!(r#"{{"limits":[{limits}]}}"#))
                .err()
                .unwrap()
        };
        let ok = r#""rate":1,"per":"1s","key":["client-ip"]"#;
        assert!(bad(&format!(r#"{{"name":"a b",{ok}}}"#)).contains("limits[0].name"));
        assert!(
            bad(r#"{"name":"a","rate":0,"per":"1s","key":["client-ip"]}"#)
                .contains("limits[0].rate")
        );
        assert!(bad(&format!(r#"{{"name":"a",{ok},"cost":2}}"#)).contains("limits[0].cost: 2"));
        assert!(bad(r#"{"name":"a","rate":1,"per":"1s","key":[]}"#).contains("limits[0].key"));
        assert!(
            bad(r#"{"name":"a","rate":1,"per":"1s","key":["ip"]}"#).contains("limits[0].key[0]")
        );
        assert!(
            bad(r#"{"name":"a","rate":1,"per":"1s","key":["path-prefix"]}"#)
                .contains("path-prefixes")
        );
        assert!(
            bad(&format!(r#"{{"name":"a",{ok}}},{{"name":"a",{ok}}}"#)).contains("limits[1].name")
        );
        assert!(bad(r#"{"name":"a","rate":1,"per":"1.5s","key":["client-ip"]}"#).contains("per"));
        assert!(testing::init::<RateLimit>(r#"{"limits":[]}"#)
            .err()
            .unwrap()
            .contains("at least one"));
    }
}
