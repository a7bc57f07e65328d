//! What the host lends one filter, shared by all its instances: its name, its namespace of
//! the shared store, its metrics and its outbound HTTP settings.

use super::kv::KvNamespace;
use super::metrics::FilterMetrics;
use super::outbound::Outbound;
use std::sync::Arc;

/// One filter's services.
pub struct FilterServices {
    /// The filter's name in the manifest.
    pub name: Arc<str>,
    /// Its namespace of the shared key/value store.
    pub kv: Arc<dyn KvNamespace>,
    /// What the host and the filter record.
    pub metrics: FilterMetrics,
    /// Where it may send HTTP requests, and within what budget.
    pub outbound: Outbound,
}
