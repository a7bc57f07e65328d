//! What a shared store records: calls, their latency, failures by kind, and the calls that
//! fell back to the node-local store; served in `/status` under `stores`.

use crate::filter::metrics::{Histogram, HistogramSnapshot};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Counters of one store (one Redis deployment), shared by every filter using it.
#[derive(Default)]
pub struct StoreMetrics {
    calls: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    busy: AtomicU64,
    unavailable: AtomicU64,
    fallbacks: AtomicU64,
    reconnects: AtomicU64,
    up: AtomicBool,
    /// Latency of answered calls, in microseconds.
    latency_us: Histogram,
}

/// [`StoreMetrics`] read at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSnapshot {
    /// Whether the store is reachable now.
    pub up: bool,
    /// Calls that reached Redis and were answered.
    pub calls: u64,
    /// Calls that failed on the connection or were refused by Redis.
    pub errors: u64,
    /// Calls that ran out of time.
    pub timeouts: u64,
    /// Calls refused at once because `max-pending` calls were in flight.
    pub busy: u64,
    /// Calls refused at once because the store was down.
    pub unavailable: u64,
    /// Calls answered by the node-local store instead (`on-store-failure = "local"`).
    pub fallbacks: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Latency of answered calls, microseconds.
    pub latency_us: HistogramSnapshot,
}

impl StoreMetrics {
    pub(crate) fn answered(&self, took: Duration) {
        self.calls.fetch_add(1, Relaxed);
        self.latency_us.record(took.as_secs_f64() * 1e6);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn timeout(&self) {
        self.timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn busy(&self) {
        self.busy.fetch_add(1, Relaxed);
    }

    pub(crate) fn unavailable(&self) {
        self.unavailable.fetch_add(1, Relaxed);
    }

    /// A call was answered by the node-local store.
    pub fn fallback(&self) {
        self.fallbacks.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_up(&self, up: bool, reconnect: bool) {
        self.up.store(up, Relaxed);
        if reconnect {
            self.reconnects.fetch_add(1, Relaxed);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> StoreSnapshot {
        StoreSnapshot {
            up: self.up.load(Relaxed),
            calls: self.calls.load(Relaxed),
            errors: self.errors.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            busy: self.busy.load(Relaxed),
            unavailable: self.unavailable.load(Relaxed),
            fallbacks: self.fallbacks.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            latency_us: self.latency_us.snapshot(),
        }
    }
}
