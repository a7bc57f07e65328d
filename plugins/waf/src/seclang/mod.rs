//! Loading SecLang rule files into a [`RuleSet`]: directives, `Include` with globs, default
//! actions per phase, chains, markers, and the removals and target updates that apply to
//! rules wherever they are written.

pub mod actions;
pub mod lexer;
mod passes;

use crate::operators::Operator;
use crate::prefilter::ChainFilter;
use crate::rule::{Disruptive, EngineMode, Rule, Select, Test};
use crate::transforms::Transform;
use crate::variables::{parse_targets, VarSpec};
use lexer::Directive;
use std::collections::HashMap;

/// Where rule files come from: the file system the filter was granted, or a test double.
pub trait Files {
    /// The text of `path`.
    fn read(&mut self, path: &str) -> Result<String, String>;
    /// The files `pattern` names, sorted (a pattern without wildcards names itself).
    fn glob(&mut self, pattern: &str) -> Result<Vec<String>, String>;
}

/// One entry of a phase's rule list.
#[derive(Debug)]
pub enum Entry {
    /// A rule (with its chain).
    Rule(Box<Rule>),
    /// A `SecMarker`: where `skipAfter` lands.
    Marker(String),
}

/// Engine-wide settings the directives set.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `SecRuleEngine`.
    pub engine: EngineMode,
    /// `SecRequestBodyAccess`.
    pub request_body_access: bool,
    /// `SecResponseBodyAccess`.
    pub response_body_access: bool,
    /// `SecRequestBodyLimit`, in bytes.
    pub request_body_limit: usize,
    /// `SecResponseBodyMimeType`: the response types whose bodies are inspected.
    pub response_mime_types: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            engine: EngineMode::On,
            request_body_access: true,
            response_body_access: false,
            request_body_limit: 13_107_200,
            response_mime_types: vec!["text/plain".into(), "text/html".into()],
        }
    }
}

/// A loaded rule set.
#[derive(Debug, Default)]
pub struct RuleSet {
    /// The rules of phases 1 to 5 (index 0 to 4), in the order written, markers in every phase.
    pub phases: [Vec<Entry>; 5],
    /// Engine settings.
    pub settings: Settings,
    /// How many distinct transformation chains rules use (for the per-request cache).
    pub chains: usize,
    /// How many rules (chains count once).
    pub rules: usize,
    /// Per transformation chain, the literal prefilter of its `@rx` links.
    pub prefilters: Vec<Option<ChainFilter>>,
    /// Whether a rule reads `MATCHED_VARS` or `MATCHED_VARS_NAMES`.
    pub reads_matched_vars: bool,
}

/// A `SecDefaultAction`: what `block` means in a phase, and the transformations and logging
/// a rule there starts with.
#[derive(Debug, Clone)]
struct Default_ {
    disruptive: Disruptive,
    status: Option<u16>,
    log: bool,
    transforms: Vec<Transform>,
}

impl Default for Default_ {
    fn default() -> Self {
        Default_ {
            disruptive: Disruptive::Pass,
            status: None,
            log: true,
            transforms: Vec::new(),
        }
    }
}

/// Directives that configure what this filter does not have (audit logs, temporary files,
/// persistent storage, external services): accepted and ignored, so CRS and ModSecurity's
/// recommended configuration load unchanged.
const IGNORED: &[&str] = &[
    "secauditengine",
    "secauditlog",
    "secauditlog2",
    "secauditlogparts",
    "secauditlogrelevantstatus",
    "secauditlogstoragedir",
    "secauditlogtype",
    "secauditlogformat",
    "secauditlogdirmode",
    "secauditlogfilemode",
    "secdebuglog",
    "secdebugloglevel",
    "sectmpdir",
    "secdatadir",
    "secuploaddir",
    "secuploadkeepfiles",
    "secuploadfilemode",
    "secuploadfilelimit",
    "seccollectiontimeout",
    "seccomponentsignature",
    "secunicodemapfile",
    "secunicodecodepage",
    "secstatusengine",
    "secpcrematchlimit",
    "secpcrematchlimitrecursion",
    "secrequestbodyinmemorylimit",
    "secrequestbodynofileslimit",
    "secrequestbodylimitaction",
    "secresponsebodylimit",
    "secresponsebodylimitaction",
    "secserversignature",
    "secwebappid",
    "sectmpsaveuploadedfiles",
    "secxmlexternalentity",
    "secargumentslimit",
    "secrequestbodyjsondepthlimit",
    "seccookieformat",
    "secgeolookupdb",
    "sechttpblkey",
    "secconnengine",
    "secremoterules",
    "secremoterulesfailaction",
];

/// Reads directives into a rule set.
struct Loader<'f> {
    files: &'f mut dyn Files,
    set: RuleSet,
    defaults: [Default_; 5],
    /// A chain being written: its starter, until the last link arrives.
    open_chain: Option<(Rule, usize)>,
    removals: Vec<Select>,
    target_updates: Vec<(Select, Vec<VarSpec>)>,
    chain_ids: HashMap<Vec<Transform>, usize>,
    ids: HashMap<u32, String>,
    depth: usize,
}

/// Load the rules of `entry` files (globs allowed), then `inline` directives (named
/// `inline` in errors). Errors are `file:line: what is wrong`.
pub fn load(files: &mut dyn Files, entry: &[String], inline: &str) -> Result<RuleSet, String> {
    let mut l = Loader {
        files,
        set: RuleSet::default(),
        defaults: Default::default(),
        open_chain: None,
        removals: Vec::new(),
        target_updates: Vec::new(),
        chain_ids: HashMap::new(),
        ids: HashMap::new(),
        depth: 0,
    };
    for pattern in entry {
        l.include(pattern, None, "rules")?;
    }
    if !inline.trim().is_empty() {
        l.text("inline", inline)?;
    }
    if let Some((rule, _)) = &l.open_chain {
        return Err(format!(
            "{}: the chain of rule {} has no last link",
            rule.at, rule.id
        ));
    }
    l.finish();
    Ok(l.set)
}

impl Loader<'_> {
    fn include(&mut self, pattern: &str, from: Option<&str>, what: &str) -> Result<(), String> {
        let pattern = resolve(pattern, from);
        let paths = self.files.glob(&pattern)?;
        if paths.is_empty() {
            return Err(format!("{what}: {pattern:?} names no file"));
        }
        for path in paths {
            if self.depth > 16 {
                return Err(format!("{path}: Include nested more than 16 deep"));
            }
            let text = self.files.read(&path)?;
            self.depth += 1;
            self.text(&path, &text)?;
            self.depth -= 1;
        }
        Ok(())
    }

    fn text(&mut self, file: &str, text: &str) -> Result<(), String> {
        let directives =
            lexer::directives(text).map_err(|(line, why)| format!("{file}:{line}: {why}"))?;
        for d in directives {
            self.directive(file, &d)
                .map_err(|why| format!("{file}:{}: {}: {why}", d.line, d.name))?;
        }
        Ok(())
    }

    fn directive(&mut self, file: &str, d: &Directive) -> Result<(), String> {
        let name = d.name.to_ascii_lowercase();
        if self.open_chain.is_some() && name != "secrule" && name != "secaction" {
            return Err("a chain is open: the next directive must be its next SecRule".into());
        }
        let at = format!("{file}:{}", d.line);
        match name.as_str() {
            "secrule" => {
                // A chained link may leave its (empty) action list out.
                if d.args.len() != 2 && d.args.len() != 3 {
                    return Err(format!("takes 3 arguments, has {}", d.args.len()));
                }
                let acts = d.args.get(2).map_or("", String::as_str);
                self.rule(at, Some((arg(d, 0)?, arg(d, 1)?)), acts, file)?;
            }
            "secaction" => {
                want(d, 1)?;
                self.rule(at, None, arg(d, 0)?, file)?;
            }
            "secmarker" => {
                want(d, 1)?;
                for phase in &mut self.set.phases {
                    phase.push(Entry::Marker(arg(d, 0)?.to_string()));
                }
            }
            "secdefaultaction" => {
                want(d, 1)?;
                self.default_action(arg(d, 0)?)?;
            }
            "include" | "includeoptional" => {
                want(d, 1)?;
                let optional = name == "includeoptional";
                match self.include(arg(d, 0)?, Some(file), "Include") {
                    Err(e) if optional && e.contains("names no file") => {}
                    other => other?,
                }
            }
            n if IGNORED.contains(&n) => {}
            n => {
                if !self.setting(n, d)? && !self.exception(n, d)? {
                    return Err("unknown directive".into());
                }
            }
        }
        Ok(())
    }

    /// An engine setting (`SecRuleEngine`, body access and limits, ...): whether `name` is one.
    fn setting(&mut self, name: &str, d: &Directive) -> Result<bool, String> {
        let settings = &mut self.set.settings;
        match name {
            "secruleengine" => {
                want(d, 1)?;
                settings.engine = actions::engine_mode(arg(d, 0)?)?;
            }
            "secrequestbodyaccess" => {
                want(d, 1)?;
                settings.request_body_access = on_off(arg(d, 0)?)?;
            }
            "secresponsebodyaccess" => {
                want(d, 1)?;
                settings.response_body_access = on_off(arg(d, 0)?)?;
            }
            "secrequestbodylimit" => {
                want(d, 1)?;
                let v = arg(d, 0)?;
                settings.request_body_limit = v
                    .parse()
                    .map_err(|_| format!("{v:?} is not a byte count"))?;
            }
            "secresponsebodymimetype" => {
                settings.response_mime_types =
                    d.args.iter().map(|m| m.to_ascii_lowercase()).collect();
            }
            "secresponsebodymimetypesclear" => settings.response_mime_types.clear(),
            "secargumentseparator" => {
                want(d, 1)?;
                if arg(d, 0)? != "&" {
                    return Err("only & is supported as the argument separator".into());
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A removal or an update of rules loaded anywhere: whether `name` is one.
    fn exception(&mut self, name: &str, d: &Directive) -> Result<bool, String> {
        match name {
            "secruleremovebyid" => {
                let ids = actions::id_ranges(&d.args.join(" "))?;
                self.removals.push(Select::Ids(ids));
            }
            "secruleremovebytag" => {
                want(d, 1)?;
                self.removals
                    .push(Select::Tag(actions::tag_match(arg(d, 0)?)?));
            }
            "secruleremovebymsg" => {
                want(d, 1)?;
                self.removals.push(Select::Msg(arg(d, 0)?.to_string()));
            }
            "secruleupdatetargetbyid" | "secruleupdatetargetbytag" | "secruleupdatetargetbymsg" => {
                if d.args.len() == 3 {
                    return Err("replacing a target (a third argument) is not supported; \
                                add targets and exclusions instead"
                        .into());
                }
                want(d, 2)?;
                let sel = match name {
                    "secruleupdatetargetbyid" => Select::Ids(actions::id_ranges(arg(d, 0)?)?),
                    "secruleupdatetargetbytag" => Select::Tag(actions::tag_match(arg(d, 0)?)?),
                    _ => Select::Msg(arg(d, 0)?.to_string()),
                };
                self.target_updates.push((sel, parse_targets(arg(d, 1)?)?));
            }
            "secruleupdateactionbyid" => {
                want(d, 2)?;
                self.update_action(arg(d, 0)?, arg(d, 1)?)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn default_action(&mut self, text: &str) -> Result<(), String> {
        let p = actions::parse(text)?;
        let phase = p.phase.ok_or("SecDefaultAction needs a phase")?;
        let disruptive = p
            .actions
            .disruptive
            .ok_or("SecDefaultAction needs a disruptive action (pass, deny, ...)")?;
        if disruptive == Disruptive::Block {
            return Err("SecDefaultAction cannot be block".into());
        }
        self.defaults[usize::from(phase - 1)] = Default_ {
            disruptive,
            status: p.actions.status,
            log: p.actions.log.unwrap_or(true),
            transforms: p.transforms,
        };
        Ok(())
    }

    fn update_action(&mut self, id: &str, text: &str) -> Result<(), String> {
        let id: u32 = id.parse().map_err(|_| format!("{id:?} is not a rule id"))?;
        let p = actions::parse(text)?;
        if !p.transforms.is_empty() || !p.actions.setvars.is_empty() || p.chain || p.phase.is_some()
        {
            return Err(
                "only the disruptive action, status, log, msg, logdata, tags and \
                        severity can be updated"
                    .into(),
            );
        }
        let rule = self
            .set
            .phases
            .iter_mut()
            .flatten()
            .find_map(|e| match e {
                Entry::Rule(r) if r.id == id => Some(r),
                _ => None,
            })
            .ok_or_else(|| format!("no rule {id} is loaded before this line"))?;
        let (a, new) = (&mut rule.actions, p.actions);
        a.disruptive = new.disruptive.or(a.disruptive);
        a.status = new.status.or(a.status);
        a.log = new.log.or(a.log);
        a.msg = new.msg.or(a.msg.take());
        a.logdata = new.logdata.or(a.logdata.take());
        a.severity = new.severity.or(a.severity);
        a.tags.extend(new.tags);
        Ok(())
    }

    fn chain_id(&mut self, t: &[Transform]) -> usize {
        let next = self.chain_ids.len();
        *self.chain_ids.entry(t.to_vec()).or_insert(next)
    }

    fn rule(
        &mut self,
        at: String,
        test: Option<(&str, &str)>,
        acts: &str,
        file: &str,
    ) -> Result<(), String> {
        let p = actions::parse(acts)?;
        let starter = self.open_chain.is_none();
        let (id, phase) = self.identify(&p, &at)?;
        let default = self
            .defaults
            .get(usize::from(phase - 1))
            .cloned()
            .unwrap_or_default();
        let mut transforms = if p.t_none {
            Vec::new()
        } else {
            default.transforms.clone()
        };
        transforms.extend(p.transforms.iter().copied());
        let test = match test {
            None => None,
            Some((vars, op)) => Some(self.test(vars, op, file)?),
        };
        let mut actions = p.actions;
        if starter {
            // No disruptive action means the phase's default, as `block` does.
            actions.disruptive.get_or_insert(Disruptive::Block);
            if actions.log.is_none() {
                actions.log = Some(default.log);
            }
        }
        let rule = Rule {
            id,
            phase,
            at,
            test,
            chain_id: self.chain_id(&transforms),
            transforms,
            actions,
            chained: None,
            pf_slot: None,
            pf_whole: false,
            records_match: true,
            skip_target: None,
            default_disruptive: Disruptive::Pass,
            default_status: None,
        };
        self.place(rule, p.chain);
        Ok(())
    }

    /// A new rule's id and phase: its own for a starter (the id unique), its chain's for a
    /// link.
    fn identify(&mut self, p: &actions::Parsed, at: &str) -> Result<(u32, u8), String> {
        if let Some((r, _)) = &self.open_chain {
            if p.id.is_some() || p.phase.is_some() {
                return Err("a chained rule cannot have its own id or phase".into());
            }
            return Ok((r.id, r.phase));
        }
        let id = p.id.ok_or("a rule needs an id")?;
        if let Some(first) = self.ids.insert(id, at.to_string()) {
            return Err(format!("rule id {id} is already used at {first}"));
        }
        Ok((id, p.phase.unwrap_or(2)))
    }

    /// A `SecRule`'s targets and operator (data files relative to the rule's file).
    fn test(&mut self, vars: &str, op: &str, file: &str) -> Result<Test, String> {
        let dir = parent(file);
        let files = &mut *self.files;
        let mut read = |name: &str| files.read(&resolve(name, Some(&format!("{dir}/x"))));
        let (op, negated) = Operator::parse(op, &mut read)?;
        Ok(Test {
            vars: parse_targets(vars)?,
            op,
            negated,
        })
    }

    /// Add `rule` to the chain being written, or to its phase; `chain`: more links follow.
    fn place(&mut self, rule: Rule, chain: bool) {
        let rule = match self.open_chain.take() {
            None => rule,
            Some((mut head, depth)) => {
                head.append_link(rule);
                if chain {
                    self.open_chain = Some((head, depth + 1));
                    return;
                }
                head
            }
        };
        if chain {
            self.open_chain = Some((rule, 1));
            return;
        }
        self.set.rules += 1;
        if let Some(phase) = self.set.phases.get_mut(usize::from(rule.phase - 1)) {
            phase.push(Entry::Rule(Box::new(rule)));
        }
    }

    /// Apply removals and target updates (ModSecurity applies them whatever their place),
    /// and fill in each rule's default disruptive action.
    fn finish(&mut self) {
        let removals = std::mem::take(&mut self.removals);
        let updates = std::mem::take(&mut self.target_updates);
        for (i, phase) in self.set.phases.iter_mut().enumerate() {
            let default = &self.defaults[i];
            phase.retain(|e| match e {
                Entry::Rule(r) => !removals.iter().any(|s| s.selects(r)),
                Entry::Marker(_) => true,
            });
            passes::resolve_skips(phase);
            for entry in phase.iter_mut() {
                let Entry::Rule(rule) = entry else { continue };
                for (sel, vars) in &updates {
                    if sel.selects(rule) {
                        if let Some(t) = rule.test.as_mut() {
                            t.vars.extend(vars.iter().cloned());
                        }
                    }
                }
                rule.default_disruptive = default.disruptive;
                rule.default_status = default.status;
            }
        }
        self.set.rules = self
            .set
            .phases
            .iter()
            .flatten()
            .filter(|e| matches!(e, Entry::Rule(_)))
            .count();
        self.set.chains = self.chain_ids.len();
        self.set.prefilters = passes::prefilters(&mut self.set.phases, self.set.chains);
        passes::compile_patterns(&self.set.phases);
        self.set.reads_matched_vars = passes::record_matches(&mut self.set.phases);
    }
}

impl RuleSet {
    /// Whether `phase` has a rule that does more than skip ahead: one that can set a
    /// variable, change the transaction, log or disrupt.
    pub fn has_working_rules(&self, phase: u8) -> bool {
        self.phases
            .get(usize::from(phase.saturating_sub(1)))
            .is_some_and(|p| {
                p.iter().any(|e| match e {
                    Entry::Rule(r) => !r.only_skips(),
                    Entry::Marker(_) => false,
                })
            })
    }

    /// Whether any rule of `phase` (1-5) exists.
    pub fn has_rules(&self, phase: u8) -> bool {
        self.phases
            .get(usize::from(phase.saturating_sub(1)))
            .is_some_and(|p| p.iter().any(|e| matches!(e, Entry::Rule(_))))
    }
}

/// Argument `i` of `d`.
fn arg(d: &Directive, i: usize) -> Result<&str, String> {
    d.args
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| "missing argument".to_string())
}

/// Refuse `d` unless it has `n` arguments.
fn want(d: &Directive, n: usize) -> Result<(), String> {
    if d.args.len() == n {
        Ok(())
    } else {
        Err(format!("takes {n} argument(s), has {}", d.args.len()))
    }
}

/// `On` or `Off`.
fn on_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{v:?}: expected On or Off")),
    }
}

/// The directory part of `path` (`.` for a bare name).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    }
}

/// `path` relative to the directory of `from` (absolute paths stay).
fn resolve(path: &str, from: Option<&str>) -> String {
    match from {
        Some(f) if !path.starts_with('/') => format!("{}/{path}", parent(f)),
        _ => path.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
