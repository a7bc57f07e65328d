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

    // Inlined with its callers: the keys are literals, and a copy of known length compiles to
    // a few moves instead of a call to `memcpy`.
    #[inline(always)]
    fn key(&mut self, key: &str) {
        self.out.reserve(key.len() + 4);
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string member.
    #[inline(always)]
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

    /// An unsigned integer member, written without the formatting machinery.
    #[inline(always)]
    pub fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        digits(self.out, value);
    }

    /// `micros` as milliseconds with three decimals (`1.234`), without floating point.
    #[inline(always)]
    pub fn millis(&mut self, key: &str, micros: u64) {
        self.key(key);
        digits(self.out, micros / 1000);
        let frac = micros % 1000;
        self.out.push(b'.');
        for d in [frac / 100, frac / 10 % 10, frac % 10] {
            self.out.push(b'0' + d as u8);
        }
    }

    /// An IP address as a string member (IPv4 without the formatting machinery).
    pub fn ip(&mut self, key: &str, ip: std::net::IpAddr) {
        match ip {
            std::net::IpAddr::V4(v4) => {
                self.key(key);
                self.out.push(b'"');
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b'.');
                    }
                    digits(self.out, u64::from(octet));
                }
                self.out.push(b'"');
            }
            v6 => self.display(key, v6),
        }
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

/// `n` in decimal.
fn digits(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(at..).unwrap_or_default());
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

/// `value` as a JSON string.
fn string(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = value.as_bytes();
    // Most values need no escaping: find the first byte that does, eight at a time.
    let clean = clean_prefix(bytes);
    if clean == bytes.len() {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
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

/// How many leading bytes of `bytes` need no escaping (a lower bound: a chunk holding one
/// that does is left to the byte loop; all of them when none does).
fn clean_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero: the classic "has zero byte" test.
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    let chunks = bytes.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Bytes below 0x20 (and 0x80+ fall out: `!x` clears their high bit), `"`, `\`, DEL.
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let special = has_zero(x ^ (ONES * u64::from(b'"')))
            | has_zero(x ^ (ONES * u64::from(b'\\')))
            | has_zero(x ^ (ONES * 0x7f));
        if control | special != 0 {
            return at;
        }
        at += 8;
    }
    if tail.iter().all(|&b| !needs_escape(b)) {
        at += tail.len();
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_addresses_and_the_fast_scan_match_the_formatting_machinery() {
        for n in [0u64, 7, 10, 99, 1000, 65535, u64::MAX] {
            let mut out = Vec::new();
            digits(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for micros in [0u64, 5, 999, 1000, 1234, 10_000_001] {
            let mut out = Vec::new();
            let mut o = Object::open(&mut out);
            o.millis("ms", micros);
            o.close();
            let want = format!("{{\"ms\":{}.{:03}}}", micros / 1000, micros % 1000);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "10.20.3.40",
            "2001:db8::1",
        ] {
            let mut out = Vec::new();
            let mut o = Object::open(&mut out);
            o.ip("ip", ip.parse().unwrap());
            o.close();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{{\"ip\":\"{ip}\"}}")
            );
        }
        // Every byte value at every position of a 17-byte string: escaped as serde_json does.
        for b in 0u8..=0x7f {
            for pos in 0..17 {
                let mut text = vec![b'a'; 17];
                text[pos] = b;
                let text = String::from_utf8(text).unwrap();
                let mut out = Vec::new();
                string(&mut out, &text);
                let back: String = serde_json::from_slice(&out).unwrap();
                assert_eq!(back, text, "byte {b:#x} at {pos}");
                if !needs_escape(b) {
                    assert_eq!(out.len(), 19, "byte {b:#x} escaped needlessly");
                }
            }
        }
    }

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
