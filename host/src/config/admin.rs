//! Validating the operator-facing endpoints: the admin endpoint (its address, loopback unless
//! a token guards it, and its bearer token) and the OTLP trace collector.

use super::manifest::{Manifest, OtlpSpec};
use super::Validator;
use std::net::SocketAddr;
use std::time::Duration;

/// Shortest admin token accepted.
const MIN_TOKEN: usize = 16;

impl Validator {
    /// `otlp`: an `http://` endpoint with a host.
    pub(super) fn otlp(
        &mut self,
        spec: &toml::Spanned<OtlpSpec>,
    ) -> Option<crate::otlp::OtlpSettings> {
        let o = spec.get_ref();
        let text = o.endpoint.get_ref();
        let endpoint = match text.parse::<http::Uri>() {
            Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => u,
            Ok(u) if u.scheme_str() == Some("https") => {
                self.error(
                    o.endpoint.span(),
                    "otlp.endpoint: https is not supported: send to a local collector over http",
                );
                return None;
            }
            _ => {
                self.error(
                    o.endpoint.span(),
                    format!("otlp.endpoint: {text:?} is not an http:// URL (e.g. \"http://127.0.0.1:4318/v1/traces\")"),
                );
                return None;
            }
        };
        Some(crate::otlp::OtlpSettings {
            endpoint,
            service_name: o.service_name.clone().unwrap_or_else(|| "weir".into()),
            flush_interval: o.flush_interval.map_or(Duration::from_secs(1), |d| d.0),
        })
    }

    pub(super) fn admin(&mut self, m: &Manifest) -> (Option<SocketAddr>, Option<String>) {
        let token = m.admin_token.as_ref().and_then(|t| {
            let text = t.get_ref();
            if text.len() < MIN_TOKEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
                self.error(
                    t.span(),
                    format!("admin-token: must be at least {MIN_TOKEN} printable characters without spaces"),
                );
                return None;
            }
            Some(text.clone())
        });
        let addr = m.admin.as_ref().and_then(|a| match a.get_ref().parse::<SocketAddr>() {
            Ok(addr) if !addr.ip().is_loopback() && m.admin_token.is_none() => {
                self.error(
                    a.span(),
                    format!("admin: {addr} is not a loopback address: set admin-token to expose the admin endpoint beyond this machine"),
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    a.span(),
                    format!(
                        "admin: {:?} is not an ip:port address (e.g. \"127.0.0.1:9901\")",
                        a.get_ref()
                    ),
                );
                None
            }
        });
        (addr, token)
    }
}
