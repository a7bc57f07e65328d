//! Path normalisation: the one form of a request path that routing, filters and the
//! upstream all read.
//!
//! In order: percent-escapes of unreserved characters are decoded and the others upper-cased
//! (RFC 3986 §6.2.2); an escaped `/` or `\`, a NUL, a raw `\` or an invalid escape refuses the
//! request (or, with [`EscapedSlashes::Keep`], `%2F`/`%5C` pass through as they are); runs of
//! `/` are merged; dot-segments are removed (RFC 3986 §5.2.4). Decoding comes first, so
//! `/%2e%2e/` is a dot-segment like `/../`.

/// What to do with `%2F` and `%5C` in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// Refuse the request (400).
    #[default]
    Reject,
    /// Keep them escaped: they are data, not separators (upper-cased, never decoded).
    Keep,
}

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not origin-form (does not start with `/`).
    #[error("the path does not start with '/'")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("invalid percent-escape in the path")]
    BadEscape,
    /// `%2F` or `%5C`.
    #[error("escaped '/' or '\\' in the path")]
    EscapedSlash,
    /// `%00`.
    #[error("NUL in the path")]
    Nul,
    /// A raw `\` (some servers read it as `/`).
    #[error("backslash in the path")]
    Backslash,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `path` is already in normal form (the common case: nothing to allocate).
fn is_normal(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    let mut prev = 0u8;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'%' | b'\\' => return false,
            b'/' if prev == b'/' => return false,
            b'.' if prev == b'/' => {
                // "/." starts a dot-segment when followed by "/", end, or ".": check.
                let rest = path.get(i + 1..).unwrap_or_default();
                let seg_end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
                let seg = rest.get(..seg_end).unwrap_or_default();
                if seg.is_empty() || seg == b"." {
                    return false;
                }
            }
            _ => {}
        }
        prev = b;
    }
    true
}

/// Normalise `path` (without its query). Returns `None` when it is already normal.
pub fn normalize(path: &str, slashes: EscapedSlashes) -> Result<Option<String>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(bytes) {
        return Ok(None);
    }
    let decoded = decode(bytes, slashes)?;
    Ok(Some(remove_dot_segments(&decoded)))
}

/// Decode unreserved escapes, upper-case the others, refuse the forbidden ones.
fn decode(bytes: &[u8], slashes: EscapedSlashes) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                let v = hi * 16 + lo;
                match v {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' if slashes == EscapedSlashes::Reject => {
                        return Err(PathError::EscapedSlash)
                    }
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => {
                        out.push('%');
                        out.push(char::from(HEX_UPPER[usize::from(v >> 4)]));
                        out.push(char::from(HEX_UPPER[usize::from(v & 15)]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            _ => {
                // Copy the run up to the next byte that needs a look.
                let run = bytes
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .position(|&c| matches!(c, b'%' | b'\\' | 0))
                    .unwrap_or(bytes.len() - i);
                let chunk = bytes.get(i..i + run).unwrap_or_default();
                // The input is a &str and the run ends at an ASCII byte or the end.
                out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                i += run;
            }
        }
    }
    Ok(out)
}

/// Merge repeated slashes and remove `.` and `..` segments; `..` never climbs above `/`.
/// A trailing `/` (or a path ending in a dot-segment) keeps its trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in path.split('/').skip(1) {
        match seg {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize(p, EscapedSlashes::Reject).map(|n| n.unwrap_or_else(|| p.to_owned()))
    }

    #[test]
    fn normal_paths_are_left_alone() {
        for p in ["/", "/api/items", "/a.b/c..d/.e", "/x/", "/a-b_c~d"] {
            assert_eq!(normalize(p, EscapedSlashes::Reject), Ok(None), "{p}");
        }
        assert_eq!(norm("/a%20b").unwrap(), "/a%20b");
    }

    #[test]
    fn decodes_unreserved_and_upper_cases_the_rest() {
        assert_eq!(norm("/%61pi/items").unwrap(), "/api/items");
        assert_eq!(norm("/%41%7e%2D%5f%2e").unwrap(), "/A~-_.");
        assert_eq!(norm("/a%2fb"), Err(PathError::EscapedSlash));
        assert_eq!(norm("/a%20b%3f").unwrap(), "/a%20b%3F");
        assert_eq!(norm("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn removes_dot_segments_and_merges_slashes() {
        assert_eq!(norm("//api/items").unwrap(), "/api/items");
        assert_eq!(norm("/x/../api/items").unwrap(), "/api/items");
        assert_eq!(norm("/./admin").unwrap(), "/admin");
        assert_eq!(norm("/%2e%2e/%2E/admin").unwrap(), "/admin");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(norm("/../../etc").unwrap(), "/etc");
        assert_eq!(norm("/..").unwrap(), "/");
        assert_eq!(norm("/a//b///").unwrap(), "/a/b/");
        assert_eq!(norm("/.%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("/...").unwrap(), "/...");
    }

    #[test]
    fn refuses_what_backends_disagree_on() {
        assert_eq!(norm("/a%5cb"), Err(PathError::EscapedSlash));
        assert_eq!(norm("/a\\b"), Err(PathError::Backslash));
        assert_eq!(norm("/a%00"), Err(PathError::Nul));
        assert_eq!(norm("/a%"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%4"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(norm("a"), Err(PathError::NotAbsolute));
        assert_eq!(norm("*"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn kept_slashes_stay_escaped() {
        let keep = |p| normalize(p, EscapedSlashes::Keep).unwrap().unwrap();
        assert_eq!(keep("/a%2fb/../c"), "/c");
        assert_eq!(keep("/a%2fb"), "/a%2Fb");
        assert_eq!(keep("/a%5Cb"), "/a%5Cb");
    }

    #[test]
    fn normal_form_is_a_fixed_point() {
        for p in [
            "//a/./b/../c//",
            "/%61%2e%2E/x",
            "/a%20%7E/..%2f",
            "/a/.../..",
            "/.hidden/./..x",
        ] {
            let Ok(once) = normalize(p, EscapedSlashes::Keep) else {
                continue;
            };
            let once = once.unwrap_or_else(|| p.to_owned());
            let twice = normalize(&once, EscapedSlashes::Keep).unwrap();
            assert_eq!(twice.as_deref().unwrap_or(&once), once, "{p}");
        }
    }
}
