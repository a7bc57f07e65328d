//! The HTTP response cache (RFC 9111, shared cache), enabled per route.
//!
//! - [`control`]: `Cache-Control` directives; [`entry`]: a stored response, its age and
//!   freshness; [`admit`]: whether a response may be stored.
//! - [`key`]: the cache key and `Vary` selection; [`zone`]: stored responses within a byte
//!   bound, request coalescing, purges.
//! - [`purge`]: what a purge removes; [`shared`]: purges shared by the nodes on one Redis.
//! - [`disk`]: a zone's disk tier (found again after a restart).
//! - [`encoded`]: compressed copies of stored responses, so hits are not compressed again.
//! - [`decisions`]: what filters decided (bypass, key parts, TTL, tags, no compression).
//! - [`respond`]: answering from a stored response (`304`, `HEAD`, ranges); [`fill`]: the
//!   body that fills a zone as it passes to the client.
//!
//! The request path that uses them is `proxy::cached`: request filters run before the
//! cache (a hit never skips them) and response filters after it (on hits as on misses).

pub mod admit;
pub mod control;
pub mod decisions;
pub mod disk;
pub mod encoded;
pub mod entry;
pub mod fill;
pub mod key;
pub mod purge;
pub mod respond;
pub mod shared;
pub mod zone;

pub use zone::{Zone, ZoneSettings};

use http::HeaderValue;
use std::sync::Arc;
use std::time::Duration;

/// The header that carries a response's surrogate keys unless a route names another.
pub const DEFAULT_TAG_HEADER: http::HeaderName = http::HeaderName::from_static("surrogate-key");

/// `Cache-Status` (RFC 9211), this cache's member.
pub const CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("cache-status");

/// How a route caches.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// The zone its responses go in.
    pub zone: Arc<Zone>,
    /// How its requests are keyed.
    pub key: key::KeyRules,
    /// Lifetime of responses without freshness information (none: not stored).
    pub default_ttl: Option<Duration>,
    /// `stale-while-revalidate` for responses that do not set it.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` for responses that do not set it.
    pub stale_if_error: Option<u64>,
    /// Store responses that set cookies.
    pub store_set_cookie: bool,
    /// The response header listing surrogate keys (removed before the client sees it).
    pub tag_header: http::HeaderName,
    /// Keep compressed copies of hits (the route compresses, and no filter of it reads
    /// response bodies, so a hit's body reaches compression as stored).
    pub encoded_copies: bool,
}

/// How a request went through the cache, as `Cache-Status` says it.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Served from the zone; `ttl` negative when stale (`detail` says why that was allowed).
    Hit {
        /// Seconds of freshness left.
        ttl: i64,
        /// Why a stale response was served.
        detail: Option<&'static str>,
        /// Waited for another request's fetch.
        collapsed: bool,
    },
    /// Went upstream.
    Forward {
        /// Why (`miss`, `stale`, `request`, `vary-miss`, `method`, `bypass`).
        fwd: &'static str,
        /// The upstream's status.
        status: u16,
        /// Whether the response is being stored.
        stored: bool,
        /// Why it is not (or a stale answer's reason).
        detail: Option<&'static str>,
        /// Freshness left of what was served from the zone after revalidation.
        ttl: Option<i64>,
    },
}

impl Outcome {
    /// The same forward, its response stored.
    pub fn stored(self) -> Self {
        self.storing(true, None)
    }

    /// The same forward, its response not stored, for `why`.
    pub fn refused(self, why: &'static str) -> Self {
        self.storing(false, Some(why))
    }

    fn storing(self, stored: bool, detail: Option<&'static str>) -> Self {
        match self {
            Outcome::Forward {
                fwd, status, ttl, ..
            } => Outcome::Forward {
                fwd,
                status,
                stored,
                detail,
                ttl,
            },
            hit => hit,
        }
    }

    /// The `Cache-Status` member.
    pub fn header(&self) -> HeaderValue {
        let mut s = String::from("weir");
        match *self {
            Outcome::Hit {
                ttl,
                detail,
                collapsed,
            } => {
                s.push_str(&format!("; hit; ttl={ttl}"));
                if collapsed {
                    s.push_str("; collapsed");
                }
                if let Some(d) = detail {
                    s.push_str(&format!("; detail={d}"));
                }
            }
            Outcome::Forward {
                fwd,
                status,
                stored,
                detail,
                ttl,
            } => {
                s.push_str(&format!("; fwd={fwd}; fwd-status={status}"));
                if let Some(ttl) = ttl {
                    s.push_str(&format!("; ttl={ttl}"));
                }
                if stored {
                    s.push_str("; stored");
                }
                if let Some(d) = detail {
                    s.push_str(&format!("; detail={d}"));
                }
            }
        }
        HeaderValue::try_from(s).unwrap_or(HeaderValue::from_static("weir"))
    }

    /// Add it to `headers` (after the members of caches nearer the origin).
    pub fn mark(&self, headers: &mut http::HeaderMap) {
        headers.append(CACHE_STATUS, self.header());
    }
}
