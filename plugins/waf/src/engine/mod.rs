//! Running a phase's rules over a transaction: targets with their exclusions,
//! transformations (cached per value and chain), operators, chains, per-match actions,
//! skips, and the disruptive decision.

use crate::macros::Lookup;
use crate::rule::{
    in_ranges, BodyProcessor, Ctl, Disruptive, EngineMode, Rule, Select, SetOp, SetVar, TagMatch,
};
use crate::seclang::{Entry, RuleSet};
use crate::transaction::{At, Data};
use crate::variables::{Coll, Key, VarSpec};

use rustc_hash::FxHashMap;
use std::borrow::Cow;

/// A rule that matched and logs.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: u32,
    pub msg: String,
    pub data: String,
    pub severity: Option<u8>,
}

/// A disruptive action that ended the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interruption {
    pub status: u16,
    pub rule: u32,
}

/// What rules have written during one transaction, and its outcome so far.
#[derive(Debug)]
pub struct State {
    /// The `TX` collection (keys lower case).
    pub tx: FxHashMap<String, String>,
    /// `IP`, `GLOBAL`, `SESSION`, `USER`, `RESOURCE`, as `ip.key`: this request only.
    pub persistent: FxHashMap<String, String>,
    /// The last value a rule matched: its collection, key and value (the name
    /// `COLL:key` is put together only when a rule asks for it).
    matched_var: Option<(Coll, String, Vec<u8>)>,
    /// Every value the current rule matched, named; kept only when some rule reads
    /// `MATCHED_VARS` or `MATCHED_VARS_NAMES`.
    matched_vars: Vec<(String, Vec<u8>)>,
    removed_ids: Vec<(u32, u32)>,
    removed_tags: Vec<TagMatch>,
    removed_targets: Vec<(Select, VarSpec)>,
    /// `SecRuleEngine`, as `ctl:ruleEngine` left it.
    pub engine: EngineMode,
    /// The body processor `ctl:requestBodyProcessor` chose, else the Content-Type's.
    pub body_processor: Option<BodyProcessor>,
    /// Whether the request body is read (`SecRequestBodyAccess`, `ctl:requestBodyAccess`).
    pub body_access: bool,
    /// `ctl:forceRequestBodyVariable`.
    pub force_body_variable: bool,
    /// Matched rules that log, in order.
    pub hits: Vec<Hit>,
    /// The deny that ended it (with the engine `On`).
    pub interruption: Option<Interruption>,
    /// The deny a `DetectionOnly` engine did not carry out.
    pub would_interrupt: Option<Interruption>,
    /// `allow` matched: no further rules run.
    pub allowed: bool,
    /// Emptied strings from an earlier transaction's variables, for new ones.
    spare: Vec<String>,
}

/// Most strings a transaction keeps for the next one.
const SPARE_STRINGS: usize = 512;
/// The largest string kept (by capacity): one grown by a long value is let go.
const SPARE_CAPACITY: usize = 1024;

impl State {
    /// A new transaction under `set`'s settings.
    pub fn new(set: &RuleSet) -> State {
        State {
            tx: FxHashMap::default(),
            persistent: FxHashMap::default(),
            matched_var: None,
            matched_vars: Vec::new(),
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets: Vec::new(),
            engine: set.settings.engine,
            body_processor: None,
            body_access: set.settings.request_body_access,
            force_body_variable: false,
            hits: Vec::new(),
            interruption: None,
            would_interrupt: None,
            allowed: false,
            spare: Vec::new(),
        }
    }

    /// [`State::new`], making new variables out of `spare` strings (which
    /// [`State::into_spare`] of an earlier transaction gave back) before allocating.
    pub fn with_spare(set: &RuleSet, spare: Vec<String>) -> State {
        State {
            spare,
            ..State::new(set)
        }
    }

    /// The transaction's variable strings, emptied, for [`State::with_spare`]: CRS sets
    /// the same few dozen variables in every transaction.
    pub fn into_spare(mut self) -> Vec<String> {
        let mut spare = std::mem::take(&mut self.spare);
        for (k, v) in self.tx.drain().chain(self.persistent.drain()) {
            for mut s in [k, v] {
                if spare.len() < SPARE_STRINGS && s.capacity() <= SPARE_CAPACITY {
                    s.clear();
                    spare.push(s);
                }
            }
        }
        spare
    }

    /// `blocked`, `detected` (a deny that `DetectionOnly` did not carry out) or `passed`.
    pub fn outcome(&self) -> &'static str {
        match (&self.interruption, &self.would_interrupt) {
            (Some(_), _) => "blocked",
            (None, Some(_)) => "detected",
            _ => "passed",
        }
    }

    /// Whether rules have stopped running (a deny, `allow`, or the engine turned off).
    pub fn done(&self) -> bool {
        self.interruption.is_some() || self.allowed || self.engine == EngineMode::Off
    }
}

/// Run the rules of `phase` (1-5).
pub fn run_phase(set: &RuleSet, phase: u8, data: &Data, st: &mut State, cache: &mut Cache<'_>) {
    let Some(list) = set.phases.get(usize::from(phase.saturating_sub(1))) else {
        return;
    };
    let mut skip_n = 0u32;
    // One buffer of target values for every rule of the phase.
    let mut targets = Targets::new();
    let mut at = 0;
    while let Some(entry) = list.get(at) {
        at += 1;
        if st.done() {
            return;
        }
        let Entry::Rule(rule) = entry else {
            continue;
        };
        if skip_n > 0 {
            skip_n -= 1;
            continue;
        }
        if in_ranges(&st.removed_ids, rule.id)
            || st.removed_tags.iter().any(|t| t.any(&rule.actions.tags))
        {
            continue;
        }
        let matched = eval_chain(rule, rule, data, st, cache, &mut targets);
        st.matched_vars.clear();
        if !matched {
            continue;
        }
        after_match(rule, data, st);
        // `skipAfter`: on past the marker (found when the rules were loaded).
        if let Some(marker) = rule.skip_target {
            at = marker.saturating_add(1);
        }
        skip_n = rule.actions.skip;
    }
}

/// Evaluate `link` and, when it matches, the rest of its chain.
fn eval_chain<'d>(
    head: &Rule,
    link: &Rule,
    data: &'d Data,
    st: &mut State,
    cache: &mut Cache<'_>,
    targets: &mut Targets<'d>,
) -> bool {
    if !eval_link(head, link, data, st, cache, targets) {
        return false;
    }
    match &link.chained {
        Some(next) => eval_chain(head, next, data, st, cache, targets),
        None => true,
    }
}

/// `COLL:key`, or `COLL` for a single value.
fn full_name(coll: Coll, key: &str) -> String {
    let coll = coll.name();
    if key.is_empty() {
        return coll.to_string();
    }
    // Put together by hand: `format!` was ~1% of a benign request's CPU in Wasm (rules
    // that keep MATCHED_VARS name every value they match).
    let mut name = String::with_capacity(coll.len() + 1 + key.len());
    name.push_str(coll);
    name.push(':');
    name.push_str(key);
    name
}

fn eval_link<'d>(
    head: &Rule,
    link: &Rule,
    data: &'d Data,
    st: &mut State,
    cache: &mut Cache<'_>,
    targets: &mut Targets<'d>,
) -> bool {
    let Some(test) = &link.test else {
        per_match_actions(head, link, data, st);
        return true;
    };
    if !cache.may_match(link, data) {
        return false;
    }
    targets.clear();
    for spec in test.vars.iter().filter(|s| !s.exclude) {
        collect(head, spec, &test.vars, data, st, targets);
    }
    let mut matched = false;
    for t in targets.iter() {
        let hit = {
            let ctx = Ctx {
                data,
                st,
                rule: head,
            };
            let pure = test.op.is_pure();
            let multi = link.actions.multi_match;
            let op = |v: &[u8]| {
                if multi {
                    multi_match(link, v, &ctx, test.negated)
                } else {
                    run_op(link, v, &ctx, test.negated)
                }
            };
            match t.value {
                Value::Data(v, at) => cache.run(link, v, at, pure, multi, op),
                held if multi => op(targets.bytes(held)),
                held => {
                    let v = targets.bytes(held);
                    let t = cache::apply(link, v);
                    op(t.as_deref().unwrap_or(v))
                }
            }
        };
        let Some((value, captures)) = hit else {
            continue;
        };
        matched = true;
        if link.actions.capture {
            for (i, c) in captures.into_iter().enumerate() {
                st.tx
                    .insert(i.to_string(), String::from_utf8_lossy(&c).into_owned());
            }
        }
        if link.records_match {
            let key = targets.key(t);
            if cache.keeps_matched_vars() {
                st.matched_vars
                    .push((full_name(t.coll, key), value.clone()));
            }
            st.matched_var = Some((t.coll, key.to_string(), value));
        }
        per_match_actions(head, link, data, st);
    }
    matched
}

/// What a link's operator leaves on a match: the (transformed) value and its captures.
pub(super) type OpHit = (Vec<u8>, Vec<Vec<u8>>);

/// The operator over `v`: the transformed value and captures on a match.
fn run_op(link: &Rule, v: &[u8], ctx: &Ctx<'_>, negated: bool) -> Option<OpHit> {
    let test = link.test.as_ref()?;
    let m = test.op.matches(v, link.actions.capture, ctx);
    // The value is copied only when a rule can read it back (MATCHED_VAR).
    let value = || {
        if link.records_match {
            v.to_vec()
        } else {
            Vec::new()
        }
    };
    match (m, negated) {
        (Some(c), false) => Some((value(), c)),
        (None, true) => Some((value(), Vec::new())),
        _ => None,
    }
}

/// `multiMatch`: the operator over the value before and after each transformation.
fn multi_match(link: &Rule, v: &[u8], ctx: &Ctx<'_>, negated: bool) -> Option<OpHit> {
    let mut cur = Cow::Borrowed(v);
    if let Some(hit) = run_op(link, &cur, ctx, negated) {
        return Some(hit);
    }
    for t in &link.transforms {
        // A transformation that changes nothing borrows: the value is not tested again.
        if let Cow::Owned(next) = t.apply(&cur) {
            if next != cur.as_ref() {
                if let Some(hit) = run_op(link, &next, ctx, negated) {
                    return Some(hit);
                }
                cur = Cow::Owned(next);
            }
        }
    }
    None
}

/// Gather the values `spec` names, minus exclusions (`!X:y` in the rule, and
/// `ctl:ruleRemoveTarget*`); for `&X`, only how many there are.
fn collect<'d>(
    rule: &Rule,
    spec: &VarSpec,
    all: &[VarSpec],
    data: &'d Data,
    st: &State,
    out: &mut Targets<'d>,
) {
    let selected = |lower: &str| spec.key.as_ref().is_none_or(|k| k.selects(lower));
    let excluded = |lower: &str| {
        all.iter().any(|e| e.exclude && e.covers(spec.coll, lower))
            || st
                .removed_targets
                .iter()
                .any(|(sel, e)| e.covers(spec.coll, lower) && sel.selects(rule))
    };
    let take = |lower: &str| selected(lower) && !excluded(lower);
    let coll = spec.coll;
    let mut count = 0usize;
    match coll {
        Coll::Multi(i) => {
            for (pos, item) in data.multi(i).iter().enumerate() {
                if take(&item.lower) {
                    count += 1;
                    if !spec.count {
                        out.borrowed(coll, &item.name, &item.value, At::member(i, pos));
                    }
                }
            }
        }
        Coll::Scalar(i) => {
            if let Some(v) = data.scalar(i).filter(|_| !excluded("")) {
                count += 1;
                if !spec.count {
                    out.borrowed(coll, "", v, At::scalar(i));
                }
            }
        }
        // `&TX:x` and the like: counted, not copied.
        _ if spec.count => state_values(spec, st, &take, &mut |_, _| count += 1),
        // Values held by the transaction's state are copied: rules change it while they run.
        _ => state_values(spec, st, &take, &mut |k, v| out.copied(coll, k, v)),
    }
    if spec.count {
        let key = match &spec.key {
            Some(Key::Exact(k)) => k.as_str(),
            _ => "",
        };
        out.count(coll, key, count);
    }
}

/// The values of the collections the transaction's state holds (TX, the persistent ones,
/// what rules matched), that `take` selects, in key order, each given to `found`.
fn state_values(
    spec: &VarSpec,
    st: &State,
    take: &dyn Fn(&str) -> bool,
    found: &mut dyn FnMut(&str, &[u8]),
) {
    match spec.coll {
        // TX keys are kept lower case, as selectors compare them.
        Coll::Tx => match &spec.key {
            Some(Key::Exact(k)) => {
                if let Some(v) = st.tx.get(k).filter(|_| take(k)) {
                    found(k, v.as_bytes());
                }
            }
            _ => {
                // In key order, so which value is matched last does not depend on hashing.
                let mut keys: Vec<_> = st.tx.iter().filter(|(k, _)| take(k)).collect();
                keys.sort();
                for (k, v) in keys {
                    found(k, v.as_bytes());
                }
            }
        },
        Coll::Persistent(p) => {
            let prefix = format!("{p}.");
            let mut keys: Vec<(&str, &String)> = st
                .persistent
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(&prefix).filter(|k| take(k))?, v)))
                .collect();
            keys.sort();
            for (k, v) in keys {
                found(k, v.as_bytes());
            }
        }
        Coll::MatchedVar | Coll::MatchedVarName => {
            if let Some((c, k, v)) = &st.matched_var {
                let value = match spec.coll {
                    Coll::MatchedVar => v.clone(),
                    _ => full_name(*c, k).into_bytes(),
                };
                found("", &value);
            }
        }
        Coll::MatchedVars | Coll::MatchedVarsNames => {
            for (n, v) in st
                .matched_vars
                .iter()
                .filter(|(n, _)| take(&n.to_ascii_lowercase()))
            {
                let value = if spec.coll == Coll::MatchedVars {
                    v
                } else {
                    n.as_bytes()
                };
                found(n, value);
            }
        }
        Coll::Multi(_) | Coll::Scalar(_) => {}
    }
}

/// `setvar` and `ctl` of a link, run for each value it matches.
fn per_match_actions(head: &Rule, link: &Rule, data: &Data, st: &mut State) {
    for sv in &link.actions.setvars {
        setvar(sv, head, data, st);
    }
    for ctl in &link.actions.ctls {
        match ctl {
            Ctl::RuleEngine(m) => st.engine = *m,
            Ctl::RemoveById(r) => st.removed_ids.extend(r.iter().copied()),
            Ctl::RemoveByTag(t) => st.removed_tags.push(t.clone()),
            Ctl::RemoveTargetById(ids, spec) => st
                .removed_targets
                .push((Select::Ids(ids.clone()), spec.clone())),
            Ctl::RemoveTargetByTag(t, spec) => st
                .removed_targets
                .push((Select::Tag(t.clone()), spec.clone())),
            Ctl::BodyProcessor(p) => st.body_processor = Some(*p),
            Ctl::BodyAccess(on) => st.body_access = *on,
            Ctl::ForceBodyVariable(on) => st.force_body_variable = *on,
            Ctl::Ignored => {}
        }
    }
}

/// One `setvar`. Names and values without macros are used as they are in the rule, and a
/// variable that exists has its text rewritten in place: CRS sets dozens per request.
fn setvar(sv: &SetVar, head: &Rule, data: &Data, st: &mut State) {
    let (name, value) = {
        let ctx = Ctx {
            data,
            st,
            rule: head,
        };
        let mut name = sv.name.expand_cow(&ctx);
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            name = Cow::Owned(name.to_ascii_lowercase());
        }
        let value = match &sv.op {
            SetOp::Set(m) | SetOp::Add(m) | SetOp::Sub(m) => Some(m.expand_cow(&ctx)),
            SetOp::Delete => None,
        };
        (name, value)
    };
    let spare = &mut st.spare;
    let (map, key) = if sv.collection == "tx" {
        (&mut st.tx, name)
    } else {
        let key = format!("{}.{name}", sv.collection);
        (&mut st.persistent, Cow::Owned(key))
    };
    let number = |s: Option<&str>| s.and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(0);
    let now = |map: &FxHashMap<String, String>| number(map.get(key.as_ref()).map(String::as_str));
    let (text, n) = match (&sv.op, value) {
        (SetOp::Delete, _) | (_, None) => {
            map.remove(key.as_ref());
            return;
        }
        (SetOp::Set(_), Some(v)) => (Some(v), 0),
        (SetOp::Add(_), Some(v)) => (None, now(map).saturating_add(number(Some(&v)))),
        (SetOp::Sub(_), Some(v)) => (None, now(map).saturating_sub(number(Some(&v)))),
    };
    let slot = match map.get_mut(key.as_ref()) {
        Some(slot) => {
            slot.clear();
            slot
        }
        None => {
            let mut name = spare.pop().unwrap_or_default();
            name.push_str(&key);
            map.entry(name)
                .or_insert_with(|| spare.pop().unwrap_or_default())
        }
    };
    match text {
        Some(t) => slot.push_str(&t),
        None => {
            use std::fmt::Write as _;
            let _ = write!(slot, "{n}");
        }
    }
}

/// What a fully matched rule does: log, and its disruptive action.
fn after_match(rule: &Rule, data: &Data, st: &mut State) {
    let a = &rule.actions;
    if a.log != Some(false) {
        let ctx = Ctx { data, st, rule };
        let hit = Hit {
            id: rule.id,
            msg: a.msg.as_ref().map(|m| m.expand(&ctx)).unwrap_or_default(),
            data: a
                .logdata
                .as_ref()
                .map(|m| truncate(m.expand(&ctx), 200))
                .unwrap_or_default(),
            severity: a.severity,
        };
        st.hits.push(hit);
    }
    let (disruptive, status) = match a.disruptive.unwrap_or(Disruptive::Block) {
        Disruptive::Block => (rule.default_disruptive, a.status.or(rule.default_status)),
        d => (d, a.status),
    };
    match disruptive {
        Disruptive::Pass | Disruptive::Block => {}
        Disruptive::Allow => {
            if st.engine == EngineMode::On {
                st.allowed = true;
            }
        }
        Disruptive::Deny | Disruptive::Drop => {
            let i = Interruption {
                status: status.unwrap_or(403),
                rule: rule.id,
            };
            match st.engine {
                EngineMode::On => st.interruption = Some(i),
                EngineMode::DetectionOnly => {
                    st.would_interrupt.get_or_insert(i);
                }
                EngineMode::Off => {}
            }
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Macro lookups during a rule.
struct Ctx<'a> {
    data: &'a Data,
    st: &'a State,
    rule: &'a Rule,
}

impl Lookup for Ctx<'_> {
    fn lookup(&self, coll: &str, key: &str) -> Option<Cow<'_, str>> {
        match coll {
            "TX" => self.st.tx.get(key).map(|v| Cow::Borrowed(v.as_str())),
            "IP" | "GLOBAL" | "SESSION" | "USER" | "RESOURCE" => self
                .st
                .persistent
                .get(&format!("{}.{key}", coll.to_ascii_lowercase()))
                .map(|v| Cow::Borrowed(v.as_str())),
            "MATCHED_VAR" => self
                .st
                .matched_var
                .as_ref()
                .map(|(_, _, v)| String::from_utf8_lossy(v)),
            "MATCHED_VAR_NAME" => self
                .st
                .matched_var
                .as_ref()
                .map(|(c, k, _)| full_name(*c, k).into()),
            "RULE" => match key {
                "id" => Some(self.rule.id.to_string().into()),
                "msg" => self.rule.actions.msg.as_ref().map(|m| m.literal().into()),
                "severity" => self.rule.actions.severity.map(|s| s.to_string().into()),
                "logdata" => self
                    .rule
                    .actions
                    .logdata
                    .as_ref()
                    .map(|m| m.literal().into()),
                _ => None,
            },
            _ => match Coll::parse(coll)? {
                Coll::Scalar(i) => self.data.scalar(i).map(String::from_utf8_lossy),
                Coll::Multi(i) => self
                    .data
                    .multi(i)
                    .iter()
                    .find(|it| key.is_empty() || it.lower == key)
                    .map(|it| String::from_utf8_lossy(&it.value)),
                _ => None,
            },
        }
    }
}

mod cache;
mod targets;

use targets::{Targets, Value};

pub use cache::{Cache, Memo};

#[cfg(test)]
mod tests;
