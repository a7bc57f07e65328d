//! Validating the admin endpoint's settings: its address (loopback unless a token guards it)
//! and its bearer token.

use super::manifest::Manifest;
use super::Validator;
use std::net::SocketAddr;

/// Shortest admin token accepted.
const MIN_TOKEN: usize = 16;

impl Validator {
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
