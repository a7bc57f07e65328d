//! The filter's shared key/value store: shared by all its instances on every worker, private
//! to the filter, kept across reloads, bounded by the manifest's `store-max-entries`.
//! Counters with a window make fixed-window rate limits:
//!
//! ```
//! use std::time::Duration;
//! let hits = weir_sdk::kv::incr("client:10.0.0.1", 1, Some(Duration::from_secs(60))).unwrap();
//! assert_eq!(hits, 1);
//! ```
//!
//! In native tests the store is an in-memory map per thread ([`crate::testing::reset_kv`]).

use crate::Error;
use std::time::Duration;

fn millis(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The value at `key`, unless absent or expired (counters read as decimal text).
pub fn get(key: &str) -> Option<Vec<u8>> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::weir::filter::kv::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::kv_double::get(key)
}

/// Store `value` at `key`, expiring after `ttl` if given. Fails when the store is full.
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::weir::filter::kv::set(key, value, millis(ttl)).map_err(Error);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::kv_double::set(key, value, millis(ttl)).map_err(Error)
}

/// Remove `key`.
pub fn delete(key: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::filter::kv::delete(key);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::kv_double::delete(key)
}

/// Add `delta` to the counter at `key` (absent or expired: 0) and return the new value. A
/// new counter expires `window` after it was created.
pub fn incr(key: &str, delta: i64, window: Option<Duration>) -> Result<i64, Error> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::weir::filter::kv::incr(key, delta, millis(window)).map_err(Error);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::kv_double::incr(key, delta, millis(window)).map_err(Error)
}
