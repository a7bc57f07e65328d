//! Request headers on arrival: framing checked, hop-by-hop headers removed (with those the
//! client's `Connection` names), names with underscores dropped, HTTP/2 `cookie` fields
//! joined. All of it before routing and filters, so what they see is what the upstream gets.

use super::Refusal;
use crate::forward;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;

/// `HTTP2-Settings`: only meaningful with `Upgrade: h2c`, which is never passed on.
pub static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// What arrival processing found that later steps need.
#[derive(Debug, Default)]
pub struct Arrival {
    /// The `Upgrade` value of a request asking for a protocol switch (before the route
    /// decides whether it is allowed).
    pub upgrade: Option<HeaderValue>,
}

/// What one pass over the header names found, so the usual request (none of it) costs one
/// scan rather than a lookup per rule.
#[derive(Debug, Default)]
struct Seen {
    framing: bool,
    hop_by_hop: bool,
    underscore: bool,
}

fn scan(headers: &HeaderMap) -> Seen {
    let mut seen = Seen::default();
    for name in headers.keys() {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            seen.framing = true;
        }
        if forward::is_hop_by_hop(name) {
            seen.hop_by_hop = true;
        } else if name.as_str().contains('_') {
            seen.underscore = true;
        }
    }
    seen
}

/// Check framing and clean the headers of an arriving request.
pub fn on_arrival(
    headers: &mut HeaderMap,
    version: Version,
    underscores: bool,
) -> Result<Arrival, Refusal> {
    let seen = scan(headers);
    if seen.framing {
        check_framing(headers)?;
    }
    let mut upgrade = None;
    if seen.hop_by_hop {
        upgrade = crate::upgrade::requested(headers);
        let te_trailers = forward::has_token(headers, &header::TE, "trailers");
        forward::strip_hop_by_hop(headers);
        if te_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
    if seen.underscore && !underscores {
        drop_underscored(headers);
    }
    if version == Version::HTTP_2 {
        join_cookies(headers)?;
    }
    Ok(Arrival { upgrade })
}

/// One unambiguous body length: `Transfer-Encoding` only as a lone `chunked` (a coding
/// before it would be dropped on the way upstream: 501), never together with
/// `Content-Length`, and several equal `Content-Length` values folded into one.
fn check_framing(headers: &mut HeaderMap) -> Result<(), Refusal> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Err(Refusal::bad(
                "both Content-Length and Transfer-Encoding are present",
            ));
        }
        let mut codings = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii);
        let only_chunked = codings
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
            && codings.next().is_none();
        if !only_chunked {
            return Err(Refusal::NotImplemented(
                "a transfer coding other than chunked",
            ));
        }
        return Ok(());
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = lengths.next() else {
        return Ok(());
    };
    let several = lengths.next().is_some() || first.as_bytes().contains(&b',');
    if several {
        let mut value: Option<u64> = None;
        for v in headers.get_all(header::CONTENT_LENGTH) {
            for part in v.as_bytes().split(|&b| b == b',') {
                let n = parse_length(part.trim_ascii())?;
                if value.is_some_and(|prev| prev != n) {
                    return Err(Refusal::bad("conflicting Content-Length values"));
                }
                value = Some(n);
            }
        }
        if let Some(n) = value {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    } else {
        parse_length(first.as_bytes())?;
    }
    Ok(())
}

fn parse_length(digits: &[u8]) -> Result<u64, Refusal> {
    let bad = || Refusal::bad("invalid Content-Length");
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

/// Drop every header whose name has an underscore (CGI/WSGI backends read `X_A` and `X-A` as
/// the same variable, so one could pose as the other).
fn drop_underscored(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 upstreams need one, joined with
/// `; ` (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) -> Result<(), Refusal> {
    let mut all = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (all.next(), all.next()) else {
        return Ok(());
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    let value = HeaderValue::from_bytes(&joined).map_err(|_| Refusal::bad("invalid cookie"))?;
    headers.insert(header::COOKIE, value);
    Ok(())
}

/// Whether a filter may set or remove this header: never the message's framing or the
/// connection-level headers the proxy manages (a body goes through `set-body`).
pub fn filter_may_edit(name: &HeaderName) -> bool {
    !(name == header::CONTENT_LENGTH || forward::is_hop_by_hop(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn arrive(pairs: &[(&str, &str)]) -> Result<HeaderMap, Refusal> {
        let mut h = map(pairs);
        on_arrival(&mut h, Version::HTTP_11, false).map(|_| h)
    }

    #[test]
    fn framing_is_one_length_or_plain_chunked() {
        assert!(arrive(&[("transfer-encoding", "chunked")]).is_ok());
        assert!(arrive(&[("transfer-encoding", "Chunked")]).is_ok());
        assert_eq!(
            arrive(&[("transfer-encoding", "gzip, chunked")]).unwrap_err(),
            Refusal::NotImplemented("a transfer coding other than chunked")
        );
        assert!(matches!(
            arrive(&[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ]),
            Err(Refusal::NotImplemented(_))
        ));
        assert!(matches!(
            arrive(&[("transfer-encoding", "chunked"), ("content-length", "3")]),
            Err(Refusal::BadRequest(_))
        ));
        let h = arrive(&[("content-length", "5"), ("content-length", "5")]).unwrap();
        assert_eq!(h.get_all("content-length").iter().count(), 1);
        assert_eq!(h["content-length"], "5");
        let h = arrive(&[("content-length", "7, 7")]).unwrap();
        assert_eq!(h["content-length"], "7");
        for bad in [
            &[("content-length", "5"), ("content-length", "6")][..],
            &[("content-length", "+5")],
            &[("content-length", "5, x")],
        ] {
            assert!(
                matches!(arrive(bad), Err(Refusal::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hop_by_hop_and_connection_listed_go_but_not_host() {
        let h = arrive(&[
            ("host", "a.test"),
            ("connection", "close, x-secret, host, content-length"),
            ("x-secret", "1"),
            ("keep-alive", "5"),
            ("http2-settings", "AAA"),
            ("te", "trailers"),
            ("content-length", "0"),
        ])
        .unwrap();
        assert!(!h.contains_key("x-secret"));
        assert!(!h.contains_key("keep-alive"));
        assert!(!h.contains_key("connection"));
        assert!(!h.contains_key("http2-settings"));
        assert_eq!(h["host"], "a.test");
        assert_eq!(h["content-length"], "0");
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn underscores_dropped_unless_allowed() {
        let h = arrive(&[("x_client_cert_sha256", "forged"), ("x-ok", "1")]).unwrap();
        assert!(!h.contains_key("x_client_cert_sha256"));
        assert_eq!(h["x-ok"], "1");
        let mut h = map(&[("x_a", "1")]);
        on_arrival(&mut h, Version::HTTP_11, true).unwrap();
        assert_eq!(h["x_a"], "1");
    }

    #[test]
    fn http2_cookies_are_joined() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        on_arrival(&mut h, Version::HTTP_2, false).unwrap();
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
    }

    #[test]
    fn upgrade_is_noted_before_stripping() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        let a = on_arrival(&mut h, Version::HTTP_11, false).unwrap();
        assert_eq!(a.upgrade.unwrap(), "websocket");
        assert!(!h.contains_key("upgrade"));
    }
}
