//! Time for filters: [`now`] (monotonic, for durations and deadlines) and [`system_time`]
//! (wall clock, for `exp` claims and log stamps). In a filter they are the host's clocks
//! (`std::time`); in native tests [`crate::testing::advance_clock`] and
//! [`crate::testing::freeze_clock`] move and stop them, and the key/value double's TTLs and
//! windows follow.
//!
//! ```
//! use std::time::Duration;
//! use weir_sdk::{clock, testing};
//!
//! testing::freeze_clock();
//! let start = clock::now();
//! testing::advance_clock(Duration::from_secs(90));
//! assert_eq!(clock::now() - start, Duration::from_secs(90));
//! ```

use std::time::{Duration, Instant, SystemTime};

/// The monotonic clock.
///
/// ```
/// let a = weir_sdk::clock::now();
/// assert!(weir_sdk::clock::now() >= a);
/// ```
pub fn now() -> Instant {
    let (base, _, offset) = state();
    base.unwrap_or_else(Instant::now) + offset
}

/// The wall clock.
///
/// ```
/// let t = weir_sdk::clock::system_time();
/// assert!(t > std::time::UNIX_EPOCH);
/// ```
pub fn system_time() -> SystemTime {
    let (_, base, offset) = state();
    base.unwrap_or_else(SystemTime::now) + offset
}

/// Frozen bases (if frozen) and the offset added to both clocks.
#[cfg(not(target_arch = "wasm32"))]
fn state() -> (Option<Instant>, Option<SystemTime>, Duration) {
    crate::testing::clock_state()
}

#[cfg(target_arch = "wasm32")]
fn state() -> (Option<Instant>, Option<SystemTime>, Duration) {
    (None, None, Duration::ZERO)
}
