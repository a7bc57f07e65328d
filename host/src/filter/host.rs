//! What a filter instance's store holds: the request (and response) the current hook call
//! works on, the filter's shared services, its budgets; and the `host` import (log, random).
//!
//! The request and response heads are moved into the store for the duration of one hook
//! call and moved back out afterwards, so the guest reads only what it asks for and nothing
//! is copied up front.

use super::bindings::weir::filter::host;
use super::bindings::LogLevel;
use super::context::Context;
use super::services::FilterServices;
use bytes::Bytes;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
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
    /// The request body, when a filter asked for it to be buffered.
    pub body: Option<Bytes>,
    /// Properties shared by the filters of this request.
    pub context: Context,
    /// The path and query as the client sent them, when normalising changed them.
    pub raw_path_and_query: Option<http::uri::PathAndQuery>,
    /// What its filters decided about caching and compressing it (boxed, and only once a
    /// filter decides something: most requests carry none).
    pub caching: Option<Box<crate::cache::decisions::Decisions>>,
    /// Whether the client sent `Authorization` (a filter may have removed it since): a
    /// shared cache stores the response only if it allows that (RFC 9111 §3.5).
    pub authorized: bool,
}

impl RequestHead {
    /// A head for `parts` from `client`, with no buffered body and an empty context.
    pub fn new(parts: http::request::Parts, client: IpAddr, scheme: &'static str) -> Self {
        RequestHead {
            authorized: parts.headers.contains_key(http::header::AUTHORIZATION),
            parts,
            client,
            scheme,
            body: None,
            context: Context::default(),
            raw_path_and_query: None,
            caching: None,
        }
    }

    /// The host the client addressed: after [`crate::request::canonicalize`], the one
    /// canonical `Host`; before it, the URI's authority or the `Host` header.
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

    /// An empty head that holds the place of one moved elsewhere (into a store, upstream).
    pub(crate) fn placeholder() -> Self {
        RequestHead::new(
            http::Request::new(()).into_parts().0,
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            "http",
        )
    }
}

/// Which budget a failed call ran out of, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetHit {
    /// The CPU deadline.
    Cpu,
    /// The fuel budget.
    Fuel,
    /// The linear-memory limit.
    Memory,
}

/// The data of one filter instance's store.
pub struct FilterState {
    wasi: WasiCtx,
    /// The tail of the guest's stderr (its panic messages).
    pub(super) stderr: super::stderr::StderrTail,
    table: ResourceTable,
    pub(super) limits: Limits,
    /// The filter's name, shared store, metrics and outbound HTTP settings.
    pub(super) services: Arc<FilterServices>,
    pub(super) call: CallData,
    /// Header names and values this instance set recently (see `header_edits`).
    pub(super) recent: super::header_edits::Recent,
}

/// What the current hook call works on.
#[derive(Default)]
pub(super) struct CallData {
    pub req: Option<RequestHead>,
    pub resp: Option<http::response::Parts>,
    pub resp_body: Option<Bytes>,
    /// True in the response phase: request changes are refused.
    pub request_read_only: bool,
    /// Whether this filter asked for the request / response body.
    pub request_body_allowed: bool,
    pub response_body_allowed: bool,
    /// Set when the filter changed the request or response.
    pub changed: bool,
    /// When the call started (see `budget`).
    pub started: Option<std::time::Instant>,
    /// Thread CPU time at the last deadline check of this call.
    pub cpu_mark: Option<Duration>,
    /// CPU the call used up to `cpu_mark`.
    pub cpu_used: Duration,
    /// Outbound HTTP time left in this call.
    pub outbound_left: Duration,
    /// A fail-open call: keep the request (response) as it was before its first change, so
    /// that the change can be undone if the call fails.
    pub keep_original: bool,
    pub original_req: Option<Box<RequestHead>>,
    /// Set when a shared-store call failed under `on-store-failure = "fail-closed"`.
    pub store_failed: bool,
    pub original_resp: Option<Box<(http::response::Parts, Option<Bytes>)>>,
}

impl CallData {
    /// The request is about to change: in a fail-open call, keep it as it was first.
    pub fn before_request_change(&mut self) {
        if self.keep_original && !self.request_read_only && self.original_req.is_none() {
            self.original_req = self.req.clone().map(Box::new);
        }
    }

    /// The response is about to change: in a fail-open call, keep it as it was first.
    pub fn before_response_change(&mut self) {
        if self.keep_original && self.original_resp.is_none() {
            if let Some(parts) = &self.resp {
                self.original_resp = Some(Box::new((parts.clone(), self.resp_body.clone())));
            }
        }
    }
}

/// Memory, table and instance limits of one store. Growing memory beyond the limit traps
/// the call (instead of letting the guest see a failed `memory.grow`), and is remembered so
/// the failure is reported as a budget hit.
pub(super) struct Limits {
    pub memory: usize,
    pub memory_hit: bool,
    /// Bytes of linear memory the instance has (all its memories, as created and grown).
    pub in_use: usize,
}

/// Core instances a component may create (a Rust filter needs a handful).
pub(super) const INSTANCE_LIMIT: usize = 64;
/// Tables and memories per store.
pub(super) const TABLE_LIMIT: usize = 64;
/// Elements per table.
pub(super) const TABLE_ELEMENT_LIMIT: usize = 100_000;

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.memory_hit = true;
            wasmtime::bail!(
                "exceeded its memory limit of {} bytes (asked for {desired})",
                self.memory
            );
        }
        // Also called when a memory is created (from 0).
        self.in_use = self.in_use.saturating_sub(current).saturating_add(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > TABLE_ELEMENT_LIMIT {
            wasmtime::bail!("exceeded the table limit of {TABLE_ELEMENT_LIMIT} elements");
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        INSTANCE_LIMIT
    }

    fn tables(&self) -> usize {
        TABLE_LIMIT
    }

    fn memories(&self) -> usize {
        TABLE_LIMIT
    }
}

impl FilterState {
    /// A store's data for a filter, with a WASI context that has no environment or network
    /// and no files but the directories granted to it, read-only. Stderr is kept in memory
    /// (and also shown under `inherit_stdio`); stdout is shown only under `inherit_stdio`.
    pub fn new(
        services: Arc<FilterServices>,
        inherit_stdio: bool,
        memory_limit: usize,
        files: &[crate::config::FileGrant],
    ) -> Result<Self, String> {
        let mut wasi = WasiCtx::builder();
        // Granted files are local and read mostly in `init`: reading them in place keeps a
        // call from suspending mid-way (and its worker from starting other requests, whose
        // CPU the call's deadline would be charged with, and which would each start an
        // instance of their own).
        wasi.allow_blocking_current_thread(true);
        for grant in files {
            wasi.preopened_dir(&grant.host, &grant.guest, wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(|e| {
                    format!("{} (granted as {}): {e}", grant.host.display(), grant.guest)
                })?;
        }
        let stderr = super::stderr::StderrTail::new(inherit_stdio);
        wasi.stderr(stderr.clone());
        if inherit_stdio {
            wasi.inherit_stdout();
        }
        Ok(FilterState {
            wasi: wasi.build(),
            stderr,
            table: ResourceTable::new(),
            limits: Limits {
                memory: memory_limit,
                memory_hit: false,
                in_use: 0,
            },
            services,
            call: CallData::default(),
            recent: Default::default(),
        })
    }

    /// The pollables and the current call, for `waits`.
    pub(super) fn waits(&mut self) -> super::waits::Waits<'_> {
        super::waits::Waits {
            table: &mut self.table,
            call: &mut self.call,
        }
    }

    /// The WASI resource table (streams, pollables).
    pub(super) fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The filter's name.
    pub fn filter(&self) -> &str {
        &self.services.name
    }

    pub(super) fn req(&self) -> wasmtime::Result<&RequestHead> {
        self.call
            .req
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("request used outside a hook call"))
    }

    pub(super) fn req_mut(&mut self) -> wasmtime::Result<Result<&mut RequestHead, String>> {
        if self.call.request_read_only {
            return Ok(Err(
                "the request cannot be changed in the response phase".into()
            ));
        }
        self.call.changed = true;
        self.call.before_request_change();
        match self.call.req.as_mut() {
            Some(r) => Ok(Ok(r)),
            None => wasmtime::bail!("request used outside a hook call"),
        }
    }

    pub(super) fn resp(&self) -> wasmtime::Result<&http::response::Parts> {
        self.call
            .resp
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("response used outside the response phase"))
    }

    pub(super) fn resp_mut(&mut self) -> wasmtime::Result<&mut http::response::Parts> {
        self.call.changed = true;
        self.call.before_response_change();
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

/// Largest `random-bytes` request.
const RANDOM_LIMIT: u32 = 65536;

impl host::Host for FilterState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let filter = self.filter();
        match level {
            LogLevel::Trace => tracing::trace!(target: "weir::filter", filter, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "weir::filter", filter, "{message}"),
            LogLevel::Info => tracing::info!(target: "weir::filter", filter, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "weir::filter", filter, "{message}"),
            LogLevel::Error => tracing::error!(target: "weir::filter", filter, "{message}"),
        }
        Ok(())
    }

    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > RANDOM_LIMIT {
            wasmtime::bail!("random-bytes: {len} bytes asked, at most {RANDOM_LIMIT}");
        }
        let mut buf = vec![0u8; len as usize];
        getrandom::fill(&mut buf)
            .map_err(|e| wasmtime::format_err!("the OS random source failed: {e}"))?;
        Ok(buf)
    }
}
