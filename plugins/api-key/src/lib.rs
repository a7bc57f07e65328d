//! `api-key`: require a known key in a request header; answer 401 otherwise.
//!
//! ```toml
//! [filters.require-key]
//! plugin = "api_key.wasm"
//! [filters.require-key.config]
//! header = "x-api-key"      # default "x-api-key"
//! keys = ["k3y-one", "k3y-two"]
//! forward-key = false       # default false: the key header is removed before the upstream
//! ```
//! Keys are compared in constant time, against every configured key.

use serde::Deserialize;
use subtle::ConstantTimeEq;
use weir_sdk::{header, Action, Config, Filter, Hooks, LocalResponse, Request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default = "default_header")]
    header: String,
    keys: Vec<String>,
    #[serde(default)]
    forward_key: bool,
}

fn default_header() -> String {
    "x-api-key".into()
}

/// The `api-key` filter.
pub struct ApiKey {
    header: String,
    keys: Vec<Vec<u8>>,
    forward_key: bool,
    missing: LocalResponse,
    invalid: LocalResponse,
}

impl Filter for ApiKey {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        header::validate_name(&s.header).map_err(|e| format!("header: {e}"))?;
        if s.keys.is_empty() {
            return Err("keys: at least one key is required".into());
        }
        if let Some(i) = s.keys.iter().position(|k| k.is_empty()) {
            return Err(format!("keys[{i}]: an empty key is not allowed"));
        }
        let challenge = format!("ApiKey header=\"{}\"", s.header);
        let refuse = |body: &str| {
            LocalResponse::text(401, body).header("www-authenticate", challenge.clone())
        };
        Ok(ApiKey {
            missing: refuse("missing API key\n"),
            invalid: refuse("invalid API key\n"),
            header: s.header,
            keys: s.keys.into_iter().map(String::into_bytes).collect(),
            forward_key: s.forward_key,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn on_request(&self, req: &mut Request) -> Action {
        let Some(candidate) = req.header(&self.header) else {
            return Action::Respond(self.missing.clone());
        };
        if !self.is_known(candidate.as_bytes()) {
            return Action::Respond(self.invalid.clone());
        }
        if !self.forward_key {
            req.remove_header(&self.header);
        }
        Action::Continue
    }
}

impl ApiKey {
    /// Constant-time membership: every key is compared, with no early exit.
    fn is_known(&self, candidate: &[u8]) -> bool {
        let mut found = subtle::Choice::from(0);
        for key in &self.keys {
            found |= key.as_slice().ct_eq(candidate);
        }
        found.into()
    }
}

weir_sdk::export_filter!(ApiKey);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, MockRequest};

    fn filter(extra: &str) -> ApiKey {
        testing::init(&format!(r#"{{"keys": ["alpha", "beta"]{extra}}}"#)).unwrap()
    }

    #[test]
    fn missing_and_wrong_keys_get_401() {
        let f = filter("");
        let mut req = MockRequest::get("/");
        let action = testing::on_request(&f, &mut req);
        let resp = action.response().unwrap();
        assert_eq!(resp.status, 401);
        assert_eq!(
            resp.header_value("www-authenticate"),
            Some("ApiKey header=\"x-api-key\"")
        );
        assert_eq!(resp.body, b"missing API key\n");

        let mut req = MockRequest::get("/").with_header("x-api-key", "alph");
        let action = testing::on_request(&f, &mut req);
        assert_eq!(action.response().unwrap().body, b"invalid API key\n");
    }

    #[test]
    fn valid_key_passes_and_is_stripped_unless_forwarded() {
        let f = filter("");
        let mut req = MockRequest::get("/").with_header("X-Api-Key", "beta");
        assert_eq!(testing::on_request(&f, &mut req), Action::Continue);
        assert_eq!(req.headers.get("x-api-key"), None);

        let f = filter(r#", "forward-key": true, "header": "authorization""#);
        let mut req = MockRequest::get("/").with_header("authorization", "alpha");
        assert_eq!(testing::on_request(&f, &mut req), Action::Continue);
        assert_eq!(req.headers.get("authorization"), Some("alpha"));
    }

    #[test]
    fn refuses_bad_config() {
        for (cfg, needle) in [
            ("{}", "keys"),
            (r#"{"keys": []}"#, "at least one key"),
            (r#"{"keys": ["a", ""]}"#, "keys[1]"),
            (r#"{"keys": ["a"], "header": "x y"}"#, "header"),
            (r#"{"keys": ["a"], "forward_key": true}"#, "forward_key"),
        ] {
            let err = testing::init::<ApiKey>(cfg).err().unwrap();
            assert!(err.contains(needle), "{cfg}: {err}");
        }
    }
}
