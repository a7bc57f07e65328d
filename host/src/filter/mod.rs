//! Filters: sandboxed WebAssembly components called in the request and response phases.
//!
//! - [`engine`]: one wasmtime engine; compiling and checking plugin files.
//! - [`pool`]: reusable, initialised instances per filter.
//! - `budget`: CPU deadlines (epochs checked against the thread's CPU clock).
//! - [`host`]: the store's data and the host side of the WIT imports.
//! - [`chain`]: running a route's filters in order.

mod bindings;
mod budget;
pub mod chain;
mod engine;
mod error;
mod host;
mod pool;

pub use bindings::LocalResponse;
pub use engine::FilterEngine;
pub use error::{CallError, LoadError};
pub use host::RequestHead;
pub use pool::set_worker_slot;

use bindings::{Action, Hooks};
use pool::{Instance, InstancePool};
use std::sync::Arc;
use wasmtime::component::Resource;

/// A loaded filter: a named manifest entry with its compiled plugin and instance pool.
pub struct Filter {
    name: Arc<str>,
    pool: InstancePool,
    /// The hooks the filter's `init` asked for; the chain skips the others.
    hooks: Hooks,
    /// Epoch ticks one hook call may run.
    deadline_ticks: u64,
    /// The configured CPU deadline, for messages.
    cpu_deadline: std::time::Duration,
}

/// What a hook decided.
#[derive(Debug)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// Answer (request phase) or replace the response (response phase).
    Respond(LocalResponse),
}

/// The result of one hook call.
#[derive(Debug)]
pub struct HookResult {
    /// The decision.
    pub verdict: Verdict,
    /// Whether the filter changed the request or response.
    pub changed: bool,
}

impl Filter {
    /// The filter's name in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `on-request` should be called.
    pub fn wants_request(&self) -> bool {
        self.hooks.on_request
    }

    /// Whether `on-response` should be called.
    pub fn wants_response(&self) -> bool {
        self.hooks.on_response
    }

    /// Instances created so far, the first (at load time) included.
    pub fn instances_created(&self) -> u64 {
        self.pool.created_count()
    }

    /// Idle instances kept for reuse.
    pub fn idle_instances(&self) -> usize {
        self.pool.idle_count()
    }

    /// Run `on-request` on `head`, which the filter may change.
    pub async fn on_request(&self, head: &mut RequestHead) -> Result<HookResult, CallError> {
        let mut inst = self.checkout().await?;
        inst.store.set_epoch_deadline(self.deadline_ticks);
        let data = &mut inst.store.data_mut().call;
        data.cpu_mark = None;
        data.req = Some(std::mem::replace(head, RequestHead::placeholder()));
        data.request_read_only = false;
        data.changed = false;
        let result = inst
            .world
            .weir_filter_filter()
            .call_on_request(&mut inst.store, Resource::new_borrow(0))
            .await;
        self.finish(inst, head, None, "on-request", result)
    }

    /// Run `on-response` on `resp` (which the filter may change) for request `head`
    /// (read-only).
    pub async fn on_response(
        &self,
        head: &mut RequestHead,
        resp: &mut http::response::Parts,
    ) -> Result<HookResult, CallError> {
        let mut inst = self.checkout().await?;
        inst.store.set_epoch_deadline(self.deadline_ticks);
        let data = &mut inst.store.data_mut().call;
        data.cpu_mark = None;
        data.req = Some(std::mem::replace(head, RequestHead::placeholder()));
        data.resp = Some(std::mem::replace(resp, placeholder_response()));
        data.request_read_only = true;
        data.changed = false;
        let result = inst
            .world
            .weir_filter_filter()
            .call_on_response(
                &mut inst.store,
                Resource::new_borrow(0),
                Resource::new_borrow(0),
            )
            .await;
        self.finish(inst, head, Some(resp), "on-response", result)
    }

    async fn checkout(&self) -> Result<Instance, CallError> {
        self.pool
            .checkout()
            .await
            .map_err(|e| CallError::Instantiate(e.to_string()))
    }

    /// Take the heads back from the store, then keep the instance if the call succeeded.
    fn finish(
        &self,
        mut inst: Instance,
        head: &mut RequestHead,
        resp: Option<&mut http::response::Parts>,
        hook: &'static str,
        result: wasmtime::Result<Action>,
    ) -> Result<HookResult, CallError> {
        let data = &mut inst.store.data_mut().call;
        if let Some(h) = data.req.take() {
            *head = h;
        }
        if let (Some(slot), Some(r)) = (resp, data.resp.take()) {
            *slot = r;
        }
        let changed = data.changed;
        match result {
            Ok(action) => {
                self.pool.checkin(inst);
                let verdict = match action {
                    Action::Continue => Verdict::Continue,
                    Action::Respond(r) => Verdict::Respond(r),
                };
                Ok(HookResult { verdict, changed })
            }
            // The instance may be in any state after a trap: drop it.
            Err(e) => {
                // One line for the log; the guest backtrace at debug level.
                tracing::debug!(filter = &*self.name, hook, "trap details: {e:?}");
                let reason = match e.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) => {
                        format!("exceeded its CPU deadline of {:?}", self.cpu_deadline)
                    }
                    Some(trap) => trap.to_string(),
                    None => e.to_string(),
                };
                Err(CallError::Trap { hook, reason })
            }
        }
    }
}

fn placeholder_response() -> http::response::Parts {
    http::Response::new(()).into_parts().0
}

impl RequestHead {
    /// An empty head that holds the place of one moved elsewhere (into a store, upstream).
    pub(crate) fn placeholder() -> Self {
        RequestHead {
            parts: http::Request::new(()).into_parts().0,
            client: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            scheme: "http",
        }
    }
}
