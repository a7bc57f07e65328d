//! What a filter instance's store holds, and the host side of the WIT imports: the request
//! and response resources and `log`.
//!
//! The request and response heads are moved into the store for the duration of one hook
//! call and moved back out afterwards, so the guest reads only what it asks for and nothing
//! is copied up front.

use super::bindings::weir::filter::{host, types};
use super::bindings::{LogLevel, Request, Response};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use std::net::IpAddr;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The request head as filters see and change it.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method, URI, version, headers.
    pub parts: http::request::Parts,
    /// The client's address.
    pub client: IpAddr,
    /// `"http"` or `"https"`.
    pub scheme: &'static str,
}

impl RequestHead {
    /// The host the client addressed: the URI's authority (HTTP/2) or the `Host` header.
    pub fn authority(&self) -> Option<&str> {
        match self.parts.uri.authority() {
            Some(a) => Some(a.as_str()),
            None => self
                .parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok()),
        }
    }
}

/// The data of one filter instance's store.
pub struct FilterState {
    filter: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    pub(super) call: CallData,
}

/// What the current hook call works on.
#[derive(Default)]
pub(super) struct CallData {
    pub req: Option<RequestHead>,
    pub resp: Option<http::response::Parts>,
    /// True in the response phase: request changes are refused.
    pub request_read_only: bool,
    /// Set when the filter changed the request or response.
    pub changed: bool,
    /// Thread CPU time at the last deadline check of this call (see `budget`).
    pub cpu_mark: Option<std::time::Duration>,
}

impl FilterState {
    /// A store's data for filter `filter`, with a capability-less WASI context (no files,
    /// environment, network; stdio only when `inherit_stdio`).
    pub fn new(filter: Arc<str>, inherit_stdio: bool, limits: StoreLimits) -> Self {
        let mut wasi = WasiCtx::builder();
        if inherit_stdio {
            wasi.inherit_stdout().inherit_stderr();
        }
        FilterState {
            filter,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits,
            call: CallData::default(),
        }
    }

    /// The store's memory, table and instance limits.
    pub fn limits(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    fn req(&self) -> wasmtime::Result<&RequestHead> {
        self.call
            .req
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("request used outside a hook call"))
    }

    fn req_mut(&mut self) -> wasmtime::Result<Result<&mut RequestHead, String>> {
        if self.call.request_read_only {
            return Ok(Err(
                "the request cannot be changed in the response phase".into()
            ));
        }
        self.call.changed = true;
        match self.call.req.as_mut() {
            Some(r) => Ok(Ok(r)),
            None => wasmtime::bail!("request used outside a hook call"),
        }
    }

    /// Apply a header edit to the request, refused in the response phase.
    fn edit_request(
        &mut self,
        edit: impl FnOnce(&mut HeaderMap) -> Result<(), String>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(self.req_mut()?.and_then(|r| edit(&mut r.parts.headers)))
    }

    fn resp(&self) -> wasmtime::Result<&http::response::Parts> {
        self.call
            .resp
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("response used outside the response phase"))
    }

    fn resp_mut(&mut self) -> wasmtime::Result<&mut http::response::Parts> {
        self.call.changed = true;
        self.call
            .resp
            .as_mut()
            .ok_or_else(|| wasmtime::format_err!("response used outside the response phase"))
    }
}

impl WasiView for FilterState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Header operations shared by the request and response resources.
mod headers {
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
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header {name:?}"))?;
        Ok((n, v))
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

    pub fn remove(map: &mut HeaderMap, name: &str) {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            map.remove(n);
        }
    }
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

    fn drop(&mut self, _: Resource<Response>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl host::Host for FilterState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let filter = &*self.filter;
        match level {
            LogLevel::Trace => tracing::trace!(target: "weir::filter", filter, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "weir::filter", filter, "{message}"),
            LogLevel::Info => tracing::info!(target: "weir::filter", filter, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "weir::filter", filter, "{message}"),
            LogLevel::Error => tracing::error!(target: "weir::filter", filter, "{message}"),
        }
        Ok(())
    }
}
