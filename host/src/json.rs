//! JSON objects written by hand (access log lines, OTLP exports): the keys are literals, the
//! values escaped as JSON strings on the way into the buffer, numbers written directly. It
//! makes the same object `serde_json` would, without a serializer's per-field machinery or
//! a value tree.

use std::fmt::Display;
use std::io::Write;

/// Appends `"key":value` members to one object.
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    /// Open an object in `out`.
    pub fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string member.
    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        string(self.out, value);
    }

    /// A string member written through `Display`.
    pub fn display(&mut self, key: &str, value: impl Display) {
        self.key(key);
        self.out.push(b'"');
        let start = self.out.len();
        let _ = write!(self.out, "{value}");
        let clean = self
            .out
            .get(start..)
            .unwrap_or_default()
            .iter()
            .all(|&b| !needs_escape(b));
        if clean {
            self.out.push(b'"');
        } else {
            // Rare: re-encode what was written as a string.
            let raw = self.out.split_off(start);
            self.out.pop();
            string(self.out, &String::from_utf8_lossy(&raw));
        }
    }

    /// A number member.
    pub fn num(&mut self, key: &str, value: impl Display) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    /// A nested object member.
    pub fn object(&mut self, key: &str) -> Object<'_> {
        self.key(key);
        Object::open(self.out)
    }

    /// An array member of objects, one per item, each written by `write`.
    pub fn objects<T>(
        &mut self,
        key: &str,
        items: impl IntoIterator<Item = T>,
        mut write: impl FnMut(&mut Object<'_>, T),
    ) {
        self.key(key);
        self.out.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            let mut o = Object::open(self.out);
            write(&mut o, item);
            o.close();
        }
        self.out.push(b']');
    }

    /// Close the object.
    pub fn close(self) {
        self.out.push(b'}');
    }
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

/// `value` as a JSON string.
fn string(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = value.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(plain..i).unwrap_or_default());
        if escaped.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escaped);
        }
        plain = i + 1;
    }
    out.extend_from_slice(bytes.get(plain..).unwrap_or_default());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_valid_json_whatever_the_strings_hold() {
        let mut out = Vec::new();
        let mut o = Object::open(&mut out);
        o.str("plain", "GET /a?b=c");
        o.str("quotes", "a\"b\\c\nd\te\u{1}f\u{7f}é");
        o.num("status", 200);
        o.num("ms", format_args!("{:.3}", 1.5));
        o.display("ip", std::net::Ipv4Addr::LOCALHOST);
        o.display("odd", "x\"y");
        let mut inner = o.object("headers");
        inner.str("x-a", "1");
        inner.close();
        o.objects("list", [1, 2], |item, n| item.num("n", n));
        o.objects("none", Vec::<u8>::new(), |_, _| {});
        o.close();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["quotes"], "a\"b\\c\nd\te\u{1}f\u{7f}é");
        assert_eq!(
            (v["status"].as_u64(), v["ms"].as_f64()),
            (Some(200), Some(1.5))
        );
        assert_eq!(v["ip"], "127.0.0.1");
        assert_eq!(v["odd"], "x\"y");
        assert_eq!(v["headers"]["x-a"], "1");
        assert_eq!(v["list"][1]["n"], 2);
        assert_eq!(v["none"], serde_json::json!([]));
        let same = serde_json::to_string(&serde_json::json!({"plain": "GET /a?b=c"})).unwrap();
        let mut one = Vec::new();
        let mut o = Object::open(&mut one);
        o.str("plain", "GET /a?b=c");
        o.close();
        assert_eq!(String::from_utf8(one).unwrap(), same);
    }
}
