//! What happened on the way to one upstream, for `/metrics`: attempts and their time to the
//! response head (per worker, so workers share no cache line), retries, timeouts, failed
//! attempts, and requests refused by its circuit breakers or for want of a healthy target.
//! Kept by upstream name, so a reload does not reset them.

use crate::filter::per_worker::PerWorker;
use crate::metrics::requests::BUCKETS;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Why a request was answered 503 without an attempt.
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    /// `max-requests` in flight.
    MaxRequests,
    /// `max-pending` waiting for a response head.
    MaxPending,
    /// No healthy (undrained, unejected) target.
    NoTarget,
}

#[derive(Default)]
#[repr(align(128))]
struct Shard {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// One upstream's counters.
#[derive(Default)]
pub struct UpstreamStats {
    retries: AtomicU64,
    timeouts: AtomicU64,
    failures: AtomicU64,
    refused: [AtomicU64; 3],
    heads: OnceLock<PerWorker<Shard>>,
    /// Pooled connections to its targets, made by the workers' clients.
    pub connections: Arc<super::counted::ConnCounts>,
}

/// The counters of upstream `name`, made on first use.
pub fn for_upstream(name: &str) -> Arc<UpstreamStats> {
    static ALL: OnceLock<Mutex<HashMap<String, Arc<UpstreamStats>>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    all.entry(name.to_string()).or_default().clone()
}

/// [`UpstreamStats`] read at one moment.
pub struct StatsSnapshot {
    pub retries: u64,
    pub timeouts: u64,
    pub failures: u64,
    /// By [`Refused`]: max-requests, max-pending, no target.
    pub refused: [u64; 3],
    /// Attempts per response-head time bucket ([`BUCKETS`], then the rest).
    pub heads: Vec<u64>,
    /// Their sum, seconds.
    pub heads_sum: f64,
    /// Pooled connections made so far, and open now.
    pub connections: (u64, u64),
}

impl UpstreamStats {
    fn heads(&self) -> &PerWorker<Shard> {
        self.heads.get_or_init(|| PerWorker::new(Shard::default))
    }

    /// An attempt got its response head after `took`.
    pub fn head(&self, took: Duration) {
        let bucket = crate::metrics::requests::bucket(took);
        let shard = self.heads().mine();
        if let Some(b) = shard.buckets.get(bucket) {
            b.fetch_add(1, Relaxed);
        }
        shard
            .sum_ns
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// A failed attempt is tried again on another target.
    pub fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    /// An attempt failed; `timeout` if it ran out of time.
    pub fn failure(&self, timeout: bool) {
        self.failures.fetch_add(1, Relaxed);
        if timeout {
            self.timeouts.fetch_add(1, Relaxed);
        }
    }

    /// A request was answered 503 without an attempt.
    pub fn refused(&self, why: Refused) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut heads = vec![0u64; BUCKETS.len() + 1];
        let mut sum_ns = 0u64;
        for shard in self.heads().iter() {
            for (h, b) in heads.iter_mut().zip(&shard.buckets) {
                *h += b.load(Relaxed);
            }
            sum_ns = sum_ns.saturating_add(shard.sum_ns.load(Relaxed));
        }
        StatsSnapshot {
            retries: self.retries.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            failures: self.failures.load(Relaxed),
            refused: std::array::from_fn(|i| self.refused[i].load(Relaxed)),
            heads,
            heads_sum: sum_ns as f64 / 1e9,
            connections: self.connections.snapshot(),
        }
    }
}
