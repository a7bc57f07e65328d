//! The live dashboard: `GET /dashboard` is one self-contained page (no external assets, so it
//! works offline) that polls `GET /dashboard/data` every second and shows the request rate,
//! status mix and latency percentiles, upstream targets and their health, filters with their
//! versions, call times and failures, shared stores, and reloads. The page itself holds no
//! data and needs no token; the data does (the page reads it from `#token=...`).

use crate::live::Live;
use crate::metrics::requests::{BUCKETS, CLASSES};
use serde::Serialize;

/// The page.
pub const PAGE: &str = include_str!("dashboard.html");

/// What one poll returns: totals since start; the page computes rates and percentiles from
/// the difference between two polls.
#[derive(Serialize)]
pub struct Data {
    /// The proxy's clock, seconds since the Unix epoch: rates are per second of it.
    now: f64,
    generation: u64,
    reloads_ok: u64,
    reloads_failed: u64,
    last_reload_error: Option<String>,
    loaded_at: f64,
    /// Requests so far, by status class (`1xx`..`5xx`).
    requests: [u64; 5],
    /// Upper bounds of the latency buckets, seconds.
    bounds: &'static [f64],
    /// Requests per latency bucket so far (the last: past every bound).
    latency: Vec<u64>,
    upstreams: Vec<Target>,
    filters: Vec<FilterRow>,
    stores: Vec<super::status::StoreStatus>,
}

#[derive(Serialize)]
struct Target {
    upstream: String,
    target: String,
    up: bool,
    ejected: bool,
    drained: bool,
    in_flight: u64,
}

#[derive(Serialize)]
struct FilterRow {
    name: String,
    sha256: String,
    calls: u64,
    failures: u64,
    p50_us: f64,
    p99_us: f64,
}

/// The data now.
pub fn data(live: &Live) -> Data {
    let g = live.current();
    let r = live.reload_status();
    let mut requests = [0u64; 5];
    let mut latency = vec![0u64; BUCKETS.len() + 1];
    for s in crate::metrics::requests().snapshot() {
        if let Some(c) = requests.get_mut(usize::from(s.class)) {
            *c += s.count;
        }
        for (a, b) in latency.iter_mut().zip(s.buckets) {
            *a += b;
        }
    }
    debug_assert_eq!(CLASSES.len(), requests.len());
    let status = super::status(live);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Data {
        now,
        generation: g.id,
        reloads_ok: r.succeeded,
        reloads_failed: r.failed,
        last_reload_error: r.last_error.map(|(_, e)| e),
        loaded_at: status.loaded_at,
        requests,
        bounds: &BUCKETS,
        latency,
        upstreams: g
            .upstreams
            .iter()
            .flat_map(|u| {
                u.targets().iter().map(move |t| Target {
                    upstream: u.name().to_string(),
                    target: t.authority.to_string(),
                    up: t.health.is_up(),
                    ejected: t.health.ejected(),
                    drained: t.health.drained(),
                    in_flight: t.in_flight(),
                })
            })
            .collect(),
        filters: status
            .filters
            .iter()
            .map(|f| FilterRow {
                name: f.name.clone(),
                sha256: f.sha256.chars().take(12).collect(),
                calls: f.metrics.calls,
                failures: f.metrics.failures,
                p50_us: f.metrics.call_time_ns.p50_below / 1000.0,
                p99_us: f.metrics.call_time_ns.p99_below / 1000.0,
            })
            .collect(),
        stores: status.stores,
    }
}
