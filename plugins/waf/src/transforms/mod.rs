//! Transformations (`t:`), as ModSecurity v3 defines them: each takes a value's bytes and
//! gives the bytes the operator sees. One that would change nothing borrows.

use std::borrow::Cow;

mod decode;
mod normalise;

pub(crate) use decode::unescape;
use decode::*;
use normalise::*;

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
            CompressWhitespace => compress_whitespace(v),
            CmdLine => owned(cmd_line(v)),
            NormalisePath => {
                if !v.contains(&b'/') {
                    return Cow::Borrowed(v);
                }
                owned(normalise_path(v))
            }
            NormalisePathWin => owned(normalise_path_win(v)),
            Base64Decode => owned(base64_decode(v, false)),
            Base64DecodeExt => owned(base64_decode(v, true)),
            HexDecode => owned(hex_decode(v)),
            HexEncode => owned(hex_encode(v)),
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
