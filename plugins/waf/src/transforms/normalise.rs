//! Normalising transformations: command lines, paths, comments removed or replaced, and
//! bytes dropped.

use std::borrow::Cow;

pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0)
}

pub(super) fn strip(v: &[u8], drop: impl Fn(u8) -> bool) -> Cow<'_, [u8]> {
    if !v.iter().any(|&b| drop(b)) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(v.iter().copied().filter(|&b| !drop(b)).collect())
}

pub(super) fn cmd_line(v: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(v.len());
    let mut space = false;
    for &b in v {
        match b {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b',' | b';' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(b);
            }
            b => {
                space = false;
                out.push(b.to_ascii_lowercase());
            }
        }
    }
    out
}

pub(super) fn normalise_path(v: &[u8]) -> Vec<u8> {
    let absolute = v.first() == Some(&b'/');
    let trailing = v.last() == Some(&b'/') || v.ends_with(b"/.") || v.ends_with(b"/..");
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in v.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !absolute {
                    parts.push(seg);
                }
            }
            s => parts.push(s),
        }
    }
    let mut out = Vec::with_capacity(v.len());
    if absolute {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if trailing && !parts.is_empty() {
        out.push(b'/');
    }
    out
}

pub(super) fn replace_comments(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i..].starts_with(b"/*") {
            match v[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(end) => i += 2 + end + 2,
                None => i = v.len(),
            }
            out.push(b' ');
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

pub(super) fn remove_comments(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let rest = &v[i..];
        if rest.starts_with(b"/*") || rest.starts_with(b"<!--") {
            let (close, skip): (&[u8], usize) = if rest.starts_with(b"/*") {
                (b"*/", 2)
            } else {
                (b"-->", 4)
            };
            match rest[skip..].windows(close.len()).position(|w| w == close) {
                Some(end) => i += skip + end + close.len(),
                None => i = v.len(),
            }
            continue;
        }
        if rest.starts_with(b"--") || rest.starts_with(b"#") {
            match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => i += nl,
                None => i = v.len(),
            }
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

pub(super) fn remove_comment_chars(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let rest = &v[i..];
        let skip = [&b"/*"[..], b"*/", b"<!--", b"-->", b"--"]
            .iter()
            .find(|p| rest.starts_with(p))
            .map(|p| p.len())
            .or((rest[0] == b'#').then_some(1));
        match skip {
            Some(n) => i += n,
            None => {
                out.push(v[i]);
                i += 1;
            }
        }
    }
    out
}

/// Runs of whitespace as one space.
pub(super) fn compress_whitespace(v: &[u8]) -> Cow<'_, [u8]> {
    if !v.iter().any(|&b| is_space(b) && b != b' ') && !v.windows(2).any(|w| w == b"  ") {
        return Cow::Borrowed(v);
    }
    let mut out = Vec::with_capacity(v.len());
    let mut in_space = false;
    for &b in v {
        if is_space(b) {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b);
            in_space = false;
        }
    }
    Cow::Owned(out)
}

/// [`normalise_path`] with backslashes read as slashes.
pub(super) fn normalise_path_win(v: &[u8]) -> Vec<u8> {
    let slashed: Vec<u8> = v
        .iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    normalise_path(&slashed)
}
