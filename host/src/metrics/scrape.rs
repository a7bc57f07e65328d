//! One scrape: the request series, and what the live generation knows now (reloads, filters,
//! upstream targets, shared stores), encoded by `prometheus-client`'s encoders.

use super::requests::{Series, BUCKETS, CLASSES, METHODS};
use crate::filter::metrics::HistogramSnapshot;
use crate::live::Live;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::fmt::Error;
use std::sync::Arc;

/// Everything `/metrics` shows, gathered at scrape time.
pub struct Scrape {
    pub live: Arc<Live>,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

pub(super) type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Encodes families one sample at a time.
pub(super) struct Out<'e, 'a> {
    enc: DescriptorEncoder<'e>,
    _l: std::marker::PhantomData<&'a ()>,
}

impl Out<'_, '_> {
    pub(super) fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        mut each: impl FnMut(&mut MetricEncoder<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut m = self.enc.encode_descriptor(name, help, None, kind)?;
        each(&mut m)
    }
}

pub(super) fn counter(m: &mut MetricEncoder<'_>, labels: &Labels<'_>, v: u64) -> Result<(), Error> {
    m.encode_family(labels)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

pub(super) fn gauge(m: &mut MetricEncoder<'_>, labels: &Labels<'_>, v: i64) -> Result<(), Error> {
    m.encode_family(labels)?.encode_gauge(&v)
}

pub(super) fn histogram(
    m: &mut MetricEncoder<'_>,
    labels: &Labels<'_>,
    sum: f64,
    buckets: &[(f64, u64)],
) -> Result<(), Error> {
    let count = buckets.iter().map(|(_, c)| c).sum();
    m.encode_family(labels)?
        .encode_histogram::<NoLabelSet>(sum, count, buckets, None)
}

/// Counts per duration bucket ([`BUCKETS`], then the rest) as Prometheus buckets.
fn duration_buckets(counts: &[u64]) -> Vec<(f64, u64)> {
    BUCKETS
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(counts.iter().copied())
        .collect()
}

/// Power-of-two buckets (`i`: values below `2^i`) as Prometheus buckets with bounds
/// `2^i * scale` for every `step`-th `i` from `first` (counts not cumulative; the last
/// bucket holds the rest).
pub(super) fn pow2_buckets(
    h: &HistogramSnapshot,
    first: usize,
    step: usize,
    last: usize,
    scale: f64,
) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    let mut taken = 0;
    for i in (first..=last).step_by(step) {
        let upto: u64 = h.buckets.iter().take(i + 1).sum();
        out.push(((1u128 << i) as f64 * scale, upto - taken));
        taken = upto;
    }
    let total: u64 = h.buckets.iter().sum();
    out.push((f64::INFINITY, total - taken));
    out
}

impl Collector for Scrape {
    fn encode(&self, enc: DescriptorEncoder<'_>) -> Result<(), Error> {
        let mut out = Out {
            enc,
            _l: std::marker::PhantomData,
        };
        let g = self.live.current();
        process(&mut out, &g, &self.live.reload_status())?;
        logs_and_traces(&mut out)?;
        let listeners = self
            .live
            .listeners()
            .map(|l| l.counts())
            .unwrap_or_default();
        connections(&mut out, &listeners)?;
        requests(&mut out, &super::requests().snapshot())?;
        upstreams(&mut out, &g)?;
        filters(&mut out, &g)?;
        super::shared::stores(&mut out, &g)?;
        super::shared::caches(&mut out, &g)
    }
}

/// The build, the live generation and reloads.
fn process(
    out: &mut Out<'_, '_>,
    g: &crate::live::Generation,
    r: &crate::live::ReloadStatus,
) -> Result<(), Error> {
    let version = env!("CARGO_PKG_VERSION");
    out.family(
        "weir_build_info",
        "Weir's version.",
        MetricType::Gauge,
        |m| gauge(m, &vec![("version", version)], 1),
    )?;
    out.family(
        "weir_config_generation",
        "The live generation (1 at start, +1 per reload that took).",
        MetricType::Gauge,
        |m| gauge(m, &vec![], i64::try_from(g.id).unwrap_or(i64::MAX)),
    )?;
    out.family(
        "weir_reloads",
        "Reloads, by result.",
        MetricType::Counter,
        |m| {
            counter(m, &vec![("result", "ok")], r.succeeded)?;
            counter(m, &vec![("result", "failed")], r.failed)
        },
    )?;
    let loaded = g
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    out.family(
        "weir_config_loaded_timestamp_seconds",
        "When the live generation went live (the last successful reload).",
        MetricType::Gauge,
        |m| {
            m.encode_family(&Vec::<(&str, &str)>::new())?
                .encode_gauge(&loaded)
        },
    )
}

/// What the access log writer and the OTLP exporter did, and body bytes read.
fn logs_and_traces(out: &mut Out<'_, '_>) -> Result<(), Error> {
    let (written, dropped, failed) = crate::access_log::sink::global().counts();
    out.family("weir_access_log_lines", "Access log lines written by the writer, dropped (a worker's buffer was full) or lost (the destination failed).", MetricType::Counter, |m| {
        counter(m, &vec![("result", "written")], written)?;
        counter(m, &vec![("result", "dropped")], dropped)?;
        counter(m, &vec![("result", "failed")], failed)
    })?;
    let (sent, dropped, failed) = crate::otlp::export::counts();
    out.family("weir_otlp_spans", "Trace spans sent to the OTLP collector, dropped (the exporter's queue was full) or lost (an export failed).", MetricType::Counter, |m| {
        counter(m, &vec![("result", "sent")], sent)?;
        counter(m, &vec![("result", "dropped")], dropped)?;
        counter(m, &vec![("result", "failed")], failed)
    })?;
    let (from_clients, from_upstreams) = super::body_bytes().totals();
    out.family("weir_body_bytes", "Body bytes read: request bodies from clients, response bodies from upstreams (passed on to clients).", MetricType::Counter, |m| {
        counter(m, &vec![("from", "clients")], from_clients)?;
        counter(m, &vec![("from", "upstreams")], from_upstreams)
    })?;
    Ok(())
}

/// Client connections and TLS handshakes, by listener.
fn connections(
    out: &mut Out<'_, '_>,
    listeners: &[crate::listeners::ListenerCounts],
) -> Result<(), Error> {
    out.family(
        "weir_connections_open",
        "Client connections open now, by listener.",
        MetricType::Gauge,
        |m| {
            for l in listeners {
                let tls = if l.tls { "true" } else { "false" };
                gauge(
                    m,
                    &vec![("listener", l.address.as_str()), ("tls", tls)],
                    i64::try_from(l.open).unwrap_or(i64::MAX),
                )?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_connections_parked",
        "Client connections open now that hold no buffer: waiting for their first bytes, or \
         HTTP/1.1 ones quiet between requests.",
        MetricType::Gauge,
        |m| {
            gauge(
                m,
                &Vec::new(),
                i64::try_from(crate::conn::parked()).unwrap_or(i64::MAX),
            )
        },
    )?;
    out.family(
        "weir_connections",
        "Client connections accepted, or refused at max-connections, by listener.",
        MetricType::Counter,
        |m| {
            for l in listeners {
                counter(
                    m,
                    &vec![("listener", l.address.as_str()), ("result", "accepted")],
                    l.accepted,
                )?;
                counter(
                    m,
                    &vec![("listener", l.address.as_str()), ("result", "refused")],
                    l.refused,
                )?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_tls_handshakes",
        "TLS handshakes on a listener, by result.",
        MetricType::Counter,
        |m| {
            for l in listeners.iter().filter(|l| l.tls) {
                for (result, v) in ["ok", "failed", "timeout"].iter().zip(l.handshakes) {
                    counter(
                        m,
                        &vec![("listener", l.address.as_str()), ("result", *result)],
                        v,
                    )?;
                }
            }
            Ok(())
        },
    )
}

fn requests(out: &mut Out<'_, '_>, series: &[Series]) -> Result<(), Error> {
    out.family(
        "weir_requests",
        "Requests answered, by route, upstream, method and status class.",
        MetricType::Counter,
        |m| {
            for s in series {
                let labels = vec![
                    ("route", &*s.route),
                    ("upstream", &*s.upstream),
                    (
                        "method",
                        METHODS
                            .get(usize::from(s.method))
                            .copied()
                            .unwrap_or("other"),
                    ),
                    (
                        "code",
                        CLASSES.get(usize::from(s.class)).copied().unwrap_or("5xx"),
                    ),
                ];
                counter(m, &labels, s.count)?;
            }
            Ok(())
        },
    )?;
    // One histogram per (route, upstream): methods and classes merged.
    let mut merged: BTreeMap<(&str, &str), (f64, Vec<u64>)> = BTreeMap::new();
    for s in series {
        let e = merged
            .entry((&s.route, &s.upstream))
            .or_insert_with(|| (0.0, vec![0; BUCKETS.len() + 1]));
        e.0 += s.sum;
        for (a, b) in e.1.iter_mut().zip(s.buckets) {
            *a += b;
        }
    }
    out.family(
        "weir_request_duration_seconds",
        "Time from a request's arrival to its response head, by route and upstream.",
        MetricType::Histogram,
        |m| {
            for ((route, upstream), (sum, counts)) in &merged {
                let buckets = duration_buckets(counts);
                histogram(
                    m,
                    &vec![("route", *route), ("upstream", *upstream)],
                    *sum,
                    &buckets,
                )?;
            }
            Ok(())
        },
    )
}

fn upstreams(out: &mut Out<'_, '_>, g: &crate::live::Generation) -> Result<(), Error> {
    upstream_targets(out, g)?;
    upstream_stats(out, g)
}

/// Each target's health, ejection and requests in flight.
fn upstream_targets(out: &mut Out<'_, '_>, g: &crate::live::Generation) -> Result<(), Error> {
    let targets: Vec<(&str, String, &crate::balance::Target)> = g
        .upstreams
        .iter()
        .flat_map(|u| {
            u.targets()
                .iter()
                .map(move |t| (u.name(), t.authority.to_string(), t))
        })
        .collect();
    let each = |m: &mut MetricEncoder<'_>, v: &dyn Fn(&crate::balance::Target) -> i64| {
        for (u, addr, t) in &targets {
            gauge(m, &vec![("upstream", *u), ("target", addr.as_str())], v(t))?;
        }
        Ok(())
    };
    out.family(
        "weir_upstream_target_up",
        "Whether a target passes its health checks (1) or not (0).",
        MetricType::Gauge,
        |m| each(m, &|t| i64::from(t.health.is_up())),
    )?;
    out.family(
        "weir_upstream_target_ejected",
        "Whether passive outlier detection has ejected a target.",
        MetricType::Gauge,
        |m| each(m, &|t| i64::from(t.health.ejected())),
    )?;
    out.family(
        "weir_upstream_target_in_flight",
        "Requests in flight on a target (until their response body ends).",
        MetricType::Gauge,
        |m| each(m, &|t| i64::try_from(t.in_flight()).unwrap_or(i64::MAX)),
    )
}

/// Each upstream's connections, retries, failures, refusals and response times.
fn upstream_stats(out: &mut Out<'_, '_>, g: &crate::live::Generation) -> Result<(), Error> {
    let stats: Vec<(&str, crate::upstream::stats::StatsSnapshot)> = g
        .upstreams
        .iter()
        .map(|u| (u.name(), u.stats.snapshot()))
        .collect();
    let per = |m: &mut MetricEncoder<'_>,
               v: &dyn Fn(&crate::upstream::stats::StatsSnapshot) -> u64| {
        for (u, s) in &stats {
            counter(m, &vec![("upstream", *u)], v(s))?;
        }
        Ok(())
    };
    out.family(
        "weir_upstream_connections_open",
        "Pooled connections to an upstream's targets open now.",
        MetricType::Gauge,
        |m| {
            for (u, s) in &stats {
                gauge(
                    m,
                    &vec![("upstream", *u)],
                    i64::try_from(s.connections.1).unwrap_or(i64::MAX),
                )?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_upstream_connections",
        "Pooled connections made to an upstream's targets.",
        MetricType::Counter,
        |m| per(m, &|s| s.connections.0),
    )?;
    out.family(
        "weir_upstream_retries",
        "Failed attempts tried again on another target.",
        MetricType::Counter,
        |m| per(m, &|s| s.retries),
    )?;
    out.family(
        "weir_upstream_failures",
        "Attempts that got no response head (connect errors, resets, timeouts).",
        MetricType::Counter,
        |m| per(m, &|s| s.failures),
    )?;
    out.family(
        "weir_upstream_timeouts",
        "Attempts that ran out of time (connect or response head).",
        MetricType::Counter,
        |m| per(m, &|s| s.timeouts),
    )?;
    out.family("weir_upstream_refused", "Requests answered 503 without an attempt: circuit breakers (max-requests, max-pending) or no healthy target.", MetricType::Counter, |m| {
        for (u, s) in &stats {
            for (reason, v) in ["max_requests", "max_pending", "no_target"].iter().zip(s.refused) {
                counter(m, &vec![("upstream", *u), ("reason", *reason)], v)?;
            }
        }
        Ok(())
    })?;
    out.family(
        "weir_upstream_response_duration_seconds",
        "Time from sending a request upstream to its response head, per attempt.",
        MetricType::Histogram,
        |m| {
            for (u, s) in &stats {
                let buckets = duration_buckets(&s.heads);
                histogram(m, &vec![("upstream", *u)], s.heads_sum, &buckets)?;
            }
            Ok(())
        },
    )
}

/// One filter's name, metrics and instances, as scraped.
type FilterSnap<'g> = (
    &'g str,
    crate::filter::metrics::MetricsSnapshot,
    &'g crate::filter::Filter,
);

fn filters(out: &mut Out<'_, '_>, g: &crate::live::Generation) -> Result<(), Error> {
    let snaps: Vec<FilterSnap<'_>> = g
        .filters
        .iter()
        .map(|f| (f.name(), f.metrics(), &**f))
        .collect();
    filter_calls(out, &snaps)?;
    filter_instances(out, &snaps)?;
    filter_own_metrics(out, &snaps)
}

/// Hook calls: how many, how long, how they failed, and requests that went on without one.
fn filter_calls(out: &mut Out<'_, '_>, snaps: &[FilterSnap<'_>]) -> Result<(), Error> {
    out.family(
        "weir_filter_calls",
        "Hook calls of a filter.",
        MetricType::Counter,
        |m| {
            for (name, s, _) in snaps {
                counter(m, &vec![("filter", *name)], s.calls)?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_filter_call_duration_seconds",
        "Time of a filter's hook calls (CPU and waits).",
        MetricType::Histogram,
        |m| {
            for (name, s, _) in snaps {
                // 2^10 ns (1 us) to 2^34 ns (17 s), every fourth power of two.
                let buckets = pow2_buckets(&s.call_time_ns, 10, 2, 34, 1e-9);
                histogram(
                    m,
                    &vec![("filter", *name)],
                    s.call_time_ns.sum * 1e-9,
                    &buckets,
                )?;
            }
            Ok(())
        },
    )?;
    out.family("weir_filter_failures", "Failed hook calls of a filter, by kind: its CPU deadline, fuel or memory limit, or any other trap.", MetricType::Counter, |m| {
        for (name, s, _) in snaps {
            let budget = s.cpu_deadline_hits + s.fuel_hits + s.memory_limit_hits;
            for (kind, v) in [
                ("cpu_deadline", s.cpu_deadline_hits),
                ("fuel", s.fuel_hits),
                ("memory", s.memory_limit_hits),
                ("trap", s.failures.saturating_sub(budget)),
            ] {
                counter(m, &vec![("filter", *name), ("kind", kind)], v)?;
            }
        }
        Ok(())
    })?;
    out.family(
        "weir_filter_skipped",
        "Requests that went on without a filter after it failed (on-failure = \"fail-open\").",
        MetricType::Counter,
        |m| {
            for (name, s, _) in snaps {
                counter(m, &vec![("filter", *name)], s.skipped)?;
            }
            Ok(())
        },
    )
}

/// Instances made and kept idle.
fn filter_instances(out: &mut Out<'_, '_>, snaps: &[FilterSnap<'_>]) -> Result<(), Error> {
    out.family(
        "weir_filter_instances_created",
        "Instances a filter made (the first at load included).",
        MetricType::Counter,
        |m| {
            for (name, _, f) in snaps {
                counter(m, &vec![("filter", *name)], f.instances_created())?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_filter_instances_idle",
        "Initialised instances a filter keeps for reuse.",
        MetricType::Gauge,
        |m| {
            for (name, _, f) in snaps {
                gauge(
                    m,
                    &vec![("filter", *name)],
                    i64::try_from(f.idle_instances()).unwrap_or(i64::MAX),
                )?;
            }
            Ok(())
        },
    )
}

/// Each filter's own counters and histograms.
fn filter_own_metrics(out: &mut Out<'_, '_>, snaps: &[FilterSnap<'_>]) -> Result<(), Error> {
    out.family(
        "weir_filter_counts",
        "A filter's own counters (weir_sdk::metrics::counter_add).",
        MetricType::Counter,
        |m| {
            for (name, s, _) in snaps {
                for (metric, v) in &s.counters {
                    counter(m, &vec![("filter", *name), ("name", metric.as_str())], *v)?;
                }
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_filter_observations",
        "A filter's own histograms (weir_sdk::metrics::histogram_record), power-of-two buckets.",
        MetricType::Histogram,
        |m| {
            for (name, s, _) in snaps {
                for (metric, h) in &s.histograms {
                    let buckets = pow2_buckets(h, 0, 4, 60, 1.0);
                    histogram(
                        m,
                        &vec![("filter", *name), ("name", metric.as_str())],
                        h.sum,
                        &buckets,
                    )?;
                }
            }
            Ok(())
        },
    )
}
