//! Smooth weighted round robin (nginx's): each pick adds every target's weight to its
//! current score, takes the highest, and subtracts the total from it. Weights 5:1:1 give
//! `a a b a c a a`, not `a a a a a b c`.

use super::Target;
use std::sync::Mutex;

/// Current scores, one per target.
#[derive(Debug)]
pub struct SmoothWeighted {
    current: Mutex<Vec<i64>>,
}

impl SmoothWeighted {
    /// Scores for `targets`, all zero.
    pub fn new(targets: &[Target]) -> Self {
        SmoothWeighted {
            current: Mutex::new(vec![0; targets.len()]),
        }
    }

    /// The next eligible index.
    pub fn pick(&self, targets: &[Target], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, t) in targets.iter().enumerate() {
            if !eligible(i) {
                continue;
            }
            let w = i64::from(t.weight);
            current[i] += w;
            total += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            current[b] -= total;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::super::targets;
    use super::*;

    #[test]
    fn smooth_and_proportional() {
        let t = targets(&[("a:1", 5), ("b:1", 1), ("c:1", 1)]);
        let w = SmoothWeighted::new(&t);
        let picks: String = (0..7)
            .map(|_| ["a", "b", "c"][w.pick(&t, |_| true).unwrap()])
            .collect();
        assert_eq!(picks, "aabacaa");
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[w.pick(&t, |i| i != 2).unwrap()] += 1;
        }
        assert_eq!(counts, [583, 117, 0], "5:1 among the eligible");
    }
}
