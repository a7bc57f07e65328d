//! Least connections: the eligible target with the fewest requests in flight per unit of
//! weight; ties go to the first.

use super::Target;

/// The index with the lowest `in_flight / weight`.
pub fn pick(targets: &[Target], eligible: impl Fn(usize) -> bool) -> Option<usize> {
    targets
        .iter()
        .enumerate()
        .filter(|(i, _)| eligible(*i))
        // Compare a/wa < b/wb as a*wb < b*wa, in integers.
        .min_by(|(_, a), (_, b)| {
            (a.in_flight() * u64::from(b.weight)).cmp(&(b.in_flight() * u64::from(a.weight)))
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::{targets, Lease};
    use super::*;

    #[test]
    fn fewest_in_flight_per_weight() {
        let t = targets(&[("a:1", 1), ("b:1", 1), ("c:1", 2)]);
        let _a = Lease::new(&t[0], 0);
        let _c1 = Lease::new(&t[2], 2);
        assert_eq!(pick(&t, |_| true), Some(1));
        let _b = Lease::new(&t[1], 1);
        assert_eq!(
            pick(&t, |_| true),
            Some(2),
            "c: 1 in flight at weight 2 is the least loaded"
        );
        assert_eq!(pick(&t, |i| i == 0), Some(0));
    }
}
