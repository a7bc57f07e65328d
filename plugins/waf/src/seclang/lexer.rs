//! Splitting SecLang text into directives: comments, backslash line continuations, and
//! arguments that are bare words or double-quoted strings.

/// One directive, with where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Its name as written (`SecRule`); matched case-insensitively.
    pub name: String,
    /// Its arguments, quotes removed (`\"` inside a quoted one becomes `"`; other
    /// backslashes are kept, so regular expressions reach the operator as written).
    pub args: Vec<String>,
    /// The 1-based line the directive starts on.
    pub line: usize,
}

/// The directives of `text`, or the line and reason of the first that cannot be read.
pub fn directives(text: &str) -> Result<Vec<Directive>, (usize, String)> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut start = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if logical.is_empty() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            start = line_no;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                logical.push_str(head);
                continue;
            }
            None => logical.push_str(line),
        }
        let args = split_args(&logical).map_err(|why| (start, why))?;
        logical.clear();
        let mut args = args.into_iter();
        if let Some(name) = args.next() {
            out.push(Directive {
                name,
                args: args.collect(),
                line: start,
            });
        }
    }
    if !logical.is_empty() {
        return Err((
            start,
            "the last directive ends with a line continuation".into(),
        ));
    }
    Ok(out)
}

/// Split one logical line into words and double-quoted strings.
fn split_args(line: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(args);
        };
        let mut arg = String::new();
        if first == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'"') => {
                        chars.next();
                        arg.push('"');
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => arg.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted argument: \"{}", short(&arg)));
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(format!(
                    "text right after the quoted argument \"{}\"",
                    short(&arg)
                ));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                arg.push(c);
            }
        }
        args.push(arg);
    }
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_quotes_and_comments() {
        let text = "# a comment\n\nSecRuleEngine On\nSecRule ARGS \"@rx a\\\"b\\d\" \\\n    \"id:1,\\\n    deny\"\n  # indented comment\nSecMarker END\n";
        let d = directives(text).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(
            (d[0].name.as_str(), d[0].args.clone(), d[0].line),
            ("SecRuleEngine", vec!["On".to_string()], 3)
        );
        assert_eq!(d[1].args, ["ARGS", "@rx a\"b\\d", "id:1,    deny"]);
        assert_eq!(d[1].line, 4);
        assert_eq!((d[2].name.as_str(), d[2].line), ("SecMarker", 8));
    }

    #[test]
    fn unreadable_directives_name_their_line() {
        assert_eq!(
            directives("SecRuleEngine On\nSecRule ARGS \"@rx a")
                .unwrap_err()
                .0,
            2
        );
        assert!(directives("SecRule ARGS \"@rx a\"x \"id:1\"")
            .unwrap_err()
            .1
            .contains("right after"));
        assert_eq!(directives("\n\nSecRule ARGS \\").unwrap_err().0, 3);
    }
}
