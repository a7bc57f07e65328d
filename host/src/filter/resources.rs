//! The host side of the `request` and `response` resources: reading and changing the heads
//! (and buffered bodies) that the current hook call works on.

use super::bindings::weir::filter::types;
use super::bindings::{Request, Response};
use super::host::FilterState;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use wasmtime::component::Resource;

/// Header operations shared by the request and response resources.
pub(super) mod headers {
    use super::*;

    pub fn text(v: &HeaderValue) -> String {
        match v.to_str() {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        }
    }

    pub fn get(map: &HeaderMap, name: &str) -> Option<String> {
        map.get(name).map(text)
    }

    pub fn get_all(map: &HeaderMap, name: &str) -> Vec<String> {
        map.get_all(name).iter().map(text).collect()
    }

    pub fn all(map: &HeaderMap) -> Vec<(String, String)> {
        map.iter()
            .map(|(n, v)| (n.as_str().to_owned(), text(v)))
            .collect()
    }

    pub fn parse(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
        Ok((parse_name(name)?, parse_value(name, value)?))
    }

    /// A header name a filter may set.
    pub fn parse_name(name: &str) -> Result<HeaderName, String> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        if !crate::request::headers::filter_may_edit(&n) {
            return Err(format!(
                "header {name:?} is managed by the proxy (framing and connection headers; a body is set with set-body)"
            ));
        }
        Ok(n)
    }

    /// A value for header `name`.
    pub fn parse_value(name: &str, value: &str) -> Result<HeaderValue, String> {
        HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name:?}"))
    }

    pub fn set(map: &mut HeaderMap, name: &str, value: &str) -> Result<(), String> {
        let (n, v) = parse(name, value)?;
        map.insert(n, v);
        Ok(())
    }

    pub fn append(map: &mut HeaderMap, name: &str, value: &str) -> Result<(), String> {
        let (n, v) = parse(name, value)?;
        map.append(n, v);
        Ok(())
    }

    /// Remove a header; the message's framing (`content-length`, `transfer-encoding`) stays.
    pub fn remove(map: &mut HeaderMap, name: &str) {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            if n != http::header::CONTENT_LENGTH && n != http::header::TRANSFER_ENCODING {
                map.remove(n);
            }
        }
    }
}

impl FilterState {
    /// Apply a header edit to the request, refused in the response phase.
    fn edit_request(
        &mut self,
        edit: impl FnOnce(&mut HeaderMap) -> Result<(), String>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(self.req_mut()?.and_then(|r| edit(&mut r.parts.headers)))
    }
}

/// After a body is replaced, its length is the new Content-Length (and no longer chunked).
fn set_length(headers: &mut HeaderMap, len: usize) {
    headers.remove(http::header::TRANSFER_ENCODING);
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
}

impl types::Host for FilterState {}

impl types::HostRequest for FilterState {
    fn method(&mut self, _: Resource<Request>) -> wasmtime::Result<String> {
        Ok(self.req()?.parts.method.as_str().to_owned())
    }

    fn scheme(&mut self, _: Resource<Request>) -> wasmtime::Result<String> {
        Ok(self.req()?.scheme.to_owned())
    }

    fn authority(&mut self, _: Resource<Request>) -> wasmtime::Result<Option<String>> {
        Ok(self.req()?.authority().map(str::to_owned))
    }

    fn path(&mut self, _: Resource<Request>) -> wasmtime::Result<String> {
        Ok(self.req()?.parts.uri.path().to_owned())
    }

    fn raw_path_and_query(&mut self, _: Resource<Request>) -> wasmtime::Result<String> {
        let req = self.req()?;
        // Kept only when normalising changed it; else the client's is the canonical one.
        let raw = req
            .raw_path_and_query
            .as_ref()
            .or(req.parts.uri.path_and_query());
        Ok(raw.map_or("/", |pq| pq.as_str()).to_owned())
    }

    fn query(&mut self, _: Resource<Request>) -> wasmtime::Result<Option<String>> {
        Ok(self.req()?.parts.uri.query().map(str::to_owned))
    }

    fn client_addr(&mut self, _: Resource<Request>) -> wasmtime::Result<String> {
        Ok(self.req()?.client.to_string())
    }

    fn header(&mut self, _: Resource<Request>, name: String) -> wasmtime::Result<Option<String>> {
        Ok(headers::get(&self.req()?.parts.headers, &name))
    }

    fn header_all(&mut self, _: Resource<Request>, name: String) -> wasmtime::Result<Vec<String>> {
        Ok(headers::get_all(&self.req()?.parts.headers, &name))
    }

    fn headers(&mut self, _: Resource<Request>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(headers::all(&self.req()?.parts.headers))
    }

    fn set_header(
        &mut self,
        _: Resource<Request>,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), String>> {
        self.edit_request(|h| headers::set(h, &name, &value))
    }

    fn append_header(
        &mut self,
        _: Resource<Request>,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), String>> {
        self.edit_request(|h| headers::append(h, &name, &value))
    }

    fn remove_header(&mut self, _: Resource<Request>, name: String) -> wasmtime::Result<()> {
        if let Ok(r) = self.req_mut()? {
            headers::remove(&mut r.parts.headers, &name);
        }
        Ok(())
    }

    fn set_path_and_query(
        &mut self,
        _: Resource<Request>,
        path_and_query: String,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(self.req_mut()?.and_then(|r| {
            if !path_and_query.starts_with('/') {
                return Err(format!("path {path_and_query:?} must start with '/'"));
            }
            let pq = http::uri::PathAndQuery::try_from(path_and_query.as_str())
                .map_err(|_| format!("invalid path and query {path_and_query:?}"))?;
            let mut uri = std::mem::take(&mut r.parts.uri).into_parts();
            uri.path_and_query = Some(pq);
            r.parts.uri = http::Uri::from_parts(uri)
                .map_err(|_| format!("invalid path and query {path_and_query:?}"))?;
            Ok(())
        }))
    }

    fn body(&mut self, _: Resource<Request>) -> wasmtime::Result<Option<Vec<u8>>> {
        let req = self.req()?;
        Ok(match (&req.body, self.call.request_body_allowed) {
            (Some(b), true) => Some(b.to_vec()),
            _ => None,
        })
    }

    fn set_body(
        &mut self,
        _: Resource<Request>,
        body: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        if !self.call.request_body_allowed {
            return Ok(Err(
                "set-body needs request-body in the hooks returned by init".into(),
            ));
        }
        Ok(self.req_mut()?.map(|r| {
            set_length(&mut r.parts.headers, body.len());
            r.body = Some(Bytes::from(body));
        }))
    }

    fn drop(&mut self, _: Resource<Request>) -> wasmtime::Result<()> {
        // Filters only ever borrow the request; there is nothing to free.
        Ok(())
    }
}

impl types::HostResponse for FilterState {
    fn status(&mut self, _: Resource<Response>) -> wasmtime::Result<u16> {
        Ok(self.resp()?.status.as_u16())
    }

    fn set_status(
        &mut self,
        _: Resource<Response>,
        status: u16,
    ) -> wasmtime::Result<Result<(), String>> {
        let resp = self.resp_mut()?;
        Ok(match http::StatusCode::from_u16(status) {
            Ok(s) => {
                resp.status = s;
                Ok(())
            }
            Err(_) => Err(format!("invalid status {status}")),
        })
    }

    fn header(&mut self, _: Resource<Response>, name: String) -> wasmtime::Result<Option<String>> {
        Ok(headers::get(&self.resp()?.headers, &name))
    }

    fn header_all(&mut self, _: Resource<Response>, name: String) -> wasmtime::Result<Vec<String>> {
        Ok(headers::get_all(&self.resp()?.headers, &name))
    }

    fn headers(&mut self, _: Resource<Response>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(headers::all(&self.resp()?.headers))
    }

    fn set_header(
        &mut self,
        _: Resource<Response>,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(headers::set(&mut self.resp_mut()?.headers, &name, &value))
    }

    fn append_header(
        &mut self,
        _: Resource<Response>,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(headers::append(
            &mut self.resp_mut()?.headers,
            &name,
            &value,
        ))
    }

    fn remove_header(&mut self, _: Resource<Response>, name: String) -> wasmtime::Result<()> {
        headers::remove(&mut self.resp_mut()?.headers, &name);
        Ok(())
    }

    fn body(&mut self, _: Resource<Response>) -> wasmtime::Result<Option<Vec<u8>>> {
        self.resp()?;
        Ok(
            match (&self.call.resp_body, self.call.response_body_allowed) {
                (Some(b), true) => Some(b.to_vec()),
                _ => None,
            },
        )
    }

    fn set_body(
        &mut self,
        _: Resource<Response>,
        body: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        if !self.call.response_body_allowed {
            return Ok(Err(
                "set-body needs response-body in the hooks returned by init".into(),
            ));
        }
        set_length(&mut self.resp_mut()?.headers, body.len());
        self.call.resp_body = Some(Bytes::from(body));
        Ok(Ok(()))
    }

    fn drop(&mut self, _: Resource<Response>) -> wasmtime::Result<()> {
        Ok(())
    }
}
