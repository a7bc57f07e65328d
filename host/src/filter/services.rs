//! What the host lends one filter, shared by all its instances: its name, its namespaces of
//! the key/value store and of rate-limit keys (node-local, and shared on Redis if configured), the live geo databases, its metrics and its
//! outbound HTTP settings.

use super::kv::KvNamespace;
use super::metrics::FilterMetrics;
use super::outbound::Outbound;
use super::rate_limit::RateLimiter;
use super::shared::SharedStore;
use std::sync::Arc;

/// One filter's services.
pub struct FilterServices {
    /// The filter's name in the manifest.
    pub name: Arc<str>,
    /// Its namespace of the shared key/value store.
    pub kv: Arc<dyn KvNamespace>,
    /// Its namespace of rate-limit keys.
    pub rate_limit: Arc<dyn RateLimiter>,
    /// The shared store (Redis) its `kv` and `rate-limit` calls go to, if configured; the two
    /// node-local namespaces above are then its fallback.
    pub shared: Option<Arc<SharedStore>>,
    /// The live configuration's geo databases.
    pub geo: crate::geo::GeoHandle,
    /// What the host and the filter record.
    pub metrics: FilterMetrics,
    /// Where it may send HTTP requests, and within what budget.
    pub outbound: Outbound,
}
