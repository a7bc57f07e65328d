//! Rate limits kept by the host with the generic cell rate algorithm (GCRA): exact across
//! every worker, one timestamp per key, namespaced per filter and kept across reloads.
//! (Needs a host of WIT 0.2.3 or later.)
//!
//! ```
//! use std::time::Duration;
//! use weir_sdk::rate_limit::{self, Quota};
//! # weir_sdk::testing::reset_rate_limits();
//! let quota = Quota::per(10, Duration::from_secs(1)).with_burst(2);
//! assert!(rate_limit::check("ip:192.0.2.1", quota, 1).unwrap().allowed);
//! assert!(rate_limit::check("ip:192.0.2.1", quota, 1).unwrap().allowed);
//! let refused = rate_limit::check("ip:192.0.2.1", quota, 1).unwrap();
//! assert!(!refused.allowed);
//! assert_eq!(refused.retry_after, Duration::from_millis(100));
//! ```
//!
//! With `store = { backend = "redis", ... }` in the manifest the keys are on Redis, one
//! limit over every Weir node, decided on Redis's clock in one round trip. While Redis is
//! down the filter's `on-store-failure` applies: `"local"` (this node's limiter meanwhile),
//! `"fail-open"` ([`check`] returns an error and the filter decides) or `"fail-closed"` (503).
//!
//! In native tests the limiter is a per-thread double on the SDK clock
//! ([`crate::testing::freeze_clock`], [`crate::testing::reset_rate_limits`],
//! [`crate::testing::set_store_unavailable`]).

use crate::Error;
use std::time::Duration;

/// `rate` units per `period`, with bursts of up to `burst` units.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::rate_limit::Quota;
/// let q = Quota { rate: 100, period: Duration::from_secs(60), burst: 20 };
/// assert_eq!(q, Quota::per(100, Duration::from_secs(60)).with_burst(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Units per period, at least 1.
    pub rate: u32,
    /// The period (millisecond precision), at least 1 ms.
    pub period: Duration,
    /// Units that may be spent at once after a quiet spell, at least 1.
    pub burst: u32,
}

impl Quota {
    /// `rate` units per `period`, with a burst of `rate`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = weir_sdk::rate_limit::Quota::per(100, Duration::from_secs(60));
    /// assert_eq!(q.burst, 100);
    /// ```
    pub fn per(rate: u32, period: Duration) -> Self {
        Quota {
            rate,
            period,
            burst: rate,
        }
    }

    /// The same rate with bursts of `burst`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = weir_sdk::rate_limit::Quota::per(100, Duration::from_secs(60)).with_burst(5);
    /// assert_eq!((q.rate, q.burst), (100, 5));
    /// ```
    pub fn with_burst(self, burst: u32) -> Self {
        Quota { burst, ..self }
    }

    fn period_ms(&self) -> u64 {
        u64::try_from(self.period.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The answer to one check.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::rate_limit::{self, Quota};
/// # weir_sdk::testing::reset_rate_limits();
/// let d = rate_limit::check("k", Quota::per(5, Duration::from_secs(1)), 1).unwrap();
/// assert_eq!((d.allowed, d.remaining, d.retry_after), (true, 4, Duration::ZERO));
/// assert_eq!(d.reset, Duration::from_millis(200));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the cost was admitted (and charged).
    pub allowed: bool,
    /// Units of cost 1 still admitted now.
    pub remaining: u32,
    /// Time until this cost would be admitted; zero when it was (`Retry-After`).
    pub retry_after: Duration,
    /// Time until the key is back to its full burst (the `RateLimit` header's reset).
    pub reset: Duration,
}

/// Charge `cost` units to `key` under `quota` if they fit; a cost that does not fit charges
/// nothing. Keys are the filter's own (other filters have their own namespace); one key
/// checked under two quotas shares one state, so put the limit's name in the key.
///
/// Fails on a quota with a zero field, an empty key or one over 1024 bytes, or a cost over
/// the burst.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::rate_limit::{self, Quota};
/// let q = Quota::per(1, Duration::from_secs(1));
/// assert!(rate_limit::check("k", q, 2).unwrap_err().to_string().contains("over the burst"));
/// assert!(rate_limit::check("k", Quota::per(0, Duration::from_secs(1)), 1).is_err());
/// ```
pub fn check(key: &str, quota: Quota, cost: u32) -> Result<Decision, Error> {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::weir::filter::rate_limit as wit;
        let q = wit::Quota {
            rate: quota.rate,
            period_ms: quota.period_ms(),
            burst: quota.burst,
        };
        wit::check(key, q, cost)
            .map(|d| Decision {
                allowed: d.allowed,
                remaining: d.remaining,
                retry_after: Duration::from_millis(d.retry_after_ms),
                reset: Duration::from_millis(d.reset_ms),
            })
            .map_err(Error)
    }
    #[cfg(not(target_arch = "wasm32"))]
    double::check(key, quota, cost).map_err(Error)
}

/// The host's semantics in a per-thread map on the SDK clock.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) mod double {
    use super::{Decision, Quota};
    use crate::clock;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    thread_local! {
        static TATS: RefCell<BTreeMap<String, Instant>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub fn reset() {
        TATS.with(|t| t.borrow_mut().clear());
    }

    fn rounded_ms(ns: u128) -> Duration {
        Duration::from_millis(u64::try_from(ns.div_ceil(1_000_000)).unwrap_or(u64::MAX))
    }

    pub fn check(key: &str, quota: Quota, cost: u32) -> Result<Decision, String> {
        if crate::testing::store_down() {
            return Err(crate::testing::STORE_UNAVAILABLE.to_string());
        }
        let (rate, period_ms, burst) = (quota.rate, quota.period_ms(), quota.burst);
        if rate == 0 || period_ms == 0 || burst == 0 {
            return Err(format!(
                "invalid quota: rate ({rate}), period-ms ({period_ms}) and burst ({burst}) must all be at least 1"
            ));
        }
        if key.is_empty() || key.len() > 1024 {
            return Err(format!(
                "rate-limit keys are 1..=1024 bytes (this one is {})",
                key.len()
            ));
        }
        if cost > burst {
            return Err(format!(
                "cost {cost} is over the burst ({burst}): it could never be admitted"
            ));
        }
        let now = clock::now();
        let interval = (u128::from(period_ms) * 1_000_000 / u128::from(rate)).max(1);
        let limit = interval * u128::from(burst);
        TATS.with(|t| {
            let mut t = t.borrow_mut();
            // Everything relative to now: a TAT in the past is no state.
            let start = t
                .get(key)
                .map_or(0, |tat| tat.saturating_duration_since(now).as_nanos());
            let new = start + interval * u128::from(cost);
            let units =
                |at: u128| u32::try_from(limit.saturating_sub(at) / interval).unwrap_or(u32::MAX);
            if new <= limit {
                let ahead = Duration::from_nanos(u64::try_from(new).unwrap_or(u64::MAX));
                if let Some(tat) = now.checked_add(ahead) {
                    t.insert(key.to_owned(), tat);
                }
                Ok(Decision {
                    allowed: true,
                    remaining: units(new),
                    retry_after: Duration::ZERO,
                    reset: rounded_ms(new),
                })
            } else {
                Ok(Decision {
                    allowed: false,
                    remaining: units(start),
                    retry_after: rounded_ms(new - limit),
                    reset: rounded_ms(start),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn burst_refill_and_figures_on_the_test_clock() {
        testing::reset_rate_limits();
        testing::freeze_clock();
        let q = Quota::per(10, Duration::from_secs(1)).with_burst(3);
        let first = check("k", q, 1).unwrap();
        assert_eq!((first.allowed, first.remaining), (true, 2));
        assert_eq!(first.reset, Duration::from_millis(100));
        assert!(check("k", q, 2).unwrap().allowed);
        let refused = check("k", q, 1).unwrap();
        assert_eq!((refused.allowed, refused.remaining), (false, 0));
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        assert_eq!(refused.reset, Duration::from_millis(300));
        testing::advance_clock(Duration::from_millis(100));
        assert!(check("k", q, 1).unwrap().allowed);
        assert!(check("other", q, 3).unwrap().allowed);
        testing::reset_clock();
    }
}
