//! Which origins are allowed: exact, wildcard subdomains, anchored regexes, or any.

use regex_lite::Regex;

/// One `allow-origins` entry.
#[derive(Debug)]
pub enum Pattern {
    /// `"*"`: any origin.
    Any,
    /// `"https://app.example.com"` (or `"null"`): that origin exactly.
    Exact(String),
    /// `"https://*.example.com"`: `scheme://` then one or more labels then `suffix` (which
    /// starts with `.` and may end in `:port`).
    Subdomains { scheme: String, suffix: String },
    /// `"regex:..."`: the whole origin matches (the pattern is anchored).
    Regex(Regex),
}

impl Pattern {
    /// Parse entry `i`; errors name it.
    pub fn parse(i: usize, text: &str) -> Result<Self, String> {
        let at = |why: String| format!("allow-origins[{i}]: {text:?} {why}");
        if text == "*" {
            return Ok(Pattern::Any);
        }
        if let Some(re) = text.strip_prefix("regex:") {
            return Regex::new(&format!("^(?:{re})$"))
                .map(Pattern::Regex)
                .map_err(|e| at(format!("is not a valid regex: {e}")));
        }
        if text == "null" {
            return Ok(Pattern::Exact(text.into()));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(at(
                "is not an origin (scheme://host[:port]), \"*\" or \"regex:...\"".into(),
            ));
        };
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(at("has an invalid scheme".into()));
        }
        if rest.contains(['/', '?', '#', '@']) || rest.is_empty() {
            return Err(at(
                "is not an origin: no path, query, user or empty host".into()
            ));
        }
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(at(
                "has upper-case letters: browsers send origins in lower case".into(),
            ));
        }
        match rest.strip_prefix('*') {
            Some(suffix)
                if suffix.starts_with('.') && !suffix.contains('*') && suffix.len() > 1 =>
            {
                Ok(Pattern::Subdomains {
                    scheme: scheme.into(),
                    suffix: suffix.into(),
                })
            }
            Some(_) => Err(at(
                "may only use '*' as its first label (https://*.example.com)".into(),
            )),
            None if rest.contains('*') => Err(at("may only use '*' as its first label".into())),
            None => Ok(Pattern::Exact(text.into())),
        }
    }

    /// Whether `origin` (as the browser sent it) matches.
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(o) => o == origin,
            Pattern::Subdomains { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|r| r.strip_prefix("://"))
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                .is_some_and(|labels| {
                    !labels.is_empty()
                        && labels.split('.').all(|l| {
                            !l.is_empty()
                                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        })
                }),
            Pattern::Regex(re) => re.is_match(origin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str) -> Pattern {
        Pattern::parse(0, t).unwrap()
    }

    #[test]
    fn exact_wildcard_and_regex_origins() {
        assert!(p("https://app.example.com").matches("https://app.example.com"));
        assert!(!p("https://app.example.com").matches("https://app.example.com.evil.com"));
        assert!(!p("https://app.example.com").matches("http://app.example.com"));
        let w = p("https://*.example.com");
        assert!(w.matches("https://a.example.com"));
        assert!(w.matches("https://a.b.example.com"));
        assert!(!w.matches("https://example.com"));
        assert!(!w.matches("https://.example.com"));
        assert!(!w.matches("https://evilexample.com"));
        assert!(!w.matches("https://a.example.com:8443"));
        assert!(!w.matches("https://x/.example.com"));
        assert!(!w.matches("http://a.example.com"));
        assert!(p("https://*.example.com:8443").matches("https://a.example.com:8443"));
        let r = p(r"regex:https://pr-[0-9]+\.preview\.example\.com");
        assert!(r.matches("https://pr-42.preview.example.com"));
        assert!(
            !r.matches("https://pr-42.preview.example.com.evil.com"),
            "anchored"
        );
        assert!(!r.matches("xhttps://pr-42.preview.example.com"), "anchored");
        assert!(p("null").matches("null"));
        assert!(p("*").matches("https://anything"));
    }

    #[test]
    fn bad_entries_say_why() {
        let e = |t: &str| Pattern::parse(3, t).unwrap_err();
        assert!(e("example.com").contains("allow-origins[3]"));
        assert!(e("https://a.com/path").contains("no path"));
        assert!(e("https://a.*.com").contains("first label"));
        assert!(e("https://*example.com").contains("first label"));
        assert!(e("https://App.com").contains("lower case"));
        assert!(e("regex:(").contains("not a valid regex"));
    }
}
