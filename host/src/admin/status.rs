//! The `/status` document: the live generation, each filter's plugin version (SHA-256), load
//! time, instances and metrics, each upstream target's health, load and resolved addresses,
//! the shared stores, and the reload history.

use crate::filter::metrics::MetricsSnapshot;
use crate::live::Live;
use serde::Serialize;
use std::time::SystemTime;

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The live generation's id (1 at start, +1 per successful reload).
    pub generation: u64,
    /// When it went live, seconds since the Unix epoch.
    pub loaded_at: f64,
    /// The reload history.
    pub reloads: Reloads,
    /// The live filters, in manifest order.
    pub filters: Vec<FilterStatus>,
    /// The live upstreams, in manifest order.
    pub upstreams: Vec<UpstreamStatus>,
    /// The shared stores (Redis) the live filters use.
    pub stores: Vec<StoreStatus>,
}

/// One shared store.
#[derive(Debug, Serialize)]
pub struct StoreStatus {
    /// `"redis"` or `"redis-cluster"`.
    pub backend: &'static str,
    /// Its URLs, passwords redacted.
    pub urls: String,
    /// The filters using it.
    pub filters: Vec<String>,
    /// Its counters.
    #[serde(flatten)]
    pub metrics: crate::store::metrics::StoreSnapshot,
}

/// One upstream.
#[derive(Debug, Serialize)]
pub struct UpstreamStatus {
    /// Its name in the manifest.
    pub name: String,
    /// Its targets, in manifest order.
    pub targets: Vec<TargetStatus>,
}

/// One target of an upstream.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// `host:port` as configured.
    pub address: String,
    /// Up per the active check (always true without one).
    pub up: bool,
    /// Left out by passive ejection right now.
    pub ejected: bool,
    /// Requests in flight (until their response body ends).
    pub in_flight: u64,
    /// Response-head latency EWMA in milliseconds (0 before the first response).
    pub latency_ewma_ms: f64,
    /// The addresses its host name resolves to (empty for an IP address or before the first
    /// resolution).
    pub resolved: Vec<String>,
}

/// Reload history.
#[derive(Debug, Serialize)]
pub struct Reloads {
    /// Successful reloads.
    pub succeeded: u64,
    /// Refused reloads.
    pub failed: u64,
    /// The last refused reload's reason, unless a later one succeeded.
    pub last_error: Option<String>,
    /// When that was, seconds since the Unix epoch.
    pub last_error_at: Option<f64>,
}

/// One live filter.
#[derive(Debug, Serialize)]
pub struct FilterStatus {
    /// Its name in the manifest.
    pub name: String,
    /// Its plugin file.
    pub plugin: String,
    /// SHA-256 of the plugin file that is live.
    pub sha256: String,
    /// When this version was loaded, seconds since the Unix epoch.
    pub loaded_at: f64,
    /// `"direct"` when hooks are plain function calls, `"fiber"` when they run on a fiber
    /// because the filter imports something that can wait (outbound HTTP, timers).
    pub calls: &'static str,
    /// Instances created so far.
    pub instances_created: u64,
    /// Idle instances kept.
    pub instances_idle: usize,
    /// `"init"` when each new instance runs `init`, `"snapshot"` when it starts from the
    /// state one instance had after `init` (`instance-start`).
    pub instance_start: &'static str,
    /// With `"snapshot"`: milliseconds making the snapshot took when the filter loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_ms: Option<f64>,
    /// The last instance made: milliseconds to create it and, unless it started from a
    /// snapshot, `init` it; and its linear memory in bytes then.
    pub instance_start_ms: f64,
    pub instance_memory_bytes: u64,
    /// Host-recorded and filter-defined metrics.
    pub metrics: MetricsSnapshot,
}

/// The shared stores of generation `g`, with the filters using each.
fn stores(g: &crate::live::Generation) -> Vec<StoreStatus> {
    g.shared_stores()
        .into_iter()
        .map(|(r, filters)| StoreStatus {
            backend: if r.settings().cluster {
                "redis-cluster"
            } else {
                "redis"
            },
            urls: r.settings().shown(),
            filters,
            metrics: r.metrics().snapshot(),
        })
        .collect()
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The status now.
pub fn status(live: &Live) -> Status {
    let g = live.current();
    let r = live.reload_status();
    Status {
        generation: g.id,
        loaded_at: unix(g.loaded_at),
        reloads: Reloads {
            succeeded: r.succeeded,
            failed: r.failed,
            last_error_at: r.last_error.as_ref().map(|(t, _)| unix(*t)),
            last_error: r.last_error.map(|(_, e)| e),
        },
        filters: g
            .filters
            .iter()
            .map(|f| {
                let (start, memory) = f.instance_start();
                FilterStatus {
                    name: f.name().to_string(),
                    plugin: f.config().plugin_path.display().to_string(),
                    sha256: f.version().sha256.clone(),
                    loaded_at: unix(f.version().loaded_at),
                    calls: if f.runs_on_fiber() { "fiber" } else { "direct" },
                    instances_created: f.instances_created(),
                    instances_idle: f.idle_instances(),
                    instance_start: match f.snapshot_took() {
                        Some(_) => "snapshot",
                        None => "init",
                    },
                    snapshot_ms: f.snapshot_took().map(|t| t.as_secs_f64() * 1000.0),
                    instance_start_ms: start.as_secs_f64() * 1000.0,
                    instance_memory_bytes: memory,
                    metrics: f.metrics(),
                }
            })
            .collect(),
        stores: stores(&g),
        upstreams: g
            .upstreams
            .iter()
            .map(|u| UpstreamStatus {
                name: u.name().to_string(),
                targets: u
                    .targets()
                    .iter()
                    .map(|t| TargetStatus {
                        address: t.authority.to_string(),
                        up: t.health.is_up(),
                        ejected: t.health.ejected(),
                        in_flight: t.in_flight(),
                        latency_ewma_ms: t.ewma_ns() / 1e6,
                        resolved: crate::upstream::resolve::DnsCache::global()
                            .get(t.authority.host())
                            .map(|addrs| addrs.iter().map(|a| a.ip().to_string()).collect())
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
    }
}
