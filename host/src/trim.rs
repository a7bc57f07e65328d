//! Giving memory the allocator holds free back to the system: after a large compile (a WAF
//! leaves about 130 MiB in glibc's per-thread arenas), and after connections parked between
//! requests have freed their buffers. glibc returns only the top of a heap by itself; what is
//! free in the middle stays in the proxy's RSS until it is trimmed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Bytes freed by parked connections before a trim is worth its cost.
const TRIM_AFTER: usize = 8 << 20;

/// How long after enough has been freed the trim runs: the frees of a burst of parks are
/// returned together, at most once per this.
const TRIM_DELAY: Duration = Duration::from_secs(1);

/// Bytes freed by parked connections since the last trim was scheduled.
static FREED: AtomicUsize = AtomicUsize::new(0);

/// A trim is scheduled.
static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// Give the memory the allocator holds free back to the system now.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own heaps to the system;
    // it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A connection freed about `bytes`. Once [`TRIM_AFTER`] has been freed, the free memory is
/// returned to the system [`TRIM_DELAY`] later, on a blocking thread (a trim walks every
/// heap; a worker does not wait for it). Must be called on a tokio runtime.
pub fn freed(bytes: usize) {
    let total = FREED.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if total < TRIM_AFTER || SCHEDULED.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(TRIM_DELAY).await;
        FREED.store(0, Ordering::Relaxed);
        SCHEDULED.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(release_freed_memory).await;
    });
}
