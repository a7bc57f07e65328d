//! `headers`: set, append and remove request and response headers from configuration.
//!
//! ```toml
//! [filters.tag]
//! plugin = "headers.wasm"
//! [filters.tag.config.request]
//! set = { "x-served-by" = "weir" }
//! append = { "x-trace" = ["a", "b"] }
//! remove = ["x-internal"]
//! [filters.tag.config.response]
//! remove = ["server"]
//! ```
//! Order of operations per phase: remove, then set, then append.

use serde::Deserialize;
use std::collections::BTreeMap;
use weir_sdk::{header, Action, Config, Filter, HeaderEdit, Hooks, Request, Response};

/// One value or several.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum Values {
    One(String),
    Many(Vec<String>),
}

impl Values {
    fn as_slice(&self) -> &[String] {
        match self {
            Values::One(v) => std::slice::from_ref(v),
            Values::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct EditsConfig {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    append: BTreeMap<String, Values>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    request: EditsConfig,
    #[serde(default)]
    response: EditsConfig,
}

/// Validated header edits for one phase.
#[derive(Debug, Default)]
struct Edits {
    remove: Vec<String>,
    set: Vec<(String, String)>,
    append: Vec<(String, String)>,
}

impl Edits {
    fn from_config(phase: &str, c: EditsConfig) -> Result<Self, String> {
        let check = |n: &str, v: &str| header::validate(n, v).map_err(|e| format!("{phase}: {e}"));
        for n in &c.remove {
            header::validate_name(n).map_err(|e| format!("{phase}.remove: {e}"))?;
        }
        for (n, v) in &c.set {
            check(n, v)?;
        }
        let mut append = Vec::new();
        for (n, vs) in &c.append {
            for v in vs.as_slice() {
                check(n, v)?;
                append.push((n.clone(), v.clone()));
            }
        }
        Ok(Edits {
            remove: c.remove,
            set: c.set.into_iter().collect(),
            append,
        })
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.append.is_empty()
    }

    fn apply(&self, target: &mut impl HeaderEdit) {
        for n in &self.remove {
            target.remove_header(n);
        }
        // Names and values were validated in `init`, so the host cannot refuse them.
        for (n, v) in &self.set {
            let _ = target.set_header(n, v);
        }
        for (n, v) in &self.append {
            let _ = target.append_header(n, v);
        }
    }
}

/// The `headers` filter.
pub struct Headers {
    request: Edits,
    response: Edits,
}

impl Filter for Headers {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        let h = Headers {
            request: Edits::from_config("request", s.request)?,
            response: Edits::from_config("response", s.response)?,
        };
        if h.request.is_empty() && h.response.is_empty() {
            return Err("no header edits configured: set `request` and/or `response`".into());
        }
        Ok(h)
    }

    fn hooks(&self) -> Hooks {
        Hooks {
            on_request: !self.request.is_empty(),
            on_response: !self.response.is_empty(),
            ..Hooks::ALL
        }
    }

    fn on_request(&self, req: &mut Request) -> Action {
        self.request.apply(req);
        Action::Continue
    }

    fn on_response(&self, _req: &Request, resp: &mut Response) -> Action {
        self.response.apply(resp);
        Action::Continue
    }
}

weir_sdk::export_filter!(Headers);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, MockRequest, MockResponse};

    #[test]
    fn edits_request_headers_in_order_remove_set_append() {
        let f: Headers = testing::init(
            r#"{"request": {"set": {"x-a": "1"}, "append": {"x-b": ["2", "3"]}, "remove": ["x-a", "x-gone"]}}"#,
        )
        .unwrap();
        let mut req = MockRequest::get("/")
            .with_header("x-a", "old")
            .with_header("X-Gone", "bye")
            .with_header("x-b", "1");
        assert_eq!(testing::on_request(&f, &mut req), Action::Continue);
        assert_eq!(req.headers.get_all("x-a"), ["1"]);
        assert_eq!(req.headers.get_all("x-b"), ["1", "2", "3"]);
        assert_eq!(req.headers.get("x-gone"), None);
    }

    #[test]
    fn edits_response_headers() {
        let f: Headers = testing::init(
            r#"{"response": {"set": {"x-served-by": "weir"}, "remove": ["server"]}}"#,
        )
        .unwrap();
        let mut req = MockRequest::get("/");
        let mut resp = MockResponse::new(200).with_header("server", "nginx");
        assert_eq!(
            testing::on_response(&f, &mut req, &mut resp),
            Action::Continue
        );
        assert_eq!(resp.headers.get("server"), None);
        assert_eq!(resp.headers.get("x-served-by"), Some("weir"));
        assert_eq!(
            f.hooks(),
            Hooks::RESPONSE,
            "only the response phase has edits"
        );
        // The request phase has nothing to do.
        let before = req.headers.clone();
        let _ = testing::on_request(&f, &mut req);
        assert_eq!(req.headers, before);
    }

    #[test]
    fn refuses_bad_config() {
        let err = testing::init::<Headers>(r#"{"request": {"set": {"bad name": "1"}}}"#)
            .err()
            .unwrap();
        assert!(err.contains("request") && err.contains("bad name"), "{err}");
        let err = testing::init::<Headers>(r#"{"request": {"set": {"x": "a\nb"}}}"#)
            .err()
            .unwrap();
        assert!(err.contains("control character"), "{err}");
        let err = testing::init::<Headers>(r#"{"requests": {}}"#)
            .err()
            .unwrap();
        assert!(err.contains("requests"), "{err}");
        let err = testing::init::<Headers>("{}").err().unwrap();
        assert!(err.contains("no header edits"), "{err}");
    }
}
