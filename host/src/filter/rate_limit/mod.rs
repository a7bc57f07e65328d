//! Rate limits for filters: the `rate-limit` import, the node-local backend trait and the
//! GCRA it implements. A filter with a shared store (Redis, `crate::store`) is limited there,
//! with the node-local limiter as its fallback.
//!
//! Each filter gets its own namespace of keys, named after its manifest entry, shared by its
//! instances on every worker and kept across its reloads, like its key/value store.

pub mod gcra;
pub mod memory;

pub use gcra::{Decision, Quota};
pub use memory::MemoryRateLimit;

use super::bindings::sync::weir::filter::rate_limit as sync_wit;
use super::bindings::weir::filter::rate_limit as wit;
use super::host::FilterState;
use super::shared::Shared;
use std::sync::Arc;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 1024;

/// Why a check was refused (not why a request was: that is [`Decision::allowed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// A quota field is zero.
    #[error("invalid quota: {0}")]
    Quota(String),
    /// The key is empty or too long.
    #[error("rate-limit keys are 1..={MAX_KEY} bytes (this one is {0})")]
    Key(usize),
    /// The cost can never be admitted.
    #[error("cost {cost} is over the burst ({burst}): it could never be admitted")]
    Cost {
        /// The cost asked for.
        cost: u32,
        /// The quota's burst.
        burst: u32,
    },
}

/// Where rate-limit namespaces live.
pub trait RateLimitBackend: Send + Sync {
    /// Filter `filter`'s namespace, created on first use, holding state for at most
    /// `max_keys` keys (a reload may change the bound). It lives as long as a returned
    /// handle does.
    fn namespace(&self, filter: &str, max_keys: usize) -> Arc<dyn RateLimiter>;
}

/// One filter's keys.
pub trait RateLimiter: Send + Sync {
    /// Charge `cost` units to `key` under `quota` if they fit, atomically with every other
    /// check of the key.
    fn check(&self, key: &str, quota: &Quota, cost: u32) -> Result<Decision, RateLimitError>;
    /// Keys holding state (not yet back to their full burst, or not yet swept).
    fn keys(&self) -> usize;
}

/// Check the arguments every backend refuses alike.
pub fn validate(key: &str, quota: &Quota, cost: u32) -> Result<(), RateLimitError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(RateLimitError::Key(key.len()));
    }
    if cost > quota.burst() {
        return Err(RateLimitError::Cost {
            cost,
            burst: quota.burst(),
        });
    }
    Ok(())
}

fn ms(d: std::time::Duration) -> u64 {
    // Rounded up, so that a client retrying after `retry-after-ms` is admitted.
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn to_wit(d: Decision) -> wit::Decision {
    wit::Decision {
        allowed: d.allowed,
        remaining: d.remaining,
        retry_after_ms: ms(d.retry_after),
        reset_ms: ms(d.reset),
    }
}

impl FilterState {
    fn local_check(&self, key: &str, quota: &Quota, cost: u32) -> Result<Decision, String> {
        self.services
            .rate_limit
            .check(key, quota, cost)
            .map_err(|e| e.to_string())
    }
}

impl wit::Host for FilterState {
    async fn check(
        &mut self,
        key: String,
        quota: wit::Quota,
        cost: u32,
    ) -> wasmtime::Result<Result<wit::Decision, String>> {
        let quota = match Quota::new(quota.rate, quota.period_ms, quota.burst) {
            Ok(q) => q,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let Some(shared) = self.shared_store() else {
            return Ok(self.local_check(&key, &quota, cost).map(to_wit));
        };
        if let Err(e) = validate(&key, &quota, cost) {
            return Ok(Err(e.to_string()));
        }
        let name = self.services.name.clone();
        let decided = self
            .on_shared(&shared, async |r, budget| {
                r.rate_limit(&name, &key, &quota, cost, budget).await
            })
            .await?;
        Ok(match decided {
            Shared::Answered(d) => Ok(d),
            Shared::Local => self.local_check(&key, &quota, cost),
            Shared::Failed(why) => Err(why),
        }
        .map(to_wit))
    }
}

/// Filters called synchronously have no shared store (see `engine`): the node-local one.
impl sync_wit::Host for FilterState {
    fn check(
        &mut self,
        key: String,
        quota: sync_wit::Quota,
        cost: u32,
    ) -> wasmtime::Result<Result<sync_wit::Decision, String>> {
        self.no_shared_store()?;
        let decided = Quota::new(quota.rate, quota.period_ms, quota.burst)
            .map_err(|e| e.to_string())
            .and_then(|q| self.local_check(&key, &q, cost));
        Ok(decided.map(|d| sync_wit::Decision {
            allowed: d.allowed,
            remaining: d.remaining,
            retry_after_ms: ms(d.retry_after),
            reset_ms: ms(d.reset),
        }))
    }
}
