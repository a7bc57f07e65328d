//! Upstream services: their targets, balancing and timeouts.

pub mod pool;

use pool::UpstreamClient;

use crate::balance::RoundRobin;
use crate::config::UpstreamConfig;
use http::uri::Authority;
use std::time::Duration;

/// A named upstream service.
pub struct Upstream {
    name: String,
    targets: Vec<Authority>,
    balance: RoundRobin,
    client: UpstreamClient,
    /// Time to wait for the response head.
    pub timeout: Duration,
    /// Time to wait for a TCP connection.
    pub connect_timeout: Duration,
}

impl Upstream {
    /// From its validated configuration.
    pub fn new(cfg: &UpstreamConfig) -> Self {
        Upstream {
            name: cfg.name.clone(),
            targets: cfg.targets.clone(),
            balance: RoundRobin::default(),
            client: pool::client(cfg.connect_timeout),
            timeout: cfg.timeout,
            connect_timeout: cfg.connect_timeout,
        }
    }

    /// Its name in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pooled client for this upstream's targets.
    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// The target for the next request (`None` only if there are no targets).
    pub fn pick(&self) -> Option<&Authority> {
        self.targets.get(self.balance.pick(self.targets.len()))
    }
}
