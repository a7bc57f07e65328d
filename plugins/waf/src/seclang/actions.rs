//! A rule's action list (`"id:1,phase:2,block,t:none,setvar:'tx.x=+1'"`) read into the
//! rule model.

use crate::macros::Macro;
use crate::rule::{Actions, BodyProcessor, Ctl, Disruptive, EngineMode, SetOp, SetVar, TagMatch};
use crate::transforms::{self, Transform};
use crate::variables::parse_target;

/// An action list, read.
#[derive(Debug, Default)]
pub struct Parsed {
    pub id: Option<u32>,
    pub phase: Option<u8>,
    pub chain: bool,
    /// `t:none` seen: the phase's default transformations are not applied.
    pub t_none: bool,
    pub transforms: Vec<Transform>,
    pub actions: Actions,
}

/// Split at commas outside single quotes.
fn split(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut prev) = (0, false, '\0');
    for (i, c) in text.char_indices() {
        match c {
            '\'' if prev != '\\' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        prev = c;
    }
    out.push(&text[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect()
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let inner = v
        .strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .unwrap_or(v);
    inner.replace("\\'", "'")
}

/// Read an action list.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    for item in split(text) {
        let (name, value) = match item.split_once(':') {
            Some((n, v)) => (n.trim(), Some(unquote(v))),
            None => (item, None),
        };
        let need = || {
            value
                .clone()
                .ok_or_else(|| format!("action {name} needs a value"))
        };
        let a = &mut p.actions;
        match name.to_ascii_lowercase().as_str() {
            "id" => {
                let v = need()?;
                p.id = Some(v.parse().map_err(|_| format!("id:{v} is not a rule id"))?);
            }
            "phase" => {
                let v = need()?;
                p.phase = Some(match v.as_str() {
                    "request" => 2,
                    "response" => 4,
                    "logging" => 5,
                    n => n
                        .parse::<u8>()
                        .ok()
                        .filter(|n| (1..=5).contains(n))
                        .ok_or_else(|| format!("phase:{v} is not a phase (1-5)"))?,
                });
            }
            "chain" => p.chain = true,
            "t" => match transforms::parse(&need()?)? {
                None => {
                    p.t_none = true;
                    p.transforms.clear();
                }
                Some(t) => p.transforms.push(t),
            },
            "deny" => a.disruptive = Some(Disruptive::Deny),
            "drop" => a.disruptive = Some(Disruptive::Drop),
            "pass" => a.disruptive = Some(Disruptive::Pass),
            "allow" => a.disruptive = Some(Disruptive::Allow),
            "block" => a.disruptive = Some(Disruptive::Block),
            "redirect" => a.disruptive = Some(Disruptive::Deny),
            "status" => {
                let v = need()?;
                a.status = Some(
                    v.parse::<u16>()
                        .ok()
                        .filter(|s| (200..=599).contains(s))
                        .ok_or_else(|| format!("status:{v} is not an HTTP status"))?,
                );
            }
            "setvar" => a.setvars.push(setvar(&need()?)?),
            "ctl" => a.ctls.push(ctl(&need()?)?),
            "capture" => a.capture = true,
            "multimatch" => a.multi_match = true,
            "log" => a.log = Some(true),
            "nolog" => a.log = Some(false),
            "msg" => a.msg = Some(Macro::parse(&need()?)),
            "logdata" => a.logdata = Some(Macro::parse(&need()?)),
            "tag" => a.tags.push(need()?),
            "severity" => a.severity = Some(severity(&need()?)?),
            "skipafter" => a.skip_after = Some(need()?),
            "skip" => {
                let v = need()?;
                a.skip = v.parse().map_err(|_| format!("skip:{v} is not a count"))?;
            }
            "exec" => return Err("exec is not supported: filters run no programs".into()),
            // Logging, metadata and persistence details this filter has no use for.
            "auditlog"
            | "noauditlog"
            | "ver"
            | "rev"
            | "accuracy"
            | "maturity"
            | "expirevar"
            | "initcol"
            | "setsid"
            | "setuid"
            | "setrsc"
            | "sanitisearg"
            | "sanitisematched"
            | "sanitisematchedbytes"
            | "sanitiserequestheader"
            | "sanitiseresponseheader"
            | "append"
            | "prepend"
            | "deprecatevar"
            | "xmlns"
            | "proxy"
            | "pause"
            | "setenv" => {}
            other => return Err(format!("unknown action {other:?}")),
        }
    }
    Ok(p)
}

fn severity(v: &str) -> Result<u8, String> {
    const NAMES: [&str; 8] = [
        "EMERGENCY",
        "ALERT",
        "CRITICAL",
        "ERROR",
        "WARNING",
        "NOTICE",
        "INFO",
        "DEBUG",
    ];
    if let Ok(n) = v.parse::<u8>() {
        if n <= 7 {
            return Ok(n);
        }
    }
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(v))
        .map(|i| i as u8)
        .ok_or_else(|| format!("severity:{v} is not a severity"))
}

fn setvar(v: &str) -> Result<SetVar, String> {
    let (delete, v) = match v.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (target, value) = match v.split_once('=') {
        Some((t, val)) => (t, Some(val)),
        None => (v, None),
    };
    let (coll, name) = target
        .split_once('.')
        .ok_or_else(|| format!("setvar:{v} needs collection.name"))?;
    let coll = coll.trim().to_ascii_lowercase();
    if !["tx", "ip", "global", "session", "user", "resource"].contains(&coll.as_str()) {
        return Err(format!("setvar:{v}: unknown collection {coll:?}"));
    }
    let op = match (delete, value) {
        (true, _) => SetOp::Delete,
        (false, None) => SetOp::Set(Macro::parse("1")),
        (false, Some(val)) => match (val.strip_prefix('+'), val.strip_prefix('-')) {
            (Some(n), _) => SetOp::Add(Macro::parse(n)),
            (_, Some(n)) => SetOp::Sub(Macro::parse(n)),
            _ => SetOp::Set(Macro::parse(val)),
        },
    };
    Ok(SetVar {
        collection: coll,
        name: Macro::parse(&name.trim().to_ascii_lowercase()),
        op,
    })
}

/// `1-5,7` or `942100`.
pub fn id_ranges(v: &str) -> Result<Vec<(u32, u32)>, String> {
    let mut out = Vec::new();
    for part in v.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let n = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{part:?} is not a rule id or range"))
        };
        out.push((n(a)?, n(b)?));
    }
    if out.is_empty() {
        return Err("no rule ids".into());
    }
    Ok(out)
}

/// A tag argument: matched as a (case-sensitive) regular expression, as ModSecurity v3.
pub fn tag_match(v: &str) -> Result<TagMatch, String> {
    regex::Regex::new(v)
        .map(TagMatch)
        .map_err(|e| format!("tag {v:?}: {e}"))
}

fn ctl(v: &str) -> Result<Ctl, String> {
    let (name, arg) = v
        .split_once('=')
        .ok_or_else(|| format!("ctl:{v} needs name=value"))?;
    let on_off = |a: &str| match a.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("ctl:{v}: expected On or Off")),
    };
    let target = |rest: &str| -> Result<_, String> {
        let (what, target) = rest
            .split_once(';')
            .ok_or_else(|| format!("ctl:{v} needs id-or-tag;TARGET"))?;
        Ok((what.to_string(), parse_target(target.trim())?))
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "ruleengine" => Ctl::RuleEngine(engine_mode(arg)?),
        "ruleremovebyid" => Ctl::RemoveById(id_ranges(arg)?),
        "ruleremovebytag" => Ctl::RemoveByTag(tag_match(arg)?),
        "ruleremovetargetbyid" => {
            let (ids, t) = target(arg)?;
            Ctl::RemoveTargetById(id_ranges(&ids)?, t)
        }
        "ruleremovetargetbytag" => {
            let (tag, t) = target(arg)?;
            Ctl::RemoveTargetByTag(tag_match(&tag)?, t)
        }
        "requestbodyprocessor" => Ctl::BodyProcessor(match arg.to_ascii_uppercase().as_str() {
            "URLENCODED" => BodyProcessor::UrlEncoded,
            "MULTIPART" => BodyProcessor::Multipart,
            "JSON" => BodyProcessor::Json,
            "XML" => BodyProcessor::Xml,
            other => return Err(format!("ctl:{v}: unknown body processor {other}")),
        }),
        "requestbodyaccess" => Ctl::BodyAccess(on_off(arg)?),
        "forcerequestbodyvariable" => Ctl::ForceBodyVariable(on_off(arg)?),
        "auditengine" | "auditlogparts" | "requestbodylimit" | "debugloglevel"
        | "responsebodyaccess" | "responsebodylimit" | "hashengine" | "hashenforcement" => {
            Ctl::Ignored
        }
        other => return Err(format!("unknown ctl:{other}")),
    })
}

/// `On`, `Off` or `DetectionOnly`.
pub fn engine_mode(v: &str) -> Result<EngineMode, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" => Ok(EngineMode::On),
        "off" => Ok(EngineMode::Off),
        "detectiononly" => Ok(EngineMode::DetectionOnly),
        _ => Err(format!("{v:?}: expected On, Off or DetectionOnly")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_list_with_quotes_and_commas() {
        let p = parse(
            "id:942100,phase:2,block,capture,t:none,t:urlDecodeUni,msg:'SQL, injection',\
             logdata:'%{TX.0}',tag:'attack-sqli',severity:'CRITICAL',\
             setvar:'tx.sql_injection_score=+%{tx.critical_anomaly_score}',setvar:!tx.x,\
             ctl:ruleRemoveTargetById=942100;ARGS:pwd,skipAfter:END,chain",
        )
        .unwrap();
        assert_eq!(
            (p.id, p.phase, p.chain, p.t_none),
            (Some(942100), Some(2), true, true)
        );
        assert_eq!(p.transforms, [Transform::UrlDecodeUni]);
        let a = &p.actions;
        assert_eq!(a.disruptive, Some(Disruptive::Block));
        assert!(a.capture);
        assert_eq!(a.msg.as_ref().unwrap().literal(), "SQL, injection");
        assert_eq!(a.severity, Some(2));
        assert_eq!(a.setvars.len(), 2);
        assert!(matches!(a.setvars[0].op, SetOp::Add(_)));
        assert!(matches!(a.setvars[1].op, SetOp::Delete));
        assert!(matches!(&a.ctls[0], Ctl::RemoveTargetById(ids, _) if ids == &[(942100, 942100)]));
        assert_eq!(a.skip_after.as_deref(), Some("END"));
    }

    #[test]
    fn bad_actions_say_what_is_wrong() {
        for (text, expect) in [
            ("id:x", "not a rule id"),
            ("phase:9", "not a phase"),
            ("t:nope", "t:nope"),
            ("bogus", "unknown action"),
            ("setvar:nodot", "collection.name"),
            ("ctl:ruleEngine=Sometimes", "DetectionOnly"),
            ("exec:/bin/sh", "not supported"),
            ("status:42", "not an HTTP status"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(expect), "{text}: {e}");
        }
        assert_eq!(id_ranges("1-5, 7").unwrap(), [(1, 5), (7, 7)]);
    }
}
