//! The in-process store backend: sharded maps bounded in entries and bytes, evicting the
//! oldest entries first (insertion order across shards, each shard's oldest known without
//! locking it) in O(1) per write, with expired entries dropped when read.

use super::{check_sizes, KvBackend, KvBounds, KvError, KvNamespace};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Bytes an entry costs beyond its key and value (map slot, order queue slot, expiry).
pub const ENTRY_OVERHEAD: usize = 64;

/// The in-process backend. It holds namespaces weakly: a namespace lives while a loaded
/// filter uses it, so one removed from the manifest gives its memory back.
#[derive(Default)]
pub struct MemoryKv {
    namespaces: Mutex<HashMap<String, Weak<MemoryNamespace>>>,
}

impl MemoryKv {
    /// Namespaces still alive.
    pub fn live_namespaces(&self) -> usize {
        let all = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        all.values().filter(|w| w.strong_count() > 0).count()
    }
}

impl KvBackend for MemoryKv {
    fn namespace(&self, filter: &str, bounds: KvBounds) -> Arc<dyn KvNamespace> {
        let mut all = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, w| w.strong_count() > 0);
        let ns = match all.get(filter).and_then(Weak::upgrade) {
            Some(ns) => ns,
            None => {
                let ns = Arc::new(MemoryNamespace::new(bounds));
                all.insert(filter.to_string(), Arc::downgrade(&ns));
                ns
            }
        };
        ns.max_entries.store(bounds.max_entries, Ordering::Relaxed);
        ns.max_bytes.store(bounds.max_bytes, Ordering::Relaxed);
        ns
    }
}

const SHARDS: usize = 16;

/// One namespace: sharded maps so workers rarely wait on each other.
pub struct MemoryNamespace {
    shards: Box<[Mutex<Shard>]>,
    /// Each shard's oldest order slot (`u64::MAX` when empty), read without its lock to pick
    /// the shard to evict from.
    fronts: Box<[AtomicU64]>,
    /// The next insertion's sequence number, across shards.
    seq: AtomicU64,
    len: AtomicUsize,
    bytes: AtomicUsize,
    max_entries: AtomicUsize,
    max_bytes: AtomicUsize,
}

/// One shard: its entries, and their keys in insertion order for eviction. A key in `order`
/// whose entry was removed or inserted again since is stale and skipped.
#[derive(Default)]
struct Shard {
    map: HashMap<String, Entry>,
    order: VecDeque<(String, u64)>,
}

struct Entry {
    value: Value,
    expires: Option<Instant>,
    /// Which insertion of the key this is (matches its `order` slot).
    seq: u64,
}

enum Value {
    Bytes(Vec<u8>),
    Counter(i64),
}

impl Value {
    fn len(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len(),
            Value::Counter(_) => 8,
        }
    }
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// What an entry of `key` holding `value_len` bytes counts against `max_bytes`: the key is
/// held twice (map and order queue).
fn cost(key: &str, value_len: usize) -> usize {
    2 * key.len() + value_len + ENTRY_OVERHEAD
}

impl Shard {
    /// Add a new entry, insertion number `seq`, at the back of the order.
    fn insert(&mut self, key: &str, value: Value, expires: Option<Instant>, seq: u64) {
        self.map.insert(
            key.to_string(),
            Entry {
                value,
                expires,
                seq,
            },
        );
        self.order.push_back((key.to_string(), seq));
    }

    /// Remove `key`; its cost if it was there.
    fn remove(&mut self, key: &str) -> Option<usize> {
        let e = self.map.remove(key)?;
        self.compact();
        Some(cost(key, e.value.len()))
    }

    /// The oldest order slot's number (`u64::MAX` when none).
    fn front(&self) -> u64 {
        self.order.front().map_or(u64::MAX, |(_, seq)| *seq)
    }

    /// Remove the oldest entry; its cost, or `None` when the shard is empty. Stale order
    /// slots met on the way are dropped, so this is O(1) amortised.
    fn evict_oldest(&mut self) -> Option<usize> {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|e| e.seq == seq) {
                let e = self.map.remove(&key)?;
                return Some(cost(&key, e.value.len()));
            }
        }
        None
    }

    /// Drop stale order slots once they outnumber the entries (keys deleted and inserted
    /// again), so the queue stays within twice the map.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len() + 32 {
            let map = &self.map;
            self.order
                .retain(|(k, seq)| map.get(k).is_some_and(|e| e.seq == *seq));
        }
    }
}

impl MemoryNamespace {
    /// An empty namespace within `bounds`.
    pub fn new(bounds: KvBounds) -> Self {
        MemoryNamespace {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            fronts: (0..SHARDS).map(|_| AtomicU64::new(u64::MAX)).collect(),
            seq: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_entries: AtomicUsize::new(bounds.max_entries),
            max_bytes: AtomicUsize::new(bounds.max_bytes),
        }
    }

    fn shard_of(key: &str) -> usize {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize % SHARDS
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Insert a new entry into shard `i` (locked as `shard`), counted.
    fn insert(
        &self,
        i: usize,
        shard: &mut Shard,
        key: &str,
        value: Value,
        expires: Option<Instant>,
    ) {
        let bytes = cost(key, value.len());
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        shard.insert(key, value, expires, seq);
        self.fronts[i % SHARDS].store(shard.front(), Ordering::Relaxed);
        self.added(bytes);
    }

    fn added(&self, bytes: usize) {
        self.len.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn removed(&self, bytes: usize) {
        self.len.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn over(&self) -> bool {
        self.len.load(Ordering::Relaxed) > self.max_entries.load(Ordering::Relaxed)
            || self.bytes.load(Ordering::Relaxed) > self.max_bytes.load(Ordering::Relaxed)
    }

    /// Evict oldest entries until the namespace is within its bounds: each time from the
    /// shard whose oldest slot is oldest. Called holding no shard lock; a write evicts
    /// about one entry, looking at one atomic per shard.
    fn evict(&self) {
        let mut misses = 0;
        while self.over() && misses < SHARDS {
            let Some(i) = (0..SHARDS)
                .filter(|&i| self.fronts[i].load(Ordering::Relaxed) != u64::MAX)
                .min_by_key(|&i| self.fronts[i].load(Ordering::Relaxed))
            else {
                return;
            };
            let mut shard = self.lock(i);
            let evicted = shard.evict_oldest();
            self.fronts[i].store(shard.front(), Ordering::Relaxed);
            drop(shard);
            match evicted {
                Some(bytes) => self.removed(bytes),
                None => misses += 1,
            }
        }
    }

    /// Refuse a key or value no entry may have, or one larger than the whole namespace.
    fn check(&self, key: &str, value_len: usize) -> Result<(), KvError> {
        check_sizes(key, value_len)?;
        let max = self.max_bytes.load(Ordering::Relaxed);
        if cost(key, value_len) > max {
            return Err(KvError::Full(cost(key, value_len), max));
        }
        Ok(())
    }
}

impl MemoryNamespace {
    /// Add `delta` to the counter at `key` (a new one expires `window` from `now`): its new
    /// value and when it expires.
    fn count(
        &self,
        key: &str,
        delta: i64,
        window: Option<Duration>,
        now: Instant,
    ) -> Result<(i64, Option<Instant>), KvError> {
        self.check(key, 8)?;
        let i = Self::shard_of(key);
        let expires = window.map(|w| now + w);
        {
            let mut shard = self.lock(i);
            match shard.map.get_mut(key) {
                Some(e) if e.live(now) => {
                    return match &mut e.value {
                        Value::Counter(n) => {
                            *n = n.saturating_add(delta);
                            Ok((*n, e.expires))
                        }
                        Value::Bytes(_) => Err(KvError::NotACounter(key.to_string())),
                    };
                }
                // Expired: the window (or TTL) is over; start again.
                Some(e) => {
                    let old_cost = cost(key, e.value.len());
                    e.value = Value::Counter(delta);
                    e.expires = expires;
                    self.bytes.fetch_add(cost(key, 8), Ordering::Relaxed);
                    self.bytes.fetch_sub(old_cost, Ordering::Relaxed);
                }
                None => {
                    self.insert(i, &mut shard, key, Value::Counter(delta), expires);
                }
            }
        }
        self.evict();
        Ok((delta, expires))
    }
}

impl KvNamespace for MemoryNamespace {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let i = Self::shard_of(key);
        let mut shard = self.lock(i);
        let e = shard.map.get(key)?;
        if !e.live(now) {
            if let Some(bytes) = shard.remove(key) {
                self.fronts[i].store(shard.front(), Ordering::Relaxed);
                self.removed(bytes);
            }
            return None;
        }
        Some(match &e.value {
            Value::Bytes(b) => b.clone(),
            Value::Counter(n) => n.to_string().into_bytes(),
        })
    }

    fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), KvError> {
        self.check(key, value.len())?;
        let expires = ttl.map(|t| Instant::now() + t);
        let i = Self::shard_of(key);
        {
            let mut shard = self.lock(i);
            if let Some(e) = shard.map.get_mut(key) {
                let new_cost = cost(key, value.len());
                let old_cost = cost(key, e.value.len());
                e.value = Value::Bytes(value);
                e.expires = expires;
                self.bytes.fetch_add(new_cost, Ordering::Relaxed);
                self.bytes.fetch_sub(old_cost, Ordering::Relaxed);
            } else {
                self.insert(i, &mut shard, key, Value::Bytes(value), expires);
            }
        }
        self.evict();
        Ok(())
    }

    fn delete(&self, key: &str) {
        let i = Self::shard_of(key);
        let mut shard = self.lock(i);
        if let Some(bytes) = shard.remove(key) {
            self.fronts[i].store(shard.front(), Ordering::Relaxed);
            self.removed(bytes);
        }
    }

    fn incr(&self, key: &str, delta: i64, window: Option<Duration>) -> Result<i64, KvError> {
        self.count(key, delta, window, Instant::now())
            .map(|(n, _)| n)
    }

    fn incr_window(
        &self,
        key: &str,
        delta: i64,
        window: Duration,
    ) -> Result<(i64, Duration), KvError> {
        let now = Instant::now();
        let (n, expires) = self.count(key, delta, Some(window), now)?;
        // A counter made without a window (by `incr`) never resets.
        let left = expires.map_or(Duration::MAX, |e| e.saturating_duration_since(now));
        Ok((n, left))
    }

    fn entries(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(max_entries: usize) -> KvBounds {
        KvBounds {
            max_entries,
            max_bytes: 1 << 30,
        }
    }

    #[test]
    fn namespaces_are_separate_and_survive_lookup_again() {
        let kv = MemoryKv::default();
        let a = kv.namespace("a", bounds(10));
        a.set("k", b"1".to_vec(), None).unwrap();
        assert_eq!(kv.namespace("b", bounds(10)).get("k"), None);
        assert_eq!(kv.namespace("a", bounds(10)).get("k"), Some(b"1".to_vec()));
    }

    #[test]
    fn a_namespace_no_filter_holds_is_freed() {
        let kv = MemoryKv::default();
        let a = kv.namespace("a", bounds(10));
        a.set("k", b"1".to_vec(), None).unwrap();
        let b = kv.namespace("b", bounds(10));
        assert_eq!(kv.live_namespaces(), 2);
        drop(a);
        assert_eq!(kv.live_namespaces(), 1);
        assert_eq!(kv.namespace("a", bounds(10)).get("k"), None, "a new one");
        drop(b);
    }

    #[test]
    fn ttl_expires_values() {
        let ns = MemoryNamespace::new(bounds(10));
        ns.set("k", b"v".to_vec(), Some(Duration::from_millis(20)))
            .unwrap();
        assert_eq!(ns.get("k"), Some(b"v".to_vec()));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ns.get("k"), None);
        assert_eq!((ns.entries(), ns.bytes()), (0, 0), "dropped when read");
    }

    #[test]
    fn counters_count_within_a_window_then_restart() {
        let ns = MemoryNamespace::new(bounds(10));
        let w = Some(Duration::from_millis(30));
        assert_eq!(ns.incr("c", 1, w).unwrap(), 1);
        assert_eq!(ns.incr("c", 2, w).unwrap(), 3);
        assert_eq!(ns.get("c"), Some(b"3".to_vec()));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(ns.incr("c", 1, w).unwrap(), 1);
        ns.set("v", b"x".to_vec(), None).unwrap();
        assert_eq!(ns.incr("v", 1, None), Err(KvError::NotACounter("v".into())));
    }

    #[test]
    fn a_windowed_counter_says_when_its_window_ends() {
        let ns = MemoryNamespace::new(bounds(10));
        let w = Duration::from_secs(10);
        let (n, left) = ns.incr_window("c", 1, w).unwrap();
        assert_eq!(n, 1);
        assert!(left <= w && left > Duration::from_secs(9), "{left:?}");
        std::thread::sleep(Duration::from_millis(20));
        let (n, later) = ns.incr_window("c", 1, w).unwrap();
        assert_eq!(n, 2);
        assert!(
            later < left,
            "the same window, closer to its end: {later:?} < {left:?}"
        );
        ns.incr("forever", 1, None).unwrap();
        assert_eq!(
            ns.incr_window("forever", 1, w).unwrap(),
            (2, Duration::MAX),
            "a counter made without a window never resets"
        );
        ns.set("v", b"x".to_vec(), None).unwrap();
        assert!(ns.incr_window("v", 1, w).is_err());
    }

    #[test]
    fn a_full_namespace_evicts_its_oldest_entries() {
        let ns = MemoryNamespace::new(bounds(3));
        for k in ["a", "b", "c"] {
            ns.set(k, vec![], None).unwrap();
        }
        // Updating an existing key needs no room and keeps its place.
        ns.set("a", b"2".to_vec(), None).unwrap();
        ns.set("d", vec![], None).unwrap();
        assert_eq!(ns.entries(), 3);
        assert_eq!(ns.get("a"), None, "the oldest went");
        assert!(ns.get("b").is_some() && ns.get("d").is_some());
        ns.delete("b");
        assert_eq!(ns.incr("e", 1, None), Ok(1));
        assert_eq!(ns.entries(), 3);
        assert!(ns
            .set(&"k".repeat(super::super::MAX_KEY + 1), vec![], None)
            .is_err());
    }

    #[test]
    fn bytes_are_bounded_too() {
        let ns = MemoryNamespace::new(KvBounds {
            max_entries: 1000,
            max_bytes: 4 * (1000 + ENTRY_OVERHEAD + 2),
        });
        for i in 0..10 {
            ns.set(&i.to_string(), vec![0; 1000], None).unwrap();
        }
        assert_eq!(ns.entries(), 4);
        assert!(ns.bytes() <= 4 * (1000 + ENTRY_OVERHEAD + 2));
        assert_eq!(ns.get("9").map(|v| v.len()), Some(1000), "the newest stay");
        assert!(matches!(
            ns.set("big", vec![0; 5000], None),
            Err(KvError::Full(_, _))
        ));
    }

    #[test]
    fn churn_keeps_the_order_queue_bounded() {
        let ns = MemoryNamespace::new(bounds(100));
        for i in 0..100_000 {
            ns.set("k", vec![], None).unwrap();
            ns.delete("k");
            ns.set(&(i % 50).to_string(), vec![], None).unwrap();
        }
        let queued: usize = ns
            .shards
            .iter()
            .map(|s| s.lock().unwrap().order.len())
            .sum();
        assert!(queued <= 2 * 51 + 32 * SHARDS, "{queued} order slots");
        assert_eq!(ns.entries(), 50);
    }

    #[test]
    fn many_writers_stay_within_bounds() {
        let ns = Arc::new(MemoryNamespace::new(bounds(500)));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let ns = ns.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        let _ = ns.incr(&format!("{t}-{i}"), 1, None);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(ns.entries() <= 500, "{}", ns.entries());
        let held: usize = ns.shards.iter().map(|s| s.lock().unwrap().map.len()).sum();
        assert_eq!(held, ns.entries(), "the count matches what is held");
    }
}
