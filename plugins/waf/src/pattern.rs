//! `@rx` patterns: PCRE spellings translated and checked, then compiled (when the rule set is
//! prepared, [`Pattern::compile`]) for Rust's linear-time engine or, for look-around and
//! back-references, a backtracking engine with a step limit; and the strings a match must
//! contain, for the prefilter.
//!
//! The linear engine is built for what loading CRS in every instance can afford: its lazy
//! DFA, no full DFA, no literal prefilter of its own (the rule set's [`crate::prefilter`]
//! already skips a rule whose strings are absent), and capture groups only for rules with
//! `capture`. The parse made to read a pattern's strings is the one compiled.

use regex_automata::meta::Regex;
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::util::syntax;
use regex_automata::Input;
use regex_syntax::hir::Hir;
use std::sync::{Mutex, OnceLock};

/// A regular expression, checked when its rule is read; compiled once, by
/// [`Pattern::compile`] or else at its first use.
#[derive(Debug)]
pub struct Pattern {
    /// The pattern as Rust's engines read it.
    translated: String,
    /// Whether the linear-time engine takes it.
    linear: bool,
    required: Option<Vec<Vec<u8>>>,
    /// The parse of a linear pattern, kept from [`Pattern::new`] for its compilation.
    parsed: Mutex<Option<Hir>>,
    compiled: OnceLock<Option<Engine>>,
}

#[derive(Debug)]
enum Engine {
    Linear(Regex),
    Backtracking(fancy_regex::Regex),
}

fn parse(translated: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(translated)
        .map_err(|e| e.to_string())
}

impl Pattern {
    /// Check `pattern` (PCRE's byte semantics as far as possible) and find what its matches
    /// must contain; an error says why it cannot be read.
    pub fn new(pattern: &str) -> Result<Pattern, String> {
        let translated = crate::pcre::translate(pattern);
        let (linear, required, parsed) = match parse(&translated) {
            Ok(hir) => (true, crate::prefilter::required_of(&hir), Some(hir)),
            Err(linear) => {
                fancy_regex::Expr::parse_tree(&translated)
                    .map_err(|e| format!("bad regular expression ({linear}; {e})"))?;
                (false, None, None)
            }
        };
        Ok(Pattern {
            translated,
            linear,
            required,
            parsed: Mutex::new(parsed),
            compiled: OnceLock::new(),
        })
    }

    /// Compile now, reporting a pattern the engines refuse (too large, say). `groups`: a
    /// rule will ask for its capture groups (`capture`); without them the linear engine is
    /// built smaller and faster, matching only.
    pub fn compile(&self, groups: bool) -> Result<(), String> {
        match self.compiled.get_or_init(|| self.build(groups)) {
            Some(_) => Ok(()),
            None => Err(format!(
                "regular expression too large or unsupported: {}",
                self.translated
            )),
        }
    }

    /// The engine, compiled with groups at first use if [`Pattern::compile`] did not.
    fn engine(&self) -> Option<&Engine> {
        self.compiled.get_or_init(|| self.build(true)).as_ref()
    }

    fn build(&self, groups: bool) -> Option<Engine> {
        if !self.linear {
            return fancy_regex::RegexBuilder::new(&self.translated)
                .backtrack_limit(1_000_000)
                .build()
                .ok()
                .map(Engine::Backtracking);
        }
        let kept = self.parsed.lock().unwrap_or_else(|p| p.into_inner()).take();
        let hir = match kept {
            Some(hir) => hir,
            None => parse(&self.translated).ok()?,
        };
        // Without groups, no capture states: a smaller NFA, and no one-pass DFA (it serves
        // only group searches).
        let captures = if groups {
            WhichCaptures::All
        } else {
            WhichCaptures::Implicit
        };
        Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .configure(
                Regex::config()
                    .utf8_empty(false)
                    .dfa(false)
                    .onepass(groups)
                    .auto_prefilter(false)
                    .which_captures(captures)
                    .nfa_size_limit(Some(64 << 20))
                    .hybrid_cache_capacity(4 << 20),
            )
            .build_from_hir(&hir)
            .ok()
            .map(Engine::Linear)
    }

    /// The first match and, with `want_groups`, up to nine groups, or `None`. A pattern
    /// the engines refused matches nothing.
    pub fn captures(&self, v: &[u8], want_groups: bool) -> Option<Vec<Vec<u8>>> {
        match self.engine()? {
            Engine::Linear(r) => {
                if !want_groups {
                    return r.find(v).map(|m| vec![v[m.range()].to_vec()]);
                }
                // Slots for the match and nine groups, on the stack.
                let mut slots = [None; 20];
                let want = r.group_info().slot_len().min(slots.len());
                r.search_slots(&Input::new(v), &mut slots[..want])?;
                Some(
                    slots[..want]
                        .chunks(2)
                        .map(|pair| match pair {
                            [Some(a), Some(b)] => {
                                v.get(a.get()..b.get()).unwrap_or_default().to_vec()
                            }
                            _ => Vec::new(),
                        })
                        .collect(),
                )
            }
            Engine::Backtracking(r) => {
                let text = String::from_utf8_lossy(v);
                // A pattern that exceeds its step limit does not match (as PCRE's limits).
                let c = r.captures(&text).ok()??;
                Some(
                    c.iter()
                        .take(if want_groups { 10 } else { 1 })
                        .map(|m| m.map_or_else(Vec::new, |m| m.as_str().as_bytes().to_vec()))
                        .collect(),
                )
            }
        }
    }

    /// The strings one of which every match contains (see [`crate::prefilter`]).
    pub fn required(&self) -> Option<Vec<Vec<u8>>> {
        self.required.clone()
    }

    /// Whether it matches `v`.
    pub fn is_match(&self, v: &[u8]) -> bool {
        match self.engine() {
            Some(Engine::Linear(r)) => r.is_match(v),
            Some(Engine::Backtracking(r)) => {
                r.is_match(&String::from_utf8_lossy(v)).unwrap_or(false)
            }
            None => false,
        }
    }

    /// Whether it runs on the backtracking engine.
    pub fn backtracks(&self) -> bool {
        !self.linear
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_groups_and_requirements() {
        let p = Pattern::new(r"(?i)(union)\s+(select)").unwrap();
        assert!(!p.backtracks());
        assert_eq!(
            p.captures(b"x UNION  select y", true).unwrap(),
            [
                b"UNION  select".to_vec(),
                b"UNION".to_vec(),
                b"select".to_vec()
            ]
        );
        assert_eq!(p.captures(b"x UNION  select y", false).unwrap().len(), 1);
        assert_eq!(p.required(), Some(vec![b"select".to_vec()]));
        let b = Pattern::new(r"(?<!x)abc").unwrap();
        assert!(b.backtracks() && b.is_match(b"zabc") && !b.is_match(b"xabc"));
        assert!(Pattern::new(r"\xff").unwrap().is_match(&[0xff]));
        assert!(Pattern::new("(")
            .unwrap_err()
            .contains("bad regular expression"));
    }
}
