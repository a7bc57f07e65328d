//! The connections of one filter's outbound calls: a cleartext and a TLS client (rustls,
//! verification always on, the system's CAs or the filter's `outbound-ca`), both resolving
//! host names through the filter's `outbound-deny` list, so that a connection is only ever
//! made to an address the list allows (DNS cannot point an allowed name inside it, and there
//! is no gap between checking an address and connecting to it).

use crate::body::Body;
use crate::upstream::pool::{client_with, Transport};
use crate::upstream::tls::{TlsSpec, UpstreamTls};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use ipnet::IpNet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Connect timeout of outbound calls (the per-call budget bounds the rest).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle pooled outbound connections are closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What `outbound-deny = ["private"]` stands for: loopback, private, shared (CGNAT),
/// link-local (cloud metadata), benchmarking, multicast, reserved and unspecified ranges.
pub const PRIVATE_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Parse one `outbound-deny` entry: a CIDR, an address, or `"private"`.
pub fn parse_deny(text: &str) -> Result<Vec<IpNet>, &'static str> {
    if text == "private" {
        return Ok(PRIVATE_RANGES
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect());
    }
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(vec![net.trunc()]);
    }
    text.parse::<IpAddr>()
        .map(|ip| vec![IpNet::from(ip)])
        .map_err(|_| "is not a CIDR (\"10.0.0.0/8\"), an address or \"private\"")
}

/// Ranges a filter never connects to.
#[derive(Debug, Clone, Default)]
pub struct DenyList(Arc<Vec<IpNet>>);

impl DenyList {
    /// The list of `nets`.
    pub fn new(nets: Vec<IpNet>) -> Self {
        DenyList(Arc::new(nets))
    }

    /// Whether `ip` (IPv4-mapped IPv6 as the IPv4 address it is) is in a denied range.
    pub fn denies(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The connectors' resolver for one filter: the shared DNS cache or a lookup, then only the
/// addresses outside the filter's denied ranges (none left: the connection fails, naming
/// what the name resolved to).
#[derive(Debug, Clone)]
pub struct DenyingResolver(DenyList);

impl tower_service::Service<Name> for DenyingResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let deny = self.0.clone();
        let mut inner = crate::upstream::resolve::CachedResolver;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = inner.call(name).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !deny.denies(a.ip()))
                .collect();
            if allowed.is_empty() {
                let shown: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
                return Err(std::io::Error::other(format!(
                    "{host} resolves to {} only, in this filter's outbound-deny",
                    shown.join(", ")
                )));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// A filter's outbound client.
pub type OutboundClient = Client<HttpsConnector<HttpConnector<DenyingResolver>>, Body>;

/// The clients of one filter: built when it loads, pooled across its calls.
pub struct Clients {
    /// For `http://` URLs.
    pub http: OutboundClient,
    /// For `https://` URLs, or why there is none (no CA certificates to trust).
    pub https: Result<OutboundClient, String>,
    /// The denied ranges (also checked for addresses written in URLs, which are not resolved).
    pub deny: DenyList,
}

impl Clients {
    /// For a filter without `allow-hosts`: every call is refused before it would connect.
    pub fn none() -> Self {
        let resolver = DenyingResolver(DenyList::default());
        Clients {
            http: client_with(
                resolver,
                CONNECT_TIMEOUT,
                IDLE_TIMEOUT,
                &Transport::default(),
            ),
            https: Err("this filter has no allow-hosts".into()),
            deny: DenyList::default(),
        }
    }

    /// Clients for a filter denying `deny` and trusting `ca` (a PEM bundle) or, without one,
    /// the system's CAs. A CA bundle that cannot be loaded is an error; missing system CAs
    /// only fail `https://` calls.
    pub fn new(deny: DenyList, ca: Option<PathBuf>) -> Result<Self, String> {
        let resolver = DenyingResolver(deny.clone());
        let http = client_with(
            resolver.clone(),
            CONNECT_TIMEOUT,
            IDLE_TIMEOUT,
            &Transport::default(),
        );
        let spec = TlsSpec {
            ca: ca.clone(),
            server_name: None,
            client_cert: None,
            verify: true,
        };
        let https = match UpstreamTls::load(&spec) {
            Ok(tls) => {
                let transport = Transport {
                    tls: Some(tls),
                    ..Transport::default()
                };
                Ok(client_with(
                    resolver,
                    CONNECT_TIMEOUT,
                    IDLE_TIMEOUT,
                    &transport,
                ))
            }
            Err(e) if ca.is_some() => return Err(format!("outbound-ca: {e}")),
            Err(e) => Err(format!("https is unavailable: {e}")),
        };
        Ok(Clients { http, https, deny })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service as _;

    #[tokio::test]
    async fn the_resolver_never_yields_a_denied_address() {
        let mut r = DenyingResolver(DenyList::new(parse_deny("private").unwrap()));
        let e = r.call("localhost".parse().unwrap()).await.unwrap_err();
        assert!(e.to_string().contains("localhost resolves to"), "{e}");
        assert!(e.to_string().contains("outbound-deny"), "{e}");
        let mut r = DenyingResolver(DenyList::new(parse_deny("10.0.0.0/8").unwrap()));
        let got: Vec<SocketAddr> = r
            .call("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(
            !got.is_empty() && got.iter().all(|a| a.ip().is_loopback()),
            "{got:?}"
        );
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(DenyList::new(parse_deny("10.0.0.0/8").unwrap()).denies(mapped));
        assert!(parse_deny("private!").is_err());
        let missing = Clients::new(DenyList::default(), Some("/nonexistent/ca.pem".into()));
        assert!(missing.err().unwrap().starts_with("outbound-ca: "));
        assert_eq!(
            parse_deny("192.168.1.7/16").unwrap()[0].to_string(),
            "192.168.0.0/16"
        );
    }
}
