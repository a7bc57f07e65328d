//! What a transformation chain makes of a value — the transformed value and the chain's
//! prefilter finds in it — kept per transaction by the value's address, and across
//! transactions by the value itself in a bounded memo (header values, argument names and
//! cookies repeat from request to request).

use super::OpHit;
use crate::prefilter::{self, Bits};
use crate::rule::Rule;
use crate::seclang::RuleSet;
use crate::transaction::Data;
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

/// Memo entries of one chain or rule, by value.
type ByValue<T> = FxHashMap<Box<[u8]>, T>;

/// Longest value the memo keeps.
const MEMO_VALUE: usize = 1024;

/// Values the memo holds, by transformation chain and value, up to a bound; full, it
/// starts over.
#[derive(Debug)]
pub struct Memo {
    /// By chain, then by value.
    map: FxHashMap<usize, ByValue<Rc<Known>>>,
    /// Outcomes of operators that depend on the value alone, by rule link, then by value
    /// (before transformation).
    ops: FxHashMap<usize, ByValue<Option<Rc<OpHit>>>>,
    len: usize,
    limit: usize,
}

impl Memo {
    /// Start over when full.
    fn make_room(&mut self) {
        if self.len >= self.limit {
            self.map.clear();
            self.ops.clear();
            self.len = 0;
        }
    }

    /// A memo of at most `limit` entries.
    pub fn new(limit: usize) -> Memo {
        Memo {
            map: FxHashMap::default(),
            ops: FxHashMap::default(),
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
    map: FxHashMap<(usize, usize, usize), Rc<Known>>,
    set: &'s RuleSet,
    /// Per chain: the prefilter's finds over every value its rules could target.
    chain_hits: FxHashMap<usize, Bits>,
    memo: Option<&'s RefCell<Memo>>,
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
    }

    /// What `link`'s chain makes of `v`, a value borrowed from the transaction (which
    /// outlives this cache, so its address names it).
    fn known(&mut self, link: &Rule, v: &[u8]) -> &Known {
        let key = (v.as_ptr() as usize, v.len(), link.chain_id);
        let (filters, memo) = (&self.set.prefilters, self.memo);
        self.map.entry(key).or_insert_with(|| {
            let make = || {
                let value = apply(link, v).map(Vec::into_boxed_slice);
                let hits = match filters.get(link.chain_id) {
                    Some(Some(f)) => f.scan(value.as_deref().unwrap_or(v)),
                    _ => Bits::default(),
                };
                Rc::new(Known { value, hits })
            };
            let Some(memo) = memo.filter(|_| v.len() <= MEMO_VALUE) else {
                return make();
            };
            let mut memo = memo.borrow_mut();
            if let Some(k) = memo.map.get(&link.chain_id).and_then(|m| m.get(v)) {
                return k.clone();
            }
            memo.make_room();
            let k = make();
            memo.len += 1;
            memo.map
                .entry(link.chain_id)
                .or_default()
                .insert(Box::from(v), k.clone());
            k
        })
    }

    /// `link`'s operator over `v` (borrowed from the transaction) transformed, by `op`; an
    /// operator that depends on the value alone (`pure`) is run once per value across
    /// transactions. `None`: no match (or the prefilter ruled it out).
    pub(super) fn run(
        &mut self,
        link: &Rule,
        v: &[u8],
        pure: bool,
        op: impl FnOnce(&[u8]) -> Option<OpHit>,
    ) -> Option<OpHit> {
        self.memoised(link, v, pure, false, |cache| {
            cache.lookup(link, v).and_then(op)
        })
    }

    /// `run` for a `multiMatch` link: `op` takes `v` as it is and makes the transformations
    /// itself (the outcome is memoised the same way, under its own key).
    pub(super) fn run_whole(
        &mut self,
        link: &Rule,
        v: &[u8],
        pure: bool,
        op: impl FnOnce(&[u8]) -> Option<OpHit>,
    ) -> Option<OpHit> {
        self.memoised(link, v, pure, true, |_| op(v))
    }

    /// `find`'s outcome for (`link`, `v`), from or into the memo when `pure`. `whole` keys
    /// [`Cache::run_whole`]'s outcomes apart from [`Cache::run`]'s.
    fn memoised(
        &mut self,
        link: &Rule,
        v: &[u8],
        pure: bool,
        whole: bool,
        find: impl FnOnce(&mut Self) -> Option<OpHit>,
    ) -> Option<OpHit> {
        let memo = self.memo.filter(|_| pure && v.len() <= MEMO_VALUE);
        // Rules are aligned, so the lowest bit of their address is free for `whole`.
        let id = link as *const Rule as usize | usize::from(whole);
        if let Some(memo) = memo {
            if let Some(known) = memo.borrow().ops.get(&id).and_then(|m| m.get(v)) {
                return known.as_deref().cloned();
            }
        }
        let hit = find(self);
        if let Some(memo) = memo {
            let mut memo = memo.borrow_mut();
            memo.make_room();
            memo.len += 1;
            let kept = hit.clone().map(Rc::new);
            memo.ops.entry(id).or_default().insert(Box::from(v), kept);
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
            let mut scan = |v: &[u8]| all.union(&self.known(link, v).hits);
            match *coll {
                Coll::Multi(i) => data.multi(i).iter().for_each(|it| scan(&it.value)),
                Coll::Scalar(i) => {
                    if let Some(v) = data.scalar(i) {
                        scan(v)
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
    fn lookup<'c>(&'c mut self, link: &Rule, v: &'c [u8]) -> Option<&'c [u8]> {
        let has_filter = matches!(self.set.prefilters.get(link.chain_id), Some(Some(_)));
        let known = self.known(link, v);
        if let (Some(pf), true) = (link.pf_slot, has_filter) {
            if !prefilter::has(&known.hits, pf) {
                return None;
            }
        }
        Some(known.value.as_deref().unwrap_or(v))
    }
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

    #[test]
    fn the_memo_serves_later_transactions_and_starts_over_when_full() {
        let set = load(
            &mut MemFiles::default(),
            &[],
            "SecRule ARGS \"@rx (?i)union\\s+select\" \"id:1,phase:1,deny,t:none,t:urlDecodeUni\"",
        )
        .unwrap();
        // A value the rule runs on takes two entries (the chain's view of it, the operator's
        // outcome); one the prefilter rules out, one.
        let memo = RefCell::new(Memo::new(3));
        let run = |uri: &str| {
            let data = Data::request(&RequestHead {
                method: "GET",
                raw_uri: uri,
                protocol: "HTTP/1.1",
                ..Default::default()
            });
            let mut st = super::super::State::new(&set);
            let mut cache = Cache::with_memo(&set, &memo);
            super::super::run_phase(&set, 1, &data, &mut st, &mut cache);
            st.interruption.is_some()
        };
        assert!(run("/?q=1%20UNION%20SELECT%20x"));
        assert_eq!(memo.borrow().len(), 2);
        // The same value from the memo decides the same.
        assert!(run("/?q=1%20UNION%20SELECT%20x"));
        assert_eq!(memo.borrow().len(), 2);
        assert!(!run("/?q=fine"));
        assert_eq!(memo.borrow().len(), 3);
        // Full: it starts over rather than grow.
        assert!(!run("/?q=other"));
        assert_eq!(memo.borrow().len(), 1);
        assert!(run("/?q=1%20UNION%20SELECT%20x"));
        assert_eq!(memo.borrow().len(), 3);
    }
}
