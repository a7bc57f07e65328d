//! A cache zone: stored responses by key within a byte bound (S3-FIFO admission and
//! eviction, `quick_cache`), the fetches in flight per key (request coalescing), purges,
//! and its counters. Zones outlive reloads: a generation takes the zone of the same name
//! and settings from the last one.

use super::entry::Stored;
use super::key;
use http::HeaderMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A zone's manifest settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSettings {
    /// Bytes its entries may take (bodies, fields, keys and bookkeeping).
    pub memory: u64,
    /// Largest body stored; larger responses pass through unstored.
    pub max_object_size: u64,
    /// Most stored variants (by `Vary`) per key; the oldest goes first.
    pub max_variants: usize,
    /// Longest a request waits for another's fetch of the same key before going upstream
    /// itself.
    pub lock_timeout: Duration,
    /// Clients allowed to send `PURGE` (none: the method is refused).
    pub purge_from: Vec<ipnet::IpNet>,
    /// Its disk tier, if it has one.
    pub disk: Option<super::disk::DiskSettings>,
}

/// The variants stored under one key, newest first.
#[derive(Debug, Default)]
pub struct Variants {
    pub(super) list: Vec<Arc<Stored>>,
    pub(super) weight: u64,
}

#[derive(Debug, Clone)]
pub(super) struct ByWeight;

impl quick_cache::Weighter<Arc<str>, Arc<Variants>> for ByWeight {
    fn weight(&self, _key: &Arc<str>, val: &Arc<Variants>) -> u64 {
        val.weight
    }
}

/// How lookups ended, for `/metrics` and the admin API.
#[derive(Debug, Default)]
pub struct ZoneCounters {
    /// Served from the zone (fresh, or stale as allowed).
    pub hits: AtomicU64,
    /// Not found (or not selected): fetched.
    pub misses: AtomicU64,
    /// Found stale: revalidated upstream.
    pub revalidated: AtomicU64,
    /// Responses stored.
    pub stored: AtomicU64,
    /// Entries removed by purges and invalidations.
    pub purged: AtomicU64,
    /// Requests that waited on another's fetch of their key.
    pub coalesced: AtomicU64,
}

/// A cache zone.
pub struct Zone {
    name: Arc<str>,
    settings: ZoneSettings,
    pub(super) entries: quick_cache::sync::Cache<Arc<str>, Arc<Variants>, ByWeight>,
    fills: Mutex<HashMap<Arc<str>, watch::Receiver<()>>>,
    /// Its files, if it has a disk tier (and the directory could be opened).
    pub(super) disk: Option<Arc<super::disk::DiskTier>>,
    /// Where its purges are shared with other nodes, if they are.
    pub(super) shared: arc_swap::ArcSwapOption<super::shared::PurgeChannel>,
    /// Its counters.
    pub counters: ZoneCounters,
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zone").field("name", &self.name).finish()
    }
}

/// What a request that found nothing does: fetch (and fill the zone), or wait for the
/// fetch another request has in flight.
pub enum Fill {
    /// This request fetches; others wait until the guard is dropped.
    Lead(FillGuard),
    /// Another request is fetching: wait on this (it closes when that fetch is done).
    Wait(watch::Receiver<()>),
}

/// Held by the request fetching a key; dropping it lets the waiting requests look again.
pub struct FillGuard {
    zone: Arc<Zone>,
    key: Arc<str>,
    _done: watch::Sender<()>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        let mut fills = self.zone.fills.lock().unwrap_or_else(|p| p.into_inner());
        fills.remove(&self.key);
    }
}

impl Zone {
    /// An empty zone.
    pub fn new(name: &str, settings: ZoneSettings) -> Self {
        // quick_cache sizes its tables from an item estimate: assume ~16 KiB per entry.
        let estimate = (settings.memory / 16_384).clamp(64, 1 << 20) as usize;
        let disk = settings.disk.clone().and_then(|d| {
            let path = d.path.display().to_string();
            match super::disk::DiskTier::open(name, d) {
                Ok(tier) => Some(Arc::new(tier)),
                Err(e) => {
                    tracing::error!(
                        zone = name,
                        path,
                        "cache disk tier unavailable, memory only: {e}"
                    );
                    None
                }
            }
        });
        Zone {
            disk,
            name: name.into(),
            entries: quick_cache::sync::Cache::with_weighter(estimate, settings.memory, ByWeight),
            settings,
            fills: Mutex::new(HashMap::new()),
            counters: ZoneCounters::default(),
            shared: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// Its name in the manifest.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Its settings.
    pub fn settings(&self) -> &ZoneSettings {
        &self.settings
    }

    /// Entries (keys) and the bytes they are charged.
    pub fn usage(&self) -> (usize, u64) {
        (self.entries.len(), self.entries.weight())
    }

    /// The newest stored variant under `key` that a request with `headers` and filter key
    /// `parts` selects.
    pub fn lookup(
        &self,
        key: &str,
        headers: &HeaderMap,
        parts: Option<&str>,
    ) -> Option<Arc<Stored>> {
        let variants = self.entries.get(key)?;
        variants
            .list
            .iter()
            .find(|s| key::selects(headers, parts, &s.selecting))
            .cloned()
    }

    /// Files on disk and their bytes, with a disk tier.
    pub fn disk_usage(&self) -> Option<(usize, u64)> {
        self.disk.as_ref().map(|d| d.usage())
    }

    /// The newest variant under `key` on disk that the request selects, brought back into
    /// memory (read on a blocking thread).
    pub async fn lookup_disk(
        &self,
        key: &Arc<str>,
        headers: &HeaderMap,
        parts: Option<&str>,
    ) -> Option<Arc<Stored>> {
        let disk = self.disk.as_ref()?;
        if !disk.has(key) {
            return None;
        }
        let (tier, k) = (disk.clone(), key.clone());
        let mut found = tokio::task::spawn_blocking(move || tier.read(&k))
            .await
            .ok()?;
        found.sort_by_key(|s| std::cmp::Reverse(s.response_time));
        let chosen = found
            .into_iter()
            .find(|s| key::selects(headers, parts, &s.selecting))?;
        self.remember(key.clone(), chosen.clone());
        Some(Arc::new(chosen))
    }

    /// Store `stored` under `key` (in memory, and on disk with a disk tier), replacing the
    /// variant with the same selecting values; the oldest variants beyond `max-variants` go.
    pub fn store(&self, key: Arc<str>, stored: Stored) {
        if let Some(disk) = &self.disk {
            disk.write(&key, &stored);
        }
        self.remember(key, stored);
        self.counters.stored.fetch_add(1, Ordering::Relaxed);
    }

    /// Keep `stored` under `key` in memory.
    fn remember(&self, key: Arc<str>, stored: Stored) {
        let stored = Arc::new(stored);
        let mut list = vec![stored.clone()];
        if let Some(old) = self.entries.get(&*key) {
            list.extend(
                old.list
                    .iter()
                    .filter(|s| s.selecting != stored.selecting)
                    .cloned(),
            );
        }
        list.truncate(self.settings.max_variants.max(1));
        let weight = list.iter().map(|s| s.weight(&key)).sum();
        self.entries
            .insert(key, Arc::new(Variants { list, weight }));
    }

    /// Take the lead on fetching `key`, or join the fetch in flight.
    pub fn begin_fill(self: &Arc<Self>, key: &Arc<str>) -> Fill {
        let mut fills = self.fills.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = fills.get(key) {
            if rx.has_changed().is_ok() {
                return Fill::Wait(rx.clone());
            }
        }
        let (tx, rx) = watch::channel(());
        fills.insert(key.clone(), rx);
        Fill::Lead(FillGuard {
            zone: self.clone(),
            key: key.clone(),
            _done: tx,
        })
    }
}

/// Wait until the fetch `rx` follows is done, or `timeout`; whether it finished in time.
pub async fn wait_fill(mut rx: watch::Receiver<()>, timeout: Duration) -> bool {
    // The sender is never used to send: `changed` returns when it is dropped.
    tokio::time::timeout(timeout, async { while rx.changed().await.is_ok() {} })
        .await
        .is_ok()
}

/// Zones by name, kept from one generation to the next.
static ZONES: std::sync::LazyLock<Mutex<HashMap<String, Arc<Zone>>>> =
    std::sync::LazyLock::new(Default::default);

/// The running zones.
pub fn running() -> Vec<Arc<Zone>> {
    let zones = ZONES.lock().unwrap_or_else(|p| p.into_inner());
    zones.values().cloned().collect()
}

/// The zones of a new generation: the running zone of the same name and settings (with its
/// entries), else a new, empty one. Zones no longer named are dropped when the last
/// generation using them ends.
pub fn zones_for(wanted: &[(String, ZoneSettings)]) -> Vec<Arc<Zone>> {
    let mut known = ZONES.lock().unwrap_or_else(|p| p.into_inner());
    let zones: Vec<Arc<Zone>> = wanted
        .iter()
        .map(|(name, settings)| match known.get(name) {
            Some(z) if z.settings == *settings => z.clone(),
            _ => Arc::new(Zone::new(name, settings.clone())),
        })
        .collect();
    *known = zones
        .iter()
        .map(|z| (z.name.to_string(), z.clone()))
        .collect();
    zones
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::purge::Purge;
    use bytes::Bytes;
    use std::time::SystemTime;

    fn settings(memory: u64) -> ZoneSettings {
        ZoneSettings {
            memory,
            max_object_size: memory,
            max_variants: 2,
            lock_timeout: Duration::from_secs(1),
            purge_from: Vec::new(),
            disk: None,
        }
    }

    fn stored(body: &str, lang: Option<&str>, tag: &str) -> Stored {
        Stored {
            id: 0,
            status: http::StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
            response_time: SystemTime::now(),
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            must_revalidate: false,
            no_cache: false,
            selecting: key::selecting(&lang_headers(lang), &[http::header::ACCEPT_LANGUAGE], None),
            tags: vec![tag.into()],
        }
    }

    fn lang_headers(l: Option<&str>) -> HeaderMap {
        l.map_or_else(HeaderMap::new, lang)
    }

    fn lang(l: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT_LANGUAGE, l.parse().unwrap());
        h
    }

    #[test]
    fn variants_are_selected_replaced_and_bounded() {
        let zone = Zone::new("z", settings(1 << 20));
        let key: Arc<str> = "http://h/a".into();
        zone.store(key.clone(), stored("en1", Some("en"), "t"));
        zone.store(key.clone(), stored("de", Some("de"), "t"));
        zone.store(key.clone(), stored("en2", Some("en"), "t"));
        assert_eq!(zone.lookup(&key, &lang("en"), None).unwrap().body, "en2");
        assert_eq!(zone.lookup(&key, &lang("de"), None).unwrap().body, "de");
        zone.store(key.clone(), stored("fr", Some("fr"), "t"));
        assert!(
            zone.lookup(&key, &lang("de"), None).is_none(),
            "oldest of 3 > 2 went"
        );
        assert!(zone.lookup(&key, &HeaderMap::new(), None).is_none());
    }

    #[test]
    fn purges_by_key_prefix_and_tag() {
        let zone = Zone::new("z", settings(1 << 20));
        for (k, tag) in [
            ("http://h/a/1", "x"),
            ("http://h/a/2", "y"),
            ("http://h/b", "x"),
        ] {
            zone.store(k.into(), stored(k, None, tag));
        }
        assert_eq!(zone.purge_here(&Purge::Tag("x".into())), 2);
        assert!(zone.lookup("http://h/b", &HeaderMap::new(), None).is_none());
        assert_eq!(zone.purge_here(&Purge::Prefix("http://h/a/".into())), 1);
        assert_eq!(zone.usage().0, 0);
        zone.store("http://h/c".into(), stored("c", None, "z"));
        assert_eq!(zone.purge_here(&Purge::Key("http://h/c".into())), 1);
        assert_eq!(zone.purge_here(&Purge::Key("http://h/c".into())), 0);
    }

    #[test]
    fn the_byte_bound_holds() {
        let zone = Zone::new("z", settings(64 * 1024));
        for i in 0..200 {
            zone.store(
                format!("http://h/{i}").into(),
                stored(&"x".repeat(1000), None, "t"),
            );
        }
        let (entries, bytes) = zone.usage();
        assert!(bytes <= 64 * 1024, "{bytes}");
        assert!(entries > 10 && entries < 200, "{entries}");
    }

    #[tokio::test]
    async fn one_fill_leads_and_the_others_wait_for_it() {
        let zone = Arc::new(Zone::new("z", settings(1 << 20)));
        let key: Arc<str> = "http://h/k".into();
        let Fill::Lead(guard) = zone.begin_fill(&key) else {
            panic!("first is the leader")
        };
        let Fill::Wait(rx) = zone.begin_fill(&key) else {
            panic!("second waits")
        };
        assert!(
            !wait_fill(rx.clone(), Duration::from_millis(20)).await,
            "times out"
        );
        drop(guard);
        assert!(wait_fill(rx, Duration::from_millis(20)).await);
        assert!(matches!(zone.begin_fill(&key), Fill::Lead(_)));
    }
}
