//! Validating `[[listeners]]` and the client limits: addresses, connection limits, redirects.

use super::*;

impl Validator {
    pub(super) fn limits(&mut self, m: &Manifest) -> ClientLimits {
        let size = |v: &mut Self, text: &Option<toml::Spanned<String>>, key: &str| {
            text.as_ref().and_then(|t| match parse_size(t.get_ref()) {
                Ok(n) => Some((n, t.span())),
                Err(why) => {
                    v.error(t.span(), format!("{key}: {why}"));
                    None
                }
            })
        };
        let max_header_size = match size(self, &m.max_header_size, "max-header-size") {
            None => 64 << 10,
            Some((n, _)) if (8192..=(1 << 20)).contains(&n) => n,
            Some((_, span)) => {
                self.error(span, "max-header-size: must be between 8KiB and 1MiB");
                64 << 10
            }
        };
        let max_headers = m
            .max_headers
            .as_ref()
            .and_then(|n| self.in_range(n, "max-headers", 1..=10_000))
            .map_or(100, |n| n as usize);
        ClientLimits {
            max_header_size,
            max_headers,
            header_read_timeout: m
                .header_read_timeout
                .map_or(Duration::from_secs(30), |d| d.0),
            max_body_size: size(self, &m.max_body_size, "max-body-size").map(|(n, _)| n as u64),
            http2_max_concurrent_streams: m
                .http2_max_concurrent_streams
                .as_ref()
                .and_then(|n| self.in_range(n, "http2-max-concurrent-streams", 1..=10_000))
                .map_or(100, |n| n as u32),
            body_read_timeout: m
                .body_read_timeout
                .map_or(DEFAULT_BODY_READ_TIMEOUT, |d| d.0),
            send_timeout: m.send_timeout.map_or(DEFAULT_SEND_TIMEOUT, |d| d.0),
            client_idle_timeout: m
                .client_idle_timeout
                .map_or(DEFAULT_CLIENT_IDLE_TIMEOUT, |d| d.0),
        }
    }

    pub(super) fn listeners(&mut self, m: &Manifest, base: &Path) -> Vec<ListenerConfig> {
        if m.listeners.is_empty() {
            self.errors.push(self.map.at(
                None,
                "no listeners: add a [[listeners]] table with an `address`",
            ));
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for l in &m.listeners {
            let a = &l.get_ref().address;
            let max_connections = l
                .get_ref()
                .max_connections
                .as_ref()
                .and_then(|n| self.positive(n, "listeners.max-connections"))
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            match a.get_ref().parse::<SocketAddr>() {
                // Port 0 asks for any free port: several such listeners do not collide.
                Ok(addr) if addr.port() != 0 && !seen.insert(addr) => {
                    self.error(a.span(), format!("listeners.address: {addr} is listed twice"))
                }
                Ok(address) => {
                    let tls = l
                        .get_ref()
                        .tls
                        .as_ref()
                        .map(|t| self.listener_tls(t, base));
                    let redirect_https = self.redirect_https(l.get_ref(), tls.is_some());
                    let trusted_proxies = self.trusted_proxies(l.get_ref());
                    out.push(ListenerConfig {
                        address,
                        max_connections,
                        tls,
                        redirect_https,
                        trusted_proxies,
                        proxy_protocol: l.get_ref().proxy_protocol.unwrap_or(false),
                        location: self.map.at(Some(a.span()), String::new()),
                    })
                }
                Err(_) => self.error(
                    a.span(),
                    format!(
                        "listeners.address: {:?} is not an ip:port address (e.g. \"127.0.0.1:8080\")",
                        a.get_ref()
                    ),
                ),
            }
        }
        out
    }

    pub(super) fn redirect_https(&mut self, l: &manifest::ListenerSpec, tls: bool) -> Option<u16> {
        let port = l
            .https_port
            .as_ref()
            .and_then(|p| self.in_range(p, "listeners.https-port", 1..=65535))
            .map_or(443, |p| p as u16);
        match &l.redirect_https {
            Some(r) if *r.get_ref() && tls => {
                self.error(
                    r.span(),
                    "listeners.redirect-https: this listener terminates TLS already; redirect from a plaintext listener",
                );
                None
            }
            Some(r) if *r.get_ref() => Some(port),
            _ => {
                if let Some(p) = &l.https_port {
                    self.error(
                        p.span(),
                        "listeners.https-port: only used with redirect-https = true",
                    );
                }
                None
            }
        }
    }
}
