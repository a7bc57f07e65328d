//! Templates for rewritten paths, hosts and redirect targets: literal text with `{1}`..`{9}`
//! and `{name}` (regex captures), `{rest}` (what follows a prefix), `{path}`, `{query}`,
//! `{host}`, `{scheme}`; `{{` and `}}` are literal braces.

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Capture(usize),
    Named(String),
    Rest,
    Path,
    Query,
    Host,
    Scheme,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Piece>);

/// What a template's variables stand for in one request.
pub struct Vars<'a> {
    /// Regex captures by number (0 is the whole match), if the rule is a regex.
    pub captures: Option<&'a regex_lite::Captures<'a>>,
    pub rest: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub host: &'a str,
    pub scheme: &'a str,
}

impl Template {
    /// Parse `text`. `names` are the regex's capture names and `groups` its number of
    /// groups (0 for a non-regex rule); `rest` whether `{rest}` has a meaning.
    pub fn parse(text: &str, groups: usize, names: &[&str], rest: bool) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => {
                    return Err(format!(
                        "{text:?}: a lone '}}' (write '}}}}' for a literal one)"
                    ))
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    let piece = match name.as_str() {
                        "rest" if rest => Piece::Rest,
                        "rest" => return Err(format!("{text:?}: {{rest}} needs a prefix rule")),
                        "path" => Piece::Path,
                        "query" => Piece::Query,
                        "host" => Piece::Host,
                        "scheme" => Piece::Scheme,
                        n if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
                            let i: usize = n.parse().map_err(|_| format!("{text:?}: {{{n}}} is too large"))?;
                            if i > groups {
                                return Err(format!(
                                    "{text:?}: {{{n}}} but the regex has {groups} capture group(s)"
                                ));
                            }
                            Piece::Capture(i)
                        }
                        n if names.contains(&n) => Piece::Named(n.to_string()),
                        n => {
                            return Err(format!(
                                "{text:?}: unknown variable {{{n}}} (rest, path, query, host, scheme, a capture number or name)"
                            ))
                        }
                    };
                    if !lit.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut lit)));
                    }
                    pieces.push(piece);
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Template(pieces))
    }

    /// The text for one request.
    pub fn render(&self, v: &Vars) -> String {
        let mut out = String::new();
        fn cap<'t>(m: Option<regex_lite::Match<'t>>) -> &'t str {
            m.map_or("", |m| m.as_str())
        }
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Capture(i) => out.push_str(cap(v.captures.and_then(|c| c.get(*i)))),
                Piece::Named(n) => out.push_str(cap(v.captures.and_then(|c| c.name(n)))),
                Piece::Rest => out.push_str(v.rest),
                Piece::Path => out.push_str(v.path),
                Piece::Query => out.push_str(v.query),
                Piece::Host => out.push_str(v.host),
                Piece::Scheme => out.push_str(v.scheme),
            }
        }
        out
    }

    /// Whether the template names `{query}`.
    pub fn uses_query(&self) -> bool {
        self.0.contains(&Piece::Query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_and_captures() {
        let re = regex_lite::Regex::new(r"^/u/(?P<id>\d+)/(\w+)$").unwrap();
        let caps = re.captures("/u/42/edit").unwrap();
        let names: Vec<&str> = re.capture_names().flatten().collect();
        let t = Template::parse(
            "{scheme}://{host}/users/{id}/{2}?{query}&x={{1}}",
            2,
            &names,
            false,
        )
        .unwrap();
        let v = Vars {
            captures: Some(&caps),
            rest: "",
            path: "/u/42/edit",
            query: "a=1",
            host: "example.com",
            scheme: "https",
        };
        assert_eq!(t.render(&v), "https://example.com/users/42/edit?a=1&x={1}");
        assert!(t.uses_query());
    }

    #[test]
    fn bad_templates_say_why() {
        assert!(Template::parse("/{3}", 2, &[], false)
            .unwrap_err()
            .contains("2 capture group"));
        assert!(Template::parse("/{nope}", 0, &[], false)
            .unwrap_err()
            .contains("unknown variable {nope}"));
        assert!(Template::parse("/{rest}", 0, &[], false)
            .unwrap_err()
            .contains("prefix"));
        assert!(Template::parse("/a}", 0, &[], false)
            .unwrap_err()
            .contains("lone"));
        assert!(Template::parse("/{rest}", 0, &[], true).is_ok());
    }
}
