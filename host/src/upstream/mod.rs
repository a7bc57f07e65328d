//! Upstream services: their targets, balancing and timeouts. Shared by all workers; each
//! worker has its own connection pool per upstream (see [`pool`]).

pub mod pool;

use crate::balance::RoundRobin;
use crate::config::UpstreamConfig;
use http::uri::Authority;
use std::time::Duration;

/// A named upstream service.
pub struct Upstream {
    /// Index in the manifest's upstreams (and in each worker's client list).
    pub id: usize,
    name: String,
    targets: Vec<Authority>,
    balance: RoundRobin,
    /// Time to wait for the response head.
    pub timeout: Duration,
    /// Time to wait for a TCP connection.
    pub connect_timeout: Duration,
}

impl Upstream {
    /// From its validated configuration.
    pub fn new(id: usize, cfg: &UpstreamConfig) -> Self {
        Upstream {
            id,
            name: cfg.name.clone(),
            targets: cfg.targets.clone(),
            balance: RoundRobin::default(),
            timeout: cfg.timeout,
            connect_timeout: cfg.connect_timeout,
        }
    }

    /// Its name in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The target for the next request (`None` only if there are no targets).
    pub fn pick(&self) -> Option<&Authority> {
        self.targets.get(self.balance.pick(self.targets.len()))
    }
}
