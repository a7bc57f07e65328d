//! Decoding transformations: URL (`%XX`, `%uXXXX`), HTML entities, JavaScript and CSS
//! escapes, UTF-8 to `%u`, Base64, SQL hex, C escape sequences; and URL encoding.

use super::normalise::is_space;

pub(super) fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

pub(super) fn hex2(a: u8, b: u8) -> Option<u8> {
    Some(hex_val(a)? << 4 | hex_val(b)?)
}

/// `%uHHHH`-style code points keep their low byte; full-width ASCII (U+FF01..U+FF5E) maps
/// to ASCII, as ModSecurity does.
pub(super) fn uni_byte(h: &[u8]) -> Option<u8> {
    let hi = hex2(h[0], h[1])?;
    let mut lo = hex2(h[2], h[3])?;
    if hi == 0xff && lo > 0x00 && lo < 0x5f {
        lo = lo.wrapping_add(0x20);
    }
    Some(lo)
}

pub(super) fn url_decode(v: &[u8], uni: bool) -> Vec<u8> {
    unescape(v, uni, true)
}

/// `%XX` escapes (with `uni`, `%uXXXX` too) decoded, invalid ones kept as they are; with
/// `plus`, `+` as a space (form encoding).
pub(crate) fn unescape(v: &[u8], uni: bool, plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' => {
                if uni && matches!(v.get(i + 1), Some(b'u' | b'U')) {
                    if let Some(b) = v.get(i + 2..i + 6).and_then(uni_byte) {
                        out.push(b);
                        i += 6;
                        continue;
                    }
                }
                match (v.get(i + 1), v.get(i + 2)) {
                    (Some(&a), Some(&b)) if hex2(a, b).is_some() => {
                        out.push(hex2(a, b).unwrap_or(0));
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

pub(super) fn html_entity_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'&' {
            out.push(v[i]);
            i += 1;
            continue;
        }
        let rest = &v[i + 1..];
        // Numeric: &#DDD; or &#xHH; (the semicolon is optional).
        if let Some(num) = rest.strip_prefix(b"#") {
            let (hex, digits) = match num.first() {
                Some(b'x' | b'X') => (true, &num[1..]),
                _ => (false, num),
            };
            let len = digits
                .iter()
                .take_while(|b| {
                    if hex {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
                .count();
            if len > 0 {
                let text = std::str::from_utf8(&digits[..len]).unwrap_or("0");
                let n = u32::from_str_radix(text, if hex { 16 } else { 10 }).unwrap_or(0);
                out.push(n as u8);
                let mut used = 1 + usize::from(hex) + len;
                if rest.get(used) == Some(&b';') {
                    used += 1;
                }
                i += 1 + used;
                continue;
            }
        }
        let named: &[(&[u8], u8)] = &[
            (b"quot", b'"'),
            (b"amp", b'&'),
            (b"lt", b'<'),
            (b"gt", b'>'),
            (b"nbsp", 0xa0),
        ];
        if let Some((name, b)) = named
            .iter()
            .find(|(n, _)| rest.len() >= n.len() && rest[..n.len()].eq_ignore_ascii_case(n))
        {
            out.push(*b);
            let mut used = name.len();
            if rest.get(used) == Some(&b';') {
                used += 1;
            }
            i += 1 + used;
            continue;
        }
        out.push(b'&');
        i += 1;
    }
    out
}

pub(super) fn js_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' || i + 1 >= v.len() {
            out.push(v[i]);
            i += 1;
            continue;
        }
        let c = v[i + 1];
        if c == b'u' {
            if let Some(b) = v.get(i + 2..i + 6).and_then(uni_byte) {
                out.push(b);
                i += 6;
                continue;
            }
        }
        if c == b'x' {
            if let Some(b) = v.get(i + 2..i + 4).and_then(|h| hex2(h[0], h[1])) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        if (b'0'..=b'7').contains(&c) {
            let len = v[i + 1..]
                .iter()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count();
            let mut n: u32 = 0;
            for &d in &v[i + 1..i + 1 + len] {
                n = n * 8 + u32::from(d - b'0');
            }
            out.push(n as u8);
            i += 1 + len;
            continue;
        }
        out.push(match c {
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            other => other,
        });
        i += 2;
    }
    out
}

pub(super) fn css_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' {
            out.push(v[i]);
            i += 1;
            continue;
        }
        if i + 1 >= v.len() {
            // A trailing backslash is dropped.
            i += 1;
            continue;
        }
        let len = v[i + 1..]
            .iter()
            .take(6)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if len > 0 {
            let digits = &v[i + 1..i + 1 + len];
            let mut b = if len == 1 {
                hex_val(digits[0]).unwrap_or(0)
            } else {
                hex2(digits[len - 2], digits[len - 1]).unwrap_or(0)
            };
            // Full-width ASCII.
            if len >= 4 && b > 0x00 && b < 0x5f {
                let hi = &digits[len - 4..len - 2];
                if hi.eq_ignore_ascii_case(b"ff") {
                    b += 0x20;
                }
            }
            out.push(b);
            i += 1 + len;
            if v.get(i).is_some_and(|&c| is_space(c)) {
                i += 1;
            }
            continue;
        }
        if v[i + 1] == b'\n' {
            i += 2;
            continue;
        }
        out.push(v[i + 1]);
        i += 2;
    }
    out
}

pub(super) fn utf8_to_unicode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 2);
    for chunk in v.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_ascii() {
                out.push(c as u8);
            } else {
                out.extend_from_slice(format!("%u{:04x}", c as u32).as_bytes());
            }
        }
        out.extend_from_slice(chunk.invalid());
    }
    out
}

pub(super) fn base64_decode(v: &[u8], lenient: bool) -> Vec<u8> {
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = Vec::with_capacity(v.len() * 3 / 4);
    for &b in v {
        let d = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' if !lenient => break,
            _ if lenient => continue,
            _ => break,
        };
        bits = bits << 6 | u32::from(d);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

pub(super) fn sql_hex_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'0'
            && matches!(v.get(i + 1), Some(b'x' | b'X'))
            && v.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            && v.get(i + 3).is_some_and(u8::is_ascii_hexdigit)
        {
            i += 2;
            while let (Some(&a), Some(&b)) = (v.get(i), v.get(i + 1)) {
                match hex2(a, b) {
                    Some(x) => out.push(x),
                    None => break,
                }
                i += 2;
            }
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

pub(super) fn escape_seq_decode(v: &[u8]) -> Vec<u8> {
    // The same escapes as JavaScript's, without \u.
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && v.get(i + 1) == Some(&b'u') {
            out.extend_from_slice(b"\\u");
            i += 2;
            continue;
        }
        let end = v[i + 1..]
            .iter()
            .position(|&b| b == b'\\')
            .map_or(v.len(), |p| i + 1 + p);
        out.extend(js_decode(&v[i..end]));
        i = end;
    }
    out
}

pub(super) fn url_encode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for &b in v {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b),
            b' ' => out.push(b'+'),
            b => out.extend_from_slice(format!("%{b:02x}").as_bytes()),
        }
    }
    out
}

/// Pairs of hex digits as bytes (others dropped).
pub(super) fn hex_decode(v: &[u8]) -> Vec<u8> {
    v.chunks(2)
        .filter_map(|c| match c {
            [a, b] => hex2(*a, *b),
            _ => None,
        })
        .collect()
}

/// Each byte as two lower-case hex digits.
pub(super) fn hex_encode(v: &[u8]) -> Vec<u8> {
    v.iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}
