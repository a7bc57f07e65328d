//! Rule targets: the collections and variables SecLang names (`ARGS`, `REQUEST_HEADERS:Host`,
//! `&TX:x`, `!REQUEST_COOKIES:/__utm/`, `XML:/*`), parsed once at load.

/// Collections of named values, indexes into a transaction's `multi` table.
pub const MULTI: &[&str] = &[
    "ARGS",
    "ARGS_NAMES",
    "ARGS_GET",
    "ARGS_GET_NAMES",
    "ARGS_POST",
    "ARGS_POST_NAMES",
    "REQUEST_HEADERS",
    "REQUEST_HEADERS_NAMES",
    "REQUEST_COOKIES",
    "REQUEST_COOKIES_NAMES",
    "FILES",
    "FILES_NAMES",
    "FILES_SIZES",
    "FILES_TMPNAMES",
    "MULTIPART_PART_HEADERS",
    "RESPONSE_HEADERS",
    "RESPONSE_HEADERS_NAMES",
    "XML",
    "GEO",
    "ENV",
    "RULE",
];

/// Single values, indexes into a transaction's `scalar` table.
pub const SCALAR: &[&str] = &[
    "REQUEST_URI",
    "REQUEST_URI_RAW",
    "REQUEST_FILENAME",
    "REQUEST_BASENAME",
    "REQUEST_LINE",
    "REQUEST_METHOD",
    "REQUEST_PROTOCOL",
    "QUERY_STRING",
    "REQUEST_BODY",
    "REQUEST_BODY_LENGTH",
    "ARGS_COMBINED_SIZE",
    "FILES_COMBINED_SIZE",
    "REQBODY_PROCESSOR",
    "REQBODY_ERROR",
    "REQBODY_ERROR_MSG",
    "REQBODY_PROCESSOR_ERROR",
    "MULTIPART_STRICT_ERROR",
    "MULTIPART_UNMATCHED_BOUNDARY",
    "MULTIPART_FILENAME",
    "MULTIPART_NAME",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_PORT",
    "SERVER_NAME",
    "SERVER_ADDR",
    "SERVER_PORT",
    "UNIQUE_ID",
    "DURATION",
    "RESPONSE_STATUS",
    "RESPONSE_PROTOCOL",
    "RESPONSE_BODY",
    "RESPONSE_CONTENT_TYPE",
    "RESPONSE_CONTENT_LENGTH",
    "STATUS_LINE",
    "FULL_REQUEST",
    "FULL_REQUEST_LENGTH",
    "AUTH_TYPE",
    "INBOUND_DATA_ERROR",
    "OUTBOUND_DATA_ERROR",
    "URLENCODED_ERROR",
    "HIGHEST_SEVERITY",
    "TIME",
    "TIME_EPOCH",
    "WEBSERVER_ERROR_LOG",
];

/// Index of a scalar by name, for the transaction builder.
pub fn scalar(name: &str) -> usize {
    // An unknown name is an index past the table: reading it finds nothing, setting it
    // sets nothing (rather than another variable).
    SCALAR.iter().position(|s| *s == name).unwrap_or(usize::MAX)
}

/// Index of a multi collection by name, for the transaction builder.
pub fn multi(name: &str) -> usize {
    MULTI.iter().position(|s| *s == name).unwrap_or(usize::MAX)
}

/// Where a target's values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coll {
    /// A collection of named values ([`MULTI`]).
    Multi(usize),
    /// One value ([`SCALAR`]).
    Scalar(usize),
    /// The transaction's variables.
    Tx,
    /// `IP`, `GLOBAL`, `SESSION`, `USER`: kept for this request only.
    Persistent(&'static str),
    /// The last matched value.
    MatchedVar,
    /// Its name.
    MatchedVarName,
    /// Every value the current rule matched so far.
    MatchedVars,
    /// Their names.
    MatchedVarsNames,
}

impl Coll {
    /// The collection named `name` (any case).
    pub fn parse(name: &str) -> Option<Coll> {
        if let Some(i) = MULTI.iter().position(|m| m.eq_ignore_ascii_case(name)) {
            return Some(Coll::Multi(i));
        }
        if let Some(i) = SCALAR.iter().position(|m| m.eq_ignore_ascii_case(name)) {
            return Some(Coll::Scalar(i));
        }
        let upper = name.to_ascii_uppercase();
        Some(match upper.as_str() {
            "TX" => Coll::Tx,
            "IP" => Coll::Persistent("ip"),
            "GLOBAL" => Coll::Persistent("global"),
            "SESSION" => Coll::Persistent("session"),
            "USER" => Coll::Persistent("user"),
            "RESOURCE" => Coll::Persistent("resource"),
            "MATCHED_VAR" => Coll::MatchedVar,
            "MATCHED_VAR_NAME" => Coll::MatchedVarName,
            "MATCHED_VARS" => Coll::MatchedVars,
            "MATCHED_VARS_NAMES" => Coll::MatchedVarsNames,
            _ => return None,
        })
    }

    /// The name it is written with.
    pub fn name(self) -> &'static str {
        match self {
            Coll::Multi(i) => MULTI.get(i).copied().unwrap_or("?"),
            Coll::Scalar(i) => SCALAR.get(i).copied().unwrap_or("?"),
            Coll::Tx => "TX",
            Coll::Persistent(p) => match p {
                "ip" => "IP",
                "global" => "GLOBAL",
                "session" => "SESSION",
                "user" => "USER",
                _ => "RESOURCE",
            },
            Coll::MatchedVar => "MATCHED_VAR",
            Coll::MatchedVarName => "MATCHED_VAR_NAME",
            Coll::MatchedVars => "MATCHED_VARS",
            Coll::MatchedVarsNames => "MATCHED_VARS_NAMES",
        }
    }
}

/// Which members of a collection a target takes.
#[derive(Debug, Clone)]
pub enum Key {
    /// A name, compared case-insensitively (kept lower case).
    Exact(String),
    /// `/regex/`, case-insensitive.
    Regex(regex::Regex),
}

impl Key {
    /// Whether `lower_name` (already lower case) is selected.
    pub fn selects(&self, lower_name: &str) -> bool {
        match self {
            Key::Exact(k) => k == lower_name,
            Key::Regex(r) => r.is_match(lower_name),
        }
    }
}

/// One target of a rule.
#[derive(Debug, Clone)]
pub struct VarSpec {
    /// The collection.
    pub coll: Coll,
    /// The member(s); `None` for all.
    pub key: Option<Key>,
    /// `&`: the number of values instead of the values.
    pub count: bool,
    /// `!`: remove these from the other targets.
    pub exclude: bool,
}

impl VarSpec {
    /// Whether this (exclusion) spec covers value `lower_name` of `coll`.
    pub fn covers(&self, coll: Coll, lower_name: &str) -> bool {
        self.coll == coll && self.key.as_ref().is_none_or(|k| k.selects(lower_name))
    }
}

/// Parse a `|`-separated target list.
pub fn parse_targets(text: &str) -> Result<Vec<VarSpec>, String> {
    let mut out = Vec::new();
    for part in split_targets(text) {
        out.push(parse_target(part.trim())?);
    }
    if out.is_empty() {
        return Err("no targets".into());
    }
    Ok(out)
}

/// Split at `|` outside `/regex/` selectors.
fn split_targets(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut in_regex, mut prev) = (0, false, '\0');
    let mut after_colon = false;
    for (i, c) in text.char_indices() {
        match c {
            ':' if !in_regex => after_colon = true,
            // `/regex/` selectors; `XML:/xpath` is not one.
            '/' if after_colon
                && !in_regex
                && text[..i].ends_with(':')
                && !text[start..i]
                    .trim()
                    .trim_start_matches(['!', '&'])
                    .eq_ignore_ascii_case("XML:") =>
            {
                in_regex = true
            }
            '/' if in_regex && prev != '\\' => in_regex = false,
            '|' if !in_regex => {
                parts.push(&text[start..i]);
                start = i + 1;
                after_colon = false;
            }
            _ => {}
        }
        prev = c;
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Parse one target: `[!|&]NAME[:key|:/regex/]`.
pub fn parse_target(text: &str) -> Result<VarSpec, String> {
    let (exclude, rest) = match text.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (count, rest) = match rest.strip_prefix('&') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (name, key) = match rest.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (rest, None),
    };
    let coll = Coll::parse(name).ok_or_else(|| format!("unknown variable {name:?}"))?;
    let key = match key {
        None | Some("") => None,
        // XPath expressions: there is no XML processor, so `XML:` targets are always empty.
        Some(_) if coll == Coll::Multi(multi("XML")) => None,
        Some(k) if k.len() >= 2 && k.starts_with('/') && k.ends_with('/') => {
            let pattern = &k[1..k.len() - 1];
            // Rules repeat their selectors (`!REQUEST_COOKIES:/__utm/` in most of CRS):
            // compile each once.
            thread_local! {
                static BUILT: std::cell::RefCell<std::collections::HashMap<String, regex::Regex>> =
                    Default::default();
            }
            let built = BUILT.with(|b| b.borrow().get(pattern).cloned());
            let re = match built {
                Some(re) => re,
                None => {
                    let re = regex::RegexBuilder::new(pattern)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| format!("selector {k}: {e}"))?;
                    BUILT.with(|b| b.borrow_mut().insert(pattern.to_string(), re.clone()));
                    re
                }
            };
            Some(Key::Regex(re))
        }
        Some(k) => Some(Key::Exact(k.trim_matches('\'').to_ascii_lowercase())),
    };
    Ok(VarSpec {
        coll,
        key,
        count,
        exclude,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_with_exclusions_counts_and_selectors() {
        let t = parse_targets(
            "REQUEST_COOKIES|!REQUEST_COOKIES:/__utm/|ARGS:Foo|&TX:x|XML:/*|TX:/^header_name_|x/",
        )
        .unwrap();
        assert_eq!(t.len(), 6);
        assert!(t[1].exclude && matches!(&t[1].key, Some(Key::Regex(r)) if r.is_match("__utmz")));
        assert!(matches!(&t[2].key, Some(Key::Exact(k)) if k == "foo"));
        assert!(t[3].count && t[3].coll == Coll::Tx);
        assert_eq!(t[4].coll.name(), "XML");
        assert!(
            matches!(&t[5].key, Some(Key::Regex(r)) if r.is_match("x") && r.is_match("header_name_a"))
        );
        assert!(parse_targets("NOPE").unwrap_err().contains("NOPE"));
        assert!(parse_targets("ARGS:/(/").is_err());
    }
}
