//! Operators (`@rx`, `@pm`, `@detectSQLi`, `@within`, ...), compiled once at load; a
//! parameter with macros (`@ge %{tx.threshold}`) is expanded per request.

use crate::macros::{Lookup, Macro};
pub use crate::pattern::Pattern;
use aho_corasick::AhoCorasick;
use memchr::memmem::find;
use std::net::IpAddr;

/// An operator and its compiled parameter.
#[derive(Debug)]
pub enum Operator {
    /// `@rx` with a fixed pattern.
    Rx(Pattern),
    /// `@rx` whose pattern has macros: compiled per request.
    RxMacro(Macro),
    /// `@pm` / `@pmFromFile`: any of the phrases, case-insensitively (ASCII). The automaton
    /// holds the phrases in lower case and is searched with values folded the same way: it
    /// builds several times faster than a case-insensitive one, which every instance pays.
    Pm(AhoCorasick, Vec<String>),
    /// String comparisons (`@streq`, `@contains`, ...) against the expanded parameter.
    Str(StrOp, Macro),
    /// Integer comparisons (`@eq`, `@gt`, ...).
    Num(NumOp, Macro),
    /// `@validateByteRange`: a value with a byte outside the set matches.
    ValidateByteRange(Box<[bool; 256]>),
    /// `@validateUrlEncoding`: a value with a bad `%` escape matches.
    ValidateUrlEncoding,
    /// `@validateUtf8Encoding`: a value that is not UTF-8 matches.
    ValidateUtf8,
    /// `@ipMatch` / `@ipMatchFromFile`.
    IpMatch(Vec<(IpAddr, u8)>),
    /// libinjection's SQL injection detector.
    DetectSqli,
    /// libinjection's XSS detector.
    DetectXss,
    /// `@unconditionalMatch`.
    Always,
    /// `@noMatch`, and operators that need services this filter does not have (`@rbl`,
    /// `@geoLookup`): never match.
    Never,
}

/// The string comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    StrEq,
    Contains,
    ContainsWord,
    BeginsWith,
    EndsWith,
    Within,
}

/// The integer comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

/// What a match leaves behind: `TX:0`.. values when capturing.
pub type Captures = Vec<Vec<u8>>;

impl Operator {
    /// Parse `@name param` (a bare pattern means `@rx`); `read_file` reads a data file
    /// named by `@pmFromFile` / `@ipMatchFromFile`.
    pub fn parse(
        text: &str,
        read_file: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<(Operator, bool), String> {
        let (negated, text) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (name, param) = match text.strip_prefix('@') {
            Some(rest) => match rest.split_once([' ', '\t']) {
                Some((n, p)) => (n, p.trim_start()),
                None => (rest, ""),
            },
            None => ("rx", text),
        };
        let m = Macro::parse(param);
        let op = match name.to_ascii_lowercase().as_str() {
            "rx" => {
                if param.is_empty() {
                    return Err("@rx needs a pattern".into());
                }
                if m.is_literal() {
                    Operator::Rx(Pattern::new(param)?)
                } else {
                    Operator::RxMacro(m)
                }
            }
            "pm" => pm(param.split_ascii_whitespace().map(str::to_string).collect())?,
            "pmfromfile" | "pmf" => {
                let mut phrases = Vec::new();
                for file in param.split_ascii_whitespace() {
                    phrases.extend(data_lines(&read_file(file)?));
                }
                pm(phrases)?
            }
            "streq" => Operator::Str(StrOp::StrEq, m),
            "contains" => Operator::Str(StrOp::Contains, m),
            "containsword" => Operator::Str(StrOp::ContainsWord, m),
            "beginswith" => Operator::Str(StrOp::BeginsWith, m),
            "endswith" => Operator::Str(StrOp::EndsWith, m),
            "within" => Operator::Str(StrOp::Within, m),
            "strmatch" => Operator::Str(StrOp::Contains, m),
            "eq" => Operator::Num(NumOp::Eq, m),
            "ge" => Operator::Num(NumOp::Ge, m),
            "gt" => Operator::Num(NumOp::Gt, m),
            "le" => Operator::Num(NumOp::Le, m),
            "lt" => Operator::Num(NumOp::Lt, m),
            "validatebyterange" => Operator::ValidateByteRange(byte_ranges(param)?),
            "validateurlencoding" => Operator::ValidateUrlEncoding,
            "validateutf8encoding" => Operator::ValidateUtf8,
            "ipmatch" => Operator::IpMatch(ip_list(param.split(',').map(str::trim))?),
            "ipmatchfromfile" | "ipmatchf" => {
                let text = read_file(param.trim())?;
                Operator::IpMatch(ip_list(data_lines(&text).iter().map(String::as_str))?)
            }
            "detectsqli" => Operator::DetectSqli,
            "detectxss" => Operator::DetectXss,
            "unconditionalmatch" => Operator::Always,
            "nomatch" | "rbl" | "geolookup" => Operator::Never,
            other => return Err(format!("unknown operator @{other}")),
        };
        Ok((op, negated))
    }

    /// Whether the outcome depends on the value alone (no macros, no request state), so it
    /// can be remembered for the next request with the same value.
    pub fn is_pure(&self) -> bool {
        match self {
            Operator::RxMacro(_) => false,
            Operator::Str(_, m) | Operator::Num(_, m) => m.is_literal(),
            _ => true,
        }
    }

    /// The strings one of which a value must contain to match, when there are such (for the
    /// prefilter): a pattern's required strings, or a phrase list itself.
    pub fn required(&self) -> Option<Vec<Vec<u8>>> {
        match self {
            Operator::Rx(p) => p.required(),
            Operator::Pm(_, phrases) if phrases.len() <= crate::prefilter::MAX_PHRASES => {
                let set: Vec<Vec<u8>> = phrases
                    .iter()
                    .map(|p| p.to_ascii_lowercase().into_bytes())
                    .collect();
                (!set.iter().any(Vec::is_empty)).then_some(set)
            }
            _ => None,
        }
    }

    /// Whether `v` matches, and with `capture`, what it captured (the matched text first;
    /// without `capture` nothing is copied).
    pub fn matches(&self, v: &[u8], capture: bool, with: &dyn Lookup) -> Option<Captures> {
        match self {
            Operator::Rx(p) if !capture => return p.is_match(v).then(Vec::new),
            Operator::Pm(ac, _) if !capture => return ac.is_match(&*folded(v)).then(Vec::new),
            _ => {}
        }
        // What a capturing match of the whole value leaves in TX:0 (nothing is copied
        // without `capture`).
        let whole = || {
            Some(if capture {
                vec![v.to_vec()]
            } else {
                Vec::new()
            })
        };
        match self {
            Operator::Rx(p) => p.captures(v, capture),
            Operator::RxMacro(m) => Pattern::new(&m.expand(with)).ok()?.captures(v, capture),
            Operator::Pm(ac, phrases) => ac.find(&*folded(v)).map(|m| {
                vec![phrases
                    .get(m.pattern().as_usize())
                    .cloned()
                    .unwrap_or_default()
                    .into_bytes()]
            }),
            Operator::Str(op, m) => {
                let p = m.expand_cow(with);
                let p = p.as_bytes();
                let hit = match op {
                    StrOp::StrEq => v == p,
                    StrOp::Contains => find(v, p).is_some(),
                    StrOp::ContainsWord => contains_word(v, p),
                    StrOp::BeginsWith => v.starts_with(p),
                    StrOp::EndsWith => v.ends_with(p),
                    // The parameter contains the value (an empty value never matches).
                    StrOp::Within => !v.is_empty() && find(p, v).is_some(),
                };
                hit.then(|| {
                    vec![if matches!(op, StrOp::Within | StrOp::StrEq) {
                        v.to_vec()
                    } else {
                        p.to_vec()
                    }]
                })
            }
            Operator::Num(op, m) => {
                let (a, b) = (int(v), int(m.expand_cow(with).as_bytes()));
                let hit = match op {
                    NumOp::Eq => a == b,
                    NumOp::Ge => a >= b,
                    NumOp::Gt => a > b,
                    NumOp::Le => a <= b,
                    NumOp::Lt => a < b,
                };
                hit.then(whole).flatten()
            }
            Operator::ValidateByteRange(allowed) => v
                .iter()
                .find(|&&b| !allowed[usize::from(b)])
                .map(|&b| vec![vec![b]]),
            Operator::ValidateUrlEncoding => bad_url_encoding(v).then(whole).flatten(),
            Operator::ValidateUtf8 => std::str::from_utf8(v).is_err().then(whole).flatten(),
            Operator::IpMatch(nets) => {
                let ip: IpAddr = std::str::from_utf8(v).ok()?.trim().parse().ok()?;
                nets.iter()
                    .any(|&(net, bits)| in_net(ip, net, bits))
                    .then(whole)
                    .flatten()
            }
            Operator::DetectSqli => {
                let r = libinjectionrs::detect_sqli(v);
                r.is_injection().then(|| {
                    vec![r
                        .fingerprint
                        .map(|f| f.to_string())
                        .unwrap_or_default()
                        .into_bytes()]
                })
            }
            Operator::DetectXss => libinjectionrs::detect_xss(v)
                .is_injection()
                .then(whole)
                .flatten(),
            Operator::Always => whole(),
            Operator::Never => None,
        }
    }
}

/// `v` with ASCII capitals in lower case (borrowed when it has none, as most values that
/// reach `@pm` after CRS's `t:lowercase`).
fn folded(v: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if v.iter().any(u8::is_ascii_uppercase) {
        std::borrow::Cow::Owned(v.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

fn pm(phrases: Vec<String>) -> Result<Operator, String> {
    if phrases.is_empty() {
        return Err("@pm needs at least one phrase".into());
    }
    // Rules share phrase lists (CRS reads several data files twice): build each once. A
    // contiguous NFA costs far less to build than a DFA and searches nearly as fast.
    thread_local! {
        static BUILT: std::cell::RefCell<std::collections::HashMap<Vec<String>, AhoCorasick>> =
            Default::default();
    }
    if let Some(ac) = BUILT.with(|b| b.borrow().get(&phrases).cloned()) {
        return Ok(Operator::Pm(ac, phrases));
    }
    let lower: Vec<String> = phrases.iter().map(|p| p.to_ascii_lowercase()).collect();
    let ac = AhoCorasick::builder()
        .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
        .build(&lower)
        .map_err(|e| format!("@pm: {e}"))?;
    BUILT.with(|b| b.borrow_mut().insert(phrases.clone(), ac.clone()));
    Ok(Operator::Pm(ac, phrases))
}

/// The entries of a data file: one per line, `#` comments and blank lines skipped.
pub fn data_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn contains_word(v: &[u8], w: &[u8]) -> bool {
    if w.is_empty() {
        return true;
    }
    let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    let mut from = 0;
    while let Some(at) = find(&v[from..], w) {
        let start = from + at;
        let end = start + w.len();
        if !word(start.checked_sub(1).and_then(|i| v.get(i))) && !word(v.get(end)) {
            return true;
        }
        from = start + 1;
    }
    false
}

/// ModSecurity's integer reading: leading digits (with a sign), else 0.
fn int(v: &[u8]) -> i64 {
    let s = std::str::from_utf8(v).unwrap_or("").trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let n: i64 = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

fn byte_ranges(param: &str) -> Result<Box<[bool; 256]>, String> {
    let mut allowed = Box::new([false; 256]);
    for part in param.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let parse = |t: &str| {
            t.parse::<u8>()
                .map_err(|_| format!("@validateByteRange: bad range {part:?}"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("@validateByteRange: bad range {part:?}"));
        }
        for i in a..=b {
            allowed[usize::from(i)] = true;
        }
    }
    Ok(allowed)
}

fn bad_url_encoding(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            match (v.get(i + 1), v.get(i + 2)) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i += 3,
                _ => return true,
            }
        } else {
            i += 1;
        }
    }
    false
}

fn ip_list<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<(IpAddr, u8)>, String> {
    let mut out = Vec::new();
    for item in items.filter(|i| !i.is_empty()) {
        let (addr, bits) = match item.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (item, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("@ipMatch: bad address {item:?}"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("@ipMatch: bad prefix {item:?}"))?,
            None => max,
        };
        out.push((ip, bits));
    }
    Ok(out)
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tx;
    impl Lookup for Tx {
        fn lookup(&self, c: &str, k: &str) -> Option<std::borrow::Cow<'_, str>> {
            (c == "TX" && k == "limit").then(|| "5".into())
        }
    }

    fn op(text: &str) -> (Operator, bool) {
        Operator::parse(text, &mut |f| match f {
            "words.data" => Ok("# comment\nunion\n\nselect\n".into()),
            "ips.data" => Ok("10.0.0.0/8\n2001:db8::/32\n".into()),
            other => Err(format!("no file {other}")),
        })
        .unwrap()
    }

    fn hit(text: &str, v: &str) -> bool {
        op(text).0.matches(v.as_bytes(), true, &Tx).is_some()
    }

    #[test]
    fn each_operator() {
        assert!(hit("@rx ^a+b", "aab") && !hit("@rx ^a+b", "b"));
        assert!(hit("(?i)select", "SELECT"), "a bare pattern is @rx");
        assert!(
            hit("@rx (?<=a)b", "ab"),
            "look-behind falls back to backtracking"
        );
        assert!(hit("@rx ^(a)\\1$", "aa") && !hit("@rx ^(a)\\1$", "ab"));
        assert!(
            !hit("@rx \\xff", "\u{ff}") && op("@rx \\xff").0.matches(&[0xff], false, &Tx).is_some()
        );
        assert!(hit("@pm foo Bar", "xxbarxx") && !hit("@pm foo bar", "baz"));
        // Case-insensitive (ASCII) both ways, matching and capturing, and the captured
        // phrase is the one written in the rule; non-ASCII bytes compare as they are.
        for (v, capture) in [("xxBARxx", true), ("xxBARxx", false), ("FOO", true)] {
            assert!(
                op("@pm foo Bar")
                    .0
                    .matches(v.as_bytes(), capture, &Tx)
                    .is_some(),
                "{v} {capture}"
            );
        }
        assert_eq!(
            op("@pm foo Bar").0.matches(b"xbArx", true, &Tx),
            Some(vec![b"Bar".to_vec()])
        );
        assert!(hit("@pm \u{e9}t\u{e9}", "\u{e9}t\u{e9}") && !hit("@pm \u{e9}", "\u{c9}"));
        assert!(
            hit("@pmFromFile words.data", "UNION all") && !hit("@pmFromFile words.data", "comment")
        );
        assert!(hit("@streq abc", "abc") && !hit("@streq abc", "abcd"));
        assert!(
            hit("@contains bc", "abcd")
                && hit("@beginsWith ab", "abc")
                && hit("@endsWith cd", "abcd")
        );
        assert!(hit("@containsWord or", "1 or 2") && !hit("@containsWord or", "order"));
        assert!(
            hit("@within GET POST", "GET")
                && !hit("@within GET POST", "PUT")
                && !hit("@within GET", "")
        );
        assert!(
            hit("@ge %{tx.limit}", "5")
                && !hit("@gt %{tx.limit}", "5")
                && hit("@lt %{tx.limit}", "x")
        );
        assert!(hit("@eq 0", "") && hit("@le -1", "-3"));
        assert!(
            hit("@validateByteRange 32-126", "a\tb") && !hit("@validateByteRange 9,32-126", "a\tb")
        );
        assert!(hit("@validateUrlEncoding", "%zz") && !hit("@validateUrlEncoding", "%41"));
        assert!(op("@validateUtf8Encoding")
            .0
            .matches(&[0xc3, 0x28], false, &Tx)
            .is_some());
        assert!(
            hit("@ipMatch 127.0.0.1,192.168.0.0/16", "192.168.3.4")
                && !hit("@ipMatch 127.0.0.1", "127.0.0.2")
        );
        assert!(
            hit("@ipMatchFromFile ips.data", "2001:db8::1")
                && !hit("@ipMatchFromFile ips.data", "11.0.0.1")
        );
        assert!(hit("@detectSQLi", "1' or '1'='1") && !hit("@detectSQLi", "hello world"));
        assert!(hit("@detectXSS", "<script>alert(1)</script>") && !hit("@detectXSS", "plain text"));
        assert!(hit("@unconditionalMatch", "") && !hit("@noMatch", "x"));
        assert!(op("!@rx a").1);
        assert!(Operator::parse("@bogus x", &mut |_| Err(String::new()))
            .unwrap_err()
            .contains("@bogus"));
        assert!(
            Operator::parse("@pmFromFile gone.data", &mut |f| Err(format!("no {f}")))
                .unwrap_err()
                .contains("gone.data")
        );
    }

    #[test]
    fn captures_fill_groups() {
        let (o, _) = op("@rx (a+)(b)");
        let c = o.matches(b"xaab", true, &Tx).unwrap();
        assert_eq!(c, [b"aab".to_vec(), b"aa".to_vec(), b"b".to_vec()]);
    }
}
