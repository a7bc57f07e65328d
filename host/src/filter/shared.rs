//! A filter's calls to its shared store (Redis): made within the call's wait budget, with
//! the wait taken out of its CPU accounting, and the filter's `on-store-failure` policy
//! applied when the store cannot answer.

use super::budget;
use super::host::FilterState;
use crate::store::{RedisStore, StoreError, StoreFailure};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A filter's shared store and what to do without it.
pub struct SharedStore {
    /// The Redis deployment.
    pub redis: Arc<RedisStore>,
    /// `on-store-failure`.
    pub on_failure: StoreFailure,
    /// Set while this filter's calls fall back to the node-local store (logged once).
    falling_back: AtomicBool,
}

/// How a call to the shared store ended, once the policy is applied.
pub(super) enum Shared<T> {
    /// Redis answered.
    Answered(T),
    /// Answer from the node-local store (`local`).
    Local,
    /// The call fails with this reason (`fail-open`).
    Failed(String),
}

impl SharedStore {
    /// `redis` for a filter whose policy is `on_failure`.
    pub fn new(redis: Arc<RedisStore>, on_failure: StoreFailure) -> Self {
        SharedStore {
            redis,
            on_failure,
            falling_back: AtomicBool::new(false),
        }
    }

    fn answered(&self, filter: &str) {
        if self.falling_back.load(Ordering::Relaxed)
            && self.falling_back.swap(false, Ordering::Relaxed)
        {
            tracing::info!(filter, redis = %self.redis.settings().shown(), "shared store back: the filter's state is shared again");
        }
    }

    fn fall_back(&self, filter: &str, why: &StoreError) {
        self.redis.metrics().fallback();
        if !self.falling_back.swap(true, Ordering::Relaxed) {
            tracing::warn!(filter, redis = %self.redis.settings().shown(), "{why}; using this node's own store until it is back (on-store-failure = \"local\")");
        }
    }
}

/// The message a `fail-closed` call traps with; the chain answers 503 for it.
pub const STORE_CLOSED: &str =
    "the shared store is unavailable (on-store-failure = \"fail-closed\")";

impl FilterState {
    /// The filter's shared store, if it has one.
    pub(super) fn shared_store(&self) -> Option<Arc<SharedStore>> {
        self.services.shared.clone()
    }

    /// Called synchronously, a filter has no shared store (the engine puts a filter with one
    /// on a fiber): refuse the call rather than answer from the wrong store.
    pub(super) fn no_shared_store(&self) -> wasmtime::Result<()> {
        match &self.services.shared {
            None => Ok(()),
            Some(_) => Err(wasmtime::format_err!(
                "a filter with a shared store was called synchronously"
            )),
        }
    }

    /// Run `op` on `shared` within what is left of the call's wait budget, and apply the
    /// policy if it fails. `Err` (a trap) under `fail-closed`.
    pub(super) async fn on_shared<T>(
        &mut self,
        shared: &SharedStore,
        op: impl AsyncFnOnce(&RedisStore, Duration) -> Result<T, StoreError>,
    ) -> wasmtime::Result<Shared<T>> {
        let budget = self.call.outbound_left;
        let started = Instant::now();
        budget::pause(&mut self.call);
        let result = op(&shared.redis, budget).await;
        budget::resume(&mut self.call);
        self.call.outbound_left = budget.saturating_sub(started.elapsed());
        let name = &self.services.name;
        match result {
            Ok(v) => {
                shared.answered(name);
                Ok(Shared::Answered(v))
            }
            // Redis refusing a command is no outage: the call fails whatever the policy.
            Err(e @ StoreError::Refused(_)) => Ok(Shared::Failed(e.to_string())),
            Err(e) => match shared.on_failure {
                StoreFailure::Local => {
                    shared.fall_back(name, &e);
                    Ok(Shared::Local)
                }
                StoreFailure::FailOpen => Ok(Shared::Failed(e.to_string())),
                StoreFailure::FailClosed => {
                    self.call.store_failed = true;
                    Err(wasmtime::format_err!("{STORE_CLOSED}: {e}"))
                }
            },
        }
    }
}
