//! Power of two choices, latency-aware: pick two eligible targets at random and take the one
//! with the lower cost, `EWMA latency × (in flight + 1) / weight`. Targets with no latency
//! sample yet cost nothing, so new targets are tried. Random choice keeps workers from
//! herding onto the same "best" target; the cost steers load away from slow ones.

use super::Target;
use std::cell::Cell;

/// Stateless apart from a per-thread random generator.
#[derive(Debug, Default)]
pub struct PowerOfTwo;

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b) | 1
}

/// xorshift64*: fast, and good enough to choose two targets.
fn next_random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

fn cost(t: &Target) -> f64 {
    t.ewma_ns() * (t.in_flight() + 1) as f64 / f64::from(t.weight)
}

impl PowerOfTwo {
    /// The cheaper of two random eligible targets.
    pub fn pick(&self, targets: &[Target], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..targets.len()).filter(|&i| eligible(i)).collect();
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0]),
            n => {
                let a = (next_random() % n as u64) as usize;
                let mut b = (next_random() % (n as u64 - 1)) as usize;
                if b >= a {
                    b += 1;
                }
                let (a, b) = (candidates[a], candidates[b]);
                Some(if cost(&targets[b]) < cost(&targets[a]) {
                    b
                } else {
                    a
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{targets, Lease};
    use super::*;
    use std::time::Duration;

    #[test]
    fn steers_away_from_the_slow_target() {
        let t = targets(&[("fast:1", 1), ("slow:1", 1), ("fast2:1", 1)]);
        for (i, ms) in [(0, 1), (1, 50), (2, 1)] {
            let lease = Lease::new(&t[i], i);
            t[i].record(Duration::from_millis(ms));
            drop(lease);
        }
        let p = PowerOfTwo;
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[p.pick(&t, |_| true).unwrap()] += 1;
        }
        // The slow one wins only when drawn twice: never, with distinct draws.
        assert_eq!(counts[1], 0, "{counts:?}");
        assert!(counts[0] > 1200 && counts[2] > 1200, "{counts:?}");
        assert_eq!(p.pick(&t, |i| i == 1), Some(1));
    }
}
