//! Name resolution for upstream targets given by hostname: a background task per upstream
//! re-resolves each name every `resolve-interval` into a process-wide cache, and the
//! connectors take addresses from that cache, so a DNS change reaches new connections within
//! one interval and no lookup runs on the request path. Names not in the cache (before their
//! first resolution, or outbound calls of filters) are looked up when connecting.
//!
//! Pooled connections to an address that left the DNS answer are not cut: they end when idle
//! (`pool-idle-timeout`) or when the server closes them.

use hyper_util::client::legacy::connect::dns::Name;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

/// Default time between two resolutions of a target's name.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// Resolved addresses by host name (ports are set by the connector).
#[derive(Debug, Default)]
pub struct DnsCache {
    entries: RwLock<HashMap<String, Arc<[SocketAddr]>>>,
}

impl DnsCache {
    /// The cache shared by every upstream client of the process.
    pub fn global() -> &'static DnsCache {
        static CACHE: OnceLock<DnsCache> = OnceLock::new();
        CACHE.get_or_init(DnsCache::default)
    }

    /// The cached addresses of `host`.
    pub fn get(&self, host: &str) -> Option<Arc<[SocketAddr]>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .cloned()
    }

    /// Store a fresh answer for `host`; returns whether it differs from the cached one
    /// (order aside).
    pub fn update(&self, host: &str, mut addrs: Vec<SocketAddr>) -> bool {
        addrs.sort();
        addrs.dedup();
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.get(host).is_some_and(|old| **old == *addrs) {
            return false;
        }
        entries.insert(host.to_string(), addrs.into());
        true
    }
}

/// Whether `host` is a name to resolve (not an IP address).
pub fn is_name(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_err()
}

/// The connectors' resolver: the cache first, else a lookup now.
#[derive(Debug, Clone, Copy, Default)]
pub struct CachedResolver;

impl tower_service::Service<Name> for CachedResolver {
    type Response = Addrs;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let cached = DnsCache::global().get(name.as_str());
        Box::pin(async move {
            match cached {
                Some(list) if !list.is_empty() => Ok(Addrs { list, next: 0 }),
                _ => lookup(name.as_str()).await.map(|found| Addrs {
                    list: found.into(),
                    next: 0,
                }),
            }
        })
    }
}

/// The addresses of one resolution, in turn.
#[derive(Debug)]
pub struct Addrs {
    list: Arc<[SocketAddr]>,
    next: usize,
}

impl Iterator for Addrs {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        let addr = self.list.get(self.next).copied();
        self.next += 1;
        addr
    }
}

/// Resolve `host` with the system resolver.
async fn lookup(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host, 0)).await?.collect())
}

/// Re-resolve `hosts` of `upstream` every `interval` until the upstream is dropped (a reload
/// replaced it), logging each change.
pub async fn run<T: Send + Sync + 'static>(
    upstream: Weak<T>,
    name: String,
    hosts: Vec<String>,
    interval: Duration,
) {
    loop {
        if upstream.strong_count() == 0 {
            return;
        }
        for host in &hosts {
            refresh(&name, host, lookup(host).await);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Apply one resolution of `host` to the cache. A failed or empty answer keeps the
/// previous addresses (a DNS hiccup must not take the target away).
fn refresh(upstream: &str, host: &str, answer: std::io::Result<Vec<SocketAddr>>) {
    match answer {
        Ok(addrs) if !addrs.is_empty() => {
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            if DnsCache::global().update(host, addrs) {
                tracing::info!(upstream, host, addresses = ?shown, "target name resolved");
            }
        }
        Ok(_) => {
            tracing::warn!(
                upstream,
                host,
                "target name resolved to no address; keeping the previous ones"
            )
        }
        Err(e) => {
            tracing::warn!(
                upstream,
                host,
                "cannot resolve target name, keeping the previous addresses: {e}"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn connectors_follow_the_latest_answer_and_failures_keep_the_old() {
        let host = "resolve-test.invalid";
        refresh(
            "app",
            host,
            Ok(vec![addr("10.0.0.1:0"), addr("10.0.0.2:0")]),
        );
        let got: Vec<_> = CachedResolver
            .call(host.parse::<Name>().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(got, vec![addr("10.0.0.1:0"), addr("10.0.0.2:0")]);

        // The name now points elsewhere: new connections go there.
        refresh("app", host, Ok(vec![addr("10.0.0.3:0")]));
        let got: Vec<_> = CachedResolver
            .call(host.parse::<Name>().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(got, vec![addr("10.0.0.3:0")]);

        // A failed or empty lookup keeps what worked.
        refresh("app", host, Err(std::io::Error::other("SERVFAIL")));
        refresh("app", host, Ok(vec![]));
        assert_eq!(
            DnsCache::global().get(host).as_deref(),
            Some(&[addr("10.0.0.3:0")][..])
        );
    }

    #[test]
    fn an_unchanged_answer_is_not_a_change() {
        let cache = DnsCache::default();
        assert!(cache.update("h", vec![addr("10.0.0.2:0"), addr("10.0.0.1:0")]));
        assert!(!cache.update("h", vec![addr("10.0.0.1:0"), addr("10.0.0.2:0")]));
        assert!(cache.update("h", vec![addr("10.0.0.1:0")]));
    }

    #[test]
    fn ip_addresses_are_not_names() {
        assert!(!is_name("127.0.0.1"));
        assert!(!is_name("[::1]"));
        assert!(is_name("api.internal"));
        assert!(is_name("localhost"));
    }
}
