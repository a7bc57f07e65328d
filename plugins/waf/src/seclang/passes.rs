//! What a loaded rule set is prepared with before it serves: the prefilters, `skipAfter`
//! positions, the compiled patterns, and which rules record their matches.

use super::Entry;
use crate::operators::Operator;
use crate::prefilter::ChainFilter;
use crate::rule::{Rule, Test};
use crate::variables::Coll;

/// Give each `@rx` / `@pm` link whose matches must contain one of some strings a slot in its
/// chain's prefilter, and build the prefilters.
pub(super) fn prefilters(phases: &mut [Vec<Entry>; 5], chains: usize) -> Vec<Option<ChainFilter>> {
    let mut sets: Vec<Vec<Vec<Vec<u8>>>> = vec![Vec::new(); chains];
    let mut colls: Vec<Vec<Coll>> = vec![Vec::new(); chains];
    for entry in phases.iter_mut().flatten() {
        if let Entry::Rule(rule) = entry {
            rule.for_each_link_mut(|l| give_slot(l, &mut sets, &mut colls));
        }
    }
    sets.iter()
        .zip(colls)
        .map(|(s, c)| {
            if s.is_empty() {
                None
            } else {
                ChainFilter::new(s, c)
            }
        })
        .collect()
}

/// A slot in its chain's prefilter for link `l`, if its operator has required strings (and
/// it is neither negated nor multi-matching); with `pf_whole` when all its targets are request
/// variables, whose collections the chain's prefilter then covers.
fn give_slot(l: &mut Rule, sets: &mut [Vec<Vec<Vec<u8>>>], colls: &mut [Vec<Coll>]) {
    let Some(test) = l
        .test
        .as_ref()
        .filter(|t| !t.negated && !l.actions.multi_match)
    else {
        return;
    };
    let room = |s: &&mut Vec<_>| s.len() < crate::prefilter::MAX_SLOTS;
    let (Some(req), Some(set)) = (test.op.required(), sets.get_mut(l.chain_id).filter(room)) else {
        return;
    };
    let slot = set.len() as u32;
    set.push(req);
    let whole = test
        .vars
        .iter()
        .all(|v| v.exclude || (!v.count && matches!(v.coll, Coll::Multi(_) | Coll::Scalar(_))));
    if whole {
        if let Some(c) = colls.get_mut(l.chain_id) {
            for v in test.vars.iter().filter(|v| !v.exclude) {
                if !c.contains(&v.coll) {
                    c.push(v.coll);
                }
            }
        }
    }
    l.pf_slot = Some(slot);
    l.pf_whole = whole;
}

/// Point each `skipAfter` at the first marker of its name after the rule (past the end of
/// the phase when there is none, as ModSecurity skips the rest of the phase then).
pub(super) fn resolve_skips(phase: &mut [Entry]) {
    let markers: Vec<(usize, String)> = phase
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Entry::Marker(m) => Some((i, m.clone())),
            Entry::Rule(_) => None,
        })
        .collect();
    for (i, entry) in phase.iter_mut().enumerate() {
        if let Entry::Rule(r) = entry {
            if let Some(name) = &r.actions.skip_after {
                r.skip_target = Some(
                    markers
                        .iter()
                        .find(|(at, m)| *at > i && m == name)
                        .map_or(usize::MAX - 1, |(at, _)| *at),
                );
            }
        }
    }
}

/// Compile every pattern now: a request never pays for a compilation (a first request full
/// of attack strings would otherwise compile dozens, tens of milliseconds against the CPU
/// deadline), and an attacker cannot make an instance do so.
pub(super) fn compile_patterns(phases: &[Vec<Entry>; 5]) {
    for entry in phases.iter().flatten() {
        let Entry::Rule(rule) = entry else { continue };
        for l in rule.links() {
            if let Some(Test {
                op: Operator::Rx(p),
                ..
            }) = &l.test
            {
                // A pattern the engines refuse matches nothing, as it would at first use.
                let _ = p.compile(l.actions.capture);
            }
        }
    }
}

/// Decide which rules record `MATCHED_VAR(S)` on a match: those that can read them back, or
/// every rule when some rule reads them as its first target (what an earlier rule matched).
/// Returns whether any rule reads `MATCHED_VARS` / `MATCHED_VARS_NAMES`.
pub(super) fn record_matches(phases: &mut [Vec<Entry>; 5]) -> bool {
    let reads_vars = phases.iter().flatten().any(|e| match e {
        Entry::Rule(r) => r.reads(|c| matches!(c, Coll::MatchedVars | Coll::MatchedVarsNames)),
        Entry::Marker(_) => false,
    });
    let reads_earlier = phases.iter().flatten().any(|e| match e {
        Entry::Rule(r) => r.test.as_ref().is_some_and(|t| {
            t.vars.iter().any(|v| {
                matches!(
                    v.coll,
                    Coll::MatchedVar
                        | Coll::MatchedVarName
                        | Coll::MatchedVars
                        | Coll::MatchedVarsNames
                )
            })
        }),
        Entry::Marker(_) => false,
    });
    for entry in phases.iter_mut().flatten() {
        if let Entry::Rule(r) = entry {
            let on = reads_earlier || r.reads_its_matches();
            r.for_each_link_mut(|l| l.records_match = on);
        }
    }
    reads_vars
}
