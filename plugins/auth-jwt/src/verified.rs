//! Signatures this instance has already verified: public-key checks cost about a millisecond
//! in the sandbox (ES256), so a client that sends the same token again is not charged twice.
//! Entries are SHA-256 digests of the whole token; one verified by JWKS keys holds only while
//! the JWKS is the version it was verified with. Claims are checked on every request anyway.

use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;

/// Which keys verified a token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum By {
    /// The configured keys, which live as long as the instance.
    Static,
    /// The JWKS of this version.
    Jwks(u64),
}

/// A bounded set of verified tokens.
pub struct Verified {
    capacity: usize,
    entries: RefCell<HashMap<[u8; 32], By>>,
}

impl Verified {
    /// A set of up to `capacity` tokens (0: nothing is remembered).
    pub fn new(capacity: usize) -> Self {
        Verified {
            capacity,
            entries: RefCell::new(HashMap::new()),
        }
    }

    /// The digest `token` is remembered under, if remembering is on.
    pub fn digest(&self, token: &str) -> Option<[u8; 32]> {
        (self.capacity > 0).then(|| Sha256::digest(token.as_bytes()).into())
    }

    /// Whether the token with `digest` was verified by keys still in force: the configured
    /// ones, or the JWKS at `jwks_version`.
    pub fn holds(&self, digest: &[u8; 32], jwks_version: Option<u64>) -> bool {
        match self.entries.borrow().get(digest) {
            Some(By::Static) => true,
            Some(By::Jwks(v)) => Some(*v) == jwks_version,
            None => false,
        }
    }

    /// Remember that the token with `digest` verified. When full, everything is forgotten:
    /// the bound holds, and a flood of distinct valid tokens only costs their verification.
    pub fn remember(&self, digest: [u8; 32], by: By) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(digest, by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_entries_hold_for_their_version_and_the_bound_holds() {
        let v = Verified::new(2);
        let (a, b, c) = (
            v.digest("a.b.c").unwrap(),
            v.digest("a.b.d").unwrap(),
            v.digest("a.b.e").unwrap(),
        );
        assert_ne!(a, b);
        v.remember(a, By::Static);
        v.remember(b, By::Jwks(3));
        assert!(v.holds(&a, None) && v.holds(&a, Some(9)));
        assert!(v.holds(&b, Some(3)));
        assert!(!v.holds(&b, Some(4)) && !v.holds(&b, None));
        v.remember(c, By::Static);
        assert!(v.holds(&c, None));
        assert!(!v.holds(&a, None), "a full set starts over");
        assert!(Verified::new(0).digest("a.b.c").is_none());
    }
}
