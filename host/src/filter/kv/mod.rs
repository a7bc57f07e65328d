//! The filters' shared key/value store: the node-local backend trait and the host side of
//! the `kv` import, which answers from the filter's shared store (Redis, `crate::store`)
//! when it has one and from the node-local one ([`memory`]) otherwise or as its fallback.
//!
//! Each filter gets its own namespace, named after its manifest entry: instances on every
//! worker share it, other filters never see it, it survives reloads of the filter, and it is
//! freed once no loaded filter of that name is left.

pub mod memory;

pub use memory::MemoryKv;

use super::bindings::sync::weir::filter::kv as sync_kv;
use super::bindings::weir::filter::kv;
use super::host::FilterState;
use super::shared::{Shared, SharedStore};
use crate::store::redis::kv::Counted;
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

/// Refuse a key or value no entry may have, in any backend.
pub fn check_sizes(key: &str, value_len: usize) -> Result<(), KvError> {
    if key.len() > MAX_KEY {
        return Err(KvError::TooLarge(format!(
            "keys are at most {MAX_KEY} bytes"
        )));
    }
    if value_len > MAX_VALUE {
        return Err(KvError::TooLarge(format!(
            "values are at most {MAX_VALUE} bytes"
        )));
    }
    Ok(())
}

fn ms(v: Option<u64>) -> Option<Duration> {
    v.map(Duration::from_millis)
}

fn ms_left(left: Duration) -> u64 {
    u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
}

/// The node-local store's answers, for filters without a shared store (called synchronously)
/// and as the fallback of those with one.
impl FilterState {
    fn local_get(&self, key: &str) -> Option<Vec<u8>> {
        self.services.kv.get(key)
    }

    fn local_set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), String> {
        self.services
            .kv
            .set(key, value, ttl)
            .map_err(|e| e.to_string())
    }

    fn local_incr(&self, key: &str, delta: i64, window: Option<Duration>) -> Result<i64, String> {
        self.services
            .kv
            .incr(key, delta, window)
            .map_err(|e| e.to_string())
    }

    fn local_incr_window(
        &self,
        key: &str,
        delta: i64,
        window: Duration,
    ) -> Result<(i64, u64), String> {
        self.services
            .kv
            .incr_window(key, delta, window)
            .map(|(value, left)| (value, ms_left(left)))
            .map_err(|e| e.to_string())
    }

    /// Increment on the shared store, else per the policy.
    async fn shared_incr(
        &mut self,
        shared: &SharedStore,
        key: &str,
        delta: i64,
        window: Option<Duration>,
    ) -> wasmtime::Result<Result<(i64, u64), String>> {
        if let Err(e) = check_sizes(key, 8) {
            return Ok(Err(e.to_string()));
        }
        let name = self.services.name.clone();
        let counted = self
            .on_shared(shared, async |r, budget| {
                r.kv_incr(&name, key, delta, window, budget).await
            })
            .await?;
        Ok(match counted {
            Shared::Answered(Counted::Value(v, left)) => Ok((v, left.map_or(u64::MAX, ms_left))),
            Shared::Answered(Counted::NotACounter) => {
                Err(KvError::NotACounter(key.to_string()).to_string())
            }
            Shared::Local => match window {
                Some(w) => self.local_incr_window(key, delta, w),
                None => self.local_incr(key, delta, None).map(|v| (v, u64::MAX)),
            },
            Shared::Failed(why) => Err(why),
        })
    }
}

impl kv::Host for FilterState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        let Some(shared) = self.shared_store() else {
            return Ok(self.local_get(&key));
        };
        if check_sizes(&key, 0).is_err() {
            return Ok(None);
        }
        let name = self.services.name.clone();
        let got = self
            .on_shared(&shared, async |r, budget| {
                r.kv_get(&name, &key, budget).await
            })
            .await?;
        Ok(match got {
            Shared::Answered(v) => v,
            Shared::Local => self.local_get(&key),
            Shared::Failed(_) => None,
        })
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), String>> {
        let Some(shared) = self.shared_store() else {
            return Ok(self.local_set(&key, value, ms(ttl_ms)));
        };
        if let Err(e) = check_sizes(&key, value.len()) {
            return Ok(Err(e.to_string()));
        }
        let name = self.services.name.clone();
        let set = self
            .on_shared(&shared, async |r, budget| {
                r.kv_set(&name, &key, &value, ms(ttl_ms), budget).await
            })
            .await?;
        Ok(match set {
            Shared::Answered(()) => Ok(()),
            Shared::Local => self.local_set(&key, value, ms(ttl_ms)),
            Shared::Failed(why) => Err(why),
        })
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        let Some(shared) = self.shared_store() else {
            self.services.kv.delete(&key);
            return Ok(());
        };
        let name = self.services.name.clone();
        let deleted = self
            .on_shared(&shared, async |r, budget| {
                r.kv_delete(&name, &key, budget).await
            })
            .await?;
        if let Shared::Local = deleted {
            self.services.kv.delete(&key);
        }
        Ok(())
    }

    async fn incr(
        &mut self,
        key: String,
        delta: i64,
        window_ms: Option<u64>,
    ) -> wasmtime::Result<Result<i64, String>> {
        let Some(shared) = self.shared_store() else {
            return Ok(self.local_incr(&key, delta, ms(window_ms)));
        };
        let counted = self
            .shared_incr(&shared, &key, delta, ms(window_ms))
            .await?;
        Ok(counted.map(|(v, _)| v))
    }

    async fn incr_window(
        &mut self,
        key: String,
        delta: i64,
        window_ms: u64,
    ) -> wasmtime::Result<Result<kv::Counted, String>> {
        let window = Duration::from_millis(window_ms);
        let counted = match self.shared_store() {
            None => self.local_incr_window(&key, delta, window),
            Some(shared) => self.shared_incr(&shared, &key, delta, Some(window)).await?,
        };
        Ok(counted.map(|(value, reset_ms)| kv::Counted { value, reset_ms }))
    }
}

/// Filters called synchronously have no shared store (see `engine`): the node-local one.
impl sync_kv::Host for FilterState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.no_shared_store()?;
        Ok(self.local_get(&key))
    }

    fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), String>> {
        self.no_shared_store()?;
        Ok(self.local_set(&key, value, ms(ttl_ms)))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.no_shared_store()?;
        self.services.kv.delete(&key);
        Ok(())
    }

    fn incr(
        &mut self,
        key: String,
        delta: i64,
        window_ms: Option<u64>,
    ) -> wasmtime::Result<Result<i64, String>> {
        self.no_shared_store()?;
        Ok(self.local_incr(&key, delta, ms(window_ms)))
    }

    fn incr_window(
        &mut self,
        key: String,
        delta: i64,
        window_ms: u64,
    ) -> wasmtime::Result<Result<sync_kv::Counted, String>> {
        self.no_shared_store()?;
        Ok(self
            .local_incr_window(&key, delta, Duration::from_millis(window_ms))
            .map(|(value, reset_ms)| sync_kv::Counted { value, reset_ms }))
    }
}
