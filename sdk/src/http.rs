//! The request and response a hook sees: thin views over the host's resources (or, in
//! native tests, over [`crate::testing`] doubles).

use crate::bindings::weir::filter::types as wit;
use crate::testing::{MockRequest, MockResponse};
use crate::Error;

/// The client's request as the filters before this one left it.
///
/// Every accessor is one call into the host: read what you need, nothing is copied up front.
///
/// ```
/// use weir_sdk::{Action, Request};
///
/// fn on_request(req: &mut Request) -> Action {
///     if req.method() == "DELETE" && req.header("x-admin").is_none() {
///         return Action::respond_text(403, "admins only\n");
///     }
///     Action::Continue
/// }
///
/// use weir_sdk::testing::MockRequest;
/// assert!(on_request(&mut MockRequest::new("DELETE", "/items/3").request()).response().is_some());
/// assert!(on_request(&mut MockRequest::get("/items/3").request()).response().is_none());
/// ```
pub struct Request<'a> {
    inner: RequestInner<'a>,
}

enum RequestInner<'a> {
    Host(&'a wit::Request),
    Mock(&'a mut MockRequest),
}

macro_rules! dispatch {
    ($self:ident, $h:ident => $host:expr, $m:ident => $mock:expr) => {
        match &$self.inner {
            RequestInner::Host($h) => $host,
            RequestInner::Mock($m) => $mock,
        }
    };
}

impl<'a> Request<'a> {
    pub(crate) fn host(handle: &'a wit::Request) -> Self {
        Request {
            inner: RequestInner::Host(handle),
        }
    }

    pub(crate) fn mock(mock: &'a mut MockRequest) -> Self {
        Request {
            inner: RequestInner::Mock(mock),
        }
    }

    /// The method, e.g. `"GET"`.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// assert_eq!(MockRequest::post("/form").request().method(), "POST");
    /// ```
    pub fn method(&self) -> String {
        dispatch!(self, h => h.method(), m => m.method.clone())
    }

    /// `"http"` or `"https"`.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// assert_eq!(MockRequest::get("/").request().scheme(), "http");
    /// assert_eq!(MockRequest::get("/").with_scheme("https").request().scheme(), "https");
    /// ```
    pub fn scheme(&self) -> String {
        dispatch!(self, h => h.scheme(), m => m.scheme.clone())
    }

    /// The host (and port, if given) the client addressed.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_authority("api.example.com:8443");
    /// assert_eq!(mock.request().authority().as_deref(), Some("api.example.com:8443"));
    /// ```
    pub fn authority(&self) -> Option<String> {
        dispatch!(self, h => h.authority(), m => m.authority.clone())
    }

    /// The path, without the query.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// assert_eq!(MockRequest::get("/items/3?full=1").request().path(), "/items/3");
    /// ```
    pub fn path(&self) -> String {
        dispatch!(self, h => h.path(), m => m.path.clone())
    }

    /// The path and query exactly as the client sent them, before normalisation (e.g.
    /// `"/%61pi/./items?q=1"`): for logging and detection, while `path` is what routing
    /// matched and the upstream gets. Needs a host of WIT 0.2.1 or later.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/api/items?q=1").with_raw_path_and_query("/%61pi/./items?q=1");
    /// let req = mock.request();
    /// assert_eq!(req.path(), "/api/items");
    /// assert_eq!(req.raw_path_and_query(), "/%61pi/./items?q=1");
    /// ```
    pub fn raw_path_and_query(&self) -> String {
        dispatch!(self, h => h.raw_path_and_query(), m => m.raw_path_and_query.clone().unwrap_or_else(|| {
            match &m.query {
                Some(q) => format!("{}?{q}", m.path),
                None => m.path.clone(),
            }
        }))
    }

    /// The query string without the leading `?`, if any.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// assert_eq!(MockRequest::get("/s?q=weir").request().query().as_deref(), Some("q=weir"));
    /// assert_eq!(MockRequest::get("/s").request().query(), None);
    /// ```
    pub fn query(&self) -> Option<String> {
        dispatch!(self, h => h.query(), m => m.query.clone())
    }

    /// The client's IP address.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_client_addr("203.0.113.7");
    /// assert_eq!(mock.request().client_addr(), "203.0.113.7");
    /// ```
    pub fn client_addr(&self) -> String {
        dispatch!(self, h => h.client_addr(), m => m.client_addr.clone())
    }

    /// The first value of header `name` (case-insensitive).
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_header("Accept", "text/html");
    /// assert_eq!(mock.request().header("accept").as_deref(), Some("text/html"));
    /// ```
    pub fn header(&self, name: &str) -> Option<String> {
        dispatch!(self, h => h.header(name), m => m.headers.get(name).map(str::to_owned))
    }

    /// Every value of header `name`, in order.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_header("x-tag", "a").with_header("x-tag", "b");
    /// assert_eq!(mock.request().header_all("x-tag"), ["a", "b"]);
    /// ```
    pub fn header_all(&self, name: &str) -> Vec<String> {
        dispatch!(self, h => h.header_all(name), m => m.headers.get_all(name))
    }

    /// The value of cookie `name` (see [`crate::header::cookie`]).
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_header("cookie", "theme=dark; sid=42");
    /// assert_eq!(mock.request().cookie("sid").as_deref(), Some("42"));
    /// assert_eq!(mock.request().cookie("nope"), None);
    /// ```
    pub fn cookie(&self, name: &str) -> Option<String> {
        let all = self.header_all("cookie");
        crate::header::cookie(all.iter().map(String::as_str), name).map(str::to_owned)
    }

    /// Every header, in order, names lower-case.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_header("X-One", "1");
    /// let all = mock.request().headers();
    /// assert_eq!(all, [("x-one".to_string(), "1".to_string())]);
    /// ```
    pub fn headers(&self) -> Vec<(String, String)> {
        dispatch!(self, h => h.headers(), m => m.headers.to_vec())
    }

    /// Replace every value of header `name` with `value`.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_header("x-user", "mallory");
    /// mock.request().set_header("x-user", "ada").unwrap();
    /// assert_eq!(mock.headers.get_all("x-user"), ["ada"]);
    /// ```
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        match &mut self.inner {
            RequestInner::Host(h) => h.set_header(name, value).map_err(Error),
            RequestInner::Mock(m) => m.headers.set(name, value),
        }
    }

    /// Add `value` to header `name`.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_header("forwarded", "for=192.0.2.1");
    /// mock.request().append_header("forwarded", "for=198.51.100.2").unwrap();
    /// assert_eq!(mock.headers.get_all("forwarded").len(), 2);
    /// ```
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        match &mut self.inner {
            RequestInner::Host(h) => h.append_header(name, value).map_err(Error),
            RequestInner::Mock(m) => m.headers.append(name, value),
        }
    }

    /// Remove every value of header `name`.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_header("cookie", "session=1");
    /// mock.request().remove_header("cookie");
    /// assert_eq!(mock.headers.get("cookie"), None);
    /// ```
    pub fn remove_header(&mut self, name: &str) {
        match &mut self.inner {
            RequestInner::Host(h) => h.remove_header(name),
            RequestInner::Mock(m) => m.headers.remove(name),
        }
    }

    /// Replace the path and query sent upstream, e.g. `"/v2/items?id=3"`.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/v1/items?id=3");
    /// mock.request().set_path_and_query("/v2/items?id=3").unwrap();
    /// assert_eq!((mock.path.as_str(), mock.query.as_deref()), ("/v2/items", Some("id=3")));
    /// assert!(mock.request().set_path_and_query("no-slash").is_err());
    /// ```
    pub fn set_path_and_query(&mut self, path_and_query: &str) -> Result<(), Error> {
        match &mut self.inner {
            RequestInner::Host(h) => h.set_path_and_query(path_and_query).map_err(Error),
            RequestInner::Mock(m) => m.set_path_and_query(path_and_query),
        }
    }

    /// The request body, if this filter asked for it with
    /// [`Hooks::with_request_body`](crate::Hooks::with_request_body).
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::post("/login").with_body("user=ada");
    /// assert_eq!(mock.request().body().as_deref(), Some(&b"user=ada"[..]));
    /// assert_eq!(MockRequest::get("/").request().body(), None); // not buffered
    /// ```
    pub fn body(&self) -> Option<Vec<u8>> {
        dispatch!(self, h => h.body(), m => m.body.clone())
    }

    /// Replace the body sent upstream (Content-Length follows). Needs `request_body` in
    /// the filter's hooks.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::post("/api").with_body("{}");
    /// mock.request().set_body(r#"{"v":2}"#).unwrap();
    /// assert_eq!(mock.body.as_deref(), Some(&br#"{"v":2}"#[..]));
    /// ```
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) -> Result<(), Error> {
        let body = body.into();
        match &mut self.inner {
            RequestInner::Host(h) => h.set_body(&body).map_err(Error),
            RequestInner::Mock(m) => {
                m.body = Some(body);
                Ok(())
            }
        }
    }

    /// Property `key` of this request's context, set by this or an earlier filter.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_context("user", "ada");
    /// assert_eq!(mock.request().context("user").as_deref(), Some("ada"));
    /// ```
    pub fn context(&self, key: &str) -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        if let RequestInner::Host(_) = &self.inner {
            return crate::bindings::weir::filter::context::get(key);
        }
        match &self.inner {
            RequestInner::Mock(m) => m.context.get(key).cloned(),
            RequestInner::Host(_) => None,
        }
    }

    /// Set property `key` of this request's context, for later filters and the response
    /// phase (keys up to 256 bytes, values up to 4096, at most 64 properties).
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/");
    /// mock.request().set_context("tenant", "acme").unwrap();
    /// assert_eq!(mock.request().context("tenant").as_deref(), Some("acme"));
    /// ```
    pub fn set_context(&mut self, key: &str, value: &str) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        if let RequestInner::Host(_) = &self.inner {
            return crate::bindings::weir::filter::context::set(key, value).map_err(Error);
        }
        match &mut self.inner {
            RequestInner::Mock(m) => {
                m.context.insert(key.to_owned(), value.to_owned());
                Ok(())
            }
            RequestInner::Host(_) => Err(Error("no request context here".into())),
        }
    }

    /// Remove property `key` of this request's context.
    ///
    /// ```
    /// use weir_sdk::testing::MockRequest;
    /// let mut mock = MockRequest::get("/").with_context("user", "ada");
    /// mock.request().remove_context("user");
    /// assert_eq!(mock.request().context("user"), None);
    /// ```
    pub fn remove_context(&mut self, key: &str) {
        #[cfg(target_arch = "wasm32")]
        if let RequestInner::Host(_) = &self.inner {
            return crate::bindings::weir::filter::context::remove(key);
        }
        if let RequestInner::Mock(m) = &mut self.inner {
            m.context.remove(key);
        }
    }
}

/// The response on its way to the client: the upstream's, or a local one.
///
/// ```
/// use weir_sdk::{Action, Request, Response};
///
/// // Hide what the upstream runs on, and mark error pages uncacheable.
/// fn on_response(_req: &Request, resp: &mut Response) -> Action {
///     resp.remove_header("server");
///     if resp.status() >= 500 {
///         let _ = resp.set_header("cache-control", "no-store");
///     }
///     Action::Continue
/// }
///
/// use weir_sdk::testing::{MockRequest, MockResponse};
/// let mut mock = MockResponse::new(502).with_header("server", "app/1.2");
/// let _ = on_response(&MockRequest::get("/").request(), &mut mock.response());
/// assert_eq!(mock.headers.get("server"), None);
/// assert_eq!(mock.headers.get("cache-control"), Some("no-store"));
/// ```
pub struct Response<'a> {
    inner: ResponseInner<'a>,
}

enum ResponseInner<'a> {
    Host(&'a wit::Response),
    Mock(&'a mut MockResponse),
}

macro_rules! dispatch_resp {
    ($self:ident, $h:ident => $host:expr, $m:ident => $mock:expr) => {
        match &mut $self.inner {
            ResponseInner::Host($h) => $host,
            ResponseInner::Mock($m) => $mock,
        }
    };
}

impl<'a> Response<'a> {
    pub(crate) fn host(handle: &'a wit::Response) -> Self {
        Response {
            inner: ResponseInner::Host(handle),
        }
    }

    pub(crate) fn mock(mock: &'a mut MockResponse) -> Self {
        Response {
            inner: ResponseInner::Mock(mock),
        }
    }

    /// The status code.
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// assert_eq!(MockResponse::new(404).response().status(), 404);
    /// ```
    pub fn status(&self) -> u16 {
        match &self.inner {
            ResponseInner::Host(h) => h.status(),
            ResponseInner::Mock(m) => m.status,
        }
    }

    /// Change the status code (100..=999).
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// let mut mock = MockResponse::new(200);
    /// mock.response().set_status(203).unwrap();
    /// assert_eq!(mock.status, 203);
    /// assert!(mock.response().set_status(42).is_err());
    /// ```
    pub fn set_status(&mut self, status: u16) -> Result<(), Error> {
        dispatch_resp!(self, h => h.set_status(status).map_err(Error), m => m.set_status(status))
    }

    /// The first value of header `name` (case-insensitive).
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// let mut mock = MockResponse::new(200).with_header("Content-Type", "text/html");
    /// assert_eq!(mock.response().header("content-type").as_deref(), Some("text/html"));
    /// ```
    pub fn header(&self, name: &str) -> Option<String> {
        match &self.inner {
            ResponseInner::Host(h) => h.header(name),
            ResponseInner::Mock(m) => m.headers.get(name).map(str::to_owned),
        }
    }

    /// Every value of header `name`, in order.
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// let mut mock = MockResponse::new(200).with_header("set-cookie", "a=1").with_header("set-cookie", "b=2");
    /// assert_eq!(mock.response().header_all("set-cookie"), ["a=1", "b=2"]);
    /// ```
    pub fn header_all(&self, name: &str) -> Vec<String> {
        match &self.inner {
            ResponseInner::Host(h) => h.header_all(name),
            ResponseInner::Mock(m) => m.headers.get_all(name),
        }
    }

    /// Every header, in order, names lower-case.
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// let mut mock = MockResponse::new(200).with_header("ETag", "\"v1\"");
    /// assert_eq!(mock.response().headers(), [("etag".to_string(), "\"v1\"".to_string())]);
    /// ```
    pub fn headers(&self) -> Vec<(String, String)> {
        match &self.inner {
            ResponseInner::Host(h) => h.headers(),
            ResponseInner::Mock(m) => m.headers.to_vec(),
        }
    }

    /// Replace every value of header `name` with `value`.
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// let mut mock = MockResponse::new(200);
    /// mock.response().set_header("strict-transport-security", "max-age=63072000").unwrap();
    /// assert_eq!(mock.headers.get("strict-transport-security"), Some("max-age=63072000"));
    /// ```
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        dispatch_resp!(self, h => h.set_header(name, value).map_err(Error), m => m.headers.set(name, value))
    }

    /// Add `value` to header `name`.
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// let mut mock = MockResponse::new(200).with_header("vary", "accept");
    /// mock.response().append_header("vary", "origin").unwrap();
    /// assert_eq!(mock.headers.get_all("vary"), ["accept", "origin"]);
    /// ```
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        dispatch_resp!(self, h => h.append_header(name, value).map_err(Error), m => m.headers.append(name, value))
    }

    /// Remove every value of header `name`.
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// let mut mock = MockResponse::new(200).with_header("x-powered-by", "php");
    /// mock.response().remove_header("x-powered-by");
    /// assert_eq!(mock.headers.get("x-powered-by"), None);
    /// ```
    pub fn remove_header(&mut self, name: &str) {
        dispatch_resp!(self, h => h.remove_header(name), m => m.headers.remove(name))
    }

    /// The response body, if this filter asked for it with
    /// [`Hooks::with_response_body`](crate::Hooks::with_response_body).
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// let mut mock = MockResponse::new(200).with_body("hello");
    /// assert_eq!(mock.response().body().as_deref(), Some(&b"hello"[..]));
    /// ```
    pub fn body(&self) -> Option<Vec<u8>> {
        match &self.inner {
            ResponseInner::Host(h) => h.body(),
            ResponseInner::Mock(m) => m.body.clone(),
        }
    }

    /// Replace the body sent to the client (Content-Length follows). Needs `response_body`
    /// in the filter's hooks.
    ///
    /// ```
    /// use weir_sdk::testing::MockResponse;
    /// let mut mock = MockResponse::new(500).with_body("stack trace...");
    /// mock.response().set_body("internal error\n").unwrap();
    /// assert_eq!(mock.body.as_deref(), Some(&b"internal error\n"[..]));
    /// ```
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) -> Result<(), Error> {
        let body = body.into();
        dispatch_resp!(self, h => h.set_body(&body).map_err(Error), m => {
            m.body = Some(body);
            Ok(())
        })
    }
}

/// Header operations common to [`Request`] and [`Response`], for code that edits either.
///
/// ```
/// use weir_sdk::HeaderEdit;
/// use weir_sdk::testing::{MockRequest, MockResponse};
///
/// // One function for both phases.
/// fn tag(h: &mut impl HeaderEdit) {
///     let _ = h.set_header("x-via", "weir");
/// }
/// let (mut req, mut resp) = (MockRequest::get("/"), MockResponse::new(200));
/// tag(&mut req.request());
/// tag(&mut resp.response());
/// assert_eq!(req.headers.get("x-via"), resp.headers.get("x-via"));
/// ```
pub trait HeaderEdit {
    /// The first value of header `name`.
    fn header(&self, name: &str) -> Option<String>;
    /// Replace every value of header `name`.
    fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error>;
    /// Add a value to header `name`.
    fn append_header(&mut self, name: &str, value: &str) -> Result<(), Error>;
    /// Remove every value of header `name`.
    fn remove_header(&mut self, name: &str);
}

macro_rules! impl_header_edit {
    ($t:ident) => {
        impl HeaderEdit for $t<'_> {
            fn header(&self, name: &str) -> Option<String> {
                $t::header(self, name)
            }
            fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
                $t::set_header(self, name, value)
            }
            fn append_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
                $t::append_header(self, name, value)
            }
            fn remove_header(&mut self, name: &str) {
                $t::remove_header(self, name)
            }
        }
    };
}
impl_header_edit!(Request);
impl_header_edit!(Response);
