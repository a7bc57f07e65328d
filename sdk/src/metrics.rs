//! The filter's own metrics, recorded by the proxy next to what it records about every
//! filter (calls, time, traps, budget hits). In native tests they are kept per thread
//! ([`crate::testing::take_metrics`]).

/// Add `value` to counter `name`.
///
/// ```
/// use weir_sdk::{metrics, testing};
/// metrics::counter_add("blocked", 1);
/// metrics::counter_add("blocked", 2);
/// assert_eq!(testing::take_metrics().0["blocked"], 3);
/// ```
pub fn counter_add(name: &str, value: u64) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::filter::metrics::counter_add(name, value);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::record_metric(name, value as f64, true);
}

/// Record `value` in histogram `name`.
///
/// ```
/// use weir_sdk::{metrics, testing};
/// metrics::histogram_record("score", 7.0);
/// assert_eq!(testing::take_metrics().1["score"], [7.0]);
/// ```
pub fn histogram_record(name: &str, value: f64) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::filter::metrics::histogram_record(name, value);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::record_metric(name, value, false);
}
