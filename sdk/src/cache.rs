//! Caching and compression decisions for the request being filtered (WIT 0.2.4), on routes
//! with a `cache` (and `compress`) setting: bypass the cache or add to the key in
//! `on_request`; refuse storage, give a TTL, stale windows or tags, or switch compression
//! off, in either hook. Elsewhere they are recorded and change nothing.
//!
//! ```
//! use weir_sdk::{cache, testing};
//! testing::reset_cache_decisions();
//! cache::add_to_key("tenant-7").unwrap();
//! cache::set_ttl(std::time::Duration::from_secs(300));
//! cache::add_tag("catalog").unwrap();
//! let made = testing::cache_decisions();
//! assert_eq!(made.key_parts, ["tenant-7"]);
//! assert_eq!(made.ttl, Some(300));
//! assert!(!made.bypass);
//! ```
//!
//! Natively, decisions are recorded per thread: read them with
//! [`crate::testing::cache_decisions`].

use std::time::Duration;

/// Most parts a request's filters may add to its key.
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// for i in 0..cache::MAX_KEY_PARTS {
///     cache::add_to_key(&format!("part-{i}")).unwrap();
/// }
/// assert!(cache::add_to_key("one-more").is_err());
/// ```
pub const MAX_KEY_PARTS: usize = 8;
/// Most tags a response may get.
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// for i in 0..cache::MAX_TAGS {
///     cache::add_tag(&format!("t{i}")).unwrap();
/// }
/// assert!(cache::add_tag("t-extra").is_err());
/// ```
pub const MAX_TAGS: usize = 32;
/// Longest key part or tag, in bytes.
///
/// ```
/// use weir_sdk::cache;
/// assert!(cache::add_tag(&"x".repeat(cache::MAX_PART + 1)).is_err());
/// ```
pub const MAX_PART: usize = 256;

/// What the filters of a request decided (as the native double records it).
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::set_stale(std::time::Duration::from_secs(30), std::time::Duration::from_secs(3600));
/// assert_eq!(testing::cache_decisions().stale, Some((30, 3600)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    /// [`bypass`] was called.
    pub bypass: bool,
    /// [`add_to_key`] parts, in order.
    pub key_parts: Vec<String>,
    /// [`uncacheable`] was called.
    pub uncacheable: bool,
    /// [`set_ttl`], in seconds.
    pub ttl: Option<u32>,
    /// [`set_stale`]: (while-revalidate, if-error) seconds.
    pub stale: Option<(u32, u32)>,
    /// [`add_tag`] tags.
    pub tags: Vec<String>,
    /// [`no_compress`] was called.
    pub no_compress: bool,
}

/// Neither serve this request from the cache nor store its response (call in `on_request`).
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::bypass();
/// assert!(testing::cache_decisions().bypass);
/// ```
pub fn bypass() {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::filter::cache::bypass();
    #[cfg(not(target_arch = "wasm32"))]
    double::with(|d| d.bypass = true);
}

/// Add `part` to this request's cache key (call in `on_request`): responses are stored and
/// found per value. Fails over [`MAX_PART`] bytes or beyond [`MAX_KEY_PARTS`] parts.
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::add_to_key("plan=pro").unwrap();
/// cache::add_to_key("plan=pro").unwrap(); // the same part once
/// assert_eq!(testing::cache_decisions().key_parts, ["plan=pro"]);
/// ```
pub fn add_to_key(part: &str) -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::weir::filter::cache::add_to_key(part)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        double::with(|d| bounded(&mut d.key_parts, part, MAX_KEY_PARTS, "key parts"))
    }
}

/// Do not store this response.
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::uncacheable();
/// assert!(testing::cache_decisions().uncacheable);
/// ```
pub fn uncacheable() {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::filter::cache::uncacheable();
    #[cfg(not(target_arch = "wasm32"))]
    double::with(|d| d.uncacheable = true);
}

/// Store this response as fresh for `ttl` (whole seconds, at most `u32::MAX`) from now,
/// whatever its headers say. Responses the cache refuses (`no-store`, `private`, a cookie,
/// `Vary: *`) stay refused.
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::set_ttl(std::time::Duration::from_secs(90));
/// assert_eq!(testing::cache_decisions().ttl, Some(90));
/// ```
pub fn set_ttl(ttl: Duration) {
    let secs = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX);
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::filter::cache::set_ttl(secs);
    #[cfg(not(target_arch = "wasm32"))]
    double::with(|d| d.ttl = Some(secs));
}

/// Serve this response stale for up to `while_revalidate` while a refresh runs, and up to
/// `if_error` when the origin fails.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::set_stale(Duration::from_secs(10), Duration::ZERO);
/// assert_eq!(testing::cache_decisions().stale, Some((10, 0)));
/// ```
pub fn set_stale(while_revalidate: Duration, if_error: Duration) {
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let (swr, sie) = (secs(while_revalidate), secs(if_error));
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::filter::cache::set_stale(swr, sie);
    #[cfg(not(target_arch = "wasm32"))]
    double::with(|d| d.stale = Some((swr, sie)));
}

/// Tag the stored response, for purges by tag (`POST /cache/purge?tag=`). Fails on an empty
/// tag, one with spaces or commas, over [`MAX_PART`] bytes, or beyond [`MAX_TAGS`].
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::add_tag("product-42").unwrap();
/// assert!(cache::add_tag("two words").is_err());
/// assert_eq!(testing::cache_decisions().tags, ["product-42"]);
/// ```
pub fn add_tag(tag: &str) -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::weir::filter::cache::add_tag(tag)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        if tag.is_empty() || tag.contains([' ', ',']) {
            return Err("a tag is non-empty, without spaces or commas".into());
        }
        double::with(|d| bounded(&mut d.tags, tag, MAX_TAGS, "tags"))
    }
}

/// Do not compress this response (a page with secrets next to attacker-chosen text: BREACH).
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::no_compress();
/// assert!(testing::cache_decisions().no_compress);
/// ```
pub fn no_compress() {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::filter::cache::no_compress();
    #[cfg(not(target_arch = "wasm32"))]
    double::with(|d| d.no_compress = true);
}

#[cfg(not(target_arch = "wasm32"))]
fn bounded(list: &mut Vec<String>, item: &str, most: usize, what: &str) -> Result<(), String> {
    if item.len() > MAX_PART {
        return Err(format!("{what} are at most {MAX_PART} bytes"));
    }
    if list.iter().any(|i| i == item) {
        return Ok(());
    }
    if list.len() >= most {
        return Err(format!("at most {most} {what} per request"));
    }
    list.push(item.to_string());
    Ok(())
}

/// The decisions native tests made, per thread.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) mod double {
    use super::Decisions;
    use std::cell::RefCell;

    thread_local! {
        static MADE: RefCell<Decisions> = RefCell::new(Decisions::default());
    }

    pub fn with<T>(f: impl FnOnce(&mut Decisions) -> T) -> T {
        MADE.with(|m| f(&mut m.borrow_mut()))
    }

    pub fn take() -> Decisions {
        MADE.with(|m| m.borrow().clone())
    }

    pub fn reset() {
        MADE.with(|m| *m.borrow_mut() = Decisions::default());
    }
}
