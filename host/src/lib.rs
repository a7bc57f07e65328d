//! # weir
//!
//! A reverse proxy whose request and response filters are sandboxed WebAssembly
//! components. The binary (`src/main.rs`) is a thin CLI over this library.
//!
//! Layout, one concept per module:
//! - [`config`]: the manifest, validated with located errors.
//! - [`listener`]: accepting connections, HTTP/1.1 + HTTP/2 serving; [`conn`]: a
//!   connection's graceful end (stop, idle timeout); [`send_timeout`]: clients that stop
//!   reading; [`proxy_protocol`]: the client named by a TCP load balancer.
//! - [`request`]: the canonical request (path, authority, headers, client address).
//! - [`proxy`]: the request path.
//! - [`route`]: choosing a route; [`geo`]: where a client address is (`.mmdb` databases). [`upstream`], [`balance`], [`health`]: where requests go.
//! - [`cache`]: the response cache (RFC 9111); [`compress`]: response compression.
//! - [`forward`]: the request as sent upstream (hop-by-hop, `X-Forwarded-Proto`/`-Host`).
//! - [`filter`]: the Wasm filter engine, instance pools and chains.
//! - [`live`]: the generation being served; [`reload`]: replacing it on change.
//! - [`store`]: where filters' shared state lives (node-local, or Redis across nodes).
//! - [`admin`]: the status endpoint; [`metrics`]: Prometheus metrics (`/metrics`); [`otlp`]:
//!   OpenTelemetry trace export.
//! - [`server`]: assembling and stopping the proxy; [`handover`]: binary upgrades without
//!   downtime (SIGUSR2). [`check`]: `weir check`.

pub mod access_log;
pub mod admin;
pub mod balance;
pub mod body;
pub mod builder;
pub mod cache;
pub mod check;
pub mod compress;
pub mod config;
pub mod conn;
pub mod dev;
pub mod error;
pub mod filter;
pub mod forward;
pub mod geo;
pub mod handover;
pub mod health;
pub mod hex;
pub mod json;
pub mod listener;
pub mod listeners;
pub mod live;
pub mod metrics;
pub mod otlp;
pub mod proxy;
pub mod proxy_protocol;
pub mod redirect;
pub mod reload;
pub mod request;
pub mod retry;
pub mod route;
pub mod scaffold;
pub mod send_timeout;
pub mod server;
pub mod store;
pub mod tls;
pub mod trim;
pub mod upgrade;
pub mod upstream;
