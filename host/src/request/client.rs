//! The client's address as the proxy vouches for it: the peer, or — behind trusted proxies —
//! the right-most untrusted hop of `X-Forwarded-For`. From an untrusted peer, `X-Forwarded-For`
//! and `X-Real-IP` become the peer's address and `Forwarded` is dropped; behind trusted
//! proxies the peer is appended and `X-Real-IP` names the client found. A client can thus
//! neither forge its address nor hide it.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// `X-Real-IP`
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `Forwarded` (RFC 7239)
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The networks whose `X-Forwarded-For` is believed (a listener's `trusted-proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trust these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    /// Whether `ip` is in one of them (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Whether none are trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` element: an address, maybe with a port or in brackets.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        })
        .map(canonical_ip)
}

/// Settle the client address of a request from `peer` (whose address is `peer_value` as a
/// header value), rewriting the forwarding headers; returns the client's IP.
pub fn resolve(
    headers: &mut HeaderMap,
    peer: IpAddr,
    peer_value: &HeaderValue,
    trusted: &TrustedProxies,
) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        headers.remove(&FORWARDED);
        headers.insert(X_REAL_IP.clone(), peer_value.clone());
        headers.insert(crate::forward::X_FORWARDED_FOR.clone(), peer_value.clone());
        return peer;
    }
    // A trusted peer: walk its chain from the right while the hops are trusted too.
    let mut client = canonical_ip(peer);
    let chain: Vec<&str> = headers
        .get_all(&crate::forward::X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in chain.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !trusted.contains(ip) {
                    break;
                }
            }
            // Garbage from here on: the last trusted hop is all we can vouch for.
            None => break,
        }
    }
    let appended = match headers.get(&crate::forward::X_FORWARDED_FOR) {
        Some(_) => {
            let mut v = chain.join(",").into_bytes();
            v.extend_from_slice(b", ");
            v.extend_from_slice(peer_value.as_bytes());
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| peer_value.clone())
        }
        None => peer_value.clone(),
    };
    headers.insert(crate::forward::X_FORWARDED_FOR.clone(), appended);
    headers.insert(X_REAL_IP.clone(), crate::forward::client_ip_value(client));
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn run(peer: &str, xff: Option<&str>, t: &TrustedProxies) -> (IpAddr, HeaderMap) {
        let mut h = HeaderMap::new();
        if let Some(x) = xff {
            h.insert("x-forwarded-for", x.parse().unwrap());
        }
        h.insert("forwarded", "for=6.6.6.6".parse().unwrap());
        h.insert("x-real-ip", "6.6.6.6".parse().unwrap());
        let peer: IpAddr = peer.parse().unwrap();
        let v = crate::forward::client_ip_value(peer);
        (resolve(&mut h, peer, &v, t), h)
    }

    #[test]
    fn untrusted_peers_get_their_own_address_only() {
        let (ip, h) = run("203.0.113.9", Some("6.6.6.6"), &trusted(&["10.0.0.0/8"]));
        assert_eq!(ip.to_string(), "203.0.113.9");
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-real-ip"], "203.0.113.9");
        assert!(!h.contains_key("forwarded"));
        let (ip, _) = run("10.0.0.1", Some("6.6.6.6"), &TrustedProxies::default());
        assert_eq!(ip.to_string(), "10.0.0.1");
    }

    #[test]
    fn trusted_chains_give_the_right_most_untrusted_hop() {
        let t = trusted(&["10.0.0.0/8", "192.168.0.0/16"]);
        let (ip, h) = run("10.0.0.1", Some("6.6.6.6, 198.51.100.7, 192.168.1.1"), &t);
        assert_eq!(
            ip.to_string(),
            "198.51.100.7",
            "the forged left hop is ignored"
        );
        assert_eq!(
            h["x-forwarded-for"],
            "6.6.6.6, 198.51.100.7, 192.168.1.1, 10.0.0.1"
        );
        assert_eq!(h["x-real-ip"], "198.51.100.7");
        assert!(h.contains_key("forwarded"), "kept from trusted proxies");
        let (ip, _) = run("10.0.0.1", Some("192.168.1.1"), &t);
        assert_eq!(ip.to_string(), "192.168.1.1", "all trusted: the left-most");
        let (ip, _) = run("10.0.0.1", Some("junk, 10.1.1.1"), &t);
        assert_eq!(ip.to_string(), "10.1.1.1", "garbage stops the walk");
        let (ip, h) = run("10.0.0.1", None, &t);
        assert_eq!(ip.to_string(), "10.0.0.1");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        let (ip, _) = run("::ffff:10.0.0.1", Some("[2001:db8::1]:443"), &t);
        assert_eq!(ip.to_string(), "2001:db8::1");
    }
}
