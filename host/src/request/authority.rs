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
    if text.contains(&b'@') {
        return Err(AuthorityError::UserInfo);
    }
    let (host, port) = split(text)?;
    if let Some(port) = port {
        check_port(port)?;
    }
    if !host.iter().any(u8::is_ascii_uppercase) {
        return Ok(None);
    }
    let lowered = text.to_ascii_lowercase();
    HeaderValue::from_bytes(&lowered)
        .map(Some)
        .map_err(|_| AuthorityError::BadHost)
}

/// Split into host and port, checking the host.
fn split(text: &[u8]) -> Result<(&[u8], Option<&[u8]>), AuthorityError> {
    if let Some(rest) = text.strip_prefix(b"[") {
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
        return match after.get(1..) {
            Some([]) | None => Ok((host, None)),
            Some([b':', port @ ..]) => Ok((host, Some(port))),
            Some(_) => Err(AuthorityError::BadIpLiteral),
        };
    }
    let (host, port) = match text.iter().position(|&b| b == b':') {
        Some(i) => (
            text.get(..i).unwrap_or_default(),
            Some(text.get(i + 1..).unwrap_or_default()),
        ),
        None => (text, None),
    };
    if host.is_empty() {
        return Err(AuthorityError::Empty);
    }
    if host.len() > MAX_HOST
        || !host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(AuthorityError::BadHost);
    }
    Ok((host, port))
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
    match authority.rfind(':') {
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
