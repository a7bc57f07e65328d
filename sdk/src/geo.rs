//! Where client addresses are: country, continent and autonomous system, from the
//! MaxMind-format databases the proxy's manifest names (`geo-databases`).
//!
//! ```
//! use weir_sdk::geo::{self, Location};
//! use weir_sdk::testing;
//! testing::reset_geo();
//! testing::locate("81.2.69.0/24", Location::country("GB", "EU"));
//! let at = geo::lookup("81.2.69.142").unwrap();
//! assert_eq!(at.country.as_deref(), Some("GB"));
//! assert_eq!(geo::lookup("192.0.2.1"), None);
//! ```
//!
//! Natively, lookups are answered by the networks given to [`crate::testing::locate`].

use std::net::IpAddr;

/// What the databases know about an address; any field may be unknown.
///
/// ```
/// let l = weir_sdk::geo::Location::country("DE", "EU").with_asn(3320, "Deutsche Telekom AG");
/// assert_eq!(l.asn, Some(3320));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code, upper-case.
    pub country: Option<String>,
    /// Continent code, upper-case: AF, AN, AS, EU, NA, OC or SA.
    pub continent: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
}

impl Location {
    /// A location in `country` on `continent`.
    ///
    /// ```
    /// let l = weir_sdk::geo::Location::country("JP", "AS");
    /// assert_eq!(l.continent.as_deref(), Some("AS"));
    /// ```
    pub fn country(country: &str, continent: &str) -> Self {
        Location {
            country: Some(country.to_ascii_uppercase()),
            continent: Some(continent.to_ascii_uppercase()),
            ..Location::default()
        }
    }

    /// The same, in autonomous system `asn` run by `org`.
    ///
    /// ```
    /// let l = weir_sdk::geo::Location::default().with_asn(64500, "Example Net");
    /// assert_eq!(l.as_org.as_deref(), Some("Example Net"));
    /// ```
    pub fn with_asn(mut self, asn: u32, org: &str) -> Self {
        self.asn = Some(asn);
        self.as_org = Some(org.to_string());
        self
    }
}

/// Where `addr` (an IPv4 or IPv6 address as text, e.g. [`crate::Request::client_addr`]) is:
/// `None` when it is not an address, the proxy has no geo database or none knows it.
///
/// ```
/// weir_sdk::testing::reset_geo();
/// assert_eq!(weir_sdk::geo::lookup("not an address"), None);
/// ```
pub fn lookup(addr: &str) -> Option<Location> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::weir::filter::geo::lookup(addr).map(|l| Location {
            country: l.country,
            continent: l.continent,
            asn: l.asn,
            as_org: l.as_org,
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let ip: IpAddr = addr.trim().parse().ok()?;
        double::lookup(ip)
    }
}

/// The networks a native test placed, most specific first.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) mod double {
    use super::{IpAddr, Location};
    use std::cell::RefCell;

    thread_local! {
        static NETWORKS: RefCell<Vec<(u128, u32, bool, Location)>> = const { RefCell::new(Vec::new()) };
    }

    /// The address as 128 bits, an IPv4 one in the top 32 (so a prefix length masks the
    /// top bits either way), and whether it is IPv4.
    fn bits(ip: IpAddr) -> (u128, bool) {
        match ip.to_canonical() {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, true),
            IpAddr::V6(v6) => (u128::from(v6), false),
        }
    }

    fn mask(len: u32) -> u128 {
        if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        }
    }

    pub fn place(cidr: &str, at: super::Location) {
        let (addr, len) = cidr.split_once('/').unwrap_or((cidr, ""));
        let ip: IpAddr = match addr.trim().parse() {
            Ok(ip) => ip,
            Err(_) => panic!("testing::locate: {cidr:?} is not an address or CIDR"),
        };
        let (b, v4) = bits(ip);
        let max = if v4 { 32 } else { 128 };
        let len = match len {
            "" => max,
            n => match n.parse::<u32>() {
                Ok(n) if n <= max => n,
                _ => panic!("testing::locate: {cidr:?} has a bad prefix length"),
            },
        };
        NETWORKS.with(|n| {
            let mut n = n.borrow_mut();
            n.push((b & mask(len), len, v4, at));
            n.sort_by_key(|e| std::cmp::Reverse(e.1));
        });
    }

    pub fn reset() {
        NETWORKS.with(|n| n.borrow_mut().clear());
    }

    pub fn lookup(ip: IpAddr) -> Option<Location> {
        let (b, v4) = bits(ip);
        NETWORKS.with(|n| {
            n.borrow()
                .iter()
                .find(|(net, len, is_v4, _)| *is_v4 == v4 && b & mask(*len) == *net)
                .map(|e| e.3.clone())
        })
    }
}
