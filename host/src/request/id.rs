//! The request id (`x-request-id`): the proxy's own header. One from a trusted proxy is kept
//! (when it is a sane token); any other is replaced by a new id, unique across processes:
//! a random per-process prefix and a counter, 32 hex digits. It reaches filters (as a
//! request header), the upstream and the access log.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// `x-request-id`
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id taken from a trusted proxy.
const MAX_KEPT: usize = 128;

/// Settle the request's id in `headers`: the trusted peer's, or a new one (read it back
/// from `headers`; not returned, so a request that isn't logged copies nothing).
pub fn settle(headers: &mut HeaderMap, from_trusted: bool) {
    if from_trusted {
        let mut given = headers.get_all(&X_REQUEST_ID).iter();
        if let (Some(v), None) = (given.next(), given.next()) {
            if sane(v.as_bytes()) {
                return;
            }
        }
    }
    headers.insert(X_REQUEST_ID.clone(), next());
}

/// 1 to 128 bytes of letters, digits and `-._:+/=` (UUIDs, trace ids, base64).
fn sane(v: &[u8]) -> bool {
    (1..=MAX_KEPT).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:+/=".contains(b))
}

/// A new id: the process prefix's 16 hex digits (made once), then the counter's.
fn next() -> HeaderValue {
    static PREFIX: OnceLock<[u8; 16]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        hex16(u64::from_ne_bytes(b))
    });
    let mut text = [0u8; 32];
    let (head, tail) = text.split_at_mut(16);
    head.copy_from_slice(prefix);
    tail.copy_from_slice(&hex16(COUNTER.fetch_add(1, Ordering::Relaxed)));
    // Hex digits only: always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// `n` as 16 lower-case hex digits.
pub(super) fn hex16(n: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, digit) in out.iter_mut().enumerate() {
        // The nibble is under 16: in bounds of DIGITS.
        *digit = DIGITS[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(h: &mut HeaderMap, from_trusted: bool) -> HeaderValue {
        settle(h, from_trusted);
        h[&X_REQUEST_ID].clone()
    }

    #[test]
    fn untrusted_ids_are_replaced_and_new_ones_unique() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "forged".parse().unwrap());
        let a = id(&mut h, false);
        assert_ne!(a, "forged");
        assert_eq!(a.len(), 32);
        let b = id(&mut HeaderMap::new(), false);
        assert_ne!(a, b);
        assert_eq!(a.as_bytes()[..16], b.as_bytes()[..16], "one process prefix");
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(&hex16(0x0123_4567_89ab_cdef), b"0123456789abcdef");
    }

    #[test]
    fn a_trusted_sane_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "0b5e-41c3.9f".parse().unwrap());
        assert_eq!(id(&mut h, true), "0b5e-41c3.9f");
        for bad in ["has space", "a,b", &"x".repeat(200)] {
            let mut h = HeaderMap::new();
            h.insert("x-request-id", bad.parse().unwrap());
            assert_ne!(id(&mut h, true), bad, "{bad}");
        }
        let mut h = HeaderMap::new();
        h.append("x-request-id", "a".parse().unwrap());
        h.append("x-request-id", "b".parse().unwrap());
        let kept = id(&mut h, true);
        assert_eq!(h.get_all("x-request-id").iter().count(), 1);
        assert_ne!(kept, "a");
    }
}
