//! Round robin: targets in turn, skipping ineligible ones.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Lock-free round robin.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// The next eligible index among `n`.
    pub fn pick(&self, n: usize, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find(|&i| eligible(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_evenly_and_skips_ineligible() {
        let rr = RoundRobin::default();
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(3, |_| true).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let picks: Vec<usize> = (0..4).map(|_| rr.pick(3, |i| i != 1).unwrap()).collect();
        assert!(!picks.contains(&1));
        assert_eq!(rr.pick(3, |_| false), None);
    }
}
