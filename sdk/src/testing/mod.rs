//! Native test doubles: run a filter's hooks with `cargo test`, without a proxy or Wasm.
//! Requests and responses are built with [`MockRequest`] and [`MockResponse`]; the host
//! services have doubles with the host's semantics (the key/value store with TTLs and
//! windows, metrics, logs, outbound HTTP through [`mock_http`]), and the clock is yours
//! ([`freeze_clock`], [`advance_clock`]). A full example, a per-client limit:
//!
//! ```
//! use std::time::Duration;
//! use weir_sdk::testing::{self, MockRequest};
//! use weir_sdk::{kv, units, Action, Config, Filter, Request};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings { limit: i64, window: units::Duration }
//!
//! struct Limit { limit: i64, window: Duration }
//! impl Filter for Limit {
//!     fn init(config: Config) -> Result<Self, String> {
//!         let s: Settings = config.parse()?;
//!         Ok(Limit { limit: s.limit, window: s.window.get() })
//!     }
//!     fn on_request(&self, req: &mut Request) -> Action {
//!         let key = format!("hits:{}", req.client_addr());
//!         match kv::incr(&key, 1, Some(self.window)) {
//!             Ok(n) if n > self.limit => Action::respond_text(429, "slow down\n"),
//!             _ => Action::Continue,
//!         }
//!     }
//! }
//!
//! testing::reset_kv();
//! testing::freeze_clock();
//! let f: Limit = testing::init(r#"{"limit": 2, "window": "10s"}"#).unwrap();
//! let from = |ip: &str| MockRequest::get("/").with_client_addr(ip);
//! testing::assert_continues(&testing::on_request(&f, &mut from("10.0.0.1")));
//! testing::assert_continues(&testing::on_request(&f, &mut from("10.0.0.1")));
//! testing::assert_responds(&testing::on_request(&f, &mut from("10.0.0.1")), 429);
//! testing::assert_continues(&testing::on_request(&f, &mut from("10.0.0.2")));
//! testing::advance_clock(Duration::from_secs(11)); // a new window
//! testing::assert_continues(&testing::on_request(&f, &mut from("10.0.0.1")));
//! ```

use crate::{Action, Config, Filter, Request, Response};
use std::cell::RefCell;

/// Assert that `action` lets the request go on; panics with the response it made otherwise.
///
/// ```
/// use weir_sdk::{testing, Action};
/// testing::assert_continues(&Action::Continue);
/// ```
#[track_caller]
pub fn assert_continues(action: &Action) {
    if let Some(r) = action.response() {
        panic!(
            "expected the request to go on, but the filter answered {} ({:?})",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
}

/// Assert that `action` answers with `status`; the response, for more checks.
///
/// ```
/// use weir_sdk::{testing, Action};
/// let a = Action::respond_text(429, "slow down\n");
/// assert_eq!(testing::assert_responds(&a, 429).body, b"slow down\n");
/// ```
#[track_caller]
pub fn assert_responds(action: &Action, status: u16) -> &crate::LocalResponse {
    match action.response() {
        Some(r) if r.status == status => r,
        Some(r) => panic!(
            "expected a {status} answer, got {} ({:?})",
            r.status,
            String::from_utf8_lossy(&r.body)
        ),
        None => panic!("expected a {status} answer, but the request went on"),
    }
}

/// `init` a filter from a JSON configuration, as the host would.
///
/// ```
/// use weir_sdk::{testing, Config, Filter};
/// struct Needs { n: u32 }
/// impl Filter for Needs {
///     fn init(config: Config) -> Result<Self, String> {
///         #[derive(serde::Deserialize)]
///         struct S { n: u32 }
///         Ok(Needs { n: config.parse::<S>()?.n })
///     }
/// }
/// assert_eq!(testing::init::<Needs>(r#"{"n": 3}"#).map(|f| f.n), Ok(3));
/// assert!(testing::init::<Needs>("{}").is_err());
/// ```
pub fn init<F: Filter>(config_json: &str) -> Result<F, String> {
    F::init(Config::from_json(config_json))
}

/// Run the filter's request hook on `req`.
///
/// ```
/// use weir_sdk::testing::{self, MockRequest};
/// use weir_sdk::{Action, Config, Filter, Request};
/// struct Tag;
/// impl Filter for Tag {
///     fn init(_: Config) -> Result<Self, String> { Ok(Tag) }
///     fn on_request(&self, req: &mut Request) -> Action {
///         let _ = req.set_header("x-tag", "1");
///         Action::Continue
///     }
/// }
/// let mut req = MockRequest::get("/");
/// testing::assert_continues(&testing::on_request(&Tag, &mut req));
/// assert_eq!(req.headers.get("x-tag"), Some("1"));
/// ```
pub fn on_request<F: Filter>(filter: &F, req: &mut MockRequest) -> Action {
    filter.on_request(&mut Request::mock(req))
}

/// Run the filter's response hook on `resp`, for request `req`.
///
/// ```
/// use weir_sdk::testing::{self, MockRequest, MockResponse};
/// use weir_sdk::{Action, Config, Filter, Request, Response};
/// struct NoSniff;
/// impl Filter for NoSniff {
///     fn init(_: Config) -> Result<Self, String> { Ok(NoSniff) }
///     fn on_response(&self, _: &Request, resp: &mut Response) -> Action {
///         let _ = resp.set_header("x-content-type-options", "nosniff");
///         Action::Continue
///     }
/// }
/// let mut resp = MockResponse::new(200);
/// let _ = testing::on_response(&NoSniff, &mut MockRequest::get("/"), &mut resp);
/// assert_eq!(resp.headers.get("x-content-type-options"), Some("nosniff"));
/// ```
pub fn on_response<F: Filter>(
    filter: &F,
    req: &mut MockRequest,
    resp: &mut MockResponse,
) -> Action {
    filter.on_response(&Request::mock(req), &mut Response::mock(resp))
}

/// Messages the filter logged on this thread since the last call, as (level, message).
///
/// ```
/// weir_sdk::info!("hello");
/// assert_eq!(weir_sdk::testing::take_logs()[0].1, "hello");
/// assert!(weir_sdk::testing::take_logs().is_empty()); // taken
/// ```
pub fn take_logs() -> Vec<(crate::Level, String)> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

thread_local! {
    static LOGS: RefCell<Vec<(crate::Level, String)>> = const { RefCell::new(Vec::new()) };
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn record_log(level: crate::Level, message: &str) {
    LOGS.with(|l| l.borrow_mut().push((level, message.to_owned())));
}

mod mock;
mod services;

pub use mock::{HeaderList, MockRequest, MockResponse};
pub use services::{
    advance_clock, cache_decisions, freeze_clock, locate, mock_http, reset_cache_decisions,
    reset_clock, reset_geo, reset_kv, reset_rate_limits, set_store_unavailable, take_metrics,
    STORE_UNAVAILABLE,
};
// The doubles the services call natively (a filter built for Wasm calls the host instead).
#[cfg_attr(target_arch = "wasm32", allow(unused_imports))]
pub(crate) use services::{
    clock_state, http_double, kv_double, random_bytes, record_metric, store_down,
};
