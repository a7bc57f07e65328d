//! The `max-pending` circuit breaker: how many requests wait for a response head.
//!
//! A request counts from the moment its whole body has been sent until its response head
//! arrives (or it fails). A request still uploading is not waiting on the upstream but on its
//! client, so a flood of clients trickling bodies can't fill `max-pending` and turn everyone
//! else away (each of those is bounded by `body-read-timeout` instead).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// The requests of one upstream waiting for a response head.
#[derive(Default)]
pub struct PendingCount(Arc<AtomicU64>);

impl PendingCount {
    /// Admit a request unless `max` are already waiting (`None`: answer 503). A request whose
    /// body is still to come counts only once [`Uploading::finished`] is called.
    pub fn begin(&self, max: u64, body_done: bool) -> Option<Pending<'_>> {
        if !body_done {
            if self.0.load(Ordering::Relaxed) >= max {
                return None;
            }
            return Some(Pending::AfterUpload(Arc::new(Uploading {
                state: AtomicU8::new(UPLOADING),
                count: Arc::clone(&self.0),
            })));
        }
        let before = self.0.fetch_add(1, Ordering::Relaxed);
        let guard = Pending::Now(&self.0);
        (before < max).then_some(guard)
    }

    /// How many are waiting now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request admitted by [`PendingCount::begin`], counted until dropped (the head came or the
/// attempt failed).
pub enum Pending<'a> {
    /// Counted from the start: the request has no body left to send.
    Now(&'a AtomicU64),
    /// Counted once its body has been sent.
    AfterUpload(Arc<Uploading>),
}

impl Pending<'_> {
    /// The hook the request body calls when it ends, if the count waits for it.
    pub fn uploading(&self) -> Option<Arc<Uploading>> {
        match self {
            Pending::Now(_) => None,
            Pending::AfterUpload(u) => Some(Arc::clone(u)),
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        match self {
            Pending::Now(count) => {
                count.fetch_sub(1, Ordering::Relaxed);
            }
            Pending::AfterUpload(u) => {
                if u.state.swap(DONE, Ordering::AcqRel) == COUNTED {
                    u.count.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

const UPLOADING: u8 = 0;
const COUNTED: u8 = 1;
const DONE: u8 = 2;

/// A request whose body is on its way to the upstream.
#[derive(Debug)]
pub struct Uploading {
    state: AtomicU8,
    count: Arc<AtomicU64>,
}

impl Uploading {
    /// The whole body has been sent: from now on the request waits on the upstream. Does
    /// nothing once its head came (or the attempt ended) or when called again.
    pub fn finished(&self) {
        if self
            .state
            .compare_exchange(UPLOADING, COUNTED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_without_a_body_count_at_once_and_up_to_the_limit() {
        let count = PendingCount::default();
        let a = count.begin(2, true);
        let b = count.begin(2, true);
        assert!(a.is_some() && b.is_some());
        assert!(count.begin(2, true).is_none());
        assert_eq!(count.get(), 2, "a refused request is not left counted");
        drop(a);
        assert!(count.begin(2, true).is_some());
    }

    #[test]
    fn uploading_requests_count_only_once_their_body_is_sent() {
        let count = PendingCount::default();
        let uploads: Vec<_> = (0..10).map(|_| count.begin(2, false)).collect();
        assert!(
            uploads.iter().all(Option::is_some),
            "uploads never fill the limit"
        );
        assert_eq!(count.get(), 0);
        let first = uploads[0].as_ref().and_then(Pending::uploading);
        let first = first.expect("an upload has a hook");
        first.finished();
        first.finished();
        assert_eq!(count.get(), 1, "finishing twice counts once");
        drop(uploads);
        assert_eq!(count.get(), 0);
    }

    #[test]
    fn a_body_ending_after_the_head_is_not_counted() {
        let count = PendingCount::default();
        let p = count.begin(1, false).expect("admitted");
        let hook = p.uploading().expect("an upload has a hook");
        drop(p);
        hook.finished();
        assert_eq!(count.get(), 0);
    }
}
