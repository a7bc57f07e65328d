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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// e.g. `"GET"`.
    pub method: String,
    /// Absolute `http://host:port/path` URL.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// The answer, with its whole body.
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
    pub fn new(method: &str, url: &str) -> Self {
        HttpRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Self {
        HttpRequest::new("GET", url)
    }

    /// A `POST` request with `body`.
    pub fn post(url: &str, body: impl Into<Vec<u8>>) -> Self {
        HttpRequest::new("POST", url).body(body)
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Send it and wait for the answer.
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
    pub fn new(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
