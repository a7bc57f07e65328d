//! `ip-filter`: allow and deny requests by the client's address (the trusted one: the TCP
//! peer, or the client a `trusted-proxies` peer names).
//!
//! ```toml
//! [filters.office-only]
//! plugin = "ip-filter.wasm"
//! [filters.office-only.config]
//! allow = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]   # CIDRs or addresses, IPv4 and IPv6
//! deny = ["10.6.6.0/24"]            # checked first: a denied address is refused even if allowed
//! status = 403                      # default 403
//! body = "forbidden\n"              # default "forbidden\n"
//! ```
//! With `allow` set, every address outside it is refused; with only `deny`, every address
//! outside it passes. Lists are merged into sorted ranges when the filter starts, so a check
//! is a binary search however many entries there are. IPv4-mapped IPv6 clients
//! (`::ffff:192.0.2.7`) are matched as the IPv4 address they are.

use serde::Deserialize;
use std::net::IpAddr;
use weir_sdk::{Action, Config, Filter, Hooks, LocalResponse, Request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default = "default_body")]
    body: String,
}

fn default_status() -> u16 {
    403
}

fn default_body() -> String {
    "forbidden\n".into()
}

/// Sorted, non-overlapping, non-adjacent inclusive ranges of IPv4 and IPv6 addresses.
#[derive(Debug, Default, PartialEq)]
pub struct Ranges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Ranges {
    /// The ranges of `entries` (CIDRs or single addresses); errors name the list and index.
    pub fn parse(list: &str, entries: &[String]) -> Result<Self, String> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match parse_cidr(entry).map_err(|why| format!("{list}[{i}]: {entry:?} {why}"))? {
                Cidr::V4(lo, hi) => v4.push((lo, hi)),
                // IPv4-mapped (::ffff:a.b.c.d/96+): matched as IPv4, as clients are.
                Cidr::V6(lo, hi) if lo >> 32 == 0xffff && hi >> 32 == 0xffff => {
                    v4.push((lo as u32, hi as u32))
                }
                Cidr::V6(lo, hi) => v6.push((lo, hi)),
            }
        }
        Ok(Ranges {
            v4: merge(v4),
            v6: merge(v6),
        })
    }

    /// Whether no address is in the ranges.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `ip` is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => within(&self.v4, u32::from(a)),
            IpAddr::V6(a) => within(&self.v6, u128::from(a)),
        }
    }
}

enum Cidr {
    V4(u32, u32),
    V6(u128, u128),
}

/// `a.b.c.d/n`, `x::y/n` or a single address, as an inclusive range. A prefix with bits set
/// past its length is refused: it is a typo more often than not.
fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (addr, len) = match text.trim().split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text.trim(), None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| "is not an IP address or CIDR".to_string())?;
    let (value, bits) = match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    let len: u32 = match len {
        None => bits,
        Some(l) => l
            .parse()
            .ok()
            .filter(|n| *n <= bits)
            .ok_or_else(|| format!("has a prefix length that is not 0..={bits}"))?,
    };
    let host = if len == bits {
        0
    } else {
        (u128::MAX >> (128 - bits)) >> len
    };
    let lo = value & !host;
    if lo != value {
        let network = match ip {
            IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(lo as u32)),
            IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(lo)),
        };
        return Err(format!(
            "has bits set past its /{len} prefix (the network is {network}/{len})"
        ));
    }
    let hi = lo | host;
    Ok(match ip {
        IpAddr::V4(_) => Cidr::V4(lo as u32, hi as u32),
        IpAddr::V6(_) => Cidr::V6(lo, hi),
    })
}

/// Sort and join overlapping or adjacent ranges.
fn merge<T: Copy + Ord + Adjacent>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1 || last.1.next() == Some(lo) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The address after this one, if any.
trait Adjacent: Sized {
    fn next(self) -> Option<Self>;
}

impl Adjacent for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Adjacent for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

fn within<T: Copy + Ord>(ranges: &[(T, T)], ip: T) -> bool {
    // The first range starting after `ip`; the one before it is the only candidate.
    let after = ranges.partition_point(|(lo, _)| *lo <= ip);
    after
        .checked_sub(1)
        .and_then(|i| ranges.get(i))
        .is_some_and(|(_, hi)| ip <= *hi)
}

/// The `ip-filter` filter.
pub struct IpFilter {
    allow: Ranges,
    deny: Ranges,
    refusal: LocalResponse,
}

impl IpFilter {
    /// Whether a client at `ip` may pass.
    pub fn admits(&self, ip: IpAddr) -> bool {
        !self.deny.contains(ip) && (self.allow.is_empty() || self.allow.contains(ip))
    }
}

impl Filter for IpFilter {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if !(400..=599).contains(&s.status) {
            return Err(format!("status: {} is not in 400..=599", s.status));
        }
        let allow = Ranges::parse("allow", &s.allow)?;
        let deny = Ranges::parse("deny", &s.deny)?;
        if s.allow.is_empty() && s.deny.is_empty() {
            return Err("no rules: set `allow`, `deny` or both".into());
        }
        Ok(IpFilter {
            allow,
            deny,
            refusal: LocalResponse::text(s.status, s.body),
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn on_request(&self, req: &mut Request) -> Action {
        // An address the host cannot give is refused, not let through.
        match req.client_addr().parse::<IpAddr>() {
            Ok(ip) if self.admits(ip) => Action::Continue,
            _ => Action::Respond(self.refusal.clone()),
        }
    }
}

weir_sdk::export_filter!(IpFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, MockRequest};

    fn filter(config: &str) -> IpFilter {
        testing::init(config).unwrap()
    }

    fn from(f: &IpFilter, ip: &str) -> Action {
        testing::on_request(f, &mut MockRequest::get("/").with_client_addr(ip))
    }

    #[test]
    fn allow_list_admits_only_its_ranges_and_deny_wins() {
        let f = filter(
            r#"{"allow": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"], "deny": ["10.6.6.0/24"]}"#,
        );
        for ok in [
            "10.0.0.0",
            "10.255.255.255",
            "10.6.5.255",
            "10.6.7.0",
            "192.0.2.7",
            "2001:db8::1",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:10.1.2.3",
        ] {
            testing::assert_continues(&from(&f, ok));
        }
        for refused in [
            "11.0.0.0",
            "9.255.255.255",
            "10.6.6.6",
            "192.0.2.8",
            "2001:db9::",
            "::1",
            "::ffff:10.6.6.1",
            "not-an-ip",
            "",
        ] {
            testing::assert_responds(&from(&f, refused), 403);
        }
    }

    #[test]
    fn deny_only_lets_everything_else_through() {
        let f = filter(r#"{"deny": ["0.0.0.0/0"], "status": 451, "body": "no\n"}"#);
        testing::assert_responds(&from(&f, "203.0.113.9"), 451);
        testing::assert_continues(&from(&f, "2001:db8::1"));
    }

    #[test]
    fn bad_lists_are_refused_with_the_entry() {
        let err = |config: &str| testing::init::<IpFilter>(config).err().unwrap();
        assert_eq!(
            err(r#"{"allow": ["10.0.0.0/8", "10.0.0.300"]}"#),
            "allow[1]: \"10.0.0.300\" is not an IP address or CIDR"
        );
        assert_eq!(
            err(r#"{"deny": ["10.0.0.0/33"]}"#),
            "deny[0]: \"10.0.0.0/33\" has a prefix length that is not 0..=32"
        );
        assert_eq!(
            err(r#"{"deny": ["10.1.2.3/8"]}"#),
            "deny[0]: \"10.1.2.3/8\" has bits set past its /8 prefix (the network is 10.0.0.0/8)"
        );
        assert_eq!(
            err(r#"{"deny": ["2001:db8::1/32"]}"#),
            "deny[0]: \"2001:db8::1/32\" has bits set past its /32 prefix (the network is 2001:db8::/32)"
        );
        assert_eq!(err("{}"), "no rules: set `allow`, `deny` or both");
        assert!(err(r#"{"deny": ["::1"], "status": 200}"#).contains("status"));
        assert!(err(r#"{"alow": []}"#).contains("alow"));
    }

    #[test]
    fn ranges_merge_and_a_lookup_finds_any_of_thousands() {
        let r = Ranges::parse(
            "allow",
            &[
                "10.0.0.0/9",
                "10.128.0.0/9",
                "10.0.0.5",
                "0.0.0.0/0",
                "::/0",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(r.v4, [(0, u32::MAX)]);
        assert_eq!(r.v6, [(0, u128::MAX)]);
        let mapped = Ranges::parse("deny", &["::ffff:192.0.2.0/120".to_string()]).unwrap();
        assert!(mapped.contains("192.0.2.9".parse().unwrap()));
        assert!(mapped.contains("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!mapped.contains("192.0.3.0".parse().unwrap()));
        // Every other /24 of 10.0.0.0/8: 32768 entries, none adjacent.
        let many: Vec<String> = (0..32768u32)
            .map(|i| format!("10.{}.{}.0/24", (i * 2) >> 8, (i * 2) & 255))
            .collect();
        let r = Ranges::parse("allow", &many).unwrap();
        assert_eq!(r.v4.len(), 32768);
        for (ip, inside) in [
            ("10.0.0.1", true),
            ("10.0.1.1", false),
            ("10.255.254.9", true),
            ("10.255.255.0", false),
            ("11.0.0.0", false),
        ] {
            assert_eq!(r.contains(ip.parse().unwrap()), inside, "{ip}");
        }
    }
}
