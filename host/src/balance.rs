//! Load balancing over an upstream's targets. Round robin for now.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Lock-free round robin over `n` targets.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// The index of the next target among `n` (`n` > 0).
    pub fn pick(&self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        self.next.fetch_add(1, Ordering::Relaxed) % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_evenly() {
        let rr = RoundRobin::default();
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(3)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(rr.pick(1), 0);
    }
}
