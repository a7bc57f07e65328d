//! Requests counted and timed on the request path: per worker, in a map of its own behind
//! an uncontended lock, keyed by the route's and upstream's shared labels (by address: each
//! entry holds its labels, so an address is not reused while the entry lives), so recording
//! one request allocates nothing and touches no cache line another worker writes.

use crate::filter::per_worker::PerWorker;
use http::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the duration buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Method labels: the standard methods, and `other` (so a client cannot make new series).
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
];

/// Status class labels.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index of the duration bucket `took` falls in ([`BUCKETS`], then one past them all).
pub fn bucket(took: Duration) -> usize {
    let secs = took.as_secs_f64();
    BUCKETS
        .iter()
        .position(|b| secs <= *b)
        .unwrap_or(BUCKETS.len())
}

fn method_index(m: &Method) -> u8 {
    let i = METHODS.iter().position(|name| *name == m.as_str());
    i.map_or(METHODS.len() - 1, |i| i) as u8
}

fn class_index(s: StatusCode) -> u8 {
    (s.as_u16() / 100).clamp(1, 5) as u8 - 1
}

/// Counts and durations of one (route, upstream, method, status class).
#[derive(Clone)]
pub struct Series {
    /// The route's label (`-`: no route matched).
    pub route: Arc<str>,
    /// The upstream's name (`-`: answered before one was chosen).
    pub upstream: Arc<str>,
    /// Index into [`METHODS`].
    pub method: u8,
    /// Index into [`CLASSES`].
    pub class: u8,
    /// Requests.
    pub count: u64,
    /// Their durations to the response head, summed, in seconds.
    pub sum: f64,
    /// Requests per duration bucket (not cumulative); the last is past every bound.
    pub buckets: [u64; BUCKETS.len() + 1],
}

type Key = (usize, usize, u8, u8);

#[derive(Default)]
#[repr(align(128))]
struct Shard(Mutex<HashMap<Key, Series>>);

/// Every worker's series.
pub struct RequestMetrics {
    shards: PerWorker<Shard>,
    none: Arc<str>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            shards: PerWorker::new(Shard::default),
            none: Arc::from("-"),
        }
    }
}

impl RequestMetrics {
    /// Count one request answered with `status` after `took`.
    pub fn record(
        &self,
        route: Option<&Arc<str>>,
        upstream: Option<&Arc<str>>,
        method: &Method,
        status: StatusCode,
        took: Duration,
    ) {
        let route = route.unwrap_or(&self.none);
        let upstream = upstream.unwrap_or(&self.none);
        let (method, class) = (method_index(method), class_index(status));
        let key = (
            Arc::as_ptr(route) as *const u8 as usize,
            Arc::as_ptr(upstream) as *const u8 as usize,
            method,
            class,
        );
        let secs = took.as_secs_f64();
        let bucket = bucket(took);
        let mut map = self
            .shards
            .mine()
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let series = map.entry(key).or_insert_with(|| Series {
            route: route.clone(),
            upstream: upstream.clone(),
            method,
            class,
            count: 0,
            sum: 0.0,
            buckets: [0; BUCKETS.len() + 1],
        });
        series.count += 1;
        series.sum += secs;
        if let Some(b) = series.buckets.get_mut(bucket) {
            *b += 1;
        }
    }

    /// Every series, merged over workers and over reloads (by label text).
    pub fn snapshot(&self) -> Vec<Series> {
        let mut merged: HashMap<(Arc<str>, Arc<str>, u8, u8), Series> = HashMap::new();
        for shard in self.shards.iter() {
            let map = shard.0.lock().unwrap_or_else(|p| p.into_inner());
            for s in map.values() {
                let key = (s.route.clone(), s.upstream.clone(), s.method, s.class);
                match merged.get_mut(&key) {
                    Some(m) => {
                        m.count += s.count;
                        m.sum += s.sum;
                        for (a, b) in m.buckets.iter_mut().zip(s.buckets) {
                            *a += b;
                        }
                    }
                    None => {
                        merged.insert(key, s.clone());
                    }
                }
            }
        }
        let mut out: Vec<Series> = merged.into_values().collect();
        out.sort_by(|a, b| {
            (&a.route, &a.upstream, a.method, a.class).cmp(&(
                &b.route,
                &b.upstream,
                b.method,
                b.class,
            ))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_labels_and_merged_by_text() {
        let m = RequestMetrics::default();
        let (api, app) = (Arc::from("/api"), Arc::from("app"));
        let api_again: Arc<str> = Arc::from("/api"); // a reload's copy of the label
        m.record(
            Some(&api),
            Some(&app),
            &Method::GET,
            StatusCode::OK,
            Duration::from_micros(300),
        );
        m.record(
            Some(&api_again),
            Some(&app),
            &Method::GET,
            StatusCode::CREATED,
            Duration::from_millis(3),
        );
        m.record(
            Some(&api),
            Some(&app),
            &Method::from_bytes(b"BREW").unwrap(),
            StatusCode::IM_A_TEAPOT,
            Duration::from_secs(60),
        );
        m.record(
            None,
            None,
            &Method::GET,
            StatusCode::NOT_FOUND,
            Duration::ZERO,
        );
        let s = m.snapshot();
        assert_eq!(s.len(), 3, "GET 2xx merged over the two label copies");
        let get = s.iter().find(|s| s.method == 0 && s.class == 1).unwrap();
        assert_eq!((get.count, &*get.route, &*get.upstream), (2, "/api", "app"));
        assert_eq!(get.buckets[0], 1, "0.3 ms is under 0.5 ms");
        assert_eq!(get.buckets[3], 1, "3 ms is under 5 ms");
        let brew = s
            .iter()
            .find(|s| METHODS[s.method as usize] == "other")
            .unwrap();
        assert_eq!(CLASSES[brew.class as usize], "4xx");
        assert_eq!(
            brew.buckets[BUCKETS.len()],
            1,
            "a minute is past every bound"
        );
        assert!(s.iter().any(|s| &*s.route == "-" && &*s.upstream == "-"));
    }
}
