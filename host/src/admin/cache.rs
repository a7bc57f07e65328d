//! The cache zones on the admin endpoint: `GET /cache` (entries, bytes, counters per zone,
//! and the purges shared with other nodes) and `POST /cache/purge?key=|prefix=|tag=[&zone=]`.

use super::{json, text, Answer};
use crate::cache::key::decode;
use crate::cache::purge::Purge;
use crate::live::Live;
use http::StatusCode;
use serde::Serialize;
use std::sync::atomic::Ordering;

#[derive(Serialize)]
struct ZoneView {
    name: String,
    entries: usize,
    bytes: u64,
    memory: u64,
    hits: u64,
    misses: u64,
    revalidated: u64,
    stored: u64,
    purged: u64,
    coalesced: u64,
    /// Files and bytes of its disk tier, if it has one.
    disk_files: Option<usize>,
    disk_bytes: Option<u64>,
}

/// `GET /cache`
pub fn zones(live: &Live) -> Answer {
    let g = live.current();
    let views: Vec<ZoneView> = g
        .zones
        .iter()
        .map(|z| {
            let (entries, bytes) = z.usage();
            let c = &z.counters;
            ZoneView {
                name: z.name().to_string(),
                entries,
                bytes,
                memory: z.settings().memory,
                hits: c.hits.load(Ordering::Relaxed),
                misses: c.misses.load(Ordering::Relaxed),
                revalidated: c.revalidated.load(Ordering::Relaxed),
                stored: c.stored.load(Ordering::Relaxed),
                purged: c.purged.load(Ordering::Relaxed),
                coalesced: c.coalesced.load(Ordering::Relaxed),
                disk_files: z.disk_usage().map(|d| d.0),
                disk_bytes: z.disk_usage().map(|d| d.1),
            }
        })
        .collect();
    let shared = g.purges.as_ref().map(|p| {
        let c = &p.counters;
        let names: Vec<&str> = g
            .zones
            .iter()
            .filter(|z| z.purge_channel().is_some())
            .map(|z| &**z.name())
            .collect();
        serde_json::json!({
            "store": p.store().settings().shown(),
            "zones": names,
            "subscribed": c.subscribed.load(Ordering::Relaxed),
            "sent": c.sent.load(Ordering::Relaxed),
            "received": c.received.load(Ordering::Relaxed),
            "gaps": c.gaps.load(Ordering::Relaxed),
            "overflowed": c.overflowed.load(Ordering::Relaxed),
            "malformed": c.malformed.load(Ordering::Relaxed),
        })
    });
    json(&serde_json::json!({ "zones": views, "shared_purges": shared }))
}

/// `POST /cache/purge`: by exact key (`key=http://host/path?query`), by key prefix
/// (`prefix=http://host/images/`) or by surrogate key (`tag=product-42`), in one zone
/// (`zone=`) or all; answers how many stored responses went.
pub fn purge(live: &Live, query: Option<&str>) -> Answer {
    let mut what: Option<(&str, String)> = None;
    let mut zone: Option<String> = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value);
        match name {
            "key" | "prefix" | "tag" if what.is_some() => {
                return text(StatusCode::BAD_REQUEST, "give one of key, prefix or tag\n");
            }
            "key" | "prefix" | "tag" => what = Some((name, value)),
            "zone" => zone = Some(value),
            other => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?} (expected key, prefix, tag or zone)\n"),
                )
            }
        }
    }
    let Some((kind, value)) = what.filter(|(_, v)| !v.is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "give key=<url>, prefix=<url prefix> or tag=<surrogate key>\n",
        );
    };
    let g = live.current();
    let zones: Vec<_> = g
        .zones
        .iter()
        .filter(|z| zone.as_deref().is_none_or(|n| **z.name() == *n))
        .collect();
    if zones.is_empty() {
        let name = zone.unwrap_or_default();
        return text(
            StatusCode::NOT_FOUND,
            format!("no cache zone named {name:?}\n"),
        );
    }
    let value = match kind {
        "key" | "prefix" => normalise_url(&value),
        _ => value,
    };
    let purged: usize = zones
        .iter()
        .map(|z| match kind {
            "key" => z.purge(Purge::Key(value.clone())),
            "prefix" => z.purge(Purge::Prefix(value.clone())),
            _ => z.purge(Purge::Tag(value.clone())),
        })
        .sum();
    json(&serde_json::json!({ "purged": purged }))
}

/// A URL as keys spell it: scheme and host lower-case, the rest as given.
fn normalise_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let split = rest.find(['/', '?']).unwrap_or(rest.len());
            let (host, tail) = rest.split_at(split);
            format!(
                "{}://{}{tail}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            )
        }
        None => url.to_string(),
    }
}
