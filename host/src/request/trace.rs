//! W3C Trace Context (`traceparent`, `tracestate`): the proxy is a hop of the trace. A
//! well-formed `traceparent` keeps its trace id and flags and gets a new parent id (the
//! proxy's span), and its `tracestate` passes on; a missing, malformed or repeated one is
//! replaced by a new trace (and any `tracestate` dropped, as the specification says). Filters
//! and the upstream see the result; the access log has the trace id.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// `traceparent`
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Longest `tracestate` passed on (the specification's 32 members of up to 256 bytes fit in
/// far less in practice; a longer one is dropped).
const MAX_TRACESTATE: usize = 512;

/// Continue the request's trace in `headers` (or start one).
pub fn settle(headers: &mut HeaderMap) {
    let parsed = {
        let mut given = headers.get_all(&TRACEPARENT).iter();
        match (given.next(), given.next()) {
            (Some(v), None) => parse(v.as_bytes()),
            _ => None,
        }
    };
    let (trace_id, flags) = match parsed {
        Some(p) => p,
        None => {
            headers.remove(&TRACESTATE);
            ((random(), random()), 0)
        }
    };
    let state_ok = {
        let mut states = headers.get_all(&TRACESTATE).iter();
        match (states.next(), states.next()) {
            (None, _) => true,
            (Some(v), None) => v.len() <= MAX_TRACESTATE,
            _ => false,
        }
    };
    if !state_ok {
        headers.remove(&TRACESTATE);
    }
    headers.insert(TRACEPARENT.clone(), format(trace_id, random(), flags));
}

/// The parent (span) id of a `traceparent` value, as its 16 hex digits.
pub fn span_id_of(traceparent: &HeaderValue) -> Option<&str> {
    traceparent.to_str().ok()?.get(36..52)
}

/// A new span id, as 16 hex digits.
pub fn new_span_id() -> String {
    String::from_utf8_lossy(&super::id::hex16(random())).into_owned()
}

/// The same `traceparent` with `span` (16 hex digits) as its parent id: what the next hop
/// sees when a span of the proxy's own (an upstream attempt) is its parent.
pub fn with_parent(traceparent: &HeaderValue, span: &str) -> Option<HeaderValue> {
    let text = traceparent.to_str().ok()?;
    let (head, tail) = (text.get(..36)?, text.get(52..)?);
    HeaderValue::try_from(format!("{head}{span}{tail}")).ok()
}

/// The trace id of a settled `traceparent` value.
pub fn trace_id_of(traceparent: &HeaderValue) -> Option<&str> {
    traceparent.to_str().ok()?.get(3..35)
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` (lower-case; higher versions
/// accepted by their first four fields, as the specification asks): (trace id, flags), or
/// `None` when malformed or all-zero.
fn parse(v: &[u8]) -> Option<((u64, u64), u8)> {
    let text = std::str::from_utf8(v).ok()?;
    let mut parts = text.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower_hex(version, 2)
        || version == "ff"
        || !lower_hex(trace, 32)
        || !lower_hex(parent, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    // Version 00 has exactly four fields; later versions may add more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let hi = u64::from_str_radix(trace.get(..16)?, 16).ok()?;
    let lo = u64::from_str_radix(trace.get(16..)?, 16).ok()?;
    let parent = u64::from_str_radix(parent, 16).ok()?;
    if (hi == 0 && lo == 0) || parent == 0 {
        return None;
    }
    Some(((hi, lo), u8::from_str_radix(flags, 16).ok()? & 0x01))
}

fn format((hi, lo): (u64, u64), span: u64, flags: u8) -> HeaderValue {
    let mut text = Vec::with_capacity(55);
    text.extend_from_slice(b"00-");
    text.extend_from_slice(&super::id::hex16(hi));
    text.extend_from_slice(&super::id::hex16(lo));
    text.push(b'-');
    text.extend_from_slice(&super::id::hex16(span));
    text.extend_from_slice(if flags & 1 == 1 { b"-01" } else { b"-00" });
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// A non-zero id, unpredictable enough for tracing (not for secrets): a per-process random
/// seed and a counter through SplitMix64.
fn random() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        u64::from_ne_bytes(b)
    });
    let mut z = seed.wrapping_add(
        COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(given: &[&str], state: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for g in given {
            h.append(&TRACEPARENT, g.parse().unwrap());
        }
        for s in state {
            h.append(&TRACESTATE, s.parse().unwrap());
        }
        settle(&mut h);
        h
    }

    fn trace_id(h: &HeaderMap) -> Option<&str> {
        h.get(&TRACEPARENT).and_then(trace_id_of)
    }

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_trace_continues_with_a_new_parent() {
        let h = settled(&[GOOD], &["rojo=00f067aa0ba902b7"]);
        let tp = h[&TRACEPARENT].to_str().unwrap();
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp}"
        );
        assert!(tp.ends_with("-01"));
        assert_ne!(&tp[36..52], "00f067aa0ba902b7", "the proxy's own span");
        assert_eq!(h[&TRACESTATE], "rojo=00f067aa0ba902b7");
        assert_eq!(trace_id(&h), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        // A later version with more fields: its first four are used, as version 00.
        let h = settled(
            &["cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what"],
            &[],
        );
        assert!(h[&TRACEPARENT]
            .to_str()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }

    #[test]
    fn anything_else_starts_a_new_trace_and_drops_the_state() {
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let h = settled(&[bad], &["rojo=1"]);
            let tp = h[&TRACEPARENT].to_str().unwrap();
            assert_eq!(tp.len(), 55, "{bad}");
            assert!(!tp.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{bad}");
            assert!(tp.ends_with("-00"), "not sampled: {bad}");
            assert!(h.get(&TRACESTATE).is_none(), "{bad}");
        }
        // Two traceparents: which one? Neither.
        let h = settled(&[GOOD, GOOD], &[]);
        assert_eq!(h.get_all(&TRACEPARENT).iter().count(), 1);
        assert!(!h[&TRACEPARENT]
            .to_str()
            .unwrap()
            .contains("4bf92f3577b34da6"));
        // None at all: a new trace, distinct each time.
        let (a, b) = (settled(&[], &[]), settled(&[], &[]));
        assert_ne!(trace_id(&a), trace_id(&b));
        // An oversized or repeated tracestate is dropped, the trace kept.
        let h = settled(&[GOOD], &["a=1", "b=2"]);
        assert!(h.get(&TRACESTATE).is_none());
        assert_eq!(trace_id(&h), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    }
}
