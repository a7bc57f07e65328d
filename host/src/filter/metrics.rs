//! Per-filter metrics: what the host records about every filter (calls, time, traps, budget
//! hits) and the counters and histograms a filter defines through the `metrics` import.
//! Kept in-process and readable as a [`MetricsSnapshot`] (the admin endpoint serves it).

use super::bindings::weir::filter::metrics;
use super::host::{BudgetHit, FilterState};
use super::per_worker::PerWorker;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Most distinct metric names a filter may define; later names are ignored.
pub const MAX_NAMES: usize = 256;
/// Longest metric name, in bytes.
pub const MAX_NAME: usize = 128;

/// A histogram over powers of two: bucket `i` counts values below `2^i`.
pub struct Histogram {
    buckets: [AtomicU64; 65],
    count: AtomicU64,
    /// Sum as f64 bits.
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }
}

impl Histogram {
    /// Record `value` (negative values count as 0).
    pub fn record(&self, value: f64) {
        let v = if value.is_finite() && value > 0.0 {
            value
        } else {
            0.0
        };
        let bucket = (64 - (v as u64).leading_zeros()) as usize;
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Count, sum and upper bounds of the 50th and 99th percentiles.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        summarize(&counts, f64::from_bits(self.sum.load(Ordering::Relaxed)))
    }
}

/// Count, sum and power-of-two quantile bounds of power-of-two bucket `counts`.
fn summarize(counts: &[u64], sum: f64) -> HistogramSnapshot {
    let count: u64 = counts.iter().sum();
    let quantile = |q: f64| {
        let rank = (count as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return if i == 0 { 1.0 } else { (1u128 << i) as f64 };
            }
        }
        0.0
    };
    HistogramSnapshot {
        count,
        sum,
        p50_below: if count == 0 { 0.0 } else { quantile(0.5) },
        p99_below: if count == 0 { 0.0 } else { quantile(0.99) },
        buckets: counts.to_vec(),
    }
}

/// Hook call times, in nanoseconds, recorded per worker (each on its own cache lines, so
/// workers calling the same filter do not contend) and summed when read.
pub struct CallTimes {
    shards: PerWorker<CallShard>,
}

#[repr(align(128))]
struct CallShard {
    buckets: [AtomicU64; 65],
    sum_ns: AtomicU64,
}

impl Default for CallShard {
    fn default() -> Self {
        CallShard {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Default for CallTimes {
    fn default() -> Self {
        CallTimes {
            shards: PerWorker::new(CallShard::default),
        }
    }
}

impl CallTimes {
    fn record(&self, time: Duration) {
        let ns = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        let shard = self.shards.mine();
        let bucket = (64 - ns.leading_zeros()) as usize;
        if let Some(b) = shard.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        shard.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0u64; 65];
        let mut sum = 0u64;
        for shard in self.shards.iter() {
            for (c, b) in counts.iter_mut().zip(&shard.buckets) {
                *c += b.load(Ordering::Relaxed);
            }
            sum = sum.saturating_add(shard.sum_ns.load(Ordering::Relaxed));
        }
        summarize(&counts, sum as f64)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistogramSnapshot {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// A power of two the median is below.
    pub p50_below: f64,
    /// A power of two the 99th percentile is below.
    pub p99_below: f64,
    /// Values per power-of-two bucket: bucket `i` counts values below `2^i` (and at least
    /// `2^(i-1)`); for the Prometheus histograms.
    #[serde(skip)]
    pub buckets: Vec<u64>,
}

/// Everything recorded about one filter.
#[derive(Default)]
pub struct FilterMetrics {
    failures: AtomicU64,
    cpu_hits: AtomicU64,
    fuel_hits: AtomicU64,
    memory_hits: AtomicU64,
    outbound_calls: AtomicU64,
    outbound_refused: AtomicU64,
    skipped: AtomicU64,
    /// Hook call time in nanoseconds.
    call_time: CallTimes,
    custom: Mutex<Custom>,
}

#[derive(Default)]
struct Custom {
    counters: BTreeMap<String, u64>,
    histograms: BTreeMap<String, Histogram>,
}

/// A snapshot of one filter's metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricsSnapshot {
    /// Hook calls made.
    pub calls: u64,
    /// Calls that trapped, ran out of a budget or returned garbage.
    pub failures: u64,
    /// Calls stopped at the CPU deadline.
    pub cpu_deadline_hits: u64,
    /// Calls stopped for running out of fuel.
    pub fuel_hits: u64,
    /// Calls stopped at the memory limit.
    pub memory_limit_hits: u64,
    /// Outbound HTTP requests sent.
    pub outbound_calls: u64,
    /// Outbound HTTP requests refused (host not allowed, budget spent).
    pub outbound_refused: u64,
    /// Requests that went on without the filter after it failed (`on-failure = "fail-open"`).
    pub skipped: u64,
    /// Hook call time, nanoseconds.
    pub call_time_ns: HistogramSnapshot,
    /// The filter's own counters.
    pub counters: BTreeMap<String, u64>,
    /// The filter's own histograms.
    pub histograms: BTreeMap<String, HistogramSnapshot>,
}

impl FilterMetrics {
    /// Record one hook call that took `time`.
    pub fn call(&self, time: Duration) {
        self.call_time.record(time);
    }

    /// Record a failed call, and the budget it hit if any.
    pub fn failure(&self, hit: Option<BudgetHit>) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let counter = match hit {
            Some(BudgetHit::Cpu) => &self.cpu_hits,
            Some(BudgetHit::Fuel) => &self.fuel_hits,
            Some(BudgetHit::Memory) => &self.memory_hits,
            None => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Record an outbound request, sent or refused.
    /// A request went on without the filter, which failed (fail-open).
    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn outbound(&self, sent: bool) {
        let c = if sent {
            &self.outbound_calls
        } else {
            &self.outbound_refused
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn custom(&self) -> std::sync::MutexGuard<'_, Custom> {
        self.custom.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add to the filter's counter `name`.
    pub fn counter_add(&self, name: &str, value: u64) {
        let mut c = self.custom();
        let room = c.counters.len() + c.histograms.len() < MAX_NAMES;
        match c.counters.get_mut(name) {
            Some(n) => *n = n.saturating_add(value),
            None if room && name.len() <= MAX_NAME => {
                c.counters.insert(name.to_string(), value);
            }
            None => {}
        }
    }

    /// Record in the filter's histogram `name`.
    pub fn histogram_record(&self, name: &str, value: f64) {
        let mut c = self.custom();
        let room = c.counters.len() + c.histograms.len() < MAX_NAMES;
        if !c.histograms.contains_key(name) {
            if !room || name.len() > MAX_NAME {
                return;
            }
            c.histograms.insert(name.to_string(), Histogram::default());
        }
        if let Some(h) = c.histograms.get(name) {
            h.record(value);
        }
    }

    /// The figures now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = self.custom();
        let call_time_ns = self.call_time.snapshot();
        MetricsSnapshot {
            calls: call_time_ns.count,
            failures: load(&self.failures),
            cpu_deadline_hits: load(&self.cpu_hits),
            fuel_hits: load(&self.fuel_hits),
            memory_limit_hits: load(&self.memory_hits),
            outbound_calls: load(&self.outbound_calls),
            outbound_refused: load(&self.outbound_refused),
            skipped: load(&self.skipped),
            call_time_ns,
            counters: c.counters.clone(),
            histograms: c
                .histograms
                .iter()
                .map(|(k, h)| (k.clone(), h.snapshot()))
                .collect(),
        }
    }
}

impl metrics::Host for FilterState {
    fn counter_add(&mut self, name: String, value: u64) -> wasmtime::Result<()> {
        self.services.metrics.counter_add(&name, value);
        Ok(())
    }

    fn histogram_record(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
        self.services.metrics.histogram_record(&name, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_power_of_two_bounds() {
        let h = Histogram::default();
        for v in 1..=100 {
            h.record(v as f64);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.sum, 5050.0);
        assert_eq!(s.p50_below, 64.0);
        assert_eq!(s.p99_below, 128.0);
    }

    #[test]
    fn counters_and_budget_hits_are_counted_and_names_bounded() {
        let m = FilterMetrics::default();
        m.call(Duration::from_micros(2));
        m.failure(Some(BudgetHit::Cpu));
        m.failure(None);
        m.counter_add("blocked", 2);
        m.counter_add("blocked", 3);
        m.histogram_record("size", 10.0);
        for i in 0..MAX_NAMES {
            m.counter_add(&format!("n{i}"), 1);
        }
        let s = m.snapshot();
        assert_eq!((s.calls, s.failures, s.cpu_deadline_hits), (1, 2, 1));
        assert_eq!(s.call_time_ns.sum, 2000.0);
        assert_eq!(s.counters["blocked"], 5);
        assert_eq!(s.histograms["size"].count, 1);
        assert_eq!(s.counters.len() + s.histograms.len(), MAX_NAMES);
    }
}
