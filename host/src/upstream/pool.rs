//! Keep-alive connection pooling to upstreams, over hyper-util's pooled client.

use crate::body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// A pooled HTTP/1.1 client; connections are keyed by target and reused.
pub type UpstreamClient = Client<HttpConnector, Body>;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The protocol spoken to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (gRPC backends, for instance).
    H2c,
}

/// An HTTP/1.1 client whose TCP connects give up after `connect_timeout`.
pub fn client(connect_timeout: Duration) -> UpstreamClient {
    client_for(connect_timeout, Protocol::Http1)
}

/// A client speaking `protocol`, whose TCP connects give up after `connect_timeout`.
pub fn client_for(connect_timeout: Duration, protocol: Protocol) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    let mut builder = Client::builder(TokioExecutor::new());
    if protocol == Protocol::H2c {
        builder.http2_only(true);
    }
    builder
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(1024)
        .timer(TokioTimer::new())
        .build(connector)
}
