//! The request and response a hook sees: thin views over the host's resources (or, in
//! native tests, over [`crate::testing`] doubles).

use crate::bindings::weir::filter::types as wit;
use crate::testing::{MockRequest, MockResponse};
use crate::Error;

/// The client's request as the filters before this one left it.
///
/// Every accessor is one call into the host: read what you need, nothing is copied up front.
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
    pub fn method(&self) -> String {
        dispatch!(self, h => h.method(), m => m.method.clone())
    }

    /// `"http"` or `"https"`.
    pub fn scheme(&self) -> String {
        dispatch!(self, h => h.scheme(), m => m.scheme.clone())
    }

    /// The host (and port, if given) the client addressed.
    pub fn authority(&self) -> Option<String> {
        dispatch!(self, h => h.authority(), m => m.authority.clone())
    }

    /// The path, without the query.
    pub fn path(&self) -> String {
        dispatch!(self, h => h.path(), m => m.path.clone())
    }

    /// The path and query exactly as the client sent them, before normalisation (e.g.
    /// `"/%61pi/./items?q=1"`): for logging and detection, while `path` is what routing
    /// matched and the upstream gets. Needs a host of WIT 0.2.1 or later.
    pub fn raw_path_and_query(&self) -> String {
        dispatch!(self, h => h.raw_path_and_query(), m => m.raw_path_and_query.clone().unwrap_or_else(|| {
            match &m.query {
                Some(q) => format!("{}?{q}", m.path),
                None => m.path.clone(),
            }
        }))
    }

    /// The query string without the leading `?`, if any.
    pub fn query(&self) -> Option<String> {
        dispatch!(self, h => h.query(), m => m.query.clone())
    }

    /// The client's IP address.
    pub fn client_addr(&self) -> String {
        dispatch!(self, h => h.client_addr(), m => m.client_addr.clone())
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        dispatch!(self, h => h.header(name), m => m.headers.get(name).map(str::to_owned))
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        dispatch!(self, h => h.header_all(name), m => m.headers.get_all(name))
    }

    /// Every header, in order, names lower-case.
    pub fn headers(&self) -> Vec<(String, String)> {
        dispatch!(self, h => h.headers(), m => m.headers.to_vec())
    }

    /// Replace every value of header `name` with `value`.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        match &mut self.inner {
            RequestInner::Host(h) => h.set_header(name, value).map_err(Error),
            RequestInner::Mock(m) => m.headers.set(name, value),
        }
    }

    /// Add `value` to header `name`.
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        match &mut self.inner {
            RequestInner::Host(h) => h.append_header(name, value).map_err(Error),
            RequestInner::Mock(m) => m.headers.append(name, value),
        }
    }

    /// Remove every value of header `name`.
    pub fn remove_header(&mut self, name: &str) {
        match &mut self.inner {
            RequestInner::Host(h) => h.remove_header(name),
            RequestInner::Mock(m) => m.headers.remove(name),
        }
    }

    /// Replace the path and query sent upstream, e.g. `"/v2/items?id=3"`.
    pub fn set_path_and_query(&mut self, path_and_query: &str) -> Result<(), Error> {
        match &mut self.inner {
            RequestInner::Host(h) => h.set_path_and_query(path_and_query).map_err(Error),
            RequestInner::Mock(m) => m.set_path_and_query(path_and_query),
        }
    }

    /// The request body, if this filter asked for it with
    /// [`Hooks::with_request_body`](crate::Hooks::with_request_body).
    pub fn body(&self) -> Option<Vec<u8>> {
        dispatch!(self, h => h.body(), m => m.body.clone())
    }

    /// Replace the body sent upstream (Content-Length follows). Needs `request_body` in
    /// the filter's hooks.
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
    pub fn status(&self) -> u16 {
        match &self.inner {
            ResponseInner::Host(h) => h.status(),
            ResponseInner::Mock(m) => m.status,
        }
    }

    /// Change the status code (100..=999).
    pub fn set_status(&mut self, status: u16) -> Result<(), Error> {
        dispatch_resp!(self, h => h.set_status(status).map_err(Error), m => m.set_status(status))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        match &self.inner {
            ResponseInner::Host(h) => h.header(name),
            ResponseInner::Mock(m) => m.headers.get(name).map(str::to_owned),
        }
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        match &self.inner {
            ResponseInner::Host(h) => h.header_all(name),
            ResponseInner::Mock(m) => m.headers.get_all(name),
        }
    }

    /// Every header, in order, names lower-case.
    pub fn headers(&self) -> Vec<(String, String)> {
        match &self.inner {
            ResponseInner::Host(h) => h.headers(),
            ResponseInner::Mock(m) => m.headers.to_vec(),
        }
    }

    /// Replace every value of header `name` with `value`.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        dispatch_resp!(self, h => h.set_header(name, value).map_err(Error), m => m.headers.set(name, value))
    }

    /// Add `value` to header `name`.
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        dispatch_resp!(self, h => h.append_header(name, value).map_err(Error), m => m.headers.append(name, value))
    }

    /// Remove every value of header `name`.
    pub fn remove_header(&mut self, name: &str) {
        dispatch_resp!(self, h => h.remove_header(name), m => m.headers.remove(name))
    }

    /// The response body, if this filter asked for it with
    /// [`Hooks::with_response_body`](crate::Hooks::with_response_body).
    pub fn body(&self) -> Option<Vec<u8>> {
        match &self.inner {
            ResponseInner::Host(h) => h.body(),
            ResponseInner::Mock(m) => m.body.clone(),
        }
    }

    /// Replace the body sent to the client (Content-Length follows). Needs `response_body`
    /// in the filter's hooks.
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) -> Result<(), Error> {
        let body = body.into();
        dispatch_resp!(self, h => h.set_body(&body).map_err(Error), m => {
            m.body = Some(body);
            Ok(())
        })
    }
}

/// Header operations common to [`Request`] and [`Response`], for code that edits either.
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
