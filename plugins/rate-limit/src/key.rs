//! Rate-limit keys: the descriptors a limit's key is built from, and the key itself.

use sha2::{Digest, Sha256};
use std::net::IpAddr;
use weir_sdk::Request;

/// Longest key sent to the host as it is; longer ones (long header values) are hashed.
const MAX_PLAIN_KEY: usize = 256;

/// One part of a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Descriptor {
    /// The trusted client address.
    ClientIp,
    /// The client's network: its IPv4 /24 or IPv6 /64.
    ClientNet,
    /// A request header's first value.
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// A request context property (e.g. a JWT claim an auth filter set).
    Context(String),
    /// The method.
    Method,
    /// The host the client addressed.
    Host,
    /// The canonical path.
    Path,
    /// The first of the limit's `path-prefixes` the path starts with.
    PathPrefix,
}

impl Descriptor {
    /// Parse `text`, e.g. `"client-ip"` or `"header:x-api-key"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let named = |prefix: &str| {
            text.strip_prefix(prefix)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        };
        Ok(match text {
            "client-ip" => Descriptor::ClientIp,
            "client-net" => Descriptor::ClientNet,
            "method" => Descriptor::Method,
            "host" => Descriptor::Host,
            "path" => Descriptor::Path,
            "path-prefix" => Descriptor::PathPrefix,
            _ => {
                if let Some(h) = named("header:") {
                    weir_sdk::header::validate_name(&h).map_err(|e| e.to_string())?;
                    Descriptor::Header(h.to_ascii_lowercase())
                } else if let Some(c) = named("cookie:") {
                    Descriptor::Cookie(c)
                } else if let Some(k) = named("context:") {
                    Descriptor::Context(k)
                } else {
                    return Err(format!(
                        "unknown descriptor {text:?}: expected client-ip, client-net, method, \
                         host, path, path-prefix, header:<name>, cookie:<name> or context:<key>"
                    ));
                }
            }
        })
    }

    /// This descriptor's value for `req`, or `None` when the request has none (a missing
    /// header, cookie or property): the limit does not apply to it.
    fn value(&self, req: &Request, prefix: Option<&str>) -> Option<String> {
        match self {
            Descriptor::ClientIp => Some(req.client_addr()),
            Descriptor::ClientNet => Some(network(&req.client_addr())),
            Descriptor::Header(h) => req.header(h),
            Descriptor::Cookie(c) => req.cookie(c),
            Descriptor::Context(k) => req.context(k),
            Descriptor::Method => Some(req.method()),
            Descriptor::Host => req.authority(),
            Descriptor::Path => Some(req.path()),
            Descriptor::PathPrefix => prefix.map(str::to_string),
        }
    }
}

/// The /24 (IPv4) or /64 (IPv6) network of `addr`, as `a.b.c.0/24` or `x:x:x:x::/64`.
fn network(addr: &str) -> String {
    match addr.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(IpAddr::V6(v6)) => {
            let masked = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(masked))
        }
        Err(_) => addr.to_string(),
    }
}

/// The key of limit `name` for `req`, or `None` if a descriptor has no value. Parts are
/// separated by a byte no header value holds; a long key is replaced by its SHA-256, so
/// that a client cannot make keys the host refuses, nor make two keys collide.
pub fn build(
    name: &str,
    descriptors: &[Descriptor],
    req: &Request,
    prefix: Option<&str>,
) -> Option<String> {
    let mut key = String::with_capacity(64);
    key.push_str(name);
    for d in descriptors {
        key.push('\u{1f}');
        key.push_str(&d.value(req, prefix)?);
    }
    if key.len() <= MAX_PLAIN_KEY {
        return Some(key);
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut hashed = format!("{name}\u{1f}#");
    for b in digest {
        hashed.push_str(&format!("{b:02x}"));
    }
    Some(hashed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::MockRequest;

    #[test]
    fn descriptors_parse_or_say_what_is_expected() {
        assert_eq!(
            Descriptor::parse("header:X-Api-Key"),
            Ok(Descriptor::Header("x-api-key".into()))
        );
        assert_eq!(
            Descriptor::parse("context:jwt.sub"),
            Ok(Descriptor::Context("jwt.sub".into()))
        );
        assert!(Descriptor::parse("header:")
            .unwrap_err()
            .contains("expected"));
        assert!(Descriptor::parse("header:bad name").is_err());
        assert!(Descriptor::parse("ip").unwrap_err().contains("client-ip"));
    }

    #[test]
    fn keys_from_the_request_and_none_when_a_part_is_missing() {
        let mut mock = MockRequest::get("/api/x")
            .with_client_addr("2001:db8:1:2:3:4:5:6")
            .with_header("x-api-key", "k1")
            .with_header("cookie", "sid=s9")
            .with_context("jwt.sub", "ada");
        let req = mock.request();
        let all = [
            Descriptor::ClientNet,
            Descriptor::Header("x-api-key".into()),
            Descriptor::Cookie("sid".into()),
            Descriptor::Context("jwt.sub".into()),
            Descriptor::Method,
            Descriptor::PathPrefix,
        ];
        assert_eq!(
            build("l", &all, &req, Some("/api")).unwrap(),
            "l\u{1f}2001:db8:1:2::/64\u{1f}k1\u{1f}s9\u{1f}ada\u{1f}GET\u{1f}/api"
        );
        assert_eq!(
            build("l", &[Descriptor::Header("x-nope".into())], &req, None),
            None
        );
        assert_eq!(network("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(network("::ffff:192.0.2.77"), "192.0.2.0/24");
    }

    #[test]
    fn long_keys_are_hashed_and_stay_distinct() {
        let long = |v: &str| {
            let mut mock = MockRequest::get("/").with_header("x-k", v);
            build(
                "l",
                &[Descriptor::Header("x-k".into())],
                &mock.request(),
                None,
            )
            .unwrap()
        };
        let (a, b) = (
            long(&"a".repeat(5000)),
            long(&format!("{}b", "a".repeat(4999))),
        );
        assert!(a.len() < 100 && a.starts_with("l\u{1f}#"));
        assert_ne!(a, b);
    }
}
