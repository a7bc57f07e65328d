//! Validating the request rules: path and header handling, trusted proxies per listener,
//! upgrade protocols and paths per route.

use super::manifest::{ListenerSpec, Manifest, RouteSpec};
use super::Validator;
use crate::request::client::TrustedProxies;
use crate::request::path::{self, EscapedSlashes};
use crate::request::Rules;
use toml::Spanned;

/// Upgrade protocols a route passes on unless it says otherwise.
pub const DEFAULT_UPGRADES: &[&str] = &["websocket"];

impl Validator {
    pub(super) fn request_rules(&mut self, m: &Manifest) -> Rules {
        let escaped_slashes = self.one_of(
            m.escaped_slashes.as_ref(),
            "escaped-slashes",
            ("reject", EscapedSlashes::Reject),
            &[("keep", EscapedSlashes::Keep)],
        );
        Rules {
            escaped_slashes,
            underscores_in_headers: m.underscores_in_headers.unwrap_or(false),
        }
    }

    pub(super) fn trusted_proxies(&mut self, l: &ListenerSpec) -> TrustedProxies {
        let mut nets = Vec::new();
        for t in &l.trusted_proxies {
            let text = t.get_ref().trim();
            let parsed = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => nets.push(net.trunc()),
                Err(_) => self.error(
                    t.span(),
                    format!(
                        "listeners.trusted-proxies: {:?} is not an address or CIDR (e.g. \"10.0.0.0/8\")",
                        t.get_ref()
                    ),
                ),
            }
        }
        TrustedProxies::new(nets)
    }

    pub(super) fn route_upgrades(&mut self, i: usize, r: &RouteSpec) -> Vec<String> {
        let Some(list) = &r.upgrades else {
            return DEFAULT_UPGRADES.iter().map(|s| (*s).to_owned()).collect();
        };
        let mut out = Vec::new();
        for p in list.get_ref() {
            let name = p.get_ref().trim().to_ascii_lowercase();
            if name == "h2c" {
                self.error(
                    p.span(),
                    format!("routes[{i}].upgrades: h2c upgrades are never passed on (they would tunnel past the filters)"),
                );
            } else if name.is_empty()
                || http::HeaderValue::from_str(&name).is_err()
                || name.contains(',')
            {
                self.error(
                    p.span(),
                    format!(
                        "routes[{i}].upgrades: {:?} is not a protocol name",
                        p.get_ref()
                    ),
                );
            } else {
                out.push(name);
            }
        }
        out
    }

    /// Requests are matched after normalisation, so a route path must be normal to match.
    pub(super) fn normal_route_path(&mut self, i: usize, key: &str, p: &Spanned<String>) {
        match path::normalize(p.get_ref(), EscapedSlashes::Keep) {
            Ok(None) => {}
            Ok(Some(normal)) => self.error(
                p.span(),
                format!(
                    "routes[{i}].{key}: {:?} never matches: request paths are normalised first (write {normal:?})",
                    p.get_ref()
                ),
            ),
            Err(e) => self.error(
                p.span(),
                format!("routes[{i}].{key}: {:?} never matches: {e}", p.get_ref()),
            ),
        }
    }
}
