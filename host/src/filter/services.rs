//! What the host lends one filter, shared by all its instances: its name, its namespace of
//! the shared store and of rate-limit keys, the live geo databases, its metrics and its
//! outbound HTTP settings.

use super::kv::KvNamespace;
use super::metrics::FilterMetrics;
use super::outbound::Outbound;
use super::rate_limit::RateLimiter;
use std::sync::Arc;

/// One filter's services.
pub struct FilterServices {
    /// The filter's name in the manifest.
    pub name: Arc<str>,
    /// Its namespace of the shared key/value store.
    pub kv: Arc<dyn KvNamespace>,
    /// Its namespace of rate-limit keys.
    pub rate_limit: Arc<dyn RateLimiter>,
    /// The live configuration's geo databases.
    pub geo: crate::geo::GeoHandle,
    /// What the host and the filter record.
    pub metrics: FilterMetrics,
    /// Where it may send HTTP requests, and within what budget.
    pub outbound: Outbound,
}
