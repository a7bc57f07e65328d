//! Macro expansion in action arguments and operator parameters: `%{tx.anomaly_score}`,
//! `%{MATCHED_VAR}`, `%{request_headers.host}`.

use std::borrow::Cow;

/// A string with `%{...}` references, split once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macro {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// Collection (upper case) and key (lower case, may be empty).
    Var(String, String),
}

/// Where macro references are looked up.
pub trait Lookup {
    /// The value of `collection` (upper case) member `key` (lower case; empty for a
    /// single-valued variable), if any.
    fn lookup(&self, collection: &str, key: &str) -> Option<Cow<'_, str>>;
}

impl Macro {
    /// Split `text` into literal text and references.
    pub fn parse(text: &str) -> Macro {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("%{") {
            let Some(len) = rest[at + 2..].find('}') else {
                break;
            };
            if at > 0 {
                parts.push(Part::Text(rest[..at].to_string()));
            }
            let inner = &rest[at + 2..at + 2 + len];
            let (coll, key) = match inner.split_once(['.', ':']) {
                Some((c, k)) => (c, k),
                None => (inner, ""),
            };
            parts.push(Part::Var(
                coll.to_ascii_uppercase(),
                key.to_ascii_lowercase(),
            ));
            rest = &rest[at + 3 + len..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Macro { parts }
    }

    /// Whether it refers to a collection whose name starts with `prefix` (upper case).
    pub fn mentions(&self, prefix: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(c, _) if c.starts_with(prefix)))
    }

    /// Whether it has no references (so [`Macro::literal`] is its value).
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The text when it has no references.
    pub fn literal(&self) -> String {
        self.expand(&NoLookup)
    }

    /// Its value with references replaced (an unknown one becomes empty).
    pub fn expand(&self, with: &dyn Lookup) -> String {
        self.expand_cow(with).into_owned()
    }

    /// As [`Macro::expand`], borrowing the text when there is nothing to replace.
    pub fn expand_cow(&self, with: &dyn Lookup) -> Cow<'_, str> {
        match self.parts.as_slice() {
            [] => return "".into(),
            [Part::Text(t)] => return t.as_str().into(),
            _ => {}
        }
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(c, k) => {
                    if let Some(v) = with.lookup(c, k) {
                        out.push_str(&v);
                    }
                }
            }
        }
        out.into()
    }
}

struct NoLookup;

impl Lookup for NoLookup {
    fn lookup(&self, _: &str, _: &str) -> Option<Cow<'_, str>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Map;
    impl Lookup for Map {
        fn lookup(&self, c: &str, k: &str) -> Option<Cow<'_, str>> {
            match (c, k) {
                ("TX", "score") => Some("5".into()),
                ("MATCHED_VAR", "") => Some("x' or 1=1".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn references_expand_and_unknown_ones_are_empty() {
        let m = Macro::parse("Total %{TX.score}: %{MATCHED_VAR} %{tx.none}!");
        assert_eq!(m.expand(&Map), "Total 5: x' or 1=1 !");
        assert!(!m.is_literal());
        assert!(Macro::parse("plain").is_literal());
        assert_eq!(Macro::parse("%{unterminated").literal(), "%{unterminated");
    }
}
