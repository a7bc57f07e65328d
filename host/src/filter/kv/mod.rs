//! The filters' shared key/value store: a backend trait (so a networked store can be added
//! later) and the host side of the `kv` import; the in-memory backend is [`memory`].
//!
//! Each filter gets its own namespace, named after its manifest entry: instances on every
//! worker share it, other filters never see it, it survives reloads of the filter, and it is
//! freed once no loaded filter of that name is left.

pub mod memory;

pub use memory::MemoryKv;

use super::bindings::weir::filter::kv;
use super::host::FilterState;
use std::sync::Arc;
use std::time::Duration;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 1 << 20;

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The entry alone is larger than the namespace's byte bound.
    #[error("the entry ({0} bytes) is larger than the store ({1} bytes, store-max-bytes)")]
    Full(usize, usize),
    /// The key or value is too large.
    #[error("{0}")]
    TooLarge(String),
    /// `incr` on a key holding bytes.
    #[error("key {0:?} holds a value, not a counter")]
    NotACounter(String),
}

/// How large a namespace may grow; beyond, its oldest entries are evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvBounds {
    /// Most entries.
    pub max_entries: usize,
    /// Most bytes: keys, values and a fixed overhead per entry.
    pub max_bytes: usize,
}

/// Where namespaces live.
pub trait KvBackend: Send + Sync {
    /// Filter `filter`'s namespace, created on first use; `bounds` bound it (a reload may
    /// change them). It lives as long as a returned handle does.
    fn namespace(&self, filter: &str, bounds: KvBounds) -> Arc<dyn KvNamespace>;
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
    /// [`KvNamespace::incr`] with a window: the new value and the time left in the window.
    fn incr_window(
        &self,
        key: &str,
        delta: i64,
        window: Duration,
    ) -> Result<(i64, Duration), KvError>;
    /// Entries held (live, or expired and not yet evicted).
    fn entries(&self) -> usize;
    /// Bytes held, as counted against `max_bytes`.
    fn bytes(&self) -> usize;
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

    fn incr_window(
        &mut self,
        key: String,
        delta: i64,
        window_ms: u64,
    ) -> wasmtime::Result<Result<kv::Counted, String>> {
        Ok(self
            .services
            .kv
            .incr_window(&key, delta, Duration::from_millis(window_ms))
            .map(|(value, left)| kv::Counted {
                value,
                reset_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
            })
            .map_err(|e| e.to_string()))
    }
}
