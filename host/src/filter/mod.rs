//! Filters: sandboxed WebAssembly components called in the request and response phases.
//!
//! - [`engine`]: one wasmtime engine; compiling (with the on-disk [`cache`]) and checking
//!   plugin files; loading a manifest's filters, reusing unchanged ones on reload.
//! - [`pool`]: reusable, initialised instances per filter; `preinit`: instances that start
//!   from a snapshot taken after one `init` (`instance-start = "snapshot"`).
//! - `budget`: CPU deadlines (epochs checked against the thread's CPU clock; waits paused).
//! - [`host`]: the store's data, limits and the `host` import; [`resources`]: the request
//!   and response resources; `header_edits`: the hot header edits, straight from guest
//!   memory.
//! - How hooks are called: directly when the filter cannot wait on anything (`sync_io`
//!   gives it a `wasi:io` that never waits), else on a fiber (`waits` keeps its waits off
//!   its CPU deadline).
//! - Host services: [`context`] (per request), `caching` (cache and compression
//!   decisions), [`kv`] (shared store), [`metrics`],
//!   [`outbound`] (HTTP callouts); [`services`] bundles one filter's.
//! - [`chain`]: running a route's filters in order, with their failure policies.

mod backtrace;
mod bindings;
mod budget;
pub mod cache;
mod caching;
pub mod chain;
pub mod context;
mod engine;
mod error;
mod geo;
mod header_edits;
mod host;
pub mod kv;
pub mod metrics;
pub mod outbound;
pub(crate) mod per_worker;
mod pool;
mod preinit;
pub mod rate_limit;
mod resources;
mod services;
mod shared;
mod snapshot;
mod stderr;
mod sync_io;
mod waits;

pub use bindings::LocalResponse;
pub use engine::{FilterEngine, MAX_INSTANCES, MAX_MEMORY_LIMIT};
pub use error::{CallError, LoadError};
pub use host::{BudgetHit, RequestHead};
pub use per_worker::{set_worker_count, set_worker_slot};
pub use shared::SharedStore;

use crate::config::{FailurePolicy, FilterConfig};
use bindings::{Action, Hooks};
use bytes::Bytes;
use pool::{Instance, InstancePool, World};
use services::FilterServices;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use wasmtime::component::Resource;

/// A loaded filter: a named manifest entry with its compiled plugin and instance pool.
pub struct Filter {
    name: Arc<str>,
    pool: InstancePool,
    services: Arc<FilterServices>,
    /// The hooks the filter's `init` asked for; the chain skips the others.
    hooks: Hooks,
    /// Which plugin file content this is, and when it was loaded.
    version: FilterVersion,
    /// The plugin's own component, compiled (the pool's is a snapshot of it with
    /// `instance-start = "snapshot"`): what another entry of the same plugin reuses.
    compiled: pool::Prepared,
    /// With `instance-start = "snapshot"`: how long making the snapshot took at load.
    snapshot_took: Option<std::time::Duration>,
}

/// Which version of its plugin a filter runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterVersion {
    /// SHA-256 of the plugin file, hex.
    pub sha256: String,
    /// When this filter was loaded.
    pub loaded_at: SystemTime,
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
    /// For a `fail-open` filter: what it changed, as it was before.
    pub undo: Undo,
}

/// The request and response as they were before a fail-open call changed them (`None`:
/// unchanged, or not a fail-open filter: nothing is kept). Boxed, so that a hook's result
/// stays small: it is moved through every await on the way out, and is rarely `Some`.
#[derive(Debug, Default)]
pub struct Undo {
    request: Option<Box<RequestHead>>,
    response: Option<Box<(http::response::Parts, Option<Bytes>)>>,
}

impl Undo {
    /// Put back the request as it was.
    pub fn request(self, head: &mut RequestHead) {
        if let Some(h) = self.request {
            *head = *h;
        }
    }

    /// Put back the response as it was.
    pub fn response(self, resp: &mut ResponseHead) {
        if let Some(undone) = self.response {
            let (parts, body) = *undone;
            resp.parts = parts;
            resp.body = body;
        }
    }
}

/// The response as the response phase sees it.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status and headers.
    pub parts: http::response::Parts,
    /// The body, when a filter asked for it to be buffered.
    pub body: Option<Bytes>,
}

impl Filter {
    /// The filter's name in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The manifest entry it was loaded from.
    pub fn config(&self) -> &FilterConfig {
        self.pool.config()
    }

    fn pool_pre(&self) -> pool::Prepared {
        self.compiled.clone()
    }

    /// With `instance-start = "snapshot"`: how long making its snapshot took when it loaded.
    pub fn snapshot_took(&self) -> Option<std::time::Duration> {
        self.snapshot_took
    }

    /// The plugin version it runs.
    pub fn version(&self) -> &FilterVersion {
        &self.version
    }

    /// What happens to a request when this filter fails.
    pub fn on_failure(&self) -> FailurePolicy {
        self.pool.config().on_failure
    }

    /// Whether `on-request` should be called.
    pub fn wants_request(&self) -> bool {
        self.hooks.on_request
    }

    /// Whether `on-response` should be called.
    pub fn wants_response(&self) -> bool {
        self.hooks.on_response
    }

    /// Whether the request body must be buffered before `on-request`.
    pub fn wants_request_body(&self) -> bool {
        self.hooks.on_request && self.hooks.request_body
    }

    /// Whether the response body must be buffered before `on-response`.
    pub fn wants_response_body(&self) -> bool {
        self.hooks.on_response && self.hooks.response_body
    }

    /// What the host and the filter recorded so far.
    pub fn metrics(&self) -> metrics::MetricsSnapshot {
        self.services.metrics.snapshot()
    }

    /// Record a failure that is not a trap (e.g. an invalid local response).
    pub fn record_failure(&self) {
        self.services.metrics.failure(None);
    }

    /// Record that a request went on without this filter after it failed (fail-open).
    pub fn record_skip(&self) {
        self.services.metrics.skipped();
    }

    /// Whether its hooks run on a fiber, so that they can wait (outbound HTTP, timers), or
    /// are plain function calls (it imports nothing that can wait).
    pub fn runs_on_fiber(&self) -> bool {
        !self.pool.pre().is_sync()
    }

    /// The shared store (Redis) its key/value store and rate limits are on, if any.
    pub fn shared_store(&self) -> Option<Arc<crate::store::RedisStore>> {
        self.services.shared.as_ref().map(|s| s.redis.clone())
    }

    /// Instances created so far, the first (at load time) included.
    pub fn instances_created(&self) -> u64 {
        self.pool.created_count()
    }

    /// The last instance made: how long it took to create and `init`, and the bytes of
    /// linear memory it had once it had.
    pub fn instance_start(&self) -> (std::time::Duration, u64) {
        self.pool.last_start()
    }

    /// Idle instances kept for reuse.
    pub fn idle_instances(&self) -> usize {
        self.pool.idle_count()
    }

    /// Run `on-request` on `head`, which the filter may change.
    pub async fn on_request(&self, head: &mut RequestHead) -> Result<HookResult, CallError> {
        let mut inst = self.checkout().await?;
        let started = self.prepare(&mut inst, head, None);
        let running = budget::Activity::global().enter();
        let req = Resource::new_borrow(0);
        let result = match &inst.world {
            World::Sync(w) => w.weir_filter_filter().call_on_request(&mut inst.store, req),
            // Boxed, like a new instance below: the future of a direct call stays small.
            World::Async(w) => {
                let call = w.weir_filter_filter().call_on_request(&mut inst.store, req);
                Box::pin(call).await
            }
        };
        drop(running);
        self.finish(inst, started, head, None, "on-request", result)
    }

    /// Run `on-response` on `resp` (which the filter may change) for request `head`
    /// (read-only).
    pub async fn on_response(
        &self,
        head: &mut RequestHead,
        resp: &mut ResponseHead,
    ) -> Result<HookResult, CallError> {
        let mut inst = self.checkout().await?;
        let started = self.prepare(&mut inst, head, Some(resp));
        let running = budget::Activity::global().enter();
        let (req, res) = (Resource::new_borrow(0), Resource::new_borrow(0));
        let result = match &inst.world {
            World::Sync(w) => w
                .weir_filter_filter()
                .call_on_response(&mut inst.store, req, res),
            World::Async(w) => {
                let call = w
                    .weir_filter_filter()
                    .call_on_response(&mut inst.store, req, res);
                Box::pin(call).await
            }
        };
        drop(running);
        self.finish(inst, started, head, Some(resp), "on-response", result)
    }

    /// An idle instance, or a new one. Making one is boxed: it is rare, and its future is
    /// large, so that every call's future does not have room for it.
    async fn checkout(&self) -> Result<Instance, CallError> {
        if let Some(idle) = self.pool.idle() {
            return Ok(idle);
        }
        let made = Box::pin(self.pool.instantiate()).await;
        made.map(|(instance, _)| instance).map_err(|e| {
            self.services.metrics.failure(None);
            CallError::Instantiate(e.to_string())
        })
    }

    /// Move the heads into the store and arm the call's budgets; returns when the call starts.
    fn prepare(
        &self,
        inst: &mut Instance,
        head: &mut RequestHead,
        resp: Option<&mut ResponseHead>,
    ) -> Instant {
        let started = Instant::now();
        // The first check comes at the next tick (see `budget`).
        inst.store.set_epoch_deadline(1);
        let cfg = self.pool.config();
        // Only filters with a fuel budget run on the metered engine.
        if let Some(fuel) = cfg.fuel {
            let _ = inst.store.set_fuel(fuel);
        }
        let state = inst.store.data_mut();
        state.limits.memory_hit = false;
        let call = &mut state.call;
        // A call that may wait starts its CPU count now (see `budget::pause`); a direct one
        // is counted from its first deadline check.
        call.cpu_mark = matches!(inst.world, World::Async(_)).then(budget::thread_cpu_time);
        call.cpu_used = std::time::Duration::ZERO;
        call.started = Some(started);
        call.changed = false;
        call.outbound_left = cfg.outbound_timeout;
        call.keep_original = cfg.on_failure == FailurePolicy::Open;
        call.original_req = None;
        call.original_resp = None;
        call.req = Some(std::mem::replace(head, RequestHead::placeholder()));
        call.request_body_allowed = self.wants_request_body();
        call.response_body_allowed = self.wants_response_body();
        match resp {
            Some(r) => {
                call.resp = Some(std::mem::replace(&mut r.parts, placeholder_response()));
                call.resp_body = r.body.take();
                call.request_read_only = true;
            }
            None => {
                call.resp = None;
                call.resp_body = None;
                call.request_read_only = false;
            }
        }
        started
    }

    /// Take the heads back from the store, then keep the instance if the call succeeded.
    fn finish(
        &self,
        mut inst: Instance,
        started: Instant,
        head: &mut RequestHead,
        mut resp: Option<&mut ResponseHead>,
        hook: &'static str,
        result: wasmtime::Result<Action>,
    ) -> Result<HookResult, CallError> {
        self.services.metrics.call(started.elapsed());
        let state = inst.store.data_mut();
        let memory_hit = state.limits.memory_hit;
        let data = &mut state.call;
        let store_failed = std::mem::take(&mut data.store_failed);
        if let Some(h) = data.req.take() {
            *head = h;
        }
        let undo = Undo {
            request: data.original_req.take(),
            response: data.original_resp.take(),
        };
        if let Some(r) = resp.as_deref_mut() {
            if let Some(parts) = data.resp.take() {
                r.parts = parts;
            }
            r.body = data.resp_body.take();
        }
        let changed = data.changed;
        match result {
            Ok(action) => {
                self.pool.checkin(inst);
                let verdict = match action {
                    Action::Continue => Verdict::Continue,
                    Action::Respond(r) => Verdict::Respond(r),
                };
                Ok(HookResult {
                    verdict,
                    changed,
                    undo,
                })
            }
            // The instance may be in any state after a trap: drop it. A fail-open filter's
            // changes are undone.
            Err(e) => {
                if let Some(r) = resp {
                    undo.response(r);
                } else {
                    undo.request(head);
                }
                // One line for the log; the guest backtrace at debug level.
                tracing::debug!(filter = &*self.name, hook, "trap details: {e:?}");
                if store_failed {
                    self.services.metrics.failure(None);
                    return Err(CallError::StoreUnavailable(format!("{e:#}")));
                }
                let cfg = self.pool.config();
                let (budget, reason) = match e.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) => (
                        Some(BudgetHit::Cpu),
                        format!("exceeded its CPU deadline of {:?}", cfg.cpu_deadline),
                    ),
                    Some(wasmtime::Trap::OutOfFuel) => (
                        Some(BudgetHit::Fuel),
                        format!("ran out of its fuel budget of {}", cfg.fuel.unwrap_or(0)),
                    ),
                    _ if memory_hit => (
                        Some(BudgetHit::Memory),
                        format!("exceeded its memory limit of {} bytes", cfg.memory_limit),
                    ),
                    _ => (
                        None,
                        error::trap_reason(&e, inst.store.data().stderr.panic()),
                    ),
                };
                self.services.metrics.failure(budget);
                Err(CallError::Trap {
                    hook,
                    reason,
                    budget,
                })
            }
        }
    }
}

fn placeholder_response() -> http::response::Parts {
    http::Response::new(()).into_parts().0
}
