//! PCRE spellings rewritten for Rust's regex engines: a `[` or set operator inside a class
//! is literal in PCRE, `{` that starts no quantifier is literal, possessive quantifiers
//! and atomic groups become ordinary ones (same matches, more backtracking), `\Z` is `$`.

/// `pattern` as Rust's `regex` (or `fancy-regex`) reads the same language.
pub fn translate(pattern: &str) -> String {
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            i = escape(pattern, i, in_class, &mut out);
        } else if in_class {
            (i, in_class) = class_byte(pattern, i, &mut out);
        } else if c == b'[' {
            in_class = true;
            out.push('[');
            i += 1;
            // A `]` right after `[` or `[^` is literal.
            if b.get(i) == Some(&b'^') {
                out.push('^');
                i += 1;
            }
            if b.get(i) == Some(&b']') {
                out.push_str("\\]");
                i += 1;
            }
        } else {
            i = outside_class(pattern, i, &mut out);
        }
    }
    out
}

/// The escape at `i` (a backslash): where the pattern goes on.
fn escape(pattern: &str, i: usize, in_class: bool, out: &mut String) -> usize {
    let b = pattern.as_bytes();
    let Some(&next) = b.get(i + 1) else {
        out.push_str("\\\\");
        return b.len();
    };
    match next {
        b'Z' if !in_class => out.push('$'),
        b'z' if !in_class => out.push_str("\\z"),
        // `\/`, `\"`, `\'`, ... are the character itself.
        n if n.is_ascii_punctuation() => {
            out.push('\\');
            out.push(n as char);
        }
        // `\x{e2}`, `\p{L}`: the braces belong to the escape.
        b'x' | b'p' | b'P' if b.get(i + 2) == Some(&b'{') => {
            let end = pattern[i..].find('}').map_or(b.len(), |e| i + e + 1);
            out.push_str(&pattern[i..end]);
            return end;
        }
        _ => {
            // Copy the escape whole (it may be multi-byte UTF-8 after a backslash).
            let len = utf8_len(next);
            out.push('\\');
            out.push_str(&pattern[i + 1..(i + 1 + len).min(b.len())]);
            return i + 1 + len;
        }
    }
    i + 2
}

/// The byte at `i` inside a class: where the pattern goes on, and whether the class goes
/// on too.
fn class_byte(pattern: &str, i: usize, out: &mut String) -> (usize, bool) {
    let b = pattern.as_bytes();
    let mut i = i;
    match b[i] {
        b']' => {
            out.push(']');
            return (i + 1, false);
        }
        // A POSIX class `[:alpha:]` stays.
        b'[' if pattern[i..].starts_with("[:") && pattern[i + 2..].contains(":]") => {
            let end = pattern[i + 2..].find(":]").map_or(0, |e| i + 2 + e + 2);
            out.push_str(&pattern[i..end]);
            i = end;
        }
        b'[' => {
            out.push_str("\\[");
            i += 1;
        }
        // Set operations in Rust (`&&`, `--`, `~~`) are plain characters in PCRE.
        c @ (b'&' | b'~' | b'-') if b.get(i + 1) == Some(&c) => {
            for _ in 0..2 {
                out.push('\\');
                out.push(c as char);
            }
            i += 2;
        }
        _ => push_char(out, pattern, &mut i),
    }
    (i, true)
}

/// The byte at `i` outside classes and escapes: where the pattern goes on.
fn outside_class(pattern: &str, i: usize, out: &mut String) -> usize {
    let b = pattern.as_bytes();
    let mut i = i;
    match b[i] {
        b'{' if !is_quantifier(&b[i..]) => out.push_str("\\{"),
        b'}' if !closes_quantifier(&b[..i]) => out.push_str("\\}"),
        // Possessive quantifiers: `*+`, `++`, `?+`, `{n}+`.
        b'+' if i > 0 && matches!(b[i - 1], b'*' | b'+' | b'?' | b'}') && !escaped(b, i - 1) => {}
        b'(' if pattern[i..].starts_with("(?>") => {
            out.push_str("(?:");
            return i + 3;
        }
        _ => {
            push_char(out, pattern, &mut i);
            return i;
        }
    }
    i + 1
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn push_char(out: &mut String, pattern: &str, i: &mut usize) {
    let len = utf8_len(pattern.as_bytes()[*i]);
    out.push_str(&pattern[*i..(*i + len).min(pattern.len())]);
    *i += len;
}

/// Whether the byte at `at` is escaped by an odd run of backslashes before it.
fn escaped(b: &[u8], at: usize) -> bool {
    b[..at].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1
}

/// `{n}`, `{n,}` or `{n,m}` at the start of `b`.
fn is_quantifier(b: &[u8]) -> bool {
    let Some(end) = b.iter().position(|&c| c == b'}') else {
        return false;
    };
    let inner = &b[1..end];
    let mut parts = inner.splitn(2, |&c| c == b',');
    let first = parts.next().unwrap_or(&[]);
    let digits = |p: &[u8]| p.iter().all(u8::is_ascii_digit);
    !first.is_empty()
        && digits(first)
        && match parts.next() {
            None => true,
            Some(second) => digits(second),
        }
}

/// Whether a `}` after `before` closes a quantifier.
fn closes_quantifier(before: &[u8]) -> bool {
    match before.iter().rposition(|&c| c == b'{') {
        Some(open) => {
            let mut q = before[open..].to_vec();
            q.push(b'}');
            !escaped(before, open) && is_quantifier(&q)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn classes_braces_possessives_and_atomics() {
        assert_eq!(translate(r"[^\x5c\]{}[]+"), r"[^\x5c\]{}\[]+");
        assert_eq!(translate(r"[]a][^]b]"), r"[\]a][^\]b]");
        assert_eq!(translate(r"[[:alpha:]&&x--y]"), r"[[:alpha:]\&\&x\-\-y]");
        assert_eq!(translate(r"a{2,3}b{c}\{x{"), r"a{2,3}b\{c\}\{x\{");
        assert_eq!(translate(r"\s*+;\s++x?+(?>ab)"), r"\s*;\s+x?(?:ab)");
        assert_eq!(translate(r"a\Z|\/\d"), r"a$|\/\d");
        assert_eq!(translate("é[é]"), "é[é]");
        assert_eq!(
            translate(r"\x{e2}\x91[\xa0-\x{bf}]"),
            r"\x{e2}\x91[\xa0-\x{bf}]"
        );
        for p in [
            r"[^\x5c\]{}[]+",
            r"a{2,3}b{c}",
            r"[[:alpha:]&&x--y]",
            r"\s*+(?>ab)",
        ] {
            regex::bytes::Regex::new(&translate(p)).unwrap();
        }
    }
}
