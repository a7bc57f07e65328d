//! Where filters' shared state lives: node-local memory (the default) or a Redis server that
//! several Weir nodes share. This module owns the validated `store` settings, the policy for
//! when the shared store fails, and the registry of open Redis stores; [`redis`] talks to one.

pub mod metrics;
pub mod redis;
mod registry;

pub use self::metrics::StoreMetrics;
pub use self::redis::RedisStore;
pub use self::registry::Stores;

use std::path::PathBuf;
use std::time::Duration;

/// Where one filter's key/value store and rate-limit keys live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreSettings {
    /// In this process, shared by its workers (the default).
    #[default]
    Memory,
    /// On a Redis server (or cluster) that several nodes share.
    Redis(RedisSettings),
}

impl StoreSettings {
    /// Whether calls to this store go over the network (and so may wait).
    pub fn is_remote(&self) -> bool {
        matches!(self, StoreSettings::Redis(_))
    }
}

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URLs, with user and password if any: one for a single
    /// server, the seed nodes of a cluster.
    pub urls: Vec<String>,
    /// Whether `urls` are nodes of a Redis Cluster.
    pub cluster: bool,
    /// Longest one call may take (and never more than the calling filter's wait budget).
    pub timeout: Duration,
    /// Longest a (re)connection may take.
    pub connect_timeout: Duration,
    /// Most calls in flight at once over this node's connection; beyond, a call fails at
    /// once as if Redis were down.
    pub max_pending: usize,
    /// First part of every key (`<prefix>:kv:{<filter>:<key>}`).
    pub prefix: String,
    /// CA bundle to verify the server with (`rediss://`), instead of the system's.
    pub ca: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl RedisSettings {
    /// The URLs with any password replaced by `***`, for logs and `/status`.
    pub fn shown(&self) -> String {
        let urls: Vec<String> = self.urls.iter().map(|u| redact(u)).collect();
        urls.join(",")
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("urls", &self.shown())
            .field("cluster", &self.cluster)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_pending", &self.max_pending)
            .field("prefix", &self.prefix)
            .field("ca", &self.ca)
            .field("client_cert", &self.client_cert)
            .finish()
    }
}

/// `redis://user:secret@host/0` as `redis://user:***@host/0`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// What a filter's calls do while its shared store cannot be reached (`on-store-failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreFailure {
    /// Use this node's own store meanwhile (limits become per node); logged once per outage.
    #[default]
    Local,
    /// The call fails and the filter decides (`kv.get` finds nothing, writes and rate-limit
    /// checks return an error).
    FailOpen,
    /// The request is answered 503 whatever the filter's `on-failure`.
    FailClosed,
}

/// Why a call to a shared store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store is down (the last call or connection attempt failed); calls fail at once
    /// until the background reconnection succeeds.
    #[error("the shared store is unavailable: {0}")]
    Down(String),
    /// The call took longer than its budget.
    #[error("the shared store did not answer within {0:?}")]
    Timeout(Duration),
    /// `max-pending` calls are already in flight.
    #[error("the shared store has {0} calls in flight (max-pending)")]
    Busy(usize),
    /// Redis refused the command (a bug, or a key of another type).
    #[error("the shared store refused the call: {0}")]
    Refused(String),
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted_and_nothing_else() {
        assert_eq!(
            redact("redis://app:s3cr@t@10.0.0.1:6379/2"),
            "redis://app:***@10.0.0.1:6379/2"
        );
        assert_eq!(
            redact("rediss://:pw@redis.internal/0"),
            "rediss://:***@redis.internal/0"
        );
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact("not a url"), "not a url");
    }
}
