//! What a transformation chain makes of a value — the transformed value and the chain's
//! prefilter finds in it — kept per transaction by the value's place in the data, and across
//! transactions in a bounded memo (header values, argument names and cookies repeat from
//! request to request) that numbers each value it has seen and keeps results by number.

use super::OpHit;
use crate::prefilter::{self, Bits};
use crate::rule::Rule;
use crate::seclang::RuleSet;
use crate::transaction::{At, Data};
use crate::variables::Coll;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

/// What one chain makes of one value.
#[derive(Debug)]
struct Known {
    /// The transformed value (`None`: the transformations left it as it was).
    value: Option<Box<[u8]>>,
    /// Which rules' required strings it contains (empty when the chain has no prefilter).
    hits: Bits,
}

/// Longest value the memo keeps.
const MEMO_VALUE: usize = 1024;

/// Values seen across transactions, each under a number, and what chains and operators made
/// of them by (chain or rule, number), up to a bound; full, it starts over. A value is
/// hashed and compared once per transaction to find its number, not once per chain and rule
/// that reads it.
#[derive(Debug)]
pub struct Memo {
    /// The values, by content.
    ids: FxHashMap<Box<[u8]>, u32>,
    /// By chain and value.
    map: FxHashMap<(usize, u32), Rc<Known>>,
    /// Outcomes of operators that depend on the value alone, by rule link and value (before
    /// transformation).
    ops: FxHashMap<(usize, u32), Option<Rc<OpHit>>>,
    /// Bumped each time the memo starts over: value numbers from before mean nothing.
    generation: u64,
    len: usize,
    limit: usize,
}

impl Memo {
    /// Start over when full.
    fn make_room(&mut self) {
        if self.len >= self.limit {
            self.ids.clear();
            self.map.clear();
            self.ops.clear();
            self.generation += 1;
            self.len = 0;
        }
    }

    /// The number of value `v`, given it if new.
    fn id(&mut self, v: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        self.make_room();
        let id = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.len += 1;
        self.ids.insert(Box::from(v), id);
        id
    }

    /// A memo of at most `limit` entries.
    pub fn new(limit: usize) -> Memo {
        Memo {
            ids: FxHashMap::default(),
            map: FxHashMap::default(),
            ops: FxHashMap::default(),
            generation: 0,
            len: 0,
            limit,
        }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The transformations and prefilter finds of one transaction.
pub struct Cache<'s> {
    /// By value (its place in the data) and chain.
    map: FxHashMap<(u64, usize), Rc<Known>>,
    set: &'s RuleSet,
    /// Per chain: the prefilter's finds over every value its rules could target.
    chain_hits: FxHashMap<usize, Bits>,
    memo: Option<&'s RefCell<Memo>>,
    ids: Numbers,
}

/// The memo's numbers of one transaction's values, by their place in the data, and the
/// memo generation they belong to.
struct Numbers {
    ids: FxHashMap<u64, u32>,
    generation: u64,
}

impl Numbers {
    /// The memo's number for `v`, at `at` in the transaction's data; `None` when there is
    /// no memo or `v` is too long for it.
    fn of<'m>(
        &mut self,
        memo: Option<&'m RefCell<Memo>>,
        v: &[u8],
        at: At,
    ) -> Option<(&'m RefCell<Memo>, u32)> {
        let memo = memo.filter(|_| v.len() <= MEMO_VALUE)?;
        let key = at.get();
        let mut m = memo.borrow_mut();
        if m.generation == self.generation {
            if let Some(&id) = self.ids.get(&key) {
                return Some((memo, id));
            }
        }
        let id = m.id(v);
        // Numbering it may have made the memo start over.
        if m.generation != self.generation {
            self.ids.clear();
            self.generation = m.generation;
        }
        self.ids.insert(key, id);
        Some((memo, id))
    }
}

impl<'s> Cache<'s> {
    /// An empty cache for the rules of `set`.
    pub fn new(set: &'s RuleSet) -> Self {
        // Sized for a typical request (a few dozen values, a dozen chains): no rehashing.
        Cache {
            map: FxHashMap::with_capacity_and_hasher(256, Default::default()),
            set,
            chain_hits: FxHashMap::with_capacity_and_hasher(32, Default::default()),
            memo: None,
            ids: Numbers {
                ids: FxHashMap::with_capacity_and_hasher(64, Default::default()),
                generation: 0,
            },
        }
    }

    /// Whether a rule reads `MATCHED_VARS`: else they are not kept.
    pub(super) fn keeps_matched_vars(&self) -> bool {
        self.set.reads_matched_vars
    }

    /// An empty cache that also consults and fills `memo` (which must belong to `set`).
    pub fn with_memo(set: &'s RuleSet, memo: &'s RefCell<Memo>) -> Self {
        Cache {
            memo: Some(memo),
            ..Cache::new(set)
        }
    }

    /// Forget this transaction's values (they are gone); the memo stays.
    pub fn clear(&mut self) {
        self.map.clear();
        self.chain_hits.clear();
        self.ids.ids.clear();
    }

    /// What `link`'s chain makes of `v`, the value at `at` in the transaction's data.
    fn known(&mut self, link: &Rule, v: &[u8], at: At) -> &Known {
        let key = (at.get(), link.chain_id);
        let Cache {
            map,
            set,
            memo,
            ids,
            ..
        } = self;
        map.entry(key)
            .or_insert_with(|| make_known(set, ids.of(*memo, v, at), link, v))
    }

    /// `link`'s operator, `op`, over `v` (the value at `at` in the transaction's data):
    /// transformed by `link`'s chain first, or with `whole` (`multiMatch`) as it is, `op`
    /// making the transformations itself. An operator that depends on the value alone
    /// (`pure`) is run once per value across transactions. `None`: no match (or the
    /// prefilter ruled it out).
    pub(super) fn run(
        &mut self,
        link: &Rule,
        v: &[u8],
        at: At,
        pure: bool,
        whole: bool,
        op: impl FnOnce(&[u8]) -> Option<OpHit>,
    ) -> Option<OpHit> {
        let memo = if pure {
            self.ids.of(self.memo, v, at)
        } else {
            None
        };
        // Rules are aligned, so the lowest bit of their address is free for `whole`.
        let rule = link as *const Rule as usize | usize::from(whole);
        if let Some((memo, id)) = memo {
            if let Some(known) = memo.borrow().ops.get(&(rule, id)) {
                return known.as_deref().cloned();
            }
        }
        let hit = if whole {
            op(v)
        } else {
            self.lookup(link, v, at).and_then(op)
        };
        if let Some((memo, id)) = memo {
            // Neither `op` nor `lookup` numbers a new value (`lookup` reads the number of `v`
            // taken above), so the memo has not started over since and `id` still numbers `v`.
            let mut memo = memo.borrow_mut();
            memo.len += 1;
            let kept = hit.clone().map(Rc::new);
            memo.ops.insert((rule, id), kept);
        }
        hit
    }

    /// Whether `link` can match any value of the collections its chain's prefilter covers:
    /// `false` lets a rule whose required strings appear nowhere be skipped whole.
    pub(super) fn may_match(&mut self, link: &Rule, data: &Data) -> bool {
        let (Some(pf), true) = (link.pf_slot, link.pf_whole) else {
            return true;
        };
        let Some(Some(filter)) = self.set.prefilters.get(link.chain_id) else {
            return true;
        };
        if let Some(bits) = self.chain_hits.get(&link.chain_id) {
            return prefilter::has(bits, pf);
        }
        let mut all = Bits::default();
        for coll in &filter.colls {
            let mut scan = |v: &[u8], at| all.union(&self.known(link, v, at).hits);
            match *coll {
                Coll::Multi(i) => data
                    .multi(i)
                    .iter()
                    .enumerate()
                    .for_each(|(pos, it)| scan(&it.value, At::member(i, pos))),
                Coll::Scalar(i) => {
                    if let Some(v) = data.scalar(i) {
                        scan(v, At::scalar(i))
                    }
                }
                _ => return true,
            }
        }
        let may = prefilter::has(&all, pf);
        self.chain_hits.insert(link.chain_id, all);
        may
    }

    /// `v` (borrowed from the transaction) through `link`'s transformations; `None` when
    /// the link's prefilter shows its operator cannot match.
    fn lookup<'c>(&'c mut self, link: &Rule, v: &'c [u8], at: At) -> Option<&'c [u8]> {
        let has_filter = matches!(self.set.prefilters.get(link.chain_id), Some(Some(_)));
        let known = self.known(link, v, at);
        if let (Some(pf), true) = (link.pf_slot, has_filter) {
            if !prefilter::has(&known.hits, pf) {
                return None;
            }
        }
        Some(known.value.as_deref().unwrap_or(v))
    }
}

/// What `link`'s chain makes of `v`, when this transaction has not seen the pair: from the
/// memo (`memo`: it and `v`'s number there), or made (and kept there).
fn make_known(
    set: &RuleSet,
    memo: Option<(&RefCell<Memo>, u32)>,
    link: &Rule,
    v: &[u8],
) -> Rc<Known> {
    let make = || {
        let value = apply(link, v).map(Vec::into_boxed_slice);
        let hits = match set.prefilters.get(link.chain_id) {
            Some(Some(f)) => f.scan(value.as_deref().unwrap_or(v)),
            _ => Bits::default(),
        };
        Rc::new(Known { value, hits })
    };
    let Some((memo, id)) = memo else {
        return make();
    };
    if let Some(k) = memo.borrow().map.get(&(link.chain_id, id)) {
        return k.clone();
    }
    let k = make();
    let mut memo = memo.borrow_mut();
    memo.len += 1;
    memo.map.insert((link.chain_id, id), k.clone());
    k
}

/// `v` through `link`'s transformations, or `None` if they change nothing.
pub(super) fn apply(link: &Rule, v: &[u8]) -> Option<Vec<u8>> {
    let mut cur = Cow::Borrowed(v);
    for t in &link.transforms {
        if let Cow::Owned(o) = t.apply(&cur) {
            cur = Cow::Owned(o);
        }
    }
    match cur {
        Cow::Owned(o) => Some(o),
        Cow::Borrowed(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seclang::{load, tests::MemFiles};
    use crate::transaction::RequestHead;

    /// A GET of `uri`.
    fn get(uri: &str) -> Data {
        Data::request(&RequestHead {
            method: "GET",
            raw_uri: uri,
            protocol: "HTTP/1.1",
            ..Default::default()
        })
    }

    #[test]
    fn the_memo_serves_later_transactions_and_starts_over_when_full() {
        let set = load(
            &mut MemFiles::default(),
            &[],
            "SecRule ARGS \"@rx (?i)union\\s+select\" \"id:1,phase:1,deny,t:none,t:urlDecodeUni\"",
        )
        .unwrap();
        // A value takes an entry for its number, and the rule's chain and operator one each
        // for what they made of it (the operator none when the prefilter rules it out).
        let memo = RefCell::new(Memo::new(5));
        let run = |uri: &str| {
            let data = get(uri);
            let mut st = super::super::State::new(&set);
            let mut cache = Cache::with_memo(&set, &memo);
            super::super::run_phase(&set, 1, &data, &mut st, &mut cache);
            st.interruption.is_some()
        };
        assert!(run("/?q=1%20UNION%20SELECT%20x"));
        assert_eq!(memo.borrow().len(), 3);
        // The same value from the memo decides the same.
        assert!(run("/?q=1%20UNION%20SELECT%20x"));
        assert_eq!(memo.borrow().len(), 3);
        assert!(!run("/?q=fine"));
        assert_eq!(memo.borrow().len(), 5);
        // Full: it starts over rather than grow.
        assert!(!run("/?q=other"));
        assert_eq!(memo.borrow().len(), 2);
        assert!(run("/?q=1%20UNION%20SELECT%20x"));
        assert_eq!(memo.borrow().len(), 5);
        assert!(!run("/?q=other"));
    }

    #[test]
    fn a_memo_that_starts_over_within_a_transaction_decides_as_none_would() {
        // Two rules over the same values (one negated, so every value runs an operator);
        // a memo this small starts over several times within one request, and value numbers
        // from before must not be read as the new ones.
        let set = load(
            &mut MemFiles::default(),
            &[],
            "SecRule ARGS \"@rx (?i)union\\s+select\" \"id:1,phase:1,pass,t:none,t:urlDecodeUni,setvar:tx.a=+1\"\n\
             SecRule ARGS \"!@rx ^[a-z0-9 ]*$\" \"id:2,phase:1,pass,t:none,t:lowercase,setvar:tx.b=+1\"",
        )
        .unwrap();
        let run = |memo: Option<&RefCell<Memo>>, uri: &str| {
            let data = get(uri);
            let mut st = super::super::State::new(&set);
            let mut cache = match memo {
                Some(m) => Cache::with_memo(&set, m),
                None => Cache::new(&set),
            };
            super::super::run_phase(&set, 1, &data, &mut st, &mut cache);
            (st.tx.get("a").cloned(), st.tx.get("b").cloned())
        };
        let uris = [
            "/?a=1&b=x%20UNION%20SELECT%201&c=3&d=OK!&e=5",
            "/?a=1&b=2&c=union%20select&d=4&e=%3C",
            "/?e=5&d=OK!&c=3&b=x%20UNION%20SELECT%201&a=1",
        ];
        for limit in [1, 2, 3, 5, 8, 1000] {
            let memo = RefCell::new(Memo::new(limit));
            for _ in 0..3 {
                for uri in uris {
                    assert_eq!(
                        run(Some(&memo), uri),
                        run(None, uri),
                        "{uri}, limit {limit}"
                    );
                }
            }
        }
        assert_eq!(run(None, uris[0]), (Some("1".into()), Some("1".into())));
    }
}
