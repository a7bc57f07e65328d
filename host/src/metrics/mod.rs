//! Prometheus metrics, served as `GET /metrics` on the admin listener: the requests the
//! request path counts and times ([`requests`]), and at each scrape what the live generation
//! knows (reloads, filters, upstream targets; [`scrape`]; shared stores and cache zones:
//! `shared`). Encoded with
//! `prometheus-client` (the Prometheus project's own Rust client): the Prometheus text format
//! by default, OpenMetrics when the scraper asks for it.

mod bytes;
pub mod requests;
mod scrape;
mod shared;

use crate::live::Live;
pub use bytes::body_bytes;
use prometheus_client::registry::Registry;
use requests::RequestMetrics;
use std::sync::{Arc, OnceLock};

/// The process's request series.
pub fn requests() -> &'static RequestMetrics {
    static METRICS: OnceLock<RequestMetrics> = OnceLock::new();
    METRICS.get_or_init(RequestMetrics::default)
}

/// The `Content-Type` of [`render`]'s output.
pub fn content_type(openmetrics: bool) -> &'static str {
    if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE
    }
}

/// Every metric now, in the Prometheus text format or (`openmetrics`) OpenMetrics.
pub fn render(live: &Arc<Live>, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape::Scrape { live: live.clone() }));
    let mut out = String::with_capacity(16 << 10);
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    }
    Ok(out)
}
