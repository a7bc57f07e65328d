//! Literal prefilters: for each `@rx` rule, the strings one of which any match must
//! contain (read off the pattern's syntax tree), gathered per transformation chain into one
//! Aho-Corasick automaton. A value is scanned once per chain; a rule whose strings are not
//! in it cannot match, and its regular expression is not run.

use crate::variables::Coll;
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind};

/// Most alternatives a pattern's requirement may have before it is not worth checking.
const MAX_ALTERNATIVES: usize = 400;

/// Most phrases of an `@pm` list the prefilter takes (a long list is an automaton of its own
/// already, and would make every chain automaton costly to build).
pub const MAX_PHRASES: usize = 100;

/// Most bytes a class may have to count as "one of these bytes is required".
const MAX_CLASS_BYTES: usize = 4;

/// The lower-case strings one of which every match of `pattern` contains, or `None` when
/// there is no such set (the pattern can match text without a fixed piece).
pub fn required(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    required_of(&hir)
}

/// [`required`] of a parsed pattern.
pub fn required_of(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let set = facts(hir).required?;
    if set.is_empty() || set.iter().any(Vec::is_empty) || set.len() > MAX_ALTERNATIVES {
        return None;
    }
    Some(set)
}

/// What a piece of a pattern says about the text it matches: the one fixed string it
/// matches (lower-cased; letters in either case), and a set of strings one of which every
/// match contains. Worked out bottom-up in one pass.
struct Facts {
    exact: Option<Vec<u8>>,
    required: Option<Vec<Vec<u8>>>,
}

impl Facts {
    fn none() -> Facts {
        Facts {
            exact: None,
            required: None,
        }
    }

    fn exact(e: Vec<u8>) -> Facts {
        Facts {
            required: (!e.is_empty()).then(|| vec![e.clone()]),
            exact: Some(e),
        }
    }
}

/// The smallest length among a set's strings: how selective it is.
fn score(s: &[Vec<u8>]) -> usize {
    s.iter().map(Vec::len).min().unwrap_or(0)
}

fn facts(h: &Hir) -> Facts {
    match h.kind() {
        HirKind::Literal(l) => Facts::exact(l.0.to_ascii_lowercase()),
        HirKind::Class(c) => match one_letter(c) {
            Some(b) => Facts::exact(vec![b]),
            None => Facts {
                exact: None,
                required: few_bytes(c).map(|bs| bs.into_iter().map(|b| vec![b]).collect()),
            },
        },
        HirKind::Capture(c) => facts(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => Facts {
            exact: None,
            required: facts(&r.sub).required,
        },
        HirKind::Alternation(subs) => {
            let mut all = Vec::new();
            for s in subs {
                match facts(s).required {
                    Some(r) if all.len() + r.len() <= MAX_ALTERNATIVES => all.extend(r),
                    _ => return Facts::none(),
                }
            }
            Facts {
                exact: None,
                required: Some(all),
            }
        }
        HirKind::Concat(subs) => {
            // Runs of exact pieces join into longer strings; the best candidate is the one
            // whose shortest string is longest.
            let mut best: Option<Vec<Vec<u8>>> = None;
            let mut consider = |cand: Option<Vec<Vec<u8>>>| {
                if let Some(c) = cand {
                    if best.as_ref().is_none_or(|b| score(&c) > score(b)) {
                        best = Some(c);
                    }
                }
            };
            let mut run = Vec::new();
            let mut all_exact = true;
            for s in subs {
                let f = facts(s);
                match f.exact {
                    Some(e) => run.extend(e),
                    None => {
                        all_exact = false;
                        if !run.is_empty() {
                            consider(Some(vec![std::mem::take(&mut run)]));
                        }
                        consider(f.required);
                    }
                }
            }
            if all_exact {
                return Facts::exact(run);
            }
            if !run.is_empty() {
                consider(Some(vec![run]));
            }
            Facts {
                exact: None,
                required: best,
            }
        }
        _ => Facts::none(),
    }
}

/// The bytes of a small class (letters lower-cased, each once).
fn few_bytes(c: &Class) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = Vec::new();
    let mut add = |lo: u32, hi: u32| -> Option<()> {
        if hi > 0xff || (hi - lo) as usize >= MAX_CLASS_BYTES * 2 {
            return None;
        }
        for b in lo..=hi {
            let b = (b as u8).to_ascii_lowercase();
            if !bytes.contains(&b) {
                bytes.push(b);
            }
        }
        Some(())
    };
    match c {
        Class::Bytes(b) => {
            for r in b.iter() {
                add(u32::from(r.start()), u32::from(r.end()))?;
            }
        }
        Class::Unicode(u) => {
            for r in u.iter() {
                add(u32::from(r.start()), u32::from(r.end()))?;
            }
        }
    }
    (bytes.len() <= MAX_CLASS_BYTES).then_some(bytes)
}

/// A class of one byte, or of one letter in both cases: that byte, lower-cased.
fn one_letter(c: &Class) -> Option<u8> {
    let mut bytes = Vec::new();
    match c {
        Class::Bytes(b) => {
            for r in b.iter() {
                if usize::from(r.end() - r.start()) + bytes.len() > 2 {
                    return None;
                }
                bytes.extend(r.start()..=r.end());
            }
        }
        Class::Unicode(u) => {
            for r in u.iter() {
                let (s, e) = (u32::from(r.start()), u32::from(r.end()));
                if e > 0x7f || (e - s) as usize + bytes.len() > 2 {
                    return None;
                }
                bytes.extend((s..=e).map(|c| c as u8));
            }
        }
    }
    match bytes.as_slice() {
        [b] => Some(b.to_ascii_lowercase()),
        [a, b] if a.eq_ignore_ascii_case(b) && a != b => Some(a.to_ascii_lowercase()),
        _ => None,
    }
}

/// The prefilter of one transformation chain: its rules' strings in one automaton.
#[derive(Debug)]
pub struct ChainFilter {
    ac: AhoCorasick,
    /// For each pattern, the slot of the rule it belongs to.
    slot_of: Vec<u32>,
    /// The collections the rules skipped whole on a miss read (every value of them is
    /// scanned for that decision).
    pub colls: Vec<Coll>,
}

impl ChainFilter {
    /// An automaton over each slot's strings (`sets[slot]`).
    pub fn new(sets: &[Vec<Vec<u8>>], colls: Vec<Coll>) -> Option<ChainFilter> {
        let mut patterns = Vec::new();
        let mut slot_of = Vec::new();
        for (slot, set) in sets.iter().enumerate() {
            for p in set {
                patterns.push(p.clone());
                slot_of.push(slot as u32);
            }
        }
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&patterns)
            .ok()?;
        Some(ChainFilter { ac, slot_of, colls })
    }

    /// The slots whose strings occur in `v`.
    pub fn scan(&self, v: &[u8]) -> Bits {
        let mut bits = Bits::default();
        for m in self.ac.find_overlapping_iter(v) {
            if let Some(&slot) = self.slot_of.get(m.pattern().as_usize()) {
                bits.set(slot);
            }
        }
        bits
    }
}

/// Most rules one chain's prefilter takes; later ones run without it.
pub const MAX_SLOTS: usize = 256;

/// A set of slots, without allocating.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bits([u64; MAX_SLOTS / 64]);

impl Bits {
    fn set(&mut self, slot: u32) {
        if let Some(w) = self.0.get_mut(slot as usize / 64) {
            *w |= 1 << (slot % 64);
        }
    }

    /// Add `other`'s slots.
    pub fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }
}

/// Whether `slot` is set in `bits`.
pub fn has(bits: &Bits, slot: u32) -> bool {
    bits.0
        .get(slot as usize / 64)
        .is_some_and(|w| w & (1 << (slot % 64)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str) -> Option<Vec<String>> {
        required(p).map(|s| {
            s.into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect()
        })
    }

    #[test]
    fn requirements_of_patterns() {
        assert_eq!(r("(?i)union\\s+select"), Some(vec!["select".into()]));
        assert_eq!(
            r("(?i)(?:<script|javascript:)"),
            Some(vec!["<script".into(), "javascript:".into()])
        );
        assert_eq!(r("^\\d+$"), None);
        assert_eq!(r("a|\\d"), None);
        assert_eq!(r("(?:ab)?cd"), Some(vec!["cd".into()]));
        assert_eq!(r("x+(?:foo|bar)+"), Some(vec!["foo".into(), "bar".into()]));
        assert_eq!(r("[Ss]elect"), Some(vec!["select".into()]));
        assert_eq!(r("a(?:b|)"), Some(vec!["a".into()]));
        assert_eq!(r("[\\n\\r]"), Some(vec!["\n".into(), "\r".into()]));
        assert_eq!(r("[a-z]"), None);
    }

    #[test]
    fn scanning_sets_the_slots_present() {
        let f = ChainFilter::new(
            &[
                vec![b"union".to_vec()],
                vec![b"<script".to_vec(), b"zq".to_vec()],
            ],
            Vec::new(),
        )
        .unwrap();
        let bits = f.scan(b"x UNION y");
        assert!(has(&bits, 0) && !has(&bits, 1));
        // Overlapping matches are all found.
        let bits = f.scan(b"unionzq");
        assert!(has(&bits, 0) && has(&bits, 1));
    }
}
