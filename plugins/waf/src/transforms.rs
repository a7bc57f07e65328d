//! Transformations (`t:`), as ModSecurity v3 defines them: each takes a value's bytes and
//! gives the bytes the operator sees. One that would change nothing borrows.

use std::borrow::Cow;

/// A transformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    Lowercase,
    Uppercase,
    UrlDecode,
    UrlDecodeUni,
    HtmlEntityDecode,
    JsDecode,
    CssDecode,
    Utf8ToUnicode,
    RemoveNulls,
    ReplaceNulls,
    RemoveWhitespace,
    CompressWhitespace,
    CmdLine,
    NormalisePath,
    NormalisePathWin,
    Base64Decode,
    Base64DecodeExt,
    HexDecode,
    HexEncode,
    SqlHexDecode,
    Length,
    Sha1,
    Md5,
    ReplaceComments,
    RemoveComments,
    RemoveCommentsChar,
    Trim,
    TrimLeft,
    TrimRight,
    EscapeSeqDecode,
    UrlEncode,
}

/// What a `t:` name means: `None` for `t:none`, an error for an unknown name.
pub fn parse(name: &str) -> Result<Option<Transform>, String> {
    use Transform::*;
    Ok(Some(match name.to_ascii_lowercase().as_str() {
        "none" => return Ok(None),
        "lowercase" => Lowercase,
        "uppercase" => Uppercase,
        "urldecode" => UrlDecode,
        "urldecodeuni" => UrlDecodeUni,
        "htmlentitydecode" => HtmlEntityDecode,
        "jsdecode" => JsDecode,
        "cssdecode" => CssDecode,
        "utf8tounicode" => Utf8ToUnicode,
        "removenulls" => RemoveNulls,
        "replacenulls" => ReplaceNulls,
        "removewhitespace" => RemoveWhitespace,
        "compresswhitespace" => CompressWhitespace,
        "cmdline" => CmdLine,
        "normalisepath" | "normalizepath" => NormalisePath,
        "normalisepathwin" | "normalizepathwin" => NormalisePathWin,
        "base64decode" => Base64Decode,
        "base64decodeext" => Base64DecodeExt,
        "hexdecode" => HexDecode,
        "hexencode" => HexEncode,
        "sqlhexdecode" => SqlHexDecode,
        "length" => Length,
        "sha1" => Sha1,
        "md5" => Md5,
        "replacecomments" => ReplaceComments,
        "removecomments" => RemoveComments,
        "removecommentschar" => RemoveCommentsChar,
        "trim" => Trim,
        "trimleft" => TrimLeft,
        "trimright" => TrimRight,
        "escapeseqdecode" => EscapeSeqDecode,
        "urlencode" => UrlEncode,
        other => return Err(format!("unknown transformation t:{other}")),
    }))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0)
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn hex2(a: u8, b: u8) -> Option<u8> {
    Some(hex_val(a)? << 4 | hex_val(b)?)
}

/// `%uHHHH`-style code points keep their low byte; full-width ASCII (U+FF01..U+FF5E) maps
/// to ASCII, as ModSecurity does.
fn uni_byte(h: &[u8]) -> Option<u8> {
    let hi = hex2(h[0], h[1])?;
    let mut lo = hex2(h[2], h[3])?;
    if hi == 0xff && lo > 0x00 && lo < 0x5f {
        lo = lo.wrapping_add(0x20);
    }
    Some(lo)
}

impl Transform {
    /// Apply to `v`.
    pub fn apply<'a>(self, v: &'a [u8]) -> Cow<'a, [u8]> {
        use Transform::*;
        let owned = |o: Vec<u8>| Cow::Owned(o);
        match self {
            Lowercase => {
                if v.iter().any(u8::is_ascii_uppercase) {
                    owned(v.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(v)
                }
            }
            Uppercase => {
                if v.iter().any(u8::is_ascii_lowercase) {
                    owned(v.to_ascii_uppercase())
                } else {
                    Cow::Borrowed(v)
                }
            }
            UrlDecode | UrlDecodeUni => {
                if !v.iter().any(|&b| b == b'%' || b == b'+') {
                    return Cow::Borrowed(v);
                }
                owned(url_decode(v, self == UrlDecodeUni))
            }
            HtmlEntityDecode => {
                if !v.contains(&b'&') {
                    return Cow::Borrowed(v);
                }
                owned(html_entity_decode(v))
            }
            JsDecode => {
                if !v.contains(&b'\\') {
                    return Cow::Borrowed(v);
                }
                owned(js_decode(v))
            }
            CssDecode => {
                if !v.contains(&b'\\') {
                    return Cow::Borrowed(v);
                }
                owned(css_decode(v))
            }
            Utf8ToUnicode => {
                if v.is_ascii() {
                    return Cow::Borrowed(v);
                }
                owned(utf8_to_unicode(v))
            }
            RemoveNulls => strip(v, |b| b == 0),
            ReplaceNulls => {
                if !v.contains(&0) {
                    return Cow::Borrowed(v);
                }
                owned(v.iter().map(|&b| if b == 0 { b' ' } else { b }).collect())
            }
            RemoveWhitespace => strip(v, is_space),
            CompressWhitespace => {
                if !v.iter().any(|&b| is_space(b) && b != b' ') && !v.windows(2).any(|w| w == b"  ")
                {
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
                owned(out)
            }
            CmdLine => owned(cmd_line(v)),
            NormalisePath => {
                if !v.contains(&b'/') {
                    return Cow::Borrowed(v);
                }
                owned(normalise_path(v))
            }
            NormalisePathWin => {
                let slashed: Vec<u8> = v
                    .iter()
                    .map(|&b| if b == b'\\' { b'/' } else { b })
                    .collect();
                owned(normalise_path(&slashed))
            }
            Base64Decode => owned(base64_decode(v, false)),
            Base64DecodeExt => owned(base64_decode(v, true)),
            HexDecode => owned(
                v.chunks(2)
                    .filter_map(|c| match c {
                        [a, b] => hex2(*a, *b),
                        _ => None,
                    })
                    .collect(),
            ),
            HexEncode => owned(
                v.iter()
                    .flat_map(|b| format!("{b:02x}").into_bytes())
                    .collect(),
            ),
            SqlHexDecode => owned(sql_hex_decode(v)),
            Length => owned(v.len().to_string().into_bytes()),
            Sha1 => {
                use sha1::Digest;
                owned(sha1::Sha1::digest(v).to_vec())
            }
            Md5 => {
                use md5::Digest;
                owned(md5::Md5::digest(v).to_vec())
            }
            ReplaceComments => {
                if !v.windows(2).any(|w| w == b"/*") {
                    return Cow::Borrowed(v);
                }
                owned(replace_comments(v))
            }
            RemoveComments => owned(remove_comments(v)),
            RemoveCommentsChar => owned(remove_comment_chars(v)),
            Trim => owned(v.trim_ascii().to_vec()),
            TrimLeft => owned(v.trim_ascii_start().to_vec()),
            TrimRight => owned(v.trim_ascii_end().to_vec()),
            EscapeSeqDecode => {
                if !v.contains(&b'\\') {
                    return Cow::Borrowed(v);
                }
                owned(escape_seq_decode(v))
            }
            UrlEncode => owned(url_encode(v)),
        }
    }
}

fn strip(v: &[u8], drop: impl Fn(u8) -> bool) -> Cow<'_, [u8]> {
    if !v.iter().any(|&b| drop(b)) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(v.iter().copied().filter(|&b| !drop(b)).collect())
}

fn url_decode(v: &[u8], uni: bool) -> Vec<u8> {
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
            b'+' => {
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

fn html_entity_decode(v: &[u8]) -> Vec<u8> {
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

fn js_decode(v: &[u8]) -> Vec<u8> {
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

fn css_decode(v: &[u8]) -> Vec<u8> {
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

fn utf8_to_unicode(v: &[u8]) -> Vec<u8> {
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

fn cmd_line(v: &[u8]) -> Vec<u8> {
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

fn normalise_path(v: &[u8]) -> Vec<u8> {
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

fn base64_decode(v: &[u8], lenient: bool) -> Vec<u8> {
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

fn sql_hex_decode(v: &[u8]) -> Vec<u8> {
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

fn replace_comments(v: &[u8]) -> Vec<u8> {
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

fn remove_comments(v: &[u8]) -> Vec<u8> {
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

fn remove_comment_chars(v: &[u8]) -> Vec<u8> {
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

fn escape_seq_decode(v: &[u8]) -> Vec<u8> {
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

fn url_encode(v: &[u8]) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::Transform::*;
    use super::*;

    fn t(tr: Transform, v: &str) -> String {
        String::from_utf8_lossy(&tr.apply(v.as_bytes())).into_owned()
    }

    #[test]
    fn decoders() {
        assert_eq!(t(UrlDecode, "a%27+or%201%3D1%zz"), "a' or 1=1%zz");
        assert_eq!(t(UrlDecodeUni, "%u0027%uff1cscript"), "'<script");
        assert_eq!(
            t(HtmlEntityDecode, "&lt;a&#x27;&#39&quot;&amp;&bogus;"),
            "<a''\"&&bogus;"
        );
        assert_eq!(t(JsDecode, r"\x3cs\u0063\'\n\101\q"), "<sc'\nAq");
        assert_eq!(t(CssDecode, r"\6a avascript\:\ff1c"), "javascript:<");
        assert_eq!(t(Utf8ToUnicode, "aé"), "a%u00e9");
        assert_eq!(t(Base64Decode, "PHNjcmlwdD4="), "<script>");
        assert_eq!(t(Base64DecodeExt, "PHNj.cmlwdD4"), "<script>");
        assert_eq!(t(HexDecode, "3c73"), "<s");
        assert_eq!(t(SqlHexDecode, "select 0x414243"), "select ABC");
        assert_eq!(t(EscapeSeqDecode, r"a\x41\n"), "aA\n");
    }

    #[test]
    fn normalisers() {
        assert_eq!(t(Lowercase, "SeLeCt"), "select");
        assert_eq!(t(RemoveNulls, "a\0b"), "ab");
        assert_eq!(t(CompressWhitespace, "a \t\n b"), "a b");
        assert_eq!(t(RemoveWhitespace, "a \t b"), "ab");
        assert_eq!(t(CmdLine, "C^at\"  /etc ;, PASSWD ("), "cat/etc passwd(");
        assert_eq!(t(NormalisePath, "/a/./b/../../../c//d/"), "/c/d/");
        assert_eq!(t(NormalisePathWin, "..\\..\\win.ini"), "../../win.ini");
        assert_eq!(t(ReplaceComments, "un/**/ion/* x"), "un ion ");
        assert_eq!(t(RemoveComments, "a/*x*/b-- c\nd"), "ab\nd");
        assert_eq!(t(Length, "abcd"), "4");
        assert_eq!(t(HexEncode, "<"), "3c");
        assert_eq!(t(Trim, "  a "), "a");
        assert_eq!(Sha1.apply(b"").len(), 20);
        assert!(matches!(Lowercase.apply(b"plain"), Cow::Borrowed(_)));
        assert!(parse("nope").is_err());
        assert_eq!(parse("none").unwrap(), None);
        assert_eq!(parse("normalizePath").unwrap(), Some(NormalisePath));
    }
}
