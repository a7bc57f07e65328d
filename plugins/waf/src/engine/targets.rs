//! The values one rule link runs on: borrowed from the request, or copied (from the
//! transaction's state, which the link's actions may change while it runs) into a buffer
//! the whole phase reuses, so that a copy costs no allocation.

use crate::variables::Coll;

/// Where a target's key or value is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Text<'d> {
    /// In the request's data.
    Borrowed(&'d [u8]),
    /// `held[start..end]`.
    Held(usize, usize),
}

/// One target's value, named.
#[derive(Debug)]
pub(super) struct Target<'d> {
    pub coll: Coll,
    key: Text<'d>,
    pub value: Text<'d>,
}

/// A link's targets and the bytes copied for them.
#[derive(Debug, Default)]
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

    /// A target borrowed from the request.
    pub fn borrowed(&mut self, coll: Coll, key: &'d str, value: &'d [u8]) {
        self.list.push(Target {
            coll,
            key: Text::Borrowed(key.as_bytes()),
            value: Text::Borrowed(value),
        });
    }

    /// A target copied.
    pub fn copied(&mut self, coll: Coll, key: &str, value: &[u8]) {
        let key = self.hold(key.as_bytes());
        let value = self.hold(value);
        self.list.push(Target { coll, key, value });
    }

    /// `&X`: how many values `X` has, under the key the rule names (or none).
    pub fn count(&mut self, coll: Coll, key: &str, count: usize) {
        let key = self.hold(key.as_bytes());
        let start = self.held.len();
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
        let value = Text::Held(start, self.held.len());
        self.list.push(Target { coll, key, value });
    }

    fn hold(&mut self, bytes: &[u8]) -> Text<'d> {
        let start = self.held.len();
        self.held.extend_from_slice(bytes);
        Text::Held(start, self.held.len())
    }

    /// The targets, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Target<'d>> {
        self.list.iter()
    }

    /// The bytes of `text`.
    pub fn bytes<'a>(&'a self, text: Text<'a>) -> &'a [u8] {
        match text {
            Text::Borrowed(b) => b,
            Text::Held(start, end) => self.held.get(start..end).unwrap_or_default(),
        }
    }

    /// `t`'s key (keys are always text).
    pub fn key<'a>(&'a self, t: &'a Target<'d>) -> &'a str {
        std::str::from_utf8(self.bytes(t.key)).unwrap_or_default()
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
            t.borrowed(Coll::Tx, "k", owned.as_bytes());
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
