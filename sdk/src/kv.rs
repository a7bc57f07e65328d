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
//! The manifest decides where the store is: in the proxy (the default), or on Redis shared by
//! every Weir node (`store = { backend = "redis", ... }`), where a counter or a lock-out
//! written through one node is seen by all. While Redis is down the filter's
//! `on-store-failure` applies: `"local"` (this node's store meanwhile), `"fail-open"` (`get`
//! finds nothing, writes fail) or `"fail-closed"` (the request is answered 503).
//!
//! In native tests the store is an in-memory map per thread ([`crate::testing::reset_kv`]);
//! [`crate::testing::set_store_unavailable`] plays a shared store that is down.

use crate::Error;
use std::time::Duration;

fn millis(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The value at `key`, unless absent or expired (counters read as decimal text).
///
/// ```
/// use weir_sdk::{kv, testing};
/// testing::reset_kv();
/// assert_eq!(kv::get("banned:203.0.113.7"), None);
/// kv::set("banned:203.0.113.7", b"1", None).unwrap();
/// assert_eq!(kv::get("banned:203.0.113.7").as_deref(), Some(&b"1"[..]));
/// ```
pub fn get(key: &str) -> Option<Vec<u8>> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::weir::filter::kv::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::kv_double::get(key)
}

/// Store `value` at `key`, expiring after `ttl` if given. Fails when the store is full.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{kv, testing};
/// testing::reset_kv();
/// testing::freeze_clock();
/// kv::set("session:ab12", b"ada", Some(Duration::from_secs(300))).unwrap();
/// testing::advance_clock(Duration::from_secs(301));
/// assert_eq!(kv::get("session:ab12"), None); // expired
/// ```
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::weir::filter::kv::set(key, value, millis(ttl)).map_err(Error);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::kv_double::set(key, value, millis(ttl)).map_err(Error)
}

/// Remove `key`.
///
/// ```
/// use weir_sdk::{kv, testing};
/// testing::reset_kv();
/// kv::set("k", b"v", None).unwrap();
/// kv::delete("k");
/// assert_eq!(kv::get("k"), None);
/// ```
pub fn delete(key: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::filter::kv::delete(key);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::kv_double::delete(key)
}

/// Add `delta` to the counter at `key` (absent or expired: 0) and return the new value. A
/// new counter expires `window` after it was created.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{kv, testing};
/// testing::reset_kv();
/// assert_eq!(kv::incr("logins:ada", 1, Some(Duration::from_secs(60))).unwrap(), 1);
/// assert_eq!(kv::incr("logins:ada", 1, Some(Duration::from_secs(60))).unwrap(), 2);
/// assert_eq!(kv::get("logins:ada").as_deref(), Some(&b"2"[..]));
/// ```
pub fn incr(key: &str, delta: i64, window: Option<Duration>) -> Result<i64, Error> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::weir::filter::kv::incr(key, delta, millis(window)).map_err(Error);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::kv_double::incr(key, delta, millis(window)).map_err(Error)
}

/// What [`incr_window`] counted.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{kv, testing};
/// testing::reset_kv();
/// let c: kv::Counted = kv::incr_window("k", 5, Duration::from_secs(1)).unwrap();
/// assert_eq!(c.value, 5);
/// assert!(c.reset <= Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// The counter's new value.
    pub value: i64,
    /// Time until its window ends and it starts again from zero (`Duration::MAX` for a
    /// counter made by [`incr`] without a window).
    pub reset: Duration,
}

/// [`incr`] with a window, also saying when the window ends: what a rate limit needs for
/// `Retry-After`. (Needs a host of WIT 0.2.2 or later.)
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{kv, testing};
///
/// testing::reset_kv();
/// testing::freeze_clock();
/// let c = kv::incr_window("hits", 1, Duration::from_secs(60)).unwrap();
/// assert_eq!((c.value, c.reset), (1, Duration::from_secs(60)));
/// testing::advance_clock(Duration::from_secs(15));
/// let c = kv::incr_window("hits", 1, Duration::from_secs(60)).unwrap();
/// assert_eq!((c.value, c.reset), (2, Duration::from_secs(45)));
/// ```
pub fn incr_window(key: &str, delta: i64, window: Duration) -> Result<Counted, Error> {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    #[cfg(target_arch = "wasm32")]
    let counted = crate::bindings::weir::filter::kv::incr_window(key, delta, window_ms)
        .map(|c| (c.value, c.reset_ms))
        .map_err(Error)?;
    #[cfg(not(target_arch = "wasm32"))]
    let counted = crate::testing::kv_double::incr_window(key, delta, window_ms).map_err(Error)?;
    let (value, reset_ms) = counted;
    let reset = match reset_ms {
        u64::MAX => Duration::MAX,
        ms => Duration::from_millis(ms),
    };
    Ok(Counted { value, reset })
}
