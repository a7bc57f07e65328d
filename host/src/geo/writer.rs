//! A small MaxMind DB (`.mmdb`) writer for tests and the demo: an IPv6 search tree with
//! 24-bit records (IPv4 networks at `::a.b.c.d/96+n`, where readers look them up), a data
//! section of maps, strings and unsigned integers, and the metadata readers check.
//!
//! Only what Weir's tests need: networks must not overlap, and there is no deduplication of
//! data. The format is MaxMind's "MaxMind DB File Format Specification" 2.0.

#![allow(dead_code)] // each user (unit tests, the e2e harness) uses part of it

use std::net::IpAddr;

/// A data-section value.
#[derive(Debug, Clone)]
pub enum Value {
    /// UTF-8 string.
    Str(String),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Map with string keys.
    Map(Vec<(String, Value)>),
}

/// A map value from `(key, value)` pairs.
pub fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect(),
    )
}

/// A string value.
pub fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

/// A GeoIP2-shaped record: `country.iso_code`, `continent.code` and the ASN fields, each
/// only when given.
pub fn location(country: Option<&str>, continent: Option<&str>, asn: Option<(u32, &str)>) -> Value {
    let mut pairs = Vec::new();
    if let Some(c) = country {
        pairs.push(("country", map(&[("iso_code", s(c))])));
    }
    if let Some(c) = continent {
        pairs.push(("continent", map(&[("code", s(c))])));
    }
    if let Some((number, org)) = asn {
        pairs.push(("autonomous_system_number", Value::U32(number)));
        pairs.push(("autonomous_system_organization", s(org)));
    }
    map(&pairs)
}

#[derive(Debug, Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

/// A database being built.
pub struct Writer {
    database_type: String,
    nodes: Vec<[Record; 2]>,
    data: Vec<u8>,
}

impl Writer {
    /// An empty database of this type (e.g. `"GeoLite2-Country"`).
    pub fn new(database_type: &str) -> Self {
        Writer {
            database_type: database_type.to_string(),
            nodes: vec![[Record::Empty; 2]],
            data: Vec::new(),
        }
    }

    /// Map the network `cidr` (`"81.2.69.0/24"`, `"2001:db8::/32"`) to `value`.
    pub fn insert(&mut self, cidr: &str, value: &Value) -> &mut Self {
        let (addr, len) = cidr.split_once('/').expect("a CIDR such as 10.0.0.0/8");
        let addr: IpAddr = addr.parse().expect("an IP address");
        let len: u32 = len.parse().expect("a prefix length");
        let (bits, len) = match addr {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 96 + len),
            IpAddr::V6(v6) => (u128::from(v6), len),
        };
        assert!((1..=128).contains(&len), "prefix length of {cidr}");
        let offset = self.data.len();
        encode(&mut self.data, value);
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth == len - 1 {
                self.nodes[node][bit] = Record::Data(offset);
                break;
            }
            node = match self.nodes[node][bit] {
                Record::Node(n) => n,
                other => {
                    self.nodes.push([other, other]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Record::Node(n);
                    n
                }
            };
        }
        self
    }

    /// The database file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let count = self.nodes.len();
        let value = |r: Record| match r {
            Record::Empty => count,
            Record::Node(n) => n,
            Record::Data(offset) => count + 16 + offset,
        };
        let mut out = Vec::new();
        for pair in &self.nodes {
            for r in pair {
                let v = u32::try_from(value(*r)).expect("a small database");
                assert!(v < 1 << 24, "24-bit records");
                out.extend_from_slice(&v.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let meta = Value::Map(vec![
            ("node_count".into(), Value::U32(count as u32)),
            ("record_size".into(), Value::U32(24)),
            ("ip_version".into(), Value::U32(6)),
            ("database_type".into(), s(&self.database_type)),
            ("languages".into(), Value::Map(vec![])),
            ("binary_format_major_version".into(), Value::U32(2)),
            ("binary_format_minor_version".into(), Value::U32(0)),
            ("build_epoch".into(), Value::U32(1_764_806_400)),
            (
                "description".into(),
                map(&[("en", s("Weir test database"))]),
            ),
        ]);
        encode_meta(&mut out, &meta);
        out
    }
}

/// Metadata fields have fixed types: uint16 for the small numbers, uint64 for the epoch,
/// an array of languages.
fn encode_meta(out: &mut Vec<u8>, meta: &Value) {
    let Value::Map(pairs) = meta else {
        unreachable!("metadata is a map")
    };
    control(out, 7, pairs.len());
    for (key, value) in pairs {
        encode(out, &Value::Str(key.clone()));
        match (key.as_str(), value) {
            ("languages", _) => control(out, 11, 0),
            ("build_epoch", Value::U32(n)) => uint(out, 9, u64::from(*n)),
            ("node_count", Value::U32(n)) => uint(out, 6, u64::from(*n)),
            (_, Value::U32(n)) => uint(out, 5, u64::from(*n)),
            (_, other) => encode(out, other),
        }
    }
}

fn encode(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Str(text) => {
            control(out, 2, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        Value::U32(n) => uint(out, 6, u64::from(*n)),
        Value::Map(pairs) => {
            control(out, 7, pairs.len());
            for (key, value) in pairs {
                encode(out, &Value::Str(key.clone()));
                encode(out, value);
            }
        }
    }
}

/// An unsigned integer of type `kind` (5 uint16, 6 uint32, 9 uint64) in its fewest bytes.
fn uint(out: &mut Vec<u8>, kind: u8, n: u64) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

/// A control byte (and extended type byte, and size bytes) for `kind` of `size`.
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (low, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 285 {
        (29, vec![(size - 29) as u8])
    } else if size < 65_821 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    };
    if kind <= 7 {
        out.push(kind << 5 | low);
    } else {
        out.push(low);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}
