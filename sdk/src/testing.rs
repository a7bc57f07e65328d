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

use crate::http_client::{HttpRequest, HttpResponse};
use crate::{header, Action, Config, Error, Filter, Request, Response};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

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

/// Ordered, case-insensitive, multi-valued headers, validated like the host does.
///
/// ```
/// let mock = weir_sdk::testing::MockRequest::get("/")
///     .with_header("Accept", "a")
///     .with_header("accept", "b");
/// assert_eq!(mock.headers.get("ACCEPT"), Some("a"));
/// assert_eq!(mock.headers.get_all("accept"), ["a", "b"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList(Vec<(String, String)>);

impl HeaderList {
    /// The first value of `name`.
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockResponse::new(200).with_header("ETag", "x");
    /// assert_eq!(mock.headers.get("etag"), Some("x"));
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockResponse::new(200).with_header("via", "a").with_header("via", "b");
    /// assert_eq!(mock.headers.get_all("via"), ["a", "b"]);
    /// ```
    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Replace every value of `name`.
    ///
    /// ```
    /// let mut h = weir_sdk::testing::HeaderList::default();
    /// h.set("x-a", "1").unwrap();
    /// h.set("x-a", "2").unwrap();
    /// assert_eq!(h.get_all("x-a"), ["2"]);
    /// assert!(h.set("bad name", "x").is_err());
    /// ```
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        header::validate(name, value)?;
        self.remove(name);
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
        Ok(())
    }

    /// Add a value to `name`.
    ///
    /// ```
    /// let mut h = weir_sdk::testing::HeaderList::default();
    /// h.append("x-a", "1").unwrap();
    /// h.append("x-a", "2").unwrap();
    /// assert_eq!(h.get_all("x-a"), ["1", "2"]);
    /// ```
    pub fn append(&mut self, name: &str, value: &str) -> Result<(), Error> {
        header::validate(name, value)?;
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
        Ok(())
    }

    /// Remove every value of `name`.
    ///
    /// ```
    /// let mut h = weir_sdk::testing::HeaderList::default();
    /// h.append("x-a", "1").unwrap();
    /// h.remove("X-A");
    /// assert_eq!(h.get("x-a"), None);
    /// ```
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// All headers in order.
    ///
    /// ```
    /// let mut h = weir_sdk::testing::HeaderList::default();
    /// h.append("X-A", "1").unwrap();
    /// assert_eq!(h.to_vec(), [("x-a".to_string(), "1".to_string())]);
    /// ```
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.0.clone()
    }
}

/// A request for native tests.
///
/// ```
/// use weir_sdk::testing::MockRequest;
/// let mock = MockRequest::get("/items?page=2")
///     .with_authority("shop.example")
///     .with_client_addr("198.51.100.4")
///     .with_header("cookie", "session=x");
/// assert_eq!((mock.path.as_str(), mock.query.as_deref()), ("/items", Some("page=2")));
/// ```
#[derive(Debug, Clone)]
pub struct MockRequest {
    /// Method.
    pub method: String,
    /// Scheme, `"http"` by default.
    pub scheme: String,
    /// Authority, `None` by default.
    pub authority: Option<String>,
    /// Path without query.
    pub path: String,
    /// Query without `?`.
    pub query: Option<String>,
    /// What the client sent before normalisation; `None`: the same as path and query.
    pub raw_path_and_query: Option<String>,
    /// Client IP, `"127.0.0.1"` by default.
    pub client_addr: String,
    /// Headers.
    pub headers: HeaderList,
    /// The buffered body the filter sees (`None`: not buffered).
    pub body: Option<Vec<u8>>,
    /// The request's context properties.
    pub context: std::collections::BTreeMap<String, String>,
}

impl MockRequest {
    /// A request with `method` for `path_and_query` (e.g. `"/a?b=c"`).
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockRequest::new("OPTIONS", "/api?x=1");
    /// assert_eq!((mock.method.as_str(), mock.path.as_str()), ("OPTIONS", "/api"));
    /// ```
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let mut req = MockRequest {
            method: method.to_owned(),
            scheme: "http".into(),
            authority: None,
            path: String::new(),
            query: None,
            raw_path_and_query: None,
            client_addr: "127.0.0.1".into(),
            headers: HeaderList::default(),
            body: None,
            context: Default::default(),
        };
        req.split_path(path_and_query);
        req
    }

    /// A `GET` request.
    ///
    /// ```
    /// assert_eq!(weir_sdk::testing::MockRequest::get("/").method, "GET");
    /// ```
    pub fn get(path_and_query: &str) -> Self {
        MockRequest::new("GET", path_and_query)
    }

    /// A `POST` request.
    ///
    /// ```
    /// assert_eq!(weir_sdk::testing::MockRequest::post("/login").method, "POST");
    /// ```
    pub fn post(path_and_query: &str) -> Self {
        MockRequest::new("POST", path_and_query)
    }

    /// Add a header (panics on an invalid one: this is test set-up).
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockRequest::get("/").with_header("x-api-key", "k1");
    /// assert_eq!(mock.headers.get("x-api-key"), Some("k1"));
    /// ```
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Err(e) = self.headers.append(name, value) {
            panic!("MockRequest::with_header: {e}");
        }
        self
    }

    /// Set the authority (`Host`).
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockRequest::get("/").with_authority("example.com");
    /// assert_eq!(mock.authority.as_deref(), Some("example.com"));
    /// ```
    pub fn with_authority(mut self, authority: &str) -> Self {
        self.authority = Some(authority.to_owned());
        self
    }

    /// Set the buffered body.
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockRequest::post("/").with_body("a=1");
    /// assert_eq!(mock.body.as_deref(), Some(&b"a=1"[..]));
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Set a context property, as an earlier filter would have.
    ///
    /// ```
    /// let mut mock = weir_sdk::testing::MockRequest::get("/").with_context("user", "ada");
    /// assert_eq!(mock.request().context("user").as_deref(), Some("ada"));
    /// ```
    pub fn with_context(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Set the client address.
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockRequest::get("/").with_client_addr("::1");
    /// assert_eq!(mock.client_addr, "::1");
    /// ```
    pub fn with_client_addr(mut self, addr: &str) -> Self {
        self.client_addr = addr.to_owned();
        self
    }

    /// Set the scheme (`"https"` for a request that came over TLS).
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockRequest::get("/").with_scheme("https");
    /// assert_eq!(mock.scheme, "https");
    /// ```
    pub fn with_scheme(mut self, scheme: &str) -> Self {
        self.scheme = scheme.to_owned();
        self
    }

    /// Set what the client sent before normalisation (`req.raw_path_and_query()`), e.g.
    /// `"/%61dmin"` for a request whose canonical path is `/admin`.
    ///
    /// ```
    /// let mut mock = weir_sdk::testing::MockRequest::get("/a").with_raw_path_and_query("/%61");
    /// assert_eq!(mock.request().raw_path_and_query(), "/%61");
    /// ```
    pub fn with_raw_path_and_query(mut self, raw: &str) -> Self {
        self.raw_path_and_query = Some(raw.to_owned());
        self
    }

    /// This request as a hook sees it, for testing code that takes a [`Request`].
    ///
    /// ```
    /// use weir_sdk::Request;
    /// // A helper of the filter's, tested on its own.
    /// fn is_api(req: &Request) -> bool { req.path().starts_with("/api/") }
    /// assert!(is_api(&weir_sdk::testing::MockRequest::get("/api/x").request()));
    /// ```
    pub fn request(&mut self) -> Request<'_> {
        Request::mock(self)
    }

    pub(crate) fn set_path_and_query(&mut self, pq: &str) -> Result<(), Error> {
        if !pq.starts_with('/') || pq.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error(format!("invalid path and query {pq:?}")));
        }
        self.split_path(pq);
        Ok(())
    }

    fn split_path(&mut self, pq: &str) {
        match pq.split_once('?') {
            Some((p, q)) => {
                self.path = p.to_owned();
                self.query = Some(q.to_owned());
            }
            None => {
                self.path = pq.to_owned();
                self.query = None;
            }
        }
    }
}

/// A response for native tests.
///
/// ```
/// use weir_sdk::testing::MockResponse;
/// let mock = MockResponse::new(200).with_header("content-type", "text/html").with_body("<p>hi</p>");
/// assert_eq!(mock.headers.get("content-type"), Some("text/html"));
/// ```
#[derive(Debug, Clone)]
pub struct MockResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderList,
    /// The buffered body the filter sees (`None`: not buffered).
    pub body: Option<Vec<u8>>,
}

impl MockResponse {
    /// A response with `status` and no headers.
    ///
    /// ```
    /// assert_eq!(weir_sdk::testing::MockResponse::new(301).status, 301);
    /// ```
    pub fn new(status: u16) -> Self {
        MockResponse {
            status,
            headers: HeaderList::default(),
            body: None,
        }
    }

    /// Set the buffered body.
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockResponse::new(200).with_body("ok");
    /// assert_eq!(mock.body.as_deref(), Some(&b"ok"[..]));
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Add a header (panics on an invalid one: this is test set-up).
    ///
    /// ```
    /// let mock = weir_sdk::testing::MockResponse::new(200).with_header("etag", "\"1\"");
    /// assert_eq!(mock.headers.get("etag"), Some("\"1\""));
    /// ```
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Err(e) = self.headers.append(name, value) {
            panic!("MockResponse::with_header: {e}");
        }
        self
    }

    /// This response as a hook sees it, for testing code that takes a [`Response`].
    ///
    /// ```
    /// use weir_sdk::Response;
    /// fn is_error(resp: &Response) -> bool { resp.status() >= 500 }
    /// assert!(is_error(&weir_sdk::testing::MockResponse::new(503).response()));
    /// ```
    pub fn response(&mut self) -> Response<'_> {
        Response::mock(self)
    }

    pub(crate) fn set_status(&mut self, status: u16) -> Result<(), Error> {
        if !(100..=999).contains(&status) {
            return Err(Error(format!("invalid status {status}")));
        }
        self.status = status;
        Ok(())
    }
}

/// The filter's own metrics recorded on this thread since the last call:
/// `(counters, histogram values)`.
///
/// ```
/// weir_sdk::metrics::counter_add("hits", 1);
/// let (counters, histograms) = weir_sdk::testing::take_metrics();
/// assert_eq!(counters["hits"], 1);
/// assert!(histograms.is_empty());
/// ```
pub fn take_metrics() -> (BTreeMap<String, u64>, BTreeMap<String, Vec<f64>>) {
    METRICS.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

type Metrics = (BTreeMap<String, u64>, BTreeMap<String, Vec<f64>>);

thread_local! {
    static METRICS: RefCell<Metrics> = const { RefCell::new((BTreeMap::new(), BTreeMap::new())) };
    static KV: RefCell<BTreeMap<String, (kv_double::Value, Option<Instant>)>> =
        const { RefCell::new(BTreeMap::new()) };
    static HTTP: RefCell<Option<HttpHandler>> = const { RefCell::new(None) };
    static CLOCK: Cell<(Option<(Instant, SystemTime)>, Duration)> =
        const { Cell::new((None, Duration::ZERO)) };
}

/// Stop this thread's [`crate::clock`] where it is: it moves only by [`advance_clock`].
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{clock, testing};
/// testing::freeze_clock();
/// let t0 = clock::now();
/// assert_eq!(clock::now(), t0); // frozen
/// testing::advance_clock(Duration::from_millis(5));
/// assert_eq!(clock::now() - t0, Duration::from_millis(5));
/// ```
pub fn freeze_clock() {
    CLOCK.with(|c| {
        let (frozen, offset) = c.get();
        if frozen.is_none() {
            c.set((Some((Instant::now(), SystemTime::now())), offset));
        }
    });
}

/// Move this thread's [`crate::clock`] (and the key/value double's TTLs) forward by `by`.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{kv, testing};
/// testing::reset_kv();
/// testing::freeze_clock();
/// kv::set("k", b"v", Some(Duration::from_secs(10))).unwrap();
/// testing::advance_clock(Duration::from_secs(10));
/// assert_eq!(kv::get("k"), None);
/// ```
pub fn advance_clock(by: Duration) {
    CLOCK.with(|c| {
        let (frozen, offset) = c.get();
        c.set((frozen, offset.saturating_add(by)));
    });
}

/// Back to the real clock.
///
/// ```
/// use std::time::Duration;
/// weir_sdk::testing::freeze_clock();
/// weir_sdk::testing::advance_clock(Duration::from_secs(3600));
/// weir_sdk::testing::reset_clock(); // real time again, no offset
/// ```
pub fn reset_clock() {
    CLOCK.with(|c| c.set((None, Duration::ZERO)));
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn clock_state() -> (Option<Instant>, Option<SystemTime>, Duration) {
    CLOCK.with(|c| {
        let (frozen, offset) = c.get();
        (frozen.map(|f| f.0), frozen.map(|f| f.1), offset)
    })
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn record_metric(name: &str, value: f64, counter: bool) {
    METRICS.with(|m| {
        let mut m = m.borrow_mut();
        if counter {
            *m.0.entry(name.to_owned()).or_default() += value as u64;
        } else {
            m.1.entry(name.to_owned()).or_default().push(value);
        }
    });
}

/// Empty this thread's key/value store double.
///
/// ```
/// weir_sdk::kv::set("left-over", b"1", None).unwrap();
/// weir_sdk::testing::reset_kv();
/// assert_eq!(weir_sdk::kv::get("left-over"), None);
/// ```
pub fn reset_kv() {
    KV.with(|kv| kv.borrow_mut().clear());
}

/// Forget every key of this thread's rate-limit double ([`crate::rate_limit`]).
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::rate_limit::{self, Quota};
/// let q = Quota::per(1, Duration::from_secs(3600));
/// weir_sdk::testing::reset_rate_limits();
/// assert!(rate_limit::check("k", q, 1).unwrap().allowed);
/// assert!(!rate_limit::check("k", q, 1).unwrap().allowed);
/// weir_sdk::testing::reset_rate_limits();
/// assert!(rate_limit::check("k", q, 1).unwrap().allowed);
/// ```
pub fn reset_rate_limits() {
    crate::rate_limit::double::reset();
}

thread_local! {
    static STORE_DOWN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What the host answers while a shared store is down and the filter's
/// `on-store-failure` is `"fail-open"`.
///
/// ```
/// use weir_sdk::{kv, testing};
/// testing::set_store_unavailable(true);
/// let err = kv::incr("k", 1, None).unwrap_err();
/// assert_eq!(err.to_string(), testing::STORE_UNAVAILABLE);
/// testing::set_store_unavailable(false);
/// ```
pub const STORE_UNAVAILABLE: &str =
    "the shared store is unavailable: connection refused (test double)";

/// Make this thread's shared store unreachable (`true`) or reachable again, as a filter with
/// `on-store-failure = "fail-open"` sees it: `kv::get` finds nothing, writes and
/// `rate_limit::check` fail with [`STORE_UNAVAILABLE`], `kv::delete` does nothing.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{kv, rate_limit::{self, Quota}, testing};
/// testing::reset_kv();
/// kv::set("k", b"v", None).unwrap();
/// testing::set_store_unavailable(true);
/// assert_eq!(kv::get("k"), None);
/// assert!(kv::set("k", b"w", None).is_err());
/// assert!(rate_limit::check("ip", Quota::per(1, Duration::from_secs(1)), 1).is_err());
/// testing::set_store_unavailable(false);
/// assert_eq!(kv::get("k").as_deref(), Some(&b"v"[..]));
/// ```
pub fn set_store_unavailable(down: bool) {
    STORE_DOWN.with(|d| d.set(down));
}

/// Whether [`set_store_unavailable`] made the store unreachable on this thread.
pub(crate) fn store_down() -> bool {
    STORE_DOWN.with(|d| d.get())
}

/// Place the addresses of `cidr` (`"81.2.69.0/24"`, `"2001:db8::/32"` or one address) at
/// `location` for [`crate::geo::lookup`] on this thread; the most specific network wins.
///
/// ```
/// use weir_sdk::{geo, testing};
/// testing::reset_geo();
/// testing::locate("10.0.0.0/8", geo::Location::country("NL", "EU"));
/// testing::locate("10.1.0.0/16", geo::Location::country("BE", "EU"));
/// assert_eq!(geo::lookup("10.1.2.3").unwrap().country.as_deref(), Some("BE"));
/// assert_eq!(geo::lookup("10.2.0.1").unwrap().country.as_deref(), Some("NL"));
/// assert_eq!(geo::lookup("::ffff:10.2.0.1").unwrap().country.as_deref(), Some("NL"));
/// ```
pub fn locate(cidr: &str, location: crate::geo::Location) {
    crate::geo::double::place(cidr, location);
}

/// Forget every network given to [`locate`] on this thread.
///
/// ```
/// use weir_sdk::{geo, testing};
/// testing::locate("192.0.2.1", geo::Location::country("FR", "EU"));
/// testing::reset_geo();
/// assert_eq!(geo::lookup("192.0.2.1"), None);
/// ```
pub fn reset_geo() {
    crate::geo::double::reset();
}

/// The key/value store double: the host's semantics (TTL, windowed counters) in a map.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) mod kv_double {
    use super::KV;
    use crate::clock;
    use std::time::{Duration, Instant};

    #[derive(Debug, Clone)]
    pub enum Value {
        Bytes(Vec<u8>),
        Counter(i64),
    }

    fn deadline(ms: Option<u64>) -> Option<Instant> {
        ms.map(|ms| clock::now() + Duration::from_millis(ms))
    }

    fn live(expires: &Option<Instant>) -> bool {
        expires.is_none_or(|e| e > clock::now())
    }

    pub fn get(key: &str) -> Option<Vec<u8>> {
        if super::store_down() {
            return None;
        }
        KV.with(|kv| match kv.borrow().get(key) {
            Some((Value::Bytes(b), e)) if live(e) => Some(b.clone()),
            Some((Value::Counter(n), e)) if live(e) => Some(n.to_string().into_bytes()),
            _ => None,
        })
    }

    pub fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), String> {
        if super::store_down() {
            return Err(super::STORE_UNAVAILABLE.to_string());
        }
        KV.with(|kv| {
            kv.borrow_mut().insert(
                key.to_owned(),
                (Value::Bytes(value.to_vec()), deadline(ttl_ms)),
            )
        });
        Ok(())
    }

    pub fn delete(key: &str) {
        if super::store_down() {
            return;
        }
        KV.with(|kv| kv.borrow_mut().remove(key));
    }

    pub fn incr_window(key: &str, delta: i64, window_ms: u64) -> Result<(i64, u64), String> {
        let value = incr(key, delta, Some(window_ms))?;
        let left = KV.with(|kv| match kv.borrow().get(key) {
            Some((_, Some(expires))) => {
                u64::try_from(expires.saturating_duration_since(clock::now()).as_millis())
                    .unwrap_or(u64::MAX)
            }
            _ => u64::MAX,
        });
        Ok((value, left))
    }

    pub fn incr(key: &str, delta: i64, window_ms: Option<u64>) -> Result<i64, String> {
        if super::store_down() {
            return Err(super::STORE_UNAVAILABLE.to_string());
        }
        KV.with(|kv| {
            let mut kv = kv.borrow_mut();
            match kv.get_mut(key) {
                Some((Value::Counter(n), e)) if live(e) => {
                    *n = n.saturating_add(delta);
                    Ok(*n)
                }
                Some((Value::Bytes(_), e)) if live(e) => {
                    Err(format!("key {key:?} holds a value, not a counter"))
                }
                _ => {
                    kv.insert(key.to_owned(), (Value::Counter(delta), deadline(window_ms)));
                    Ok(delta)
                }
            }
        })
    }
}

type HttpHandler = Box<dyn FnMut(&HttpRequest) -> Result<HttpResponse, String>>;

/// Answer this thread's outbound HTTP requests with `handler` (an `Err` is a refused or
/// failed request, as the proxy would report it).
///
/// ```
/// use weir_sdk::http_client::{HttpRequest, HttpResponse};
/// weir_sdk::testing::mock_http(|req| match req.url.as_str() {
///     "http://auth.internal/ok" => Ok(HttpResponse::new(200)),
///     _ => Ok(HttpResponse::new(403)),
/// });
/// assert_eq!(HttpRequest::get("http://auth.internal/ok").send().unwrap().status, 200);
/// assert_eq!(HttpRequest::get("http://auth.internal/no").send().unwrap().status, 403);
/// ```
pub fn mock_http(handler: impl FnMut(&HttpRequest) -> Result<HttpResponse, String> + 'static) {
    HTTP.with(|h| *h.borrow_mut() = Some(Box::new(handler)));
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn http_double(req: &HttpRequest) -> Result<HttpResponse, String> {
    HTTP.with(|h| match h.borrow_mut().as_mut() {
        Some(handler) => handler(req),
        None => Err(format!(
            "no mock HTTP handler on this thread for {} {} (see testing::mock_http)",
            req.method, req.url
        )),
    })
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    (0..len.div_ceil(8))
        .flat_map(|i| state.hash_one(i).to_le_bytes())
        .take(len)
        .collect()
}

/// The caching decisions this thread's filter code made (see [`crate::cache`]).
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::bypass();
/// assert!(testing::cache_decisions().bypass);
/// ```
pub fn cache_decisions() -> crate::cache::Decisions {
    crate::cache::double::take()
}

/// Forget this thread's caching decisions (between tests of one thread).
///
/// ```
/// use weir_sdk::{cache, testing};
/// cache::no_compress();
/// testing::reset_cache_decisions();
/// assert!(!testing::cache_decisions().no_compress);
/// ```
pub fn reset_cache_decisions() {
    crate::cache::double::reset();
}
