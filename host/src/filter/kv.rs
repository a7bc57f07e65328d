//! The filters' shared key/value store: a backend trait (so a networked store can be added
//! later), the in-memory backend, and the host side of the `kv` import.
//!
//! Each filter gets its own namespace, named after its manifest entry: instances on every
//! worker share it, other filters never see it, and it survives reloads of the filter.

use super::bindings::weir::filter::kv;
use super::host::FilterState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest key, in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 1 << 20;

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The namespace holds its maximum of live entries.
    #[error("the store is full ({0} entries)")]
    Full(usize),
    /// The key or value is too large.
    #[error("{0}")]
    TooLarge(String),
    /// `incr` on a key holding bytes.
    #[error("key {0:?} holds a value, not a counter")]
    NotACounter(String),
}

/// Where namespaces live.
pub trait KvBackend: Send + Sync {
    /// Filter `filter`'s namespace, created on first use; `max_entries` bounds it (a reload
    /// may change the bound).
    fn namespace(&self, filter: &str, max_entries: usize) -> Arc<dyn KvNamespace>;
}

/// One filter's keys.
pub trait KvNamespace: Send + Sync {
    /// The value at `key` (counters as decimal text), unless absent or expired.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Store `value` at `key`, expiring after `ttl`.
    fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), KvError>;
    /// Remove `key`.
    fn delete(&self, key: &str);
    /// Add `delta` to the counter at `key`; a new counter expires `window` after creation.
    fn incr(&self, key: &str, delta: i64, window: Option<Duration>) -> Result<i64, KvError>;
    /// Live and not yet swept entries.
    fn entries(&self) -> usize;
}

/// The in-process backend.
#[derive(Default)]
pub struct MemoryKv {
    namespaces: Mutex<HashMap<String, Arc<MemoryNamespace>>>,
}

impl KvBackend for MemoryKv {
    fn namespace(&self, filter: &str, max_entries: usize) -> Arc<dyn KvNamespace> {
        let mut all = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        let ns = all
            .entry(filter.to_string())
            .or_insert_with(|| Arc::new(MemoryNamespace::new(max_entries)));
        ns.max.store(max_entries, Ordering::Relaxed);
        ns.clone()
    }
}

const SHARDS: usize = 16;

/// One namespace: sharded maps so workers rarely wait on each other.
pub struct MemoryNamespace {
    shards: Box<[Mutex<HashMap<String, Entry>>]>,
    len: AtomicUsize,
    max: AtomicUsize,
}

struct Entry {
    value: Value,
    expires: Option<Instant>,
}

enum Value {
    Bytes(Vec<u8>),
    Counter(i64),
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

impl MemoryNamespace {
    fn new(max_entries: usize) -> Self {
        MemoryNamespace {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            len: AtomicUsize::new(0),
            max: AtomicUsize::new(max_entries),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(key) as usize;
        self.shards[h % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Count one new entry: if the namespace is full, sweep every shard's expired entries
    /// first, then refuse if it still is. Called holding no shard lock.
    fn reserve(&self, now: Instant) -> Result<(), KvError> {
        let max = self.max.load(Ordering::Relaxed);
        if self.len.load(Ordering::Relaxed) >= max {
            for shard in self.shards.iter() {
                let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                let before = shard.len();
                shard.retain(|_, e| e.live(now));
                self.len.fetch_sub(before - shard.len(), Ordering::Relaxed);
            }
            if self.len.load(Ordering::Relaxed) >= max {
                return Err(KvError::Full(max));
            }
        }
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Insert a new entry (after [`reserve`](Self::reserve)); if another thread inserted
    /// the key meanwhile, it is replaced and the reservation given back.
    fn insert_new(&self, key: &str, entry: Entry) {
        if self.shard(key).insert(key.to_string(), entry).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.len() > MAX_KEY {
        return Err(KvError::TooLarge(format!(
            "keys are at most {MAX_KEY} bytes"
        )));
    }
    Ok(())
}

impl KvNamespace for MemoryNamespace {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let shard = self.shard(key);
        let e = shard.get(key).filter(|e| e.live(now))?;
        Some(match &e.value {
            Value::Bytes(b) => b.clone(),
            Value::Counter(n) => n.to_string().into_bytes(),
        })
    }

    fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), KvError> {
        check_key(key)?;
        if value.len() > MAX_VALUE {
            return Err(KvError::TooLarge(format!(
                "values are at most {MAX_VALUE} bytes"
            )));
        }
        let now = Instant::now();
        let entry = Entry {
            value: Value::Bytes(value),
            expires: ttl.map(|t| now + t),
        };
        if let Some(e) = self.shard(key).get_mut(key) {
            *e = entry;
            return Ok(());
        }
        self.reserve(now)?;
        self.insert_new(key, entry);
        Ok(())
    }

    fn delete(&self, key: &str) {
        if self.shard(key).remove(key).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn incr(&self, key: &str, delta: i64, window: Option<Duration>) -> Result<i64, KvError> {
        check_key(key)?;
        let now = Instant::now();
        let fresh = || Entry {
            value: Value::Counter(delta),
            expires: window.map(|w| now + w),
        };
        {
            let mut shard = self.shard(key);
            match shard.get_mut(key) {
                Some(e) if e.live(now) => {
                    return match &mut e.value {
                        Value::Counter(n) => {
                            *n = n.saturating_add(delta);
                            Ok(*n)
                        }
                        Value::Bytes(_) => Err(KvError::NotACounter(key.to_string())),
                    }
                }
                // Expired: the window (or TTL) is over; start again.
                Some(e) => {
                    *e = fresh();
                    return Ok(delta);
                }
                None => {}
            }
        }
        self.reserve(now)?;
        self.insert_new(key, fresh());
        Ok(delta)
    }

    fn entries(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

fn ms(v: Option<u64>) -> Option<Duration> {
    v.map(Duration::from_millis)
}

impl kv::Host for FilterState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.services.kv.get(&key))
    }

    fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(self
            .services
            .kv
            .set(&key, value, ms(ttl_ms))
            .map_err(|e| e.to_string()))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.services.kv.delete(&key);
        Ok(())
    }

    fn incr(
        &mut self,
        key: String,
        delta: i64,
        window_ms: Option<u64>,
    ) -> wasmtime::Result<Result<i64, String>> {
        Ok(self
            .services
            .kv
            .incr(&key, delta, ms(window_ms))
            .map_err(|e| e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_separate_and_survive_lookup_again() {
        let kv = MemoryKv::default();
        let a = kv.namespace("a", 10);
        a.set("k", b"1".to_vec(), None).unwrap();
        assert_eq!(kv.namespace("b", 10).get("k"), None);
        assert_eq!(kv.namespace("a", 10).get("k"), Some(b"1".to_vec()));
    }

    #[test]
    fn ttl_expires_values() {
        let ns = MemoryNamespace::new(10);
        ns.set("k", b"v".to_vec(), Some(Duration::from_millis(20)))
            .unwrap();
        assert_eq!(ns.get("k"), Some(b"v".to_vec()));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ns.get("k"), None);
    }

    #[test]
    fn counters_count_within_a_window_then_restart() {
        let ns = MemoryNamespace::new(10);
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
    fn bounded_with_expired_entries_swept_to_make_room() {
        let ns = MemoryNamespace::new(2);
        ns.set("a", vec![], Some(Duration::from_millis(10)))
            .unwrap();
        ns.set("b", vec![], None).unwrap();
        assert_eq!(ns.set("c", vec![], None), Err(KvError::Full(2)));
        // Updating an existing key needs no room.
        ns.set("b", b"2".to_vec(), None).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // "a" has expired: it is swept to make room, wherever its shard.
        ns.set("c", vec![], None).unwrap();
        assert_eq!(ns.entries(), 2);
        assert_eq!(ns.incr("d", 1, None), Err(KvError::Full(2)));
        ns.delete("b");
        assert_eq!(ns.incr("d", 1, None), Ok(1));
        assert!(ns.set(&"k".repeat(MAX_KEY + 1), vec![], None).is_err());
    }
}
