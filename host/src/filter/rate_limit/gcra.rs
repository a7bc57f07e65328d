//! The generic cell rate algorithm (GCRA, ITU-T I.371 "virtual scheduling"): a key's whole
//! state is its theoretical arrival time (TAT), the time at which it is back to a full burst.

use super::RateLimitError;
use std::time::Duration;

/// A validated limit: `rate` units per `period`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Nanoseconds one unit costs (the emission interval `T`), at least 1.
    interval_ns: u64,
    /// Units that may be spent at once.
    burst: u32,
}

impl Quota {
    /// The quota of `rate` units per `period_ms` with bursts of `burst`; every field must be
    /// at least 1.
    pub fn new(rate: u32, period_ms: u64, burst: u32) -> Result<Self, RateLimitError> {
        if rate == 0 || period_ms == 0 || burst == 0 {
            return Err(RateLimitError::Quota(format!(
                "rate ({rate}), period-ms ({period_ms}) and burst ({burst}) must all be at least 1"
            )));
        }
        let period_ns = u128::from(period_ms) * 1_000_000;
        let interval_ns = u64::try_from(period_ns / u128::from(rate))
            .unwrap_or(u64::MAX)
            .max(1);
        Ok(Quota { interval_ns, burst })
    }

    /// The burst, in units.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time one unit costs.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// How far past `now` a key's TAT may be: `burst` intervals.
    fn tolerance(&self) -> u128 {
        u128::from(self.interval_ns) * u128::from(self.burst)
    }
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the cost was admitted (and charged).
    pub allowed: bool,
    /// Units of cost 1 still admitted now.
    pub remaining: u32,
    /// Time until this cost would be admitted (zero when it was).
    pub retry_after: Duration,
    /// Time until the key is back to its full burst.
    pub reset: Duration,
}

fn sat(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn ns(n: u128) -> Duration {
    Duration::from_nanos(sat(n))
}

/// Decide `cost` units at `now` (nanoseconds on the backend's clock) for a key whose TAT is
/// `tat` (`None` for a key with no state). Returns the decision and the TAT to store: the new
/// one if admitted, else the old one.
pub fn decide(tat: Option<u64>, now: u64, quota: &Quota, cost: u32) -> (Decision, u64) {
    let now = u128::from(now);
    let start = tat.map_or(now, u128::from).max(now);
    let limit = now + quota.tolerance();
    let interval = u128::from(quota.interval_ns);
    let new_tat = start + interval * u128::from(cost);
    let units = |tat: u128| u32::try_from(limit.saturating_sub(tat) / interval).unwrap_or(u32::MAX);
    if new_tat <= limit {
        let decision = Decision {
            allowed: true,
            remaining: units(new_tat),
            retry_after: Duration::ZERO,
            reset: ns(new_tat - now),
        };
        (decision, sat(new_tat))
    } else {
        let decision = Decision {
            allowed: false,
            remaining: units(start),
            retry_after: ns(new_tat - limit),
            reset: ns(start - now),
        };
        (decision, sat(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// The reference model: GCRA as the continuous-state leaky bucket of ITU-T I.371, a
    /// different formulation that must admit exactly the same arrivals.
    struct LeakyBucket {
        /// Bucket content (ns of work) at `last`.
        level: i128,
        last: i128,
        interval: i128,
        limit: i128,
    }

    impl LeakyBucket {
        fn admit(&mut self, now: u64, cost: u32) -> bool {
            let now = i128::from(now);
            let drained = (self.level - (now - self.last)).max(0);
            let work = self.interval * i128::from(cost);
            if drained + work > self.limit {
                false
            } else {
                self.level = drained + work;
                self.last = now;
                true
            }
        }
    }

    /// A deterministic pseudo-random arrival trace (xorshift).
    fn trace(seed: u64, n: usize, mean_gap_ns: u64, max_cost: u32) -> Vec<(u64, u32)> {
        let mut x = seed;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut t = 0;
        (0..n)
            .map(|_| {
                t += next() % (2 * mean_gap_ns);
                (t, 1 + (next() % u64::from(max_cost)) as u32)
            })
            .collect()
    }

    #[test]
    fn admits_exactly_what_the_leaky_bucket_model_admits() {
        for (seed, rate, period_ms, burst, gap) in [
            (1, 10, 1000, 5, 80 * MS),
            (2, 100, 1000, 1, 9 * MS),
            (3, 3, 1000, 7, 300 * MS),
            (4, 1000, 60_000, 50, 40 * MS),
        ] {
            let quota = Quota::new(rate, period_ms, burst).unwrap();
            let mut model = LeakyBucket {
                level: 0,
                last: 0,
                interval: i128::from(quota.interval_ns),
                limit: quota.tolerance() as i128,
            };
            let mut tat = None;
            let (mut admitted, mut refused) = (0, 0);
            for (i, (now, cost)) in trace(seed, 5000, gap, burst.min(3)).into_iter().enumerate() {
                let (d, next) = decide(tat, now, &quota, cost);
                assert_eq!(
                    d.allowed,
                    model.admit(now, cost),
                    "seed {seed}, arrival {i}"
                );
                tat = Some(next);
                if d.allowed {
                    admitted += 1;
                } else {
                    refused += 1;
                    assert!(d.retry_after > Duration::ZERO);
                    // Waiting as told admits it.
                    let later = now + d.retry_after.as_nanos() as u64;
                    assert!(decide(tat, later, &quota, cost).0.allowed);
                }
            }
            assert!(
                admitted > 0 && refused > 0,
                "seed {seed}: {admitted}/{refused}"
            );
        }
    }

    #[test]
    fn burst_then_one_per_interval_and_the_figures() {
        let q = Quota::new(10, 1000, 3).unwrap(); // one per 100 ms, 3 at once
        let mut tat = None;
        let mut at = |now_ms: u64| {
            let (d, next) = decide(tat, now_ms * MS, &q, 1);
            tat = Some(next);
            d
        };
        let first = at(0);
        assert_eq!((first.allowed, first.remaining), (true, 2));
        assert_eq!(first.reset, Duration::from_millis(100));
        assert!(at(0).allowed);
        let third = at(0);
        assert_eq!((third.allowed, third.remaining), (true, 0));
        assert_eq!(third.reset, Duration::from_millis(300));
        let refused = at(0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        assert_eq!(refused.reset, Duration::from_millis(300));
        assert!(!at(99).allowed);
        assert!(at(100).allowed);
        // Quiet for a second: a full burst again, and no state is needed for it.
        let back = at(1400);
        assert_eq!((back.allowed, back.remaining), (true, 2));
    }

    #[test]
    fn quotas_and_costs_at_the_edges() {
        assert!(Quota::new(0, 1000, 1).is_err());
        assert!(Quota::new(1, 0, 1).is_err());
        assert!(Quota::new(1, 1000, 0).is_err());
        // A rate above one per nanosecond still charges something.
        let fast = Quota::new(u32::MAX, 1, u32::MAX).unwrap();
        assert_eq!(fast.interval_ns, 1);
        let (d, _) = decide(Some(u64::MAX), u64::MAX, &fast, u32::MAX);
        assert!(d.allowed);
        // Cost 0 is a peek: admitted, charges nothing.
        let q = Quota::new(1, 1000, 1).unwrap();
        let (d, tat) = decide(None, 5, &q, 0);
        assert_eq!((d.allowed, d.remaining, tat), (true, 1, 5));
    }
}
