//! Requests and responses built for tests: [`MockRequest`], [`MockResponse`] and their
//! [`HeaderList`].

use crate::{header, Error, Request, Response};
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
