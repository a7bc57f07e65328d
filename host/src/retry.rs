//! Retries: which failed attempts may be tried again on another target, the upstream's retry
//! budget, and the jittered backoff between attempts.
//!
//! A connect failure is retried for any method (the upstream never saw the request); a 502 or
//! 503 answer, or a connection that broke before any response byte (a target killed under
//! load), only for idempotent methods. Only requests without a body are retried (a
//! streamed body cannot be replayed). The budget lets retries add at most a fifth to an
//! upstream's load (plus a small reserve), so retries cannot multiply an overload.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Milli-tokens a request deposits into the budget (a retry costs 1000).
const DEPOSIT: i64 = 200;
/// Most milli-tokens the budget holds, and its start: a reserve of 10 retries.
const CAP: i64 = 10_000;

/// An upstream's retry budget.
#[derive(Debug)]
pub struct RetryBudget {
    tokens: AtomicI64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            tokens: AtomicI64::new(CAP),
        }
    }
}

impl RetryBudget {
    /// A request was sent: it earns a fifth of a retry.
    pub fn deposit(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some((t + DEPOSIT).min(CAP))
            });
    }

    /// Take one retry from the budget, if there is one.
    pub fn withdraw(&self) -> bool {
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t >= 1000).then_some(t - 1000)
            })
            .is_ok()
    }
}

/// Why an attempt failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made: the upstream never saw the request.
    Connect,
    /// The upstream answered 502 or 503.
    Unavailable,
    /// The connection closed or was reset before any response byte.
    Reset,
    /// Anything else (timeouts included: the upstream may be working on it).
    Other,
}

/// Whether a request with `method` (and no body) may be retried after `failure`.
pub fn retryable(failure: Failure, method: &http::Method) -> bool {
    match failure {
        Failure::Connect => true,
        Failure::Unavailable | Failure::Reset => idempotent(method),
        Failure::Other => false,
    }
}

fn idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    )
}

/// The wait before retry `attempt` (1-based): 25ms doubling to at most 400ms, with full
/// jitter so that clients failing together do not retry together.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = 25u64 << attempt.min(4).saturating_sub(1);
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    Duration::from_millis(u64::from_le_bytes(b) % (ceiling + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_a_reserve_then_a_fifth_of_requests() {
        let b = RetryBudget::default();
        for _ in 0..10 {
            assert!(b.withdraw());
        }
        assert!(!b.withdraw(), "reserve spent");
        for _ in 0..5 {
            b.deposit();
        }
        assert!(b.withdraw(), "five requests earn one retry");
        assert!(!b.withdraw());
    }

    #[test]
    fn only_safe_failures_are_retried() {
        assert!(retryable(Failure::Connect, &http::Method::POST));
        assert!(retryable(Failure::Unavailable, &http::Method::GET));
        assert!(!retryable(Failure::Unavailable, &http::Method::POST));
        assert!(retryable(Failure::Reset, &http::Method::GET));
        assert!(!retryable(Failure::Reset, &http::Method::POST));
        assert!(!retryable(Failure::Other, &http::Method::GET));
        for a in 1..8 {
            assert!(backoff(a) <= Duration::from_millis(200));
        }
    }
}
