//! Consistent hashing on a ring with virtual nodes: each target owns `VNODES × weight`
//! points; a key goes to the owner of the first point at or after its hash. Adding or
//! removing a target moves only the keys of the points it gains or loses; every other key
//! keeps its target.

use super::{stable_hash, Target};

/// Points per unit of weight.
pub const VNODES: u32 = 160;

/// The ring: points sorted by hash.
#[derive(Debug)]
pub struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// The ring of `targets` (points derive from each target's address, so they do not move
    /// when other targets come and go).
    pub fn new(targets: &[Target]) -> Self {
        let mut points = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            for v in 0..VNODES * t.weight {
                let label = format!("{}#{v}", t.authority);
                points.push((stable_hash(label.as_bytes()), i));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The target for `key`: its owner, or the next eligible one around the ring.
    pub fn pick(&self, key: &str, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let h = stable_hash(key.as_bytes());
        let start = self.points.partition_point(|(p, _)| *p < h);
        let n = self.points.len();
        (0..n)
            .map(|k| self.points[(start + k) % n].1)
            .find(|&i| eligible(i))
    }
}

#[cfg(test)]
mod tests {
    use super::super::targets;
    use super::*;

    fn owners(ring: &Ring, t: &[Target], keys: usize) -> Vec<String> {
        (0..keys)
            .map(|k| {
                let i = ring.pick(&format!("client-{k}"), |_| true).unwrap();
                t[i].authority.to_string()
            })
            .collect()
    }

    #[test]
    fn removing_or_adding_a_target_remaps_only_its_share() {
        let four = targets(&[("a:1", 1), ("b:1", 1), ("c:1", 1), ("d:1", 1)]);
        let three = targets(&[("a:1", 1), ("b:1", 1), ("c:1", 1)]);
        let before = owners(&Ring::new(&four), &four, 10_000);
        let after = owners(&Ring::new(&three), &three, 10_000);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(b, "d:1", "only d's keys move");
                moved += 1;
            }
        }
        let d_share = before.iter().filter(|o| *o == "d:1").count();
        assert_eq!(moved, d_share);
        assert!(
            (1800..3200).contains(&d_share),
            "about a quarter: {d_share}"
        );
        // Adding d back restores exactly the old mapping.
        assert_eq!(owners(&Ring::new(&four), &four, 10_000), before);
    }

    #[test]
    fn ineligible_owners_pass_to_the_next_point() {
        let t = targets(&[("a:1", 1), ("b:1", 1)]);
        let ring = Ring::new(&t);
        for k in 0..100 {
            assert_eq!(ring.pick(&format!("k{k}"), |i| i == 1), Some(1));
        }
        assert_eq!(ring.pick("k", |_| false), None);
    }
}
