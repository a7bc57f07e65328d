//! The host services' doubles: metrics, the clock, the key/value store and rate limits,
//! geo locations, outbound HTTP, random bytes and cache decisions, each per thread.

use crate::http_client::{HttpRequest, HttpResponse};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// The filter's own metrics recorded on this thread since the last call:
/// `(counters, histogram values)`.
///
/// ```
/// weir_sdk::metrics::counter_add("hits", 1);
/// let (counters, histograms) = weir_sdk::testing::take_metrics();
/// assert_eq!(counters["hits"], 1);
/// assert!(histograms.is_empty());
/// ```
pub fn take_metrics() -> (BTreeMap<String, u64>, BTreeMap<String, Vec<f64>>) {
    METRICS.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

type Metrics = (BTreeMap<String, u64>, BTreeMap<String, Vec<f64>>);

thread_local! {
    static METRICS: RefCell<Metrics> = const { RefCell::new((BTreeMap::new(), BTreeMap::new())) };
    static KV: RefCell<BTreeMap<String, (kv_double::Value, Option<Instant>)>> =
        const { RefCell::new(BTreeMap::new()) };
    static HTTP: RefCell<Option<HttpHandler>> = const { RefCell::new(None) };
    static CLOCK: Cell<(Option<(Instant, SystemTime)>, Duration)> =
        const { Cell::new((None, Duration::ZERO)) };
}

/// Stop this thread's [`crate::clock`] where it is: it moves only by [`advance_clock`].
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{clock, testing};
/// testing::freeze_clock();
/// let t0 = clock::now();
/// assert_eq!(clock::now(), t0); // frozen
/// testing::advance_clock(Duration::from_millis(5));
/// assert_eq!(clock::now() - t0, Duration::from_millis(5));
/// ```
pub fn freeze_clock() {
    CLOCK.with(|c| {
        let (frozen, offset) = c.get();
        if frozen.is_none() {
            c.set((Some((Instant::now(), SystemTime::now())), offset));
        }
    });
}

/// Move this thread's [`crate::clock`] (and the key/value double's TTLs) forward by `by`.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{kv, testing};
/// testing::reset_kv();
/// testing::freeze_clock();
/// kv::set("k", b"v", Some(Duration::from_secs(10))).unwrap();
/// testing::advance_clock(Duration::from_secs(10));
/// assert_eq!(kv::get("k"), None);
/// ```
pub fn advance_clock(by: Duration) {
    CLOCK.with(|c| {
        let (frozen, offset) = c.get();
        c.set((frozen, offset.saturating_add(by)));
    });
}

/// Back to the real clock.
///
/// ```
/// use std::time::Duration;
/// weir_sdk::testing::freeze_clock();
/// weir_sdk::testing::advance_clock(Duration::from_secs(3600));
/// weir_sdk::testing::reset_clock(); // real time again, no offset
/// ```
pub fn reset_clock() {
    CLOCK.with(|c| c.set((None, Duration::ZERO)));
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn clock_state() -> (Option<Instant>, Option<SystemTime>, Duration) {
    CLOCK.with(|c| {
        let (frozen, offset) = c.get();
        (frozen.map(|f| f.0), frozen.map(|f| f.1), offset)
    })
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn record_metric(name: &str, value: f64, counter: bool) {
    METRICS.with(|m| {
        let mut m = m.borrow_mut();
        if counter {
            *m.0.entry(name.to_owned()).or_default() += value as u64;
        } else {
            m.1.entry(name.to_owned()).or_default().push(value);
        }
    });
}

/// Empty this thread's key/value store double.
///
/// ```
/// weir_sdk::kv::set("left-over", b"1", None).unwrap();
/// weir_sdk::testing::reset_kv();
/// assert_eq!(weir_sdk::kv::get("left-over"), None);
/// ```
pub fn reset_kv() {
    KV.with(|kv| kv.borrow_mut().clear());
}

/// Forget every key of this thread's rate-limit double ([`crate::rate_limit`]).
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::rate_limit::{self, Quota};
/// let q = Quota::per(1, Duration::from_secs(3600));
/// weir_sdk::testing::reset_rate_limits();
/// assert!(rate_limit::check("k", q, 1).unwrap().allowed);
/// assert!(!rate_limit::check("k", q, 1).unwrap().allowed);
/// weir_sdk::testing::reset_rate_limits();
/// assert!(rate_limit::check("k", q, 1).unwrap().allowed);
/// ```
pub fn reset_rate_limits() {
    crate::rate_limit::double::reset();
}

thread_local! {
    static STORE_DOWN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What the host answers while a shared store is down and the filter's
/// `on-store-failure` is `"fail-open"`.
///
/// ```
/// use weir_sdk::{kv, testing};
/// testing::set_store_unavailable(true);
/// let err = kv::incr("k", 1, None).unwrap_err();
/// assert_eq!(err.to_string(), testing::STORE_UNAVAILABLE);
/// testing::set_store_unavailable(false);
/// ```
pub const STORE_UNAVAILABLE: &str =
    "the shared store is unavailable: connection refused (test double)";

/// Make this thread's shared store unreachable (`true`) or reachable again, as a filter with
/// `on-store-failure = "fail-open"` sees it: `kv::get` finds nothing, writes and
/// `rate_limit::check` fail with [`STORE_UNAVAILABLE`], `kv::delete` does nothing.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::{kv, rate_limit::{self, Quota}, testing};
/// testing::reset_kv();
/// kv::set("k", b"v", None).unwrap();
/// testing::set_store_unavailable(true);
/// assert_eq!(kv::get("k"), None);
/// assert!(kv::set("k", b"w", None).is_err());
/// assert!(rate_limit::check("ip", Quota::per(1, Duration::from_secs(1)), 1).is_err());
/// testing::set_store_unavailable(false);
/// assert_eq!(kv::get("k").as_deref(), Some(&b"v"[..]));
/// ```
pub fn set_store_unavailable(down: bool) {
    STORE_DOWN.with(|d| d.set(down));
}

/// Whether [`set_store_unavailable`] made the store unreachable on this thread.
pub(crate) fn store_down() -> bool {
    STORE_DOWN.with(|d| d.get())
}

/// Place the addresses of `cidr` (`"81.2.69.0/24"`, `"2001:db8::/32"` or one address) at
/// `location` for [`crate::geo::lookup`] on this thread; the most specific network wins.
///
/// ```
/// use weir_sdk::{geo, testing};
/// testing::reset_geo();
/// testing::locate("10.0.0.0/8", geo::Location::country("NL", "EU"));
/// testing::locate("10.1.0.0/16", geo::Location::country("BE", "EU"));
/// assert_eq!(geo::lookup("10.1.2.3").unwrap().country.as_deref(), Some("BE"));
/// assert_eq!(geo::lookup("10.2.0.1").unwrap().country.as_deref(), Some("NL"));
/// assert_eq!(geo::lookup("::ffff:10.2.0.1").unwrap().country.as_deref(), Some("NL"));
/// ```
pub fn locate(cidr: &str, location: crate::geo::Location) {
    crate::geo::double::place(cidr, location);
}

/// Forget every network given to [`locate`] on this thread.
///
/// ```
/// use weir_sdk::{geo, testing};
/// testing::locate("192.0.2.1", geo::Location::country("FR", "EU"));
/// testing::reset_geo();
/// assert_eq!(geo::lookup("192.0.2.1"), None);
/// ```
pub fn reset_geo() {
    crate::geo::double::reset();
}

/// The key/value store double: the host's semantics (TTL, windowed counters) in a map.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) mod kv_double {
    use super::KV;
    use crate::clock;
    use std::time::{Duration, Instant};

    #[derive(Debug, Clone)]
    pub enum Value {
        Bytes(Vec<u8>),
        Counter(i64),
    }

    fn deadline(ms: Option<u64>) -> Option<Instant> {
        ms.map(|ms| clock::now() + Duration::from_millis(ms))
    }

    fn live(expires: &Option<Instant>) -> bool {
        expires.is_none_or(|e| e > clock::now())
    }

    pub fn get(key: &str) -> Option<Vec<u8>> {
        if super::store_down() {
            return None;
        }
        KV.with(|kv| match kv.borrow().get(key) {
            Some((Value::Bytes(b), e)) if live(e) => Some(b.clone()),
            Some((Value::Counter(n), e)) if live(e) => Some(n.to_string().into_bytes()),
            _ => None,
        })
    }

    pub fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), String> {
        if super::store_down() {
            return Err(super::STORE_UNAVAILABLE.to_string());
        }
        KV.with(|kv| {
            kv.borrow_mut().insert(
                key.to_owned(),
                (Value::Bytes(value.to_vec()), deadline(ttl_ms)),
            )
        });
        Ok(())
    }

    pub fn delete(key: &str) {
        if super::store_down() {
            return;
        }
        KV.with(|kv| kv.borrow_mut().remove(key));
    }

    pub fn incr_window(key: &str, delta: i64, window_ms: u64) -> Result<(i64, u64), String> {
        let value = incr(key, delta, Some(window_ms))?;
        let left = KV.with(|kv| match kv.borrow().get(key) {
            Some((_, Some(expires))) => {
                u64::try_from(expires.saturating_duration_since(clock::now()).as_millis())
                    .unwrap_or(u64::MAX)
            }
            _ => u64::MAX,
        });
        Ok((value, left))
    }

    pub fn incr(key: &str, delta: i64, window_ms: Option<u64>) -> Result<i64, String> {
        if super::store_down() {
            return Err(super::STORE_UNAVAILABLE.to_string());
        }
        KV.with(|kv| {
            let mut kv = kv.borrow_mut();
            match kv.get_mut(key) {
                Some((Value::Counter(n), e)) if live(e) => {
                    *n = n.saturating_add(delta);
                    Ok(*n)
                }
                Some((Value::Bytes(_), e)) if live(e) => {
                    Err(format!("key {key:?} holds a value, not a counter"))
                }
                _ => {
                    kv.insert(key.to_owned(), (Value::Counter(delta), deadline(window_ms)));
                    Ok(delta)
                }
            }
        })
    }
}

type HttpHandler = Box<dyn FnMut(&HttpRequest) -> Result<HttpResponse, String>>;

/// Answer this thread's outbound HTTP requests with `handler` (an `Err` is a refused or
/// failed request, as the proxy would report it).
///
/// ```
/// use weir_sdk::http_client::{HttpRequest, HttpResponse};
/// weir_sdk::testing::mock_http(|req| match req.url.as_str() {
///     "http://auth.internal/ok" => Ok(HttpResponse::new(200)),
///     _ => Ok(HttpResponse::new(403)),
/// });
/// assert_eq!(HttpRequest::get("http://auth.internal/ok").send().unwrap().status, 200);
/// assert_eq!(HttpRequest::get("http://auth.internal/no").send().unwrap().status, 403);
/// ```
pub fn mock_http(handler: impl FnMut(&HttpRequest) -> Result<HttpResponse, String> + 'static) {
    HTTP.with(|h| *h.borrow_mut() = Some(Box::new(handler)));
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn http_double(req: &HttpRequest) -> Result<HttpResponse, String> {
    HTTP.with(|h| match h.borrow_mut().as_mut() {
        Some(handler) => handler(req),
        None => Err(format!(
            "no mock HTTP handler on this thread for {} {} (see testing::mock_http)",
            req.method, req.url
        )),
    })
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    (0..len.div_ceil(8))
        .flat_map(|i| state.hash_one(i).to_le_bytes())
        .take(len)
        .collect()
}

/// The caching decisions this thread's filter code made (see [`crate::cache`]).
///
/// ```
/// use weir_sdk::{cache, testing};
/// testing::reset_cache_decisions();
/// cache::bypass();
/// assert!(testing::cache_decisions().bypass);
/// ```
pub fn cache_decisions() -> crate::cache::Decisions {
    crate::cache::double::take()
}

/// Forget this thread's caching decisions (between tests of one thread).
///
/// ```
/// use weir_sdk::{cache, testing};
/// cache::no_compress();
/// testing::reset_cache_decisions();
/// assert!(!testing::cache_decisions().no_compress);
/// ```
pub fn reset_cache_decisions() {
    crate::cache::double::reset();
}
