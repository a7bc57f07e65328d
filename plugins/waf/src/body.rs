//! Request body processors: URL-encoded forms, multipart uploads, JSON (flattened to
//! `json.a.b` / `json.a.array_0` arguments, as ModSecurity v3 names them) and XML text.

use crate::transforms::unescape;
use memchr::memmem::find;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// What a body processor found.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Arguments, in order.
    pub args: Vec<(String, Vec<u8>)>,
    /// Uploaded files.
    pub files: Vec<File>,
    /// Each multipart part's header lines, by field name.
    pub part_headers: Vec<(String, String)>,
    /// XML: the document's text.
    pub xml_text: Option<Vec<u8>>,
    /// A multipart body that parsed but bent the rules (missing final boundary, ...).
    pub strict_error: bool,
}

/// One uploaded file.
#[derive(Debug)]
pub struct File {
    pub field: String,
    pub filename: String,
    pub size: usize,
}

/// `a=1&b=x%20y`: names and values URL-decoded (`+` is a space); a pair without `=` has
/// an empty value.
pub fn urlencoded(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    raw.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (
                String::from_utf8_lossy(&form_decode(k)).into_owned(),
                form_decode(v),
            )
        })
        .collect()
}

/// `%XX` escapes decoded (invalid ones kept as they are); `+` stays.
pub fn percent_decode(v: &[u8]) -> Vec<u8> {
    unescape(v, false, false)
}

fn form_decode(v: &[u8]) -> Vec<u8> {
    unescape(v, false, true)
}

/// A `multipart/form-data` body with the boundary from `content_type`.
pub fn multipart(raw: &[u8], content_type: &str) -> Result<Parsed, String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty())
        .ok_or("multipart: no boundary in Content-Type")?;
    let delim = format!("--{boundary}").into_bytes();
    let mut out = Parsed::default();
    let mut rest = match find(raw, &delim) {
        Some(i) => &raw[i + delim.len()..],
        None => return Err("multipart: the boundary never appears".into()),
    };
    loop {
        if rest.starts_with(b"--") {
            return Ok(out);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
            .ok_or("multipart: a boundary is not followed by a line end")?;
        let Some(end) = find(rest, &delim) else {
            out.strict_error = true;
            return Err("multipart: the final boundary is missing".into());
        };
        let part = &rest[..end];
        let part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        read_part(part, &mut out)?;
        rest = &rest[end + delim.len()..];
    }
}

fn read_part(part: &[u8], out: &mut Parsed) -> Result<(), String> {
    let (head, body) = match find(part, b"\r\n\r\n") {
        Some(i) => (&part[..i], &part[i + 4..]),
        None => match find(part, b"\n\n") {
            Some(i) => (&part[..i], &part[i + 2..]),
            None => return Err("multipart: a part has no blank line after its headers".into()),
        },
    };
    let head = String::from_utf8_lossy(head);
    let (mut name, mut filename) = (None, None);
    let mut lines = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        lines.push(line.to_string());
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!(
                "multipart: a part header without a colon: {line:?}"
            ));
        };
        if k.trim().eq_ignore_ascii_case("content-disposition") {
            for param in v.split(';').skip(1) {
                if let Some((pk, pv)) = param.trim().split_once('=') {
                    let pv = pv.trim().trim_matches('"').to_string();
                    match pk.trim().to_ascii_lowercase().as_str() {
                        "name" => name = Some(pv),
                        "filename" | "filename*" => filename = Some(pv),
                        _ => {}
                    }
                }
            }
        }
    }
    let name = name.ok_or("multipart: a part has no name")?;
    for l in lines {
        out.part_headers.push((name.clone(), l));
    }
    match filename {
        Some(f) => out.files.push(File {
            field: name,
            filename: f,
            size: body.len(),
        }),
        None => out.args.push((name, body.to_vec())),
    }
    Ok(())
}

/// A JSON body flattened to arguments in document order.
pub fn json(raw: &[u8]) -> Result<Parsed, String> {
    let mut args = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(raw);
    Flatten {
        prefix: "json".into(),
        out: &mut args,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| format!("JSON: {e}"))?;
    Ok(Parsed {
        args,
        ..Default::default()
    })
}

/// Deepest nesting read; deeper bodies are refused as errors.
const MAX_DEPTH: usize = 64;

struct Flatten<'o> {
    prefix: String,
    out: &'o mut Vec<(String, Vec<u8>)>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Flatten<'_> {
    fn leaf<E>(self, v: impl Into<Vec<u8>>) -> Result<(), E> {
        self.out.push((self.prefix, v.into()));
        Ok(())
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.leaf(if v { "true" } else { "false" })
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.leaf(v.to_string())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.leaf(v.to_string())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.leaf(v.to_string())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.leaf(v)
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.leaf("")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        let mut i = 0;
        loop {
            let seed = Flatten {
                prefix: format!("{}.array_{i}", self.prefix),
                out: &mut *self.out,
                depth: self.depth + 1,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deep"));
        }
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(Flatten {
                prefix: format!("{}.{key}", self.prefix),
                out: &mut *self.out,
                depth: self.depth + 1,
            })?;
        }
        Ok(())
    }
}

/// The text of an XML document: its tags left out, what is between them kept.
pub fn xml_text(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut in_tag = false;
    for &b in raw {
        match b {
            b'<' => in_tag = true,
            b'>' if in_tag => in_tag = false,
            b if !in_tag => out.push(b),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_escapes() {
        let a = urlencoded(b"q=a+b%27&flag&bad=%zz&&x=%4");
        assert_eq!(a[0], ("q".into(), b"a b'".to_vec()));
        assert_eq!(a[1], ("flag".into(), b"".to_vec()));
        assert_eq!(a[2], ("bad".into(), b"%zz".to_vec()));
        assert_eq!(a[3], ("x".into(), b"%4".to_vec()));
    }

    #[test]
    fn multipart_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a.php\"\r\nContent-Type: text/plain\r\n\r\n<?php x\r\n--XyZ--\r\n";
        let p = multipart(body, "multipart/form-data; boundary=XyZ").unwrap();
        assert_eq!(p.args, [("title".to_string(), b"hello".to_vec())]);
        assert_eq!(
            (
                p.files[0].field.as_str(),
                p.files[0].filename.as_str(),
                p.files[0].size
            ),
            ("up", "a.php", 7)
        );
        assert_eq!(p.part_headers.len(), 3);
        assert!(multipart(
            b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx",
            "multipart/form-data; boundary=XyZ"
        )
        .unwrap_err()
        .contains("final boundary"));
        assert!(multipart(body, "multipart/form-data")
            .unwrap_err()
            .contains("no boundary"));
    }

    #[test]
    fn json_flattens_in_order_and_refuses_garbage() {
        let p = json(br#"{"b":{"c":[true,null]},"a":1.5,"s":"x"}"#).unwrap();
        let names: Vec<_> = p.args.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["json.b.c.array_0", "json.b.c.array_1", "json.a", "json.s"]
        );
        assert_eq!(p.args[0].1, b"true");
        assert!(json(b"{\"a\":").is_err());
        assert!(json(b"{} x").is_err());
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(json(deep.as_bytes()).unwrap_err().contains("too deep"));
    }

    #[test]
    fn xml_keeps_text() {
        assert_eq!(xml_text(b"<a x='1'>hi <b>there</b></a>"), b"hi there");
    }
}
