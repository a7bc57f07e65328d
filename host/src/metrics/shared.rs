//! The shared state's metrics at scrape time: shared stores (`weir_store_*`) and cache
//! zones (`weir_cache_*`).

use super::scrape::{counter, gauge, histogram, pow2_buckets, Out};
use prometheus_client::encoding::MetricEncoder;
use prometheus_client::metrics::MetricType;
use std::fmt::Error;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub(super) fn stores(out: &mut Out<'_, '_>, g: &crate::live::Generation) -> Result<(), Error> {
    let snaps: Vec<(String, crate::store::metrics::StoreSnapshot)> = g
        .shared_stores()
        .iter()
        .map(|(s, _)| (s.settings().shown(), s.metrics().snapshot()))
        .collect();
    out.family(
        "weir_store_up",
        "Whether a shared store (Redis) is connected.",
        MetricType::Gauge,
        |m| {
            for (url, s) in &snaps {
                gauge(m, &vec![("store", url.as_str())], i64::from(s.up))?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_store_calls",
        "Calls to a shared store, by outcome.",
        MetricType::Counter,
        |m| {
            for (url, s) in &snaps {
                for (outcome, v) in [
                    ("answered", s.calls),
                    ("error", s.errors),
                    ("timeout", s.timeouts),
                    ("busy", s.busy),
                    ("unavailable", s.unavailable),
                ] {
                    counter(m, &vec![("store", url.as_str()), ("outcome", outcome)], v)?;
                }
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_store_fallbacks",
        "Calls answered by the node-local store while the shared one was down.",
        MetricType::Counter,
        |m| {
            for (url, s) in &snaps {
                counter(m, &vec![("store", url.as_str())], s.fallbacks)?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_store_call_duration_seconds",
        "Latency of answered calls to a shared store.",
        MetricType::Histogram,
        |m| {
            for (url, s) in &snaps {
                // 2^4 us (16 us) to 2^20 us (1 s), every second power of two.
                let buckets = pow2_buckets(&s.latency_us, 4, 2, 20, 1e-6);
                histogram(
                    m,
                    &vec![("store", url.as_str())],
                    s.latency_us.sum * 1e-6,
                    &buckets,
                )?;
            }
            Ok(())
        },
    )
}

pub(super) fn caches(out: &mut Out<'_, '_>, g: &crate::live::Generation) -> Result<(), Error> {
    cache_counts(out, &g.zones)?;
    cache_usage(out, &g.zones)?;
    shared_purges(out, g)
}

/// Each zone's lookups by result, and responses stored and purged.
fn cache_counts(out: &mut Out<'_, '_>, zones: &[Arc<crate::cache::Zone>]) -> Result<(), Error> {
    out.family(
        "weir_cache_lookups",
        "Cacheable requests by how the zone answered: hit (fresh or allowed stale), miss, revalidated (a stale entry checked upstream), coalesced (waited on another request's fetch).",
        MetricType::Counter,
        |m: &mut MetricEncoder<'_>| {
            for z in zones {
                let c = &z.counters;
                for (result, v) in [
                    ("hit", &c.hits),
                    ("miss", &c.misses),
                    ("revalidated", &c.revalidated),
                    ("coalesced", &c.coalesced),
                ] {
                    counter(m, &vec![("zone", &**z.name()), ("result", result)], v.load(Relaxed))?;
                }
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_cache_stored",
        "Responses stored in a zone.",
        MetricType::Counter,
        |m| {
            for z in zones {
                counter(
                    m,
                    &vec![("zone", &**z.name())],
                    z.counters.stored.load(Relaxed),
                )?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_cache_purged",
        "Stored responses removed by purges and invalidations.",
        MetricType::Counter,
        |m| {
            for z in zones {
                counter(
                    m,
                    &vec![("zone", &**z.name())],
                    z.counters.purged.load(Relaxed),
                )?;
            }
            Ok(())
        },
    )
}

/// What each zone holds, against its bound.
fn cache_usage(out: &mut Out<'_, '_>, zones: &[Arc<crate::cache::Zone>]) -> Result<(), Error> {
    out.family(
        "weir_cache_entries",
        "Keys a zone holds.",
        MetricType::Gauge,
        |m| {
            for z in zones {
                let (entries, _) = z.usage();
                gauge(
                    m,
                    &vec![("zone", &**z.name())],
                    i64::try_from(entries).unwrap_or(i64::MAX),
                )?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_cache_bytes",
        "Bytes a zone's entries are charged, and its bound (kind=limit).",
        MetricType::Gauge,
        |m| {
            for z in zones {
                let (_, bytes) = z.usage();
                let name = &**z.name();
                gauge(
                    m,
                    &vec![("zone", name), ("kind", "used")],
                    i64::try_from(bytes).unwrap_or(i64::MAX),
                )?;
                let limit = i64::try_from(z.settings().memory).unwrap_or(i64::MAX);
                gauge(m, &vec![("zone", name), ("kind", "limit")], limit)?;
            }
            Ok(())
        },
    )
}

/// Purges shared with other nodes through Redis (none without a Redis store).
fn shared_purges(out: &mut Out<'_, '_>, g: &crate::live::Generation) -> Result<(), Error> {
    let Some(purges) = &g.purges else {
        return Ok(());
    };
    let c = &purges.counters;
    out.family(
        "weir_cache_shared_purges",
        "Purges shared with the other nodes on Redis: sent (this node's, published), received (others', applied here), overflowed (this node's, folded into a purge of everything while Redis was unreachable), malformed (messages that were not purges).",
        MetricType::Counter,
        |m| {
            for (kind, v) in [
                ("sent", &c.sent),
                ("received", &c.received),
                ("overflowed", &c.overflowed),
                ("malformed", &c.malformed),
            ] {
                counter(m, &vec![("kind", kind)], v.load(Relaxed))?;
            }
            Ok(())
        },
    )?;
    out.family(
        "weir_cache_shared_purge_gaps",
        "Times this node found shared purges missing (it was cut off from Redis) and emptied its shared zones.",
        MetricType::Counter,
        |m| counter(m, &vec![], c.gaps.load(Relaxed)),
    )
}
