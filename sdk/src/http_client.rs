//! Outbound HTTP from a filter, e.g. an auth callout. The proxy sends only to hosts that the
//! manifest's `allow-hosts` lists for this filter, within its `outbound-timeout` per hook
//! call; a refused or failed request is an `Err`, never a trap.
//!
//! ```
//! use weir_sdk::http_client::{HttpRequest, HttpResponse};
//! weir_sdk::testing::mock_http(|req| {
//!     assert_eq!(req.url, "http://auth.local/check");
//!     Ok(HttpResponse::new(204))
//! });
//! let resp = HttpRequest::get("http://auth.local/check").header("x-token", "t").send().unwrap();
//! assert_eq!(resp.status, 204);
//! ```
//!
//! In native tests, requests go to the handler set with [`crate::testing::mock_http`].

use crate::Error;

/// An outbound request.
///
/// ```
/// use weir_sdk::http_client::{HttpRequest, HttpResponse};
/// use weir_sdk::testing;
///
/// testing::mock_http(|req| {
///     assert!(req.headers.iter().any(|(n, v)| n == "authorization" && v == "Bearer t"));
///     Ok(HttpResponse::new(200))
/// });
/// let resp = HttpRequest::get("http://auth.internal:8080/check")
///     .header("authorization", "Bearer t")
///     .send()
///     .unwrap();
/// assert_eq!(resp.status, 200);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// e.g. `"GET"`.
    pub method: String,
    /// Absolute `http://` or `https://` URL (`https` since host 0.2.3: verified TLS).
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// The answer, with its whole body.
///
/// ```
/// use weir_sdk::http_client::HttpResponse;
/// let mut r = HttpResponse::new(200);
/// r.headers.push(("content-type".into(), "application/json".into()));
/// r.body = br#"{"allowed":true}"#.to_vec();
/// assert_eq!(r.header("Content-Type"), Some("application/json"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request with `method` to `url`.
    ///
    /// ```
    /// let r = weir_sdk::http_client::HttpRequest::new("PUT", "http://127.0.0.1:9000/k");
    /// assert_eq!((r.method.as_str(), r.body.len()), ("PUT", 0));
    /// ```
    pub fn new(method: &str, url: &str) -> Self {
        HttpRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET` request.
    ///
    /// ```
    /// let r = weir_sdk::http_client::HttpRequest::get("http://127.0.0.1:9000/health");
    /// assert_eq!(r.method, "GET");
    /// ```
    pub fn get(url: &str) -> Self {
        HttpRequest::new("GET", url)
    }

    /// A `POST` request with `body`.
    ///
    /// ```
    /// let r = weir_sdk::http_client::HttpRequest::post("http://127.0.0.1:9000/log", "hello");
    /// assert_eq!((r.method.as_str(), r.body.as_slice()), ("POST", &b"hello"[..]));
    /// ```
    pub fn post(url: &str, body: impl Into<Vec<u8>>) -> Self {
        HttpRequest::new("POST", url).body(body)
    }

    /// Add a header.
    ///
    /// ```
    /// let r = weir_sdk::http_client::HttpRequest::get("http://127.0.0.1:9000/")
    ///     .header("accept", "application/json");
    /// assert_eq!(r.headers, [("accept".to_string(), "application/json".to_string())]);
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Set the body.
    ///
    /// ```
    /// let r = weir_sdk::http_client::HttpRequest::new("PATCH", "http://127.0.0.1:9000/")
    ///     .body(r#"{"op":"x"}"#);
    /// assert_eq!(r.body, br#"{"op":"x"}"#);
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Send it and wait for the answer.
    ///
    /// ```
    /// use weir_sdk::http_client::{HttpRequest, HttpResponse};
    /// weir_sdk::testing::mock_http(|_| Err("connection refused".into()));
    /// let err = HttpRequest::get("http://127.0.0.1:1/").send().unwrap_err();
    /// assert!(err.message().contains("refused"));
    /// weir_sdk::testing::mock_http(|_| Ok(HttpResponse::new(204)));
    /// assert_eq!(HttpRequest::get("http://127.0.0.1:1/").send().unwrap().status, 204);
    /// ```
    pub fn send(self) -> Result<HttpResponse, Error> {
        #[cfg(target_arch = "wasm32")]
        {
            use crate::bindings::weir::filter::http_client as wit;
            let resp = wit::send(&wit::OutgoingRequest {
                method: self.method,
                url: self.url,
                headers: self.headers,
                body: self.body,
            })
            .map_err(Error)?;
            Ok(HttpResponse {
                status: resp.status,
                headers: resp.headers,
                body: resp.body,
            })
        }
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::http_double(&self).map_err(Error)
    }
}

impl HttpResponse {
    /// An answer with `status`, no headers and no body.
    ///
    /// ```
    /// let r = weir_sdk::http_client::HttpResponse::new(404);
    /// assert!(r.headers.is_empty() && r.body.is_empty());
    /// ```
    pub fn new(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The first value of header `name` (case-insensitive).
    ///
    /// ```
    /// let mut r = weir_sdk::http_client::HttpResponse::new(200);
    /// r.headers.push(("etag".into(), "\"7\"".into()));
    /// assert_eq!(r.header("ETag"), Some("\"7\""));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
