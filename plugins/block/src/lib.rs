//! `block`: deny requests by path prefix, method or header match.
//!
//! ```toml
//! [filters.block-admin]
//! plugin = "block.wasm"
//! [filters.block-admin.config]
//! paths = ["/admin", "/.git/"]      # path prefixes (segment-aware: "/admin" does not match "/administrator")
//! methods = ["TRACE", "CONNECT"]    # case-insensitive
//! headers = { "x-debug" = "*", "user-agent" = ["BadBot/1.0"] }  # "*" = header present
//! status = 403                      # default 403
//! body = "forbidden\n"              # default "forbidden\n"
//! ```
//! A request is denied when any one rule matches.

use serde::Deserialize;
use std::collections::BTreeMap;
use weir_sdk::{header, Action, Config, Filter, Hooks, LocalResponse, Request};

#[derive(Deserialize)]
#[serde(untagged)]
enum Values {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    headers: BTreeMap<String, Values>,
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default = "default_body")]
    body: String,
}

fn default_status() -> u16 {
    403
}

fn default_body() -> String {
    "forbidden\n".into()
}

/// How a header rule matches.
enum HeaderRule {
    Present,
    OneOf(Vec<String>),
}

/// The `block` filter.
pub struct Block {
    paths: Vec<String>,
    methods: Vec<String>,
    headers: Vec<(String, HeaderRule)>,
    response: LocalResponse,
}

impl Filter for Block {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if !(200..=599).contains(&s.status) {
            return Err(format!("status: {} is not in 200..=599", s.status));
        }
        for p in &s.paths {
            if !p.starts_with('/') {
                return Err(format!("paths: {p:?} must start with '/'"));
            }
        }
        let mut headers = Vec::new();
        for (name, v) in s.headers {
            header::validate_name(&name).map_err(|e| format!("headers: {e}"))?;
            let rule = match v {
                Values::One(v) if v == "*" => HeaderRule::Present,
                Values::One(v) => HeaderRule::OneOf(vec![v]),
                Values::Many(vs) => HeaderRule::OneOf(vs),
            };
            headers.push((name, rule));
        }
        if s.paths.is_empty() && s.methods.is_empty() && headers.is_empty() {
            return Err("no rules: set at least one of `paths`, `methods`, `headers`".into());
        }
        Ok(Block {
            paths: s.paths,
            methods: s.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
            headers,
            response: LocalResponse::text(s.status, s.body),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn on_request(&self, req: &mut Request) -> Action {
        if self.matches(req) {
            Action::Respond(self.response.clone())
        } else {
            Action::Continue
        }
    }
}

impl Block {
    fn matches(&self, req: &Request) -> bool {
        if !self.paths.is_empty() {
            let path = req.path();
            if self.paths.iter().any(|p| prefix_matches(p, &path)) {
                return true;
            }
        }
        if !self.methods.is_empty() {
            let method = req.method();
            if self.methods.contains(&method) {
                return true;
            }
        }
        self.headers.iter().any(|(name, rule)| match rule {
            HeaderRule::Present => req.header(name).is_some(),
            HeaderRule::OneOf(values) => req
                .header_all(name)
                .iter()
                .any(|have| values.iter().any(|v| v == have)),
        })
    }
}

/// Segment-aware prefix match: "/admin" matches "/admin" and "/admin/x", not "/administrator";
/// a prefix ending in '/' matches anything below it.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

weir_sdk::export_filter!(Block);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, MockRequest};

    fn status(f: &Block, mut req: MockRequest) -> Option<u16> {
        testing::on_request(f, &mut req)
            .response()
            .map(|r| r.status)
    }

    #[test]
    fn blocks_path_prefixes_by_segment() {
        let f: Block = testing::init(r#"{"paths": ["/admin", "/.git/"]}"#).unwrap();
        assert_eq!(status(&f, MockRequest::get("/admin")), Some(403));
        assert_eq!(status(&f, MockRequest::get("/admin/users?x=1")), Some(403));
        assert_eq!(status(&f, MockRequest::get("/.git/config")), Some(403));
        assert_eq!(status(&f, MockRequest::get("/administrator")), None);
        assert_eq!(status(&f, MockRequest::get("/")), None);
    }

    #[test]
    fn blocks_methods_and_headers() {
        let f: Block = testing::init(
            r#"{"methods": ["trace"], "headers": {"x-debug": "*", "user-agent": ["BadBot"]}, "status": 451, "body": "no"}"#,
        )
        .unwrap();
        let mut req = MockRequest::new("TRACE", "/");
        let action = testing::on_request(&f, &mut req);
        let resp = action.response().unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (451, b"no".as_slice()));
        assert_eq!(
            status(&f, MockRequest::get("/").with_header("X-Debug", "")),
            Some(451)
        );
        assert_eq!(
            status(
                &f,
                MockRequest::get("/").with_header("user-agent", "BadBot")
            ),
            Some(451)
        );
        assert_eq!(
            status(&f, MockRequest::get("/").with_header("user-agent", "curl")),
            None
        );
    }

    #[test]
    fn refuses_bad_config() {
        for (cfg, needle) in [
            ("{}", "no rules"),
            (r#"{"paths": ["admin"]}"#, "must start with '/'"),
            (r#"{"paths": ["/a"], "status": 99}"#, "status"),
            (r#"{"path": ["/a"]}"#, "path"),
            (r#"{"headers": {"bad name": "*"}}"#, "bad name"),
        ] {
            let err = testing::init::<Block>(cfg).err().unwrap();
            assert!(err.contains(needle), "{cfg}: {err}");
        }
    }
}
