//! `cors`: Cross-Origin Resource Sharing (the Fetch standard's CORS protocol), answered by
//! the proxy: preflights locally, the response headers on the way out.
//!
//! ```toml
//! [filters.cors]
//! plugin = "cors.wasm"
//! [filters.cors.config]
//! allow-origins = ["https://app.example.com", "https://*.example.com",
//!                  'regex:https://pr-[0-9]+\.preview\.example\.com']   # or ["*"]
//! allow-methods = ["GET", "POST", "PUT"]     # default GET, HEAD, POST; ["*"]: any
//! allow-headers = ["content-type", "x-api-key"]   # beyond the CORS-safelisted; ["*"]: any
//! expose-headers = ["x-request-id"]          # response headers scripts may read
//! allow-credentials = false                  # cookies / Authorization; never with "*" origins
//! max-age = "10m"                            # how long browsers may cache a preflight
//! ```
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered here
//! and never reaches the upstream: 204 with the grant, or 403 without any CORS header when
//! the origin, method or a header is not allowed. On other requests the upstream's own CORS
//! headers are replaced by this filter's: a grant for an allowed origin, none otherwise.
//! `Vary: Origin` is added whenever the answer depends on the origin.

mod origins;

use origins::Pattern;
use serde::Deserialize;
use weir_sdk::{header, units, Action, Config, Filter, Hooks, LocalResponse, Request, Response};

/// Response headers this filter owns.
const OWNED: &[&str] = &[
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    allow_origins: Vec<String>,
    #[serde(default = "default_methods")]
    allow_methods: Vec<String>,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    #[serde(default)]
    allow_credentials: bool,
    max_age: Option<units::Duration>,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}

/// A list that may be `["*"]`: anything.
enum List {
    Any,
    Only(Vec<String>),
}

impl List {
    fn parse(
        field: &str,
        items: Vec<String>,
        check: impl Fn(&str) -> bool,
        upper: bool,
    ) -> Result<Self, String> {
        if items.iter().any(|i| i == "*") {
            return match items.len() {
                1 => Ok(List::Any),
                _ => Err(format!("{field}: \"*\" stands alone")),
            };
        }
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if !check(&item) {
                return Err(format!("{field}[{i}]: {item:?} is not a token"));
            }
            out.push(if upper {
                item.to_ascii_uppercase()
            } else {
                item.to_ascii_lowercase()
            });
        }
        Ok(List::Only(out))
    }

    fn allows(&self, item: &str) -> bool {
        match self {
            List::Any => true,
            List::Only(v) => v.iter().any(|x| x == item),
        }
    }
}

fn is_token(s: &str) -> bool {
    header::validate_name(s).is_ok()
}

pub struct Cors {
    origins: Vec<Pattern>,
    /// Any origin, without credentials: answer `*` and no `Vary`.
    wildcard: bool,
    methods: List,
    headers: List,
    expose: Option<String>,
    credentials: bool,
    max_age: Option<String>,
}

/// The methods a simple (non-preflighted) request may use: always allowed.
const SIMPLE_METHODS: &[&str] = &["GET", "HEAD", "POST"];

impl Cors {
    fn allowed_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|p| p.matches(origin))
    }

    /// The `Access-Control-Allow-Origin` value for an allowed `origin`.
    fn grant<'a>(&self, origin: &'a str) -> &'a str {
        if self.wildcard {
            "*"
        } else {
            origin
        }
    }

    fn preflight(&self, req: &Request, origin: &str, method: &str) -> Action {
        let refused = || Action::Respond(LocalResponse::text(403, "CORS preflight refused\n"));
        if !self.allowed_origin(origin) {
            return refused();
        }
        let method = method.trim();
        if !is_token(method) || !(SIMPLE_METHODS.contains(&method) || self.methods.allows(method)) {
            return refused();
        }
        let requested: Vec<String> = req
            .header_all("access-control-request-headers")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if requested
            .iter()
            .any(|h| !is_token(h) || !self.headers.allows(h))
        {
            return refused();
        }
        let mut resp = LocalResponse::new(204)
            .header("access-control-allow-origin", self.grant(origin))
            .header("access-control-allow-methods", method)
            .header(
                "vary",
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            );
        if !requested.is_empty() {
            resp = resp.header("access-control-allow-headers", requested.join(", "));
        }
        if self.credentials {
            resp = resp.header("access-control-allow-credentials", "true");
        }
        if let Some(age) = &self.max_age {
            resp = resp.header("access-control-max-age", age.clone());
        }
        Action::Respond(resp)
    }
}

fn is_preflight(req: &Request) -> Option<(String, String)> {
    if req.method() != "OPTIONS" {
        return None;
    }
    Some((
        req.header("origin")?,
        req.header("access-control-request-method")?,
    ))
}

impl Filter for Cors {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if s.allow_origins.is_empty() {
            return Err("allow-origins: name at least one origin, or \"*\"".into());
        }
        let origins = s
            .allow_origins
            .iter()
            .enumerate()
            .map(|(i, o)| Pattern::parse(i, o))
            .collect::<Result<Vec<_>, _>>()?;
        let any = origins.iter().any(|p| matches!(p, Pattern::Any));
        if any && origins.len() > 1 {
            return Err("allow-origins: \"*\" stands alone".into());
        }
        if any && s.allow_credentials {
            return Err(
                "allow-credentials: not with allow-origins = [\"*\"] (browsers refuse it, and reflecting every origin with credentials would let any site act as the user); list the origins"
                    .into(),
            );
        }
        let expose = List::parse("expose-headers", s.expose_headers, is_token, false)?;
        Ok(Cors {
            origins,
            wildcard: any,
            methods: List::parse("allow-methods", s.allow_methods, is_token, true)?,
            headers: List::parse("allow-headers", s.allow_headers, is_token, false)?,
            expose: match expose {
                // "*" exposes everything only without credentials; with them it is a name.
                List::Any if s.allow_credentials => {
                    return Err(
                        "expose-headers: \"*\" means nothing with credentials; list the headers"
                            .into(),
                    )
                }
                List::Any => Some("*".into()),
                List::Only(v) if v.is_empty() => None,
                List::Only(v) => Some(v.join(", ")),
            },
            credentials: s.allow_credentials,
            max_age: s.max_age.map(|d| d.get().as_secs().to_string()),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ALL
    }

    fn on_request(&self, req: &mut Request) -> Action {
        match is_preflight(req) {
            Some((origin, method)) => self.preflight(req, &origin, &method),
            None => Action::Continue,
        }
    }

    fn on_response(&self, req: &Request, resp: &mut Response) -> Action {
        if is_preflight(req).is_some() {
            return Action::Continue; // answered (or refused) in full by on_request
        }
        for h in OWNED {
            resp.remove_header(h);
        }
        if !self.wildcard {
            let vary = resp.header_all("vary");
            let has = vary
                .iter()
                .flat_map(|v| v.split(','))
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("origin"));
            if !has {
                let _ = resp.append_header("vary", "Origin");
            }
        }
        let Some(origin) = req.header("origin") else {
            return Action::Continue;
        };
        if !self.allowed_origin(&origin) {
            return Action::Continue;
        }
        let _ = resp.set_header("access-control-allow-origin", self.grant(&origin));
        if self.credentials {
            let _ = resp.set_header("access-control-allow-credentials", "true");
        }
        if let Some(e) = &self.expose {
            let _ = resp.set_header("access-control-expose-headers", e);
        }
        Action::Continue
    }
}

weir_sdk::export_filter!(Cors);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, MockRequest, MockResponse};

    const APP: &str = "https://app.example.com";

    fn cors(extra: &str) -> Cors {
        testing::init::<Cors>(&format!(
            r#"{{"allow-origins":["{APP}","https://*.example.org"],"allow-methods":["GET","PUT"],
                "allow-headers":["content-type","x-api-key"],"expose-headers":["x-request-id"],
                "max-age":"10m"{extra}}}"#
        ))
        .unwrap()
    }

    fn preflight(origin: &str, method: &str, headers: &str) -> MockRequest {
        let mut r = MockRequest::new("OPTIONS", "/api")
            .with_header("origin", origin)
            .with_header("access-control-request-method", method);
        if !headers.is_empty() {
            r = r.with_header("access-control-request-headers", headers);
        }
        r
    }

    #[test]
    fn preflights_are_granted_exactly_or_refused_without_cors_headers() {
        let f = cors(r#","allow-credentials":true"#);
        let act = testing::on_request(&f, &mut preflight(APP, "PUT", "Content-Type, X-Api-Key"));
        let r = testing::assert_responds(&act, 204);
        assert_eq!(r.header_value("access-control-allow-origin"), Some(APP));
        assert_eq!(r.header_value("access-control-allow-methods"), Some("PUT"));
        assert_eq!(
            r.header_value("access-control-allow-headers"),
            Some("content-type, x-api-key")
        );
        assert_eq!(
            r.header_value("access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(r.header_value("access-control-max-age"), Some("600"));
        assert!(r.header_value("vary").unwrap().starts_with("Origin"));
        let ok = testing::on_request(&f, &mut preflight("https://a.b.example.org", "POST", ""));
        testing::assert_responds(&ok, 204);
        for (origin, method, headers) in [
            ("https://evil.com", "PUT", ""),
            ("https://app.example.com.evil.com", "GET", ""),
            (APP, "DELETE", ""),
            (APP, "PUT", "x-evil"),
            (APP, "PUT", "content-type, x-evil"),
            ("null", "GET", ""),
        ] {
            let act = testing::on_request(&f, &mut preflight(origin, method, headers));
            let r = testing::assert_responds(&act, 403);
            assert!(
                r.headers
                    .iter()
                    .all(|(n, _)| !n.starts_with("access-control-")),
                "{origin} {method} {headers}"
            );
        }
    }

    #[test]
    fn responses_get_the_grant_for_allowed_origins_only_and_always_vary() {
        let f = cors("");
        let mut req = MockRequest::get("/").with_header("origin", APP);
        let mut resp = MockResponse::new(200)
            .with_header("access-control-allow-origin", "*")
            .with_header("vary", "Accept-Encoding");
        testing::assert_continues(&testing::on_response(&f, &mut req, &mut resp));
        let r = resp.response();
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some(APP)
        );
        assert_eq!(
            r.header("access-control-expose-headers").as_deref(),
            Some("x-request-id")
        );
        assert_eq!(r.header("access-control-allow-credentials"), None);
        assert_eq!(r.header_all("vary"), ["Accept-Encoding", "Origin"]);
        // Refused origin: the upstream's grant is removed too; no Origin: no grant.
        for mut req in [
            MockRequest::get("/").with_header("origin", "https://evil.com"),
            MockRequest::get("/"),
        ] {
            let mut resp = MockResponse::new(200)
                .with_header("access-control-allow-origin", "*")
                .with_header("access-control-allow-credentials", "true");
            testing::assert_continues(&testing::on_response(&f, &mut req, &mut resp));
            let r = resp.response();
            assert!(r
                .headers()
                .iter()
                .all(|(n, _)| !n.starts_with("access-control-")));
            assert_eq!(r.header_all("vary"), ["Origin"]);
        }
        // An actual (non-preflight) request is never refused by the filter itself.
        testing::assert_continues(&testing::on_request(
            &f,
            &mut MockRequest::get("/").with_header("origin", "https://evil.com"),
        ));
    }

    #[test]
    fn any_origin_answers_star_without_vary_and_refuses_credentials() {
        let f = testing::init::<Cors>(r#"{"allow-origins":["*"]}"#).unwrap();
        let mut req = MockRequest::get("/").with_header("origin", "https://x.test");
        let mut resp = MockResponse::new(200);
        testing::assert_continues(&testing::on_response(&f, &mut req, &mut resp));
        assert_eq!(
            resp.response()
                .header("access-control-allow-origin")
                .as_deref(),
            Some("*")
        );
        assert_eq!(resp.response().header("vary"), None);
        let err = |c: &str| testing::init::<Cors>(c).err().unwrap();
        assert!(err(r#"{"allow-origins":["*"],"allow-credentials":true}"#)
            .contains("allow-credentials"));
        assert!(err(r#"{"allow-origins":["*","https://a.com"]}"#).contains("stands alone"));
        assert!(err(r#"{"allow-origins":[]}"#).contains("at least one"));
        assert!(
            err(r#"{"allow-origins":["https://a.com"],"allow-methods":["G T"]}"#)
                .contains("allow-methods[0]")
        );
        assert!(err(
            r#"{"allow-origins":["https://a.com"],"allow-credentials":true,"expose-headers":["*"]}"#
        )
        .contains("expose-headers"));
    }
}
