//! A stored response (RFC 9111 §3): what is kept of it, its age (§4.2.3) and freshness
//! (§4.2.1), and how a `304` from revalidation updates it (§4.3.4).

use super::control::{self, Directives};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::time::{Duration, SystemTime};

/// Bytes an entry is charged beyond its fields and body (maps, times, the key's slot).
const OVERHEAD: usize = 256;

/// A new content id (see [`Stored::id`]).
pub fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A response as the cache keeps it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Which fetched body this is: kept when a `304` refreshes the entry, so a compressed
    /// copy made from it is known to match (see `encoded`).
    pub id: u64,
    /// Its status.
    pub status: StatusCode,
    /// Its header fields, without hop-by-hop ones, those `Connection` lists, and `Age`.
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Bytes,
    /// When the response came (or was last revalidated).
    pub response_time: SystemTime,
    /// Its age when it came (§4.2.3 `corrected_initial_age`).
    pub initial_age: Duration,
    /// How long it is fresh from its origin (§4.2.1).
    pub lifetime: Duration,
    /// `stale-while-revalidate` window.
    pub stale_while_revalidate: Duration,
    /// `stale-if-error` window.
    pub stale_if_error: Duration,
    /// Never served stale without revalidation (`must-revalidate`, `proxy-revalidate`,
    /// `s-maxage`).
    pub must_revalidate: bool,
    /// Revalidated before every use (`no-cache`).
    pub no_cache: bool,
    /// The request fields it was selected by (`Vary`, and the route's key headers), with
    /// the values (normalised) the request that stored it had.
    pub selecting: Vec<(HeaderName, Option<String>)>,
    /// Surrogate keys (tags) it can be purged by.
    pub tags: Vec<Box<str>>,
}

/// How the times and lifetime of a response are worked out.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// When the request was sent upstream.
    pub request_time: SystemTime,
    /// When the response head came.
    pub response_time: SystemTime,
    /// A lifetime for responses without freshness information (the operator's or a
    /// filter's; never heuristic).
    pub default_ttl: Option<Duration>,
}

impl Stored {
    /// Bytes charged to the zone for it.
    pub fn weight(&self, key: &str) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        let selecting: usize = self
            .selecting
            .iter()
            .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, String::len) + 32)
            .sum();
        (self.body.len() + headers + selecting + key.len() + OVERHEAD) as u64
    }

    /// Its current age (§4.2.3), in whole seconds as `Age` sends it.
    pub fn age(&self, now: SystemTime) -> Duration {
        let resident = now.duration_since(self.response_time).unwrap_or_default();
        self.initial_age.saturating_add(resident)
    }

    /// Seconds of freshness left: negative once stale (by how much).
    pub fn ttl(&self, now: SystemTime) -> i64 {
        let age = self.age(now).as_secs_f64();
        (self.lifetime.as_secs_f64() - age).floor() as i64
    }

    /// Whether it may be served without revalidation `now`, to a request with `req`'s
    /// directives (`max-age`, `min-fresh`, `max-stale`).
    pub fn usable(&self, req: &Directives, now: SystemTime) -> bool {
        if self.no_cache || req.no_cache {
            return false;
        }
        let age = self.age(now).as_secs();
        if req.max_age.is_some_and(|max| age > max) {
            return false;
        }
        let ttl = self.ttl(now) - req.min_fresh.map_or(0, |s| s as i64);
        if ttl > 0 || (ttl == 0 && self.lifetime.as_secs() > age) {
            return true;
        }
        // Stale: only as far as the request's `max-stale` allows, and never when the
        // response forbids it.
        match req.max_stale {
            Some(allowed) if !self.must_revalidate => {
                allowed.is_none_or(|max| (-ttl) as u64 <= max)
            }
            _ => false,
        }
    }

    /// Whether it is stale but may still be served while a refresh runs in the
    /// background.
    pub fn within_stale_while_revalidate(&self, now: SystemTime) -> bool {
        self.age(now) >= self.lifetime && self.within(self.stale_while_revalidate, now)
    }

    /// Whether it may be served stale because the origin failed.
    pub fn within_stale_if_error(&self, now: SystemTime) -> bool {
        self.within(self.stale_if_error, now)
    }

    fn within(&self, window: Duration, now: SystemTime) -> bool {
        !self.must_revalidate
            && !self.no_cache
            && self.age(now) < self.lifetime.saturating_add(window)
    }

    /// Its validators, for a conditional request upstream.
    pub fn validators(&self) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
        (
            self.headers.get(http::header::ETAG),
            self.headers.get(http::header::LAST_MODIFIED),
        )
    }

    /// The entry after a `304` (§4.3.4): its fields replaced by those the `304` has (not
    /// `Content-Length`, nor any not kept), and its times and lifetime from the result.
    pub fn refreshed(&self, not_modified: &HeaderMap, timing: Timing) -> Option<Stored> {
        let mut headers = self.headers.clone();
        let mut fresh = not_modified.clone();
        keepable(&mut fresh);
        fresh.remove(http::header::CONTENT_LENGTH);
        let mut last: Option<HeaderName> = None;
        for (name, value) in fresh {
            match name {
                Some(n) => {
                    headers.insert(n.clone(), value);
                    last = Some(n);
                }
                None => {
                    if let Some(n) = &last {
                        headers.append(n.clone(), value);
                    }
                }
            }
        }
        let mut age_source = headers.clone();
        if let Some(age) = not_modified.get(http::header::AGE) {
            age_source.insert(http::header::AGE, age.clone());
        }
        let d = Directives::of(&headers);
        let lifetime = lifetime(&headers, &d, timing)?;
        Some(Stored {
            id: self.id,
            status: self.status,
            body: self.body.clone(),
            response_time: timing.response_time,
            initial_age: initial_age(&age_source, timing),
            lifetime,
            stale_while_revalidate: secs(d.stale_while_revalidate),
            stale_if_error: secs(d.stale_if_error),
            must_revalidate: d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some(),
            no_cache: d.no_cache,
            selecting: self.selecting.clone(),
            tags: self.tags.clone(),
            headers,
        })
    }
}

/// The response's lifetime (§4.2.1, shared cache): `s-maxage`, `max-age`, `Expires` minus
/// `Date`, else `timing`'s default; `None` when it has none.
pub fn lifetime(headers: &HeaderMap, d: &Directives, timing: Timing) -> Option<Duration> {
    if let Some(s) = d.s_maxage.or(d.max_age) {
        return Some(Duration::from_secs(s));
    }
    if let Some(expires) = headers.get(http::header::EXPIRES) {
        // An invalid date (`0` among them) is a time in the past (§5.3).
        let Some(expires) = http_date(expires) else {
            return Some(Duration::ZERO);
        };
        let date = date(headers).unwrap_or(timing.response_time);
        return Some(expires.duration_since(date).unwrap_or_default());
    }
    timing.default_ttl
}

/// §4.2.3: the larger of the apparent age and the `Age` field plus the response delay.
pub fn initial_age(headers: &HeaderMap, timing: Timing) -> Duration {
    let date = date(headers).unwrap_or(timing.response_time);
    let apparent = timing
        .response_time
        .duration_since(date)
        .unwrap_or_default();
    let delay = timing
        .response_time
        .duration_since(timing.request_time)
        .unwrap_or_default();
    let corrected = Duration::from_secs(control::age(headers).unwrap_or(0)).saturating_add(delay);
    apparent.max(corrected)
}

fn date(headers: &HeaderMap) -> Option<SystemTime> {
    headers.get(http::header::DATE).and_then(http_date)
}

/// An HTTP date (any of the three formats of RFC 9110 §5.6.7).
pub fn http_date(value: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

/// Seconds of a directive, zero when absent.
pub fn secs(value: Option<u64>) -> Duration {
    Duration::from_secs(value.unwrap_or(0))
}

/// Remove what is never stored: hop-by-hop fields, those `Connection` lists, and `Age`
/// (sent as computed on each use).
pub fn keepable(headers: &mut HeaderMap) {
    crate::forward::strip_hop_by_hop(headers);
    headers.remove(http::header::AGE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn timing(req: u64, resp: u64) -> Timing {
        Timing {
            request_time: at(req),
            response_time: at(resp),
            default_ttl: None,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn date_at(s: u64) -> String {
        httpdate::fmt_http_date(at(s))
    }

    #[test]
    fn lifetime_prefers_s_maxage_then_max_age_then_expires() {
        let t = timing(0, 0);
        let h = headers(&[("cache-control", "max-age=10, s-maxage=20")]);
        assert_eq!(
            lifetime(&h, &Directives::of(&h), t),
            Some(Duration::from_secs(20))
        );
        let h = headers(&[("cache-control", "max-age=10"), ("expires", &date_at(100))]);
        assert_eq!(
            lifetime(&h, &Directives::of(&h), t),
            Some(Duration::from_secs(10))
        );
        let h = headers(&[("expires", &date_at(100)), ("date", &date_at(40))]);
        assert_eq!(
            lifetime(&h, &Directives::of(&h), t),
            Some(Duration::from_secs(60))
        );
        let h = headers(&[("expires", "0")]);
        assert_eq!(lifetime(&h, &Directives::of(&h), t), Some(Duration::ZERO));
        let h = headers(&[("content-type", "text/plain")]);
        assert_eq!(
            lifetime(&h, &Directives::of(&h), t),
            None,
            "no heuristic freshness"
        );
    }

    #[test]
    fn initial_age_takes_the_larger_estimate() {
        // The origin's clock is 5s behind: apparent age 5; Age says 2, delay 1: 3.
        let h = headers(&[("date", &date_at(5)), ("age", "2")]);
        assert_eq!(initial_age(&h, timing(9, 10)), Duration::from_secs(5));
        // Age 30 with a 1s delay beats the apparent age.
        let h = headers(&[("date", &date_at(10)), ("age", "30")]);
        assert_eq!(initial_age(&h, timing(9, 10)), Duration::from_secs(31));
    }

    fn stored(lifetime: u64, initial_age: u64) -> Stored {
        Stored {
            id: 0,
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            response_time: at(0),
            initial_age: Duration::from_secs(initial_age),
            lifetime: Duration::from_secs(lifetime),
            stale_while_revalidate: Duration::from_secs(10),
            stale_if_error: Duration::ZERO,
            must_revalidate: false,
            no_cache: false,
            selecting: Vec::new(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn usable_follows_request_directives() {
        let s = stored(60, 10);
        let none = Directives::default();
        assert!(s.usable(&none, at(0)));
        assert_eq!(s.ttl(at(20)), 30);
        assert!(!s.usable(&none, at(55)), "stale at age 65");
        let max_age = Directives {
            max_age: Some(5),
            ..Directives::default()
        };
        assert!(!s.usable(&max_age, at(0)), "age 10 > max-age 5");
        let min_fresh = Directives {
            min_fresh: Some(45),
            ..Directives::default()
        };
        assert!(!s.usable(&min_fresh, at(10)), "30s left < 45");
        let max_stale = Directives {
            max_stale: Some(Some(10)),
            ..Directives::default()
        };
        assert!(s.usable(&max_stale, at(55)));
        assert!(!s.usable(&max_stale, at(65)));
        let mut strict = stored(60, 10);
        strict.must_revalidate = true;
        assert!(!strict.usable(&max_stale, at(55)));
        assert!(!strict.within_stale_while_revalidate(at(55)));
        assert!(s.within_stale_while_revalidate(at(55)));
        assert!(!s.within_stale_while_revalidate(at(61)));
    }

    #[test]
    fn a_304_replaces_fields_but_not_the_length() {
        let mut s = stored(0, 0);
        s.headers = headers(&[
            ("content-length", "3"),
            ("etag", "\"a\""),
            ("x-old", "1"),
            ("cache-control", "max-age=0"),
        ]);
        let update = headers(&[
            ("content-length", "0"),
            ("cache-control", "max-age=90"),
            ("x-new", "2"),
            ("connection", "x-secret"),
            ("x-secret", "no"),
        ]);
        let r = s.refreshed(&update, timing(100, 100)).unwrap();
        assert_eq!(r.headers["content-length"], "3");
        assert_eq!(r.headers["x-old"], "1");
        assert_eq!(r.headers["x-new"], "2");
        assert!(r.headers.get("x-secret").is_none());
        assert_eq!(r.lifetime, Duration::from_secs(90));
        assert_eq!(r.response_time, at(100));
    }
}
