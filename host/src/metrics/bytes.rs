//! Body bytes through the proxy, counted per worker as frames pass: request bodies read from
//! clients, and response bodies read from upstreams (and passed on to clients). Responses the
//! proxy or a filter makes itself are not counted.

use crate::filter::per_worker::PerWorker;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

#[derive(Default)]
#[repr(align(128))]
struct Shard {
    from_clients: AtomicU64,
    from_upstreams: AtomicU64,
}

/// The process's body byte counters.
pub struct BodyBytes(PerWorker<Shard>);

/// The counters.
pub fn body_bytes() -> &'static BodyBytes {
    static BYTES: OnceLock<BodyBytes> = OnceLock::new();
    BYTES.get_or_init(|| BodyBytes(PerWorker::new(Shard::default)))
}

impl BodyBytes {
    /// `n` bytes of a request body came from a client.
    pub fn client_read(&self, n: usize) {
        self.0.mine().from_clients.fetch_add(n as u64, Relaxed);
    }

    /// `n` bytes of a response body came from an upstream.
    pub fn upstream_read(&self, n: usize) {
        self.0.mine().from_upstreams.fetch_add(n as u64, Relaxed);
    }

    /// (from clients, from upstreams) so far.
    pub fn totals(&self) -> (u64, u64) {
        self.0.iter().fold((0, 0), |(c, u), s| {
            (
                c + s.from_clients.load(Relaxed),
                u + s.from_upstreams.load(Relaxed),
            )
        })
    }
}
