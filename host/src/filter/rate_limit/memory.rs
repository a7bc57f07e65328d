//! The in-process rate limiter: per-key TATs in sharded maps, exact across workers (a check
//! holds its key's shard lock), bounded in keys. A key whose TAT has passed is back to its
//! full burst, which is what a key without state means: such keys are swept when a shard is
//! full, and only if none is left does the key nearest to its full burst lose its state.

use super::gcra::{self, Decision, Quota};
use super::{validate, RateLimitBackend, RateLimitError, RateLimiter};
use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

const SHARDS: usize = 32;

/// One shard: each key's theoretical arrival time, in nanoseconds after the epoch.
type Tats = HashMap<Box<str>, u64>;

/// The in-process backend. It holds namespaces weakly: a namespace lives while a loaded
/// filter uses it.
pub struct MemoryRateLimit {
    namespaces: Mutex<HashMap<String, Weak<MemoryLimiter>>>,
    epoch: Instant,
}

impl Default for MemoryRateLimit {
    fn default() -> Self {
        MemoryRateLimit {
            namespaces: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

impl RateLimitBackend for MemoryRateLimit {
    fn namespace(&self, filter: &str, max_keys: usize) -> Arc<dyn RateLimiter> {
        let mut all = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, w| w.strong_count() > 0);
        let ns = match all.get(filter).and_then(Weak::upgrade) {
            Some(ns) => ns,
            None => {
                let ns = Arc::new(MemoryLimiter::new(self.epoch, max_keys));
                all.insert(filter.to_string(), Arc::downgrade(&ns));
                ns
            }
        };
        ns.max_keys.store(max_keys, Ordering::Relaxed);
        ns
    }
}

/// One filter's keys.
pub struct MemoryLimiter {
    shards: Box<[Mutex<Tats>]>,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
    max_keys: AtomicUsize,
    /// Keys that lost their state while not back to their full burst (the bound was too
    /// small for the traffic).
    evicted_live: AtomicU64,
}

impl MemoryLimiter {
    fn new(epoch: Instant, max_keys: usize) -> Self {
        MemoryLimiter {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
            epoch,
            max_keys: AtomicUsize::new(max_keys),
            evicted_live: AtomicU64::new(0),
        }
    }

    /// Keys evicted before they were back to their full burst.
    pub fn evicted_live(&self) -> u64 {
        self.evicted_live.load(Ordering::Relaxed)
    }

    /// [`RateLimiter::check`] at `now` nanoseconds after the epoch.
    pub fn check_at(
        &self,
        key: &str,
        quota: &Quota,
        cost: u32,
        now: u64,
    ) -> Result<Decision, RateLimitError> {
        validate(key, quota, cost)?;
        let shard = (self.hasher.hash_one(key) as usize) % SHARDS;
        let Some(shard) = self.shards.get(shard) else {
            return Err(RateLimitError::Key(key.len()));
        };
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tat) = map.get_mut(key) {
            let (decision, next) = gcra::decide(Some(*tat), now, quota, cost);
            *tat = next;
            return Ok(decision);
        }
        let (decision, next) = gcra::decide(None, now, quota, cost);
        if next > now {
            let cap = self
                .max_keys
                .load(Ordering::Relaxed)
                .div_ceil(SHARDS)
                .max(1);
            if map.len() >= cap {
                map.retain(|_, tat| *tat > now);
            }
            if map.len() >= cap {
                let nearest = map
                    .iter()
                    .min_by_key(|(_, tat)| **tat)
                    .map(|(k, _)| k.clone());
                if let Some(k) = nearest {
                    map.remove(&k);
                    self.evicted_live.fetch_add(1, Ordering::Relaxed);
                }
            }
            map.insert(key.into(), next);
        }
        Ok(decision)
    }
}

impl RateLimiter for MemoryLimiter {
    fn check(&self, key: &str, quota: &Quota, cost: u32) -> Result<Decision, RateLimitError> {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.check_at(key, quota, cost, now)
    }

    fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn exact_across_threads() {
        let ns = Arc::new(MemoryLimiter::new(Instant::now(), 1000));
        // 50 per hour, burst 50: within the test nothing refills.
        let q = Quota::new(50, 3_600_000, 50).unwrap();
        let admitted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        if ns.check("k", &q, 1).unwrap().allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn bounded_keys_lose_only_state_that_means_nothing() {
        let ns = MemoryLimiter::new(Instant::now(), SHARDS * 2);
        let q = Quota::new(1, 1000, 1).unwrap();
        // Keys checked at t=0 are all back to their full burst by t=2s.
        for i in 0..SHARDS * 2 {
            let _ = ns.check_at(&format!("old{i}"), &q, 1, 0).unwrap();
        }
        let before = ns.evicted_live();
        for i in 0..SHARDS * 4 {
            assert!(
                ns.check_at(&format!("new{i}"), &q, 1, 2 * S)
                    .unwrap()
                    .allowed
            );
        }
        // The old keys went without being counted (a shard no new key reached still holds
        // its old ones); a new key was evicted only when its shard held only live ones.
        assert!(ns.keys() <= SHARDS * 2, "{}", ns.keys());
        let held = |i: &usize| {
            let key = format!("new{i}");
            let shard = (ns.hasher.hash_one(key.as_str()) as usize) % SHARDS;
            ns.shards[shard].lock().unwrap().contains_key(key.as_str())
        };
        let held: Vec<usize> = (0..SHARDS * 4).filter(held).collect();
        assert_eq!(
            held.len() as u64 + ns.evicted_live() - before,
            (SHARDS * 4) as u64
        );
        assert!(
            ns.evicted_live() > before,
            "128 live keys cannot fit in 64 places"
        );
        // What is held is still limited.
        for i in held {
            assert!(
                !ns.check_at(&format!("new{i}"), &q, 1, 2 * S)
                    .unwrap()
                    .allowed
            );
        }
    }

    #[test]
    fn a_refused_check_charges_nothing_and_bad_arguments_fail() {
        let ns = MemoryLimiter::new(Instant::now(), 10);
        let q = Quota::new(2, 1000, 2).unwrap();
        assert!(ns.check_at("k", &q, 2, 0).unwrap().allowed);
        assert!(!ns.check_at("k", &q, 1, 0).unwrap().allowed);
        assert!(ns.check_at("k", &q, 1, S / 2).unwrap().allowed);
        assert!(matches!(
            ns.check_at("", &q, 1, 0),
            Err(RateLimitError::Key(0))
        ));
        let long = "k".repeat(super::super::MAX_KEY + 1);
        assert!(ns.check_at(&long, &q, 1, 0).is_err());
        let err = ns.check_at("k", &q, 3, 0).unwrap_err().to_string();
        assert!(err.contains("over the burst"), "{err}");
    }

    #[test]
    fn namespaces_are_per_filter_and_kept_while_used() {
        let backend = MemoryRateLimit::default();
        let q = Quota::new(1, 3_600_000, 1).unwrap();
        let a = backend.namespace("a", 10);
        assert!(a.check("k", &q, 1).unwrap().allowed);
        assert!(
            backend
                .namespace("b", 10)
                .check("k", &q, 1)
                .unwrap()
                .allowed
        );
        // A reload's new handle sees the old state.
        assert!(
            !backend
                .namespace("a", 10)
                .check("k", &q, 1)
                .unwrap()
                .allowed
        );
        drop(a);
        assert!(
            backend
                .namespace("a", 10)
                .check("k", &q, 1)
                .unwrap()
                .allowed
        );
    }
}
