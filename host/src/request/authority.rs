//! The request's one authority (`host[:port]`): checked against RFC 3986's grammar and put in
//! canonical form (lower-case host), so routing, filters, `X-Forwarded-Host` and the
//! upstream's `Host` all read the same value.

use http::HeaderValue;
use std::net::Ipv6Addr;

/// Why an authority is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// Nothing before the port.
    #[error("empty host")]
    Empty,
    /// A byte that is not allowed in a host name.
    #[error("invalid character in the host")]
    BadHost,
    /// `[` without a valid IPv6 address and `]`.
    #[error("invalid IPv6 literal in the host")]
    BadIpLiteral,
    /// Not 1-5 digits up to 65535.
    #[error("invalid port in the host")]
    BadPort,
    /// `user@host`.
    #[error("user information in the host")]
    UserInfo,
}

/// Longest host name accepted (DNS names are at most 253 bytes).
const MAX_HOST: usize = 255;

/// The canonical form of `text`: the host lower-cased, an IPv6 literal in brackets, the port
/// as given.
pub fn canonical(text: &[u8]) -> Result<HeaderValue, AuthorityError> {
    match check(text)? {
        Some(lowered) => Ok(lowered),
        None => HeaderValue::from_bytes(text).map_err(|_| AuthorityError::BadHost),
    }
}

/// Check `text`; `None` when it is already canonical, else its canonical form.
pub fn check(text: &[u8]) -> Result<Option<HeaderValue>, AuthorityError> {
    if text.first() == Some(&b'[') {
        if text.contains(&b'@') {
            return Err(AuthorityError::UserInfo);
        }
        let (host, port) = split_ip_literal(text)?;
        if let Some(port) = port {
            check_port(port)?;
        }
        if !host.iter().any(u8::is_ascii_uppercase) {
            return Ok(None);
        }
        return lower(text).map(Some);
    }
    // A name or IPv4 address: one pass over the bytes (this runs for every request).
    let mut colon = None;
    let mut upper = false;
    for (i, &b) in text.iter().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            b'A'..=b'Z' => upper |= colon.is_none(),
            b':' if colon.is_none() => colon = Some(i),
            b'@' => return Err(AuthorityError::UserInfo),
            _ if colon.is_some() => {}
            _ => return Err(check_rest_for_userinfo(text)),
        }
    }
    let host_len = colon.unwrap_or(text.len());
    if host_len == 0 {
        return Err(AuthorityError::Empty);
    }
    if host_len > MAX_HOST {
        return Err(AuthorityError::BadHost);
    }
    if let Some(i) = colon {
        check_port(text.get(i + 1..).unwrap_or_default())?;
    }
    if !upper {
        return Ok(None);
    }
    lower(text).map(Some)
}

fn lower(text: &[u8]) -> Result<HeaderValue, AuthorityError> {
    HeaderValue::from_bytes(&text.to_ascii_lowercase()).map_err(|_| AuthorityError::BadHost)
}

/// The error for a host with a bad byte: user information wins if an `@` follows.
fn check_rest_for_userinfo(text: &[u8]) -> AuthorityError {
    if text.contains(&b'@') {
        AuthorityError::UserInfo
    } else {
        AuthorityError::BadHost
    }
}

/// Split a bracketed IPv6 literal from its port, checking the address.
fn split_ip_literal(text: &[u8]) -> Result<(&[u8], Option<&[u8]>), AuthorityError> {
    let rest = text.get(1..).unwrap_or_default();
    let close = rest
        .iter()
        .position(|&b| b == b']')
        .ok_or(AuthorityError::BadIpLiteral)?;
    let (inside, after) = rest.split_at(close);
    let literal = std::str::from_utf8(inside).map_err(|_| AuthorityError::BadIpLiteral)?;
    literal
        .parse::<Ipv6Addr>()
        .map_err(|_| AuthorityError::BadIpLiteral)?;
    let host_len = close + 2;
    let host = text.get(..host_len).ok_or(AuthorityError::BadIpLiteral)?;
    match after.get(1..) {
        Some([]) | None => Ok((host, None)),
        Some([b':', port @ ..]) => Ok((host, Some(port))),
        Some(_) => Err(AuthorityError::BadIpLiteral),
    }
}

fn check_port(port: &[u8]) -> Result<(), AuthorityError> {
    if port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
        return Err(AuthorityError::BadPort);
    }
    let n: u32 = port.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0'));
    if n > 65535 {
        return Err(AuthorityError::BadPort);
    }
    Ok(())
}

/// The host part of a canonical authority (no port; IPv6 literals keep their brackets).
pub fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(i) => authority.get(..=i).unwrap_or(authority),
            None => authority,
        };
    }
    match authority.bytes().rposition(|b| b == b':') {
        Some(i) => authority.get(..i).unwrap_or(authority),
        None => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> Result<String, AuthorityError> {
        canonical(s.as_bytes()).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn accepts_names_addresses_and_ports() {
        assert_eq!(canon("Example.COM").unwrap(), "example.com");
        assert_eq!(canon("example.com:8080").unwrap(), "example.com:8080");
        assert_eq!(canon("10.0.0.1:80").unwrap(), "10.0.0.1:80");
        assert_eq!(canon("[::1]").unwrap(), "[::1]");
        assert_eq!(canon("[2001:DB8::1]:443").unwrap(), "[2001:db8::1]:443");
        assert_eq!(canon("a_b-c.test").unwrap(), "a_b-c.test");
    }

    #[test]
    fn refuses_malformed_hosts() {
        for (bad, why) in [
            ("[", AuthorityError::BadIpLiteral),
            ("[::1", AuthorityError::BadIpLiteral),
            ("[zz]", AuthorityError::BadIpLiteral),
            ("[::1]x", AuthorityError::BadIpLiteral),
            ("", AuthorityError::Empty),
            (":80", AuthorityError::Empty),
            ("a b", AuthorityError::BadHost),
            ("a/b", AuthorityError::BadHost),
            ("a,b", AuthorityError::BadHost),
            ("host:", AuthorityError::BadPort),
            ("host:99999", AuthorityError::BadPort),
            ("host:8a", AuthorityError::BadPort),
            ("host:1:2", AuthorityError::BadPort),
            ("user@host", AuthorityError::UserInfo),
        ] {
            assert_eq!(canon(bad), Err(why), "{bad:?}");
        }
        assert_eq!(canon(&"a".repeat(300)), Err(AuthorityError::BadHost));
    }

    #[test]
    fn host_of_strips_the_port() {
        assert_eq!(host_of("a.test:80"), "a.test");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("["), "[");
        assert_eq!(host_of("a.test"), "a.test");
    }
}
