//! The values one rule link runs on: borrowed from the request, or copied (from the
//! transaction's state, which the link's actions may change while it runs) into a buffer
//! the whole phase reuses, so that a copy costs no allocation.

use crate::transaction::At;
use crate::variables::Coll;

/// Where a target's key is.
#[derive(Debug, Clone, Copy)]
enum Text<'d> {
    /// In the request's data.
    Borrowed(&'d str),
    /// `held[start..end]`.
    Held(usize, usize),
}

/// Where a target's value is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'d> {
    /// In the request's data, at that place.
    Data(&'d [u8], At),
    /// `held[start..end]`.
    Held(usize, usize),
}

/// One target's value, named.
#[derive(Debug)]
pub(super) struct Target<'d> {
    pub coll: Coll,
    key: Text<'d>,
    pub value: Value<'d>,
}

/// A link's targets and the bytes copied for them.
#[derive(Debug)]
pub(super) struct Targets<'d> {
    list: Vec<Target<'d>>,
    held: Vec<u8>,
}

impl<'d> Targets<'d> {
    /// Room for a typical rule's targets.
    pub fn new() -> Self {
        Targets {
            list: Vec::with_capacity(32),
            held: Vec::with_capacity(256),
        }
    }

    /// Empty, keeping the room.
    pub fn clear(&mut self) {
        self.list.clear();
        self.held.clear();
    }

    /// A target borrowed from the request: `value` is at `at` in its data.
    pub fn borrowed(&mut self, coll: Coll, key: &'d str, value: &'d [u8], at: At) {
        self.list.push(Target {
            coll,
            key: Text::Borrowed(key),
            value: Value::Data(value, at),
        });
    }

    /// A target copied.
    pub fn copied(&mut self, coll: Coll, key: &str, value: &[u8]) {
        let key = self.hold_key(key);
        let (start, end) = self.hold(value);
        let value = Value::Held(start, end);
        self.list.push(Target { coll, key, value });
    }

    /// `&X`: how many values `X` has, under the key the rule names (or none).
    pub fn count(&mut self, coll: Coll, key: &str, count: usize) {
        let key = self.hold_key(key);
        let start = self.held.len();
        // Digits by hand: `write!` costs more than the rest of a count (CRS counts dozens of
        // variables a request).
        let mut n = count;
        loop {
            self.held.push(b'0' + (n % 10) as u8);
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if let Some(digits) = self.held.get_mut(start..) {
            digits.reverse();
        }
        let value = Value::Held(start, self.held.len());
        self.list.push(Target { coll, key, value });
    }

    fn hold(&mut self, bytes: &[u8]) -> (usize, usize) {
        let start = self.held.len();
        self.held.extend_from_slice(bytes);
        (start, self.held.len())
    }

    fn hold_key(&mut self, key: &str) -> Text<'d> {
        let (start, end) = self.hold(key.as_bytes());
        Text::Held(start, end)
    }

    /// The targets, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Target<'d>> {
        self.list.iter()
    }

    /// The bytes of `value`.
    pub fn bytes<'a>(&'a self, value: Value<'a>) -> &'a [u8] {
        match value {
            Value::Data(b, _) => b,
            Value::Held(start, end) => self.held.get(start..end).unwrap_or_default(),
        }
    }

    /// `t`'s key.
    pub fn key<'a>(&'a self, t: &'a Target<'d>) -> &'a str {
        match t.key {
            Text::Borrowed(k) => k,
            Text::Held(start, end) => self
                .held
                .get(start..end)
                .and_then(|k| std::str::from_utf8(k).ok())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_counts_read_back_as_written() {
        let owned = String::from("from the request");
        let mut t = Targets::new();
        for round in 0..2 {
            t.clear();
            t.borrowed(Coll::Tx, "k", owned.as_bytes(), At::member(0, 0));
            t.copied(Coll::Tx, "anomaly_score", b"5");
            t.count(Coll::Tx, "", 0);
            t.count(Coll::Tx, "x", 1209);
            let got: Vec<(&str, &[u8])> = t.iter().map(|x| (t.key(x), t.bytes(x.value))).collect();
            assert_eq!(
                got,
                [
                    ("k", owned.as_bytes()),
                    ("anomaly_score", &b"5"[..]),
                    ("", b"0"),
                    ("x", b"1209")
                ],
                "round {round}"
            );
        }
    }
}
