//! Load balancing over an upstream's targets. Each upstream has one algorithm:
//!
//! - [`round_robin`]: in turn;
//! - [`weighted`]: smooth weighted round robin (nginx's), by target weight;
//! - [`least_conn`]: the target with the fewest requests in flight (weighted);
//! - [`p2c`]: power of two choices over an EWMA of latency times load (latency-aware);
//! - [`ring`]: consistent hashing by client IP, a header or a cookie (a hash ring with
//!   virtual nodes: adding or removing a target remaps only that target's share).
//!
//! [`sticky`] sessions pin a client to the target named by a proxy-set cookie whose value does
//! not reveal the address. Every pick returns a [`Lease`] that counts the request in flight
//! and records its latency when the response head arrives; the count then stays with the
//! response body ([`InFlight`]) until the body ends, so least-connections and P2C see
//! streaming responses as the load they are.

pub mod least_conn;
pub mod p2c;
pub mod ring;
pub mod round_robin;
pub mod sticky;
pub mod weighted;

use http::uri::Authority;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One target of an upstream, with the live figures the algorithms use.
#[derive(Debug)]
pub struct Target {
    /// `host:port`.
    pub authority: Authority,
    /// Relative share (weighted algorithms); at least 1.
    pub weight: u32,
    in_flight: Arc<AtomicU64>,
    /// EWMA of response-head latency in nanoseconds, as f64 bits (0: no sample yet).
    ewma_ns: AtomicU64,
    /// Active and passive health.
    pub health: crate::health::Health,
}

/// Weight of the newest latency sample in the EWMA.
const EWMA_ALPHA: f64 = 0.3;

impl Target {
    /// A target with no requests yet.
    pub fn new(authority: Authority, weight: u32) -> Self {
        Target {
            authority,
            weight: weight.max(1),
            in_flight: Arc::new(AtomicU64::new(0)),
            ewma_ns: AtomicU64::new(0f64.to_bits()),
            health: Default::default(),
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latency EWMA in nanoseconds (0 before the first sample).
    pub fn ewma_ns(&self) -> f64 {
        f64::from_bits(self.ewma_ns.load(Ordering::Relaxed))
    }

    fn record(&self, latency: Duration) {
        let sample = latency.as_nanos() as f64;
        let _ = self
            .ewma_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if old == 0.0 {
                    sample
                } else {
                    old + EWMA_ALPHA * (sample - old)
                };
                Some(new.to_bits())
            });
    }
}

/// A picked target: counted in flight until dropped; [`Lease::finish`] records latency and
/// hands the count over to the response body.
pub struct Lease<'a> {
    /// The target.
    pub target: &'a Target,
    /// Its index among the upstream's targets.
    pub index: usize,
    start: Instant,
    /// Taken by `finish`.
    count: Option<InFlight>,
}

impl<'a> Lease<'a> {
    pub(crate) fn new(target: &'a Target, index: usize) -> Self {
        target.in_flight.fetch_add(1, Ordering::Relaxed);
        Lease {
            target,
            index,
            start: Instant::now(),
            count: Some(InFlight(target.in_flight.clone())),
        }
    }

    /// The response head arrived: record the latency for latency-aware balancing, and keep
    /// the request counted in flight for as long as the returned guard lives.
    pub fn finish(mut self) -> Option<InFlight> {
        self.target.record(self.start.elapsed());
        self.count.take()
    }
}

/// Counts a request in flight on its target until dropped (with the response body).
#[derive(Debug)]
pub struct InFlight(Arc<AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a hash key is taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address.
    ClientIp,
    /// A request header (the client IP when absent).
    Header(http::HeaderName),
    /// A cookie (the client IP when absent).
    Cookie(String),
}

/// The algorithm of an upstream, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    /// In turn.
    RoundRobin,
    /// Smooth weighted round robin.
    Weighted,
    /// Fewest in flight, weighted.
    LeastConnections,
    /// Power of two choices over latency EWMA × load.
    PowerOfTwo,
    /// Consistent hashing.
    ConsistentHash(HashKey),
}

/// What the algorithms may look at in a request.
pub struct RequestKey<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
}

/// An algorithm with its state.
pub enum Balancer {
    /// See [`round_robin`].
    RoundRobin(round_robin::RoundRobin),
    /// See [`weighted`].
    Weighted(weighted::SmoothWeighted),
    /// See [`least_conn`].
    LeastConnections,
    /// See [`p2c`].
    PowerOfTwo(p2c::PowerOfTwo),
    /// See [`ring`].
    ConsistentHash(ring::Ring, HashKey),
}

impl Balancer {
    /// State for `algorithm` over `targets`.
    pub fn new(algorithm: &Algorithm, targets: &[Target]) -> Self {
        match algorithm {
            Algorithm::RoundRobin => Balancer::RoundRobin(Default::default()),
            Algorithm::Weighted => Balancer::Weighted(weighted::SmoothWeighted::new(targets)),
            Algorithm::LeastConnections => Balancer::LeastConnections,
            Algorithm::PowerOfTwo => Balancer::PowerOfTwo(Default::default()),
            Algorithm::ConsistentHash(key) => {
                Balancer::ConsistentHash(ring::Ring::new(targets), key.clone())
            }
        }
    }

    /// The index of the target for a request, among those `eligible` says may be used.
    pub fn pick(
        &self,
        targets: &[Target],
        req: &RequestKey<'_>,
        eligible: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if targets.is_empty() {
            return None;
        }
        match self {
            Balancer::RoundRobin(rr) => rr.pick(targets.len(), &eligible),
            Balancer::Weighted(w) => w.pick(targets, &eligible),
            Balancer::LeastConnections => least_conn::pick(targets, &eligible),
            Balancer::PowerOfTwo(p) => p.pick(targets, &eligible),
            Balancer::ConsistentHash(ring, key) => ring.pick(&hash_input(key, req), &eligible),
        }
    }
}

/// The text a consistent hash is computed over.
fn hash_input(key: &HashKey, req: &RequestKey<'_>) -> String {
    let found = match key {
        HashKey::ClientIp => None,
        HashKey::Header(name) => req
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        HashKey::Cookie(name) => sticky::cookie(req.headers, name).map(str::to_owned),
    };
    found.unwrap_or_else(|| req.client.to_string())
}

/// A stable 64-bit hash (FNV-1a, then a SplitMix64 finaliser to spread the bits): the same
/// on every machine and run, as consistent hashing needs.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
pub(crate) fn targets(spec: &[(&str, u32)]) -> Vec<Target> {
    spec.iter()
        .map(|(a, w)| Target::new(a.parse().unwrap(), *w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_count_in_flight_and_record_latency() {
        let t = targets(&[("a:1", 1)]);
        let lease = Lease::new(&t[0], 0);
        assert_eq!(t[0].in_flight(), 1);
        std::thread::sleep(Duration::from_millis(2));
        lease.finish();
        assert_eq!(t[0].in_flight(), 0);
        assert!(t[0].ewma_ns() >= 2e6);
        drop(Lease::new(&t[0], 0));
        assert_eq!(
            t[0].in_flight(),
            0,
            "dropped without finishing still counts down"
        );
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(b"client-1"), stable_hash(b"client-1"));
        assert_ne!(stable_hash(b"client-1"), stable_hash(b"client-2"));
    }
}
