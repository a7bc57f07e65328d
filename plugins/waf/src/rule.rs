//! The rule model a loaded rule set is made of: rules with their targets, operator,
//! transformations and actions, as SecLang describes them.

use crate::macros::Macro;
use crate::operators::Operator;
use crate::transforms::Transform;
use crate::variables::VarSpec;

/// A rule, or one link of a chain.
#[derive(Debug)]
pub struct Rule {
    /// `id` (a chained link carries its starter's).
    pub id: u32,
    /// 1 request headers, 2 request body, 3 response headers, 4 response body, 5 logging.
    pub phase: u8,
    /// Where it is written, `file:line`.
    pub at: String,
    /// What it tests; `None` for `SecAction` (always matches).
    pub test: Option<Test>,
    /// Transformations applied to each value before the operator (after `t:none`, only
    /// the rule's own; otherwise the phase's default ones first).
    pub transforms: Vec<Transform>,
    /// Index of the interned transformation chain, for the per-request cache.
    pub chain_id: usize,
    /// This link's slot in its chain's prefilter, when its operator has one.
    pub pf_slot: Option<u32>,
    /// Its targets are all request variables its chain's prefilter scans, so a request
    /// where its strings appear nowhere skips it whole.
    pub pf_whole: bool,
    /// Actions.
    pub actions: Actions,
    /// The next link of a chain.
    pub chained: Option<Box<Rule>>,
    /// Whether a match updates `MATCHED_VAR(S)`: only when something can read them (see
    /// [`RuleSet`](crate::seclang::RuleSet) loading); a paranoia-level gate or a setting
    /// of a default copies nothing.
    pub records_match: bool,
    /// Where `skipAfter` lands: the index of its marker in this rule's phase (past the
    /// end when the phase has no such marker after the rule).
    pub skip_target: Option<usize>,
    /// What `block` means here: the phase's `SecDefaultAction`.
    pub default_disruptive: Disruptive,
    /// The status of the phase's default action.
    pub default_status: Option<u16>,
}

impl Rule {
    /// This rule and the links chained to it, in order.
    pub fn links(&self) -> impl Iterator<Item = &Rule> {
        std::iter::successors(Some(self), |l| l.chained.as_deref())
    }

    /// Run `f` on this rule and on each link chained to it, in order.
    pub fn for_each_link_mut(&mut self, mut f: impl FnMut(&mut Rule)) {
        let mut link = Some(self);
        while let Some(l) = link {
            f(l);
            link = l.chained.as_deref_mut();
        }
    }

    /// Whether anything in this rule can read what its matches record: a later link, a
    /// capture, or a macro naming `MATCHED_VAR...` in its messages or `setvar`s.
    pub fn reads_its_matches(&self) -> bool {
        let named = |m: &crate::macros::Macro| m.mentions("MATCHED_VAR");
        self.links().any(|l| {
            let a = &l.actions;
            l.chained.is_some()
                || a.capture
                || a.msg.as_ref().is_some_and(named)
                || a.logdata.as_ref().is_some_and(named) || a.setvars.iter().any(|sv| {
                named(&sv.name)
                    || matches!(&sv.op, SetOp::Set(m) | SetOp::Add(m) | SetOp::Sub(m) if named(m))
            })
        })
    }

    /// Whether a link of this rule targets a collection `which` accepts.
    pub fn reads(&self, which: impl Fn(crate::variables::Coll) -> bool) -> bool {
        self.links().any(|l| {
            l.test
                .as_ref()
                .is_some_and(|t| t.vars.iter().any(|v| which(v.coll)))
        })
    }

    /// A gate such as CRS's paranoia-level checks: `pass`, `nolog`, `skipAfter`, and no
    /// other effect in any link.
    pub fn only_skips(&self) -> bool {
        let quiet = |r: &Rule| {
            r.actions.setvars.is_empty() && r.actions.ctls.is_empty() && !r.actions.capture
        };
        self.links().all(quiet)
            && self.actions.disruptive == Some(Disruptive::Pass)
            && self.actions.log == Some(false)
            && (self.actions.skip_after.is_some() || self.actions.skip > 0)
    }

    /// Put `link` at the end of this rule's chain.
    pub fn append_link(&mut self, link: Rule) {
        match &mut self.chained {
            Some(next) => next.append_link(link),
            None => self.chained = Some(Box::new(link)),
        }
    }
}

/// A `SecRule` test: targets and an operator.
#[derive(Debug)]
pub struct Test {
    /// Targets, with exclusions (`!ARGS:x`) among them.
    pub vars: Vec<VarSpec>,
    /// The operator.
    pub op: Operator,
    /// `!@op`: the rule matches a value the operator does not.
    pub negated: bool,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruptive {
    /// Continue.
    Pass,
    /// Answer with the rule's status (default 403).
    Deny,
    /// Close the connection; answered as a deny here.
    Drop,
    /// Stop inspecting this request; let it through.
    Allow,
    /// Whatever the phase's default action says (`block`).
    Block,
}

/// A rule's actions.
#[derive(Debug, Default)]
pub struct Actions {
    /// Deny, pass, allow, block.
    pub disruptive: Option<Disruptive>,
    /// `status:`.
    pub status: Option<u16>,
    /// `setvar:` in order.
    pub setvars: Vec<SetVar>,
    /// `ctl:` in order.
    pub ctls: Vec<Ctl>,
    /// `capture`: an `@rx` match fills `TX:0`..`TX:9`.
    pub capture: bool,
    /// `multiMatch`: test the value after every transformation, not only the last.
    pub multi_match: bool,
    /// `log` / `nolog` (`None`: the default action's, else log).
    pub log: Option<bool>,
    /// `msg:`.
    pub msg: Option<Macro>,
    /// `logdata:`.
    pub logdata: Option<Macro>,
    /// `tag:` values.
    pub tags: Vec<String>,
    /// `severity:` 0 (emergency) to 7 (debug).
    pub severity: Option<u8>,
    /// `skipAfter:` marker.
    pub skip_after: Option<String>,
    /// `skip:` rules to skip after this one.
    pub skip: u32,
}

/// `setvar:` — set, add to, subtract from or delete a collection variable.
#[derive(Debug, Clone)]
pub struct SetVar {
    /// `tx`, `ip`, `global`, `session`, `user` (lower case).
    pub collection: String,
    /// The variable's name (lower case), possibly with macros.
    pub name: Macro,
    /// What to do.
    pub op: SetOp,
}

/// The kinds of `setvar:`.
#[derive(Debug, Clone)]
pub enum SetOp {
    /// `name=value`.
    Set(Macro),
    /// `name=+value`.
    Add(Macro),
    /// `name=-value`.
    Sub(Macro),
    /// `!name`.
    Delete,
}

/// `ctl:` — a change to this request's processing.
#[derive(Debug, Clone)]
pub enum Ctl {
    /// `ruleEngine=On|Off|DetectionOnly`.
    RuleEngine(EngineMode),
    /// `ruleRemoveById=1-5,7`.
    RemoveById(Vec<(u32, u32)>),
    /// `ruleRemoveByTag=tag` (a regular expression in ModSecurity v3: kept as text,
    /// compared exactly or as a regex).
    RemoveByTag(TagMatch),
    /// `ruleRemoveTargetById=id;TARGET:key`.
    RemoveTargetById(Vec<(u32, u32)>, VarSpec),
    /// `ruleRemoveTargetByTag=tag;TARGET:key`.
    RemoveTargetByTag(TagMatch, VarSpec),
    /// `requestBodyProcessor=URLENCODED|MULTIPART|JSON|XML`.
    BodyProcessor(BodyProcessor),
    /// `requestBodyAccess=On|Off`.
    BodyAccess(bool),
    /// `forceRequestBodyVariable=On|Off`.
    ForceBodyVariable(bool),
    /// A ctl that changes only logging here (`auditEngine`, `auditLogParts`,
    /// `requestBodyLimit`, `debugLogLevel`).
    Ignored,
}

/// A tag comparison: a `ruleRemoveByTag` argument.
#[derive(Debug, Clone)]
pub struct TagMatch(pub regex::Regex);

impl TagMatch {
    /// Whether any of `tags` matches.
    pub fn any(&self, tags: &[String]) -> bool {
        tags.iter().any(|t| self.0.is_match(t))
    }
}

/// `SecRuleEngine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    /// Rules run and disruptive actions happen.
    On,
    /// Rules run, matches are logged, nothing is blocked.
    DetectionOnly,
    /// Nothing runs.
    Off,
}

/// How the request body is parsed into `ARGS_POST` / `FILES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProcessor {
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `multipart/form-data`.
    Multipart,
    /// JSON.
    Json,
    /// XML: not parsed here (`XML:` targets are empty); the body stays in `REQUEST_BODY`.
    Xml,
}

impl BodyProcessor {
    /// The name `REQBODY_PROCESSOR` shows.
    pub fn name(self) -> &'static str {
        match self {
            BodyProcessor::UrlEncoded => "URLENCODED",
            BodyProcessor::Multipart => "MULTIPART",
            BodyProcessor::Json => "JSON",
            BodyProcessor::Xml => "XML",
        }
    }
}

/// Which rules a removal (`SecRuleRemoveBy*`, `ctl:ruleRemove*`) or a target update applies
/// to.
#[derive(Debug, Clone)]
pub enum Select {
    /// Ids and id ranges.
    Ids(Vec<(u32, u32)>),
    /// A tag, as a regular expression.
    Tag(TagMatch),
    /// A message, exactly.
    Msg(String),
}

impl Select {
    /// Whether `rule` is selected.
    pub fn selects(&self, rule: &Rule) -> bool {
        match self {
            Select::Ids(r) => in_ranges(r, rule.id),
            Select::Tag(t) => t.any(&rule.actions.tags),
            Select::Msg(m) => rule.actions.msg.as_ref().is_some_and(|x| x.literal() == *m),
        }
    }
}

/// Whether `id` is in any of `ranges`.
pub fn in_ranges(ranges: &[(u32, u32)], id: u32) -> bool {
    ranges.iter().any(|&(a, b)| (a..=b).contains(&id))
}
