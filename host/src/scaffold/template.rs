//! The files of a new filter crate (`weir new-filter`), with `{name}`, `{type}` and
//! `{sdk}` to fill in.

/// `Cargo.toml`; `{sdk}` is the `weir-sdk` dependency, `{serde}` the `serde` one, `{extra}`
/// what a crate outside any workspace needs.
pub const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
# cdylib: the Wasm component the proxy loads; rlib: native unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
weir-sdk = {sdk}
serde = {serde}
{extra}"#;

/// What a standalone crate adds to its `Cargo.toml`: its own workspace and the small,
/// fast build profile filters are built with.
pub const STANDALONE: &str = r#"
# A workspace of its own (not part of any enclosing one).
[workspace]

# `cargo build --profile plugin --target wasm32-wasip2`
[profile.plugin]
inherits = "release"
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
debug = false
"#;

/// `src/lib.rs`: a working filter with a config, one hook and native tests.
pub const LIB_RS: &str = r##"//! `{name}`: refuses requests that lack a header (a starting point: change it).
//!
//! ```toml
//! [filters.{name}]
//! plugin = "{name}.wasm"
//! config = { header = "x-tenant", status = 400 }
//! ```

use serde::Deserialize;
use weir_sdk::{Action, Config, Filter, Hooks, Request};

/// The filter's `config` table in the manifest. Unknown keys are refused, so a typo fails
/// `weir check` (at the key's line) instead of being ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The header a request must carry.
    header: String,
    /// The status of a refusal.
    #[serde(default = "default_status")]
    status: u16,
}

fn default_status() -> u16 {
    400
}

/// One value per filter instance, made by `init`; the hooks take `&self`.
pub struct {type} {
    header: String,
    status: u16,
}

impl Filter for {type} {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if s.header.is_empty() {
            return Err("header: must not be empty".into());
        }
        if !(400..=599).contains(&s.status) {
            return Err(format!("status: {} is not a 4xx or 5xx status", s.status));
        }
        Ok({type} {
            header: s.header,
            status: s.status,
        })
    }

    /// Only the request phase: the proxy never calls `on_response`.
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn on_request(&self, req: &mut Request) -> Action {
        match req.header(&self.header) {
            Some(_) => Action::Continue,
            None => Action::respond_text(self.status, "missing header\n"),
        }
    }
}

weir_sdk::export_filter!({type});

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, MockRequest};

    #[test]
    fn refuses_requests_without_the_header() {
        let f: {type} = testing::init(r#"{"header": "x-tenant"}"#).unwrap();
        let refused = testing::on_request(&f, &mut MockRequest::get("/"));
        assert_eq!(refused.response().map(|r| r.status), Some(400));
        let mut ok = MockRequest::get("/").with_header("x-tenant", "acme");
        assert!(testing::on_request(&f, &mut ok).response().is_none());
    }

    #[test]
    fn bad_configs_are_refused_with_the_key() {
        let err = testing::init::<{type}>(r#"{"heder": "x"}"#).err().unwrap();
        assert!(err.contains("heder"), "{err}");
        let err = testing::init::<{type}>(r#"{"header": "x", "status": 200}"#).err().unwrap();
        assert!(err.starts_with("status:"), "{err}");
    }
}
"##;

/// `README.md`.
pub const README: &str = r#"# {name}

A Weir filter. It refuses requests that lack a configured header (change it to what you need).

```sh
cargo test                                    # native unit tests, no proxy, no Wasm
{build}
```

```toml
[filters.{name}]
plugin = "{name}.wasm"
config = { header = "x-tenant" }              # status = 400 by default

[[routes]]
upstream = "app"
filters = ["{name}"]
```
"#;
