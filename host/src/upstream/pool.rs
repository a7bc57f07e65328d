//! Keep-alive connection pooling to upstreams, over hyper-util's pooled client, in cleartext
//! or TLS (hyper-rustls), HTTP/1.1 or HTTP/2.

use super::resolve::CachedResolver;
use super::tls::UpstreamTls;
use crate::body::Body;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A pooled client; connections are keyed by scheme and target and reused.
pub type UpstreamClient =
    Client<super::counted::Counted<HttpsConnector<HttpConnector<CachedResolver>>>, Body>;

/// How long an idle pooled connection is kept, by default.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The protocol spoken to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (gRPC backends, for instance).
    H2c,
    /// HTTP/2 only, over TLS (ALPN `h2`).
    H2,
    /// Over TLS: HTTP/2 or HTTP/1.1, as the upstream chooses by ALPN.
    Auto,
}

/// How the proxy talks to an upstream's targets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transport {
    /// HTTP version(s).
    pub protocol: Protocol,
    /// TLS, when the targets speak it.
    pub tls: Option<UpstreamTls>,
}

impl Transport {
    /// The scheme of upstream request URIs.
    pub fn scheme(&self) -> http::uri::Scheme {
        if self.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        }
    }
}

/// A cleartext HTTP/1.1 client whose TCP connects give up after `connect_timeout`.
pub fn client(connect_timeout: Duration) -> UpstreamClient {
    client_for(
        connect_timeout,
        POOL_IDLE_TIMEOUT,
        &Transport::default(),
        None,
    )
}

/// A client for `transport`, whose TCP connects give up after `connect_timeout` and whose
/// idle connections are closed after `idle`; its connections are counted in `counts`.
pub fn client_for(
    connect_timeout: Duration,
    idle: Duration,
    transport: &Transport,
    counts: Option<Arc<super::counted::ConnCounts>>,
) -> UpstreamClient {
    // Host names come from the re-resolved cache (see `resolve`).
    let connector = connector_with(CachedResolver, connect_timeout, transport);
    build(
        super::counted::Counted::new(connector, counts),
        idle,
        transport,
    )
}

/// A resolver of host names the connector can use.
pub trait Resolve:
    tower_service::Service<
        hyper_util::client::legacy::connect::dns::Name,
        Response: Iterator<Item = std::net::SocketAddr>,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Future: Send,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<R> Resolve for R where
    R: tower_service::Service<
            hyper_util::client::legacy::connect::dns::Name,
            Response: Iterator<Item = std::net::SocketAddr>,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
            Future: Send,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// [`client_for`] with host names resolved by `resolver`, uncounted.
pub fn client_with<R: Resolve>(
    resolver: R,
    connect_timeout: Duration,
    idle: Duration,
    transport: &Transport,
) -> Client<HttpsConnector<HttpConnector<R>>, Body> {
    build(
        connector_with(resolver, connect_timeout, transport),
        idle,
        transport,
    )
}

/// The connector for `transport` (TCP through `resolver`, then TLS if configured).
fn connector_with<R: Resolve>(
    resolver: R,
    connect_timeout: Duration,
    transport: &Transport,
) -> HttpsConnector<HttpConnector<R>> {
    let mut tcp = HttpConnector::new_with_resolver(resolver);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_keepalive(Some(Duration::from_secs(60)));
    tcp.enforce_http(false);
    match &transport.tls {
        // Cleartext: the TLS configuration is never used (URIs are http://).
        None => HttpsConnector::from((tcp, cleartext_config())),
        Some(tls) => {
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*tls.config).clone())
                .https_only();
            let builder = match &tls.server_name {
                Some(name) => {
                    builder.with_server_name_resolver(FixedServerNameResolver::new(name.clone()))
                }
                None => builder,
            };
            // The ALPN offer follows the protocol.
            match transport.protocol {
                Protocol::Http1 | Protocol::H2c => builder.enable_http1().wrap_connector(tcp),
                Protocol::H2 => builder.enable_http2().wrap_connector(tcp),
                Protocol::Auto => builder.enable_all_versions().wrap_connector(tcp),
            }
        }
    }
}

/// A pooled client over `connector`, idle connections closed after `idle`.
fn build<C>(connector: C, idle: Duration, transport: &Transport) -> Client<C, Body>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
{
    let mut builder = Client::builder(TokioExecutor::new());
    // With TLS, the ALPN list above decides; HTTP/2 is used when negotiated.
    if matches!(transport.protocol, Protocol::H2c | Protocol::H2) {
        builder.http2_only(true);
    }
    builder
        .pool_idle_timeout(idle)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(1024)
        .timer(TokioTimer::new())
        .build(connector)
}

/// The configuration a cleartext connector carries unused.
fn cleartext_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_protocol_versions(crate::tls::VERSIONS)
                .map(|b| {
                    b.with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            match config {
                Ok(c) => Arc::new(c),
                // The ring provider supports the default versions; this cannot fail.
                Err(e) => unreachable!("ring supports TLS 1.2/1.3: {e}"),
            }
        })
        .clone()
}
