//! Outbound HTTP from filters (auth callouts, JWKS fetches and the like): the host side of
//! the `http-client` import. `http://` and `https://` (rustls, verification always on; see
//! [`client`]), only to allow-listed hosts, with `Host` always the URL's (a filter can't reach
//! another virtual host behind an allowed address). With `outbound-deny`, a connection is
//! only made to an address outside the denied ranges, however the name resolves. Each hook
//! call has a time budget that all its outbound requests share; answers are read up to the
//! filter's body limit.
//!
//! The call is async: while the request is on the network the guest's fiber is suspended
//! and the worker serves other requests. The wait is taken out of the call's CPU accounting
//! (`budget::pause` / `resume`), so the CPU those requests use is not charged to this call:
//! waiting counts only against the outbound time budget.

pub mod client;

pub use client::{parse_deny, Clients, DenyList, PRIVATE_RANGES};

use super::bindings::weir::filter::http_client;
use super::bindings::{IncomingResponse, OutgoingRequest};
use super::host::FilterState;
use crate::body::Body;
use client::OutboundClient;
use http_body_util::BodyExt as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A filter's outbound HTTP settings.
pub struct Outbound {
    /// Lower-case authorities the filter may reach: `host:port`, or `host` for the default
    /// port of either scheme (80 for `http://`, 443 for `https://`).
    pub allow_hosts: Vec<String>,
    /// Time all outbound requests of one hook call may take together.
    pub budget: Duration,
    /// Largest answer body.
    pub body_limit: usize,
    /// Its connections, and the ranges they never go to.
    pub clients: Clients,
}

impl Outbound {
    /// Check `url` against the allow-list: the URI, its `host:port`, and whether it is
    /// `https`.
    fn allowed(&self, url: &str) -> Result<(http::Uri, String, bool), String> {
        let bad = || format!("{url:?} is not an absolute http:// or https:// URL");
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        let (tls, default_port) = match uri.scheme_str() {
            Some("http") => (false, 80),
            Some("https") => (true, 443),
            _ => return Err(bad()),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(default_port);
        let key = format!("{host}:{port}");
        let listed = self.allow_hosts.contains(&key)
            || (port == default_port && self.allow_hosts.contains(&host));
        if !listed {
            return Err(format!("host {key} is not in this filter's allow-hosts"));
        }
        // An address in the URL is connected to as it is (no resolver sees it).
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            if self.clients.deny.denies(ip) {
                return Err(format!("{ip} is in this filter's outbound-deny"));
            }
        }
        Ok((uri, key, tls))
    }

    fn client(&self, tls: bool) -> Result<&OutboundClient, String> {
        match (tls, &self.clients.https) {
            (false, _) => Ok(&self.clients.http),
            (true, Ok(c)) => Ok(c),
            (true, Err(why)) => Err(why.clone()),
        }
    }
}

/// The request to send: the filter's method, headers and body, to `uri`, with `Host` set to
/// `key` (a `Host` of the filter's naming anything else is refused).
fn build(req: OutgoingRequest, uri: http::Uri, key: &str) -> Result<http::Request<Body>, String> {
    let method = http::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", req.method))?;
    let default_port = if uri.scheme_str() == Some("https") {
        ":443"
    } else {
        ":80"
    };
    let host = key.strip_suffix(default_port).unwrap_or(key);
    let mut out = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::HOST, host);
    for (name, value) in &req.headers {
        if name.eq_ignore_ascii_case("host") {
            let given = value.to_ascii_lowercase();
            if given != host && given != key {
                return Err(format!(
                    "Host {value:?} is not the URL's host {host:?}: outbound requests go to the allow-listed host only"
                ));
            }
            continue;
        }
        out = out.header(name.as_str(), value.as_str());
    }
    out.body(Body::full(req.body))
        .map_err(|e| format!("invalid request: {e}"))
}

/// `e` and its sources, e.g. "client error (Connect): localhost resolves to ::1 only, ...".
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        source = s.source();
    }
    text
}

async fn exchange(
    client: &OutboundClient,
    req: http::Request<Body>,
    body_limit: usize,
) -> Result<IncomingResponse, String> {
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("request failed: {}", chain(&e)))?;
    let (parts, body) = resp.into_parts();
    let body = http_body_util::Limited::new(body, body_limit)
        .collect()
        .await
        .map_err(|e| format!("cannot read the answer (limit {body_limit} bytes): {e}"))?
        .to_bytes();
    Ok(IncomingResponse {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    })
}

impl http_client::Host for FilterState {
    async fn send(
        &mut self,
        req: OutgoingRequest,
    ) -> wasmtime::Result<Result<IncomingResponse, String>> {
        let services = self.services.clone();
        let out = &services.outbound;
        let left = self.call.outbound_left;
        let checked = out.allowed(&req.url).and_then(|(uri, key, tls)| {
            if left.is_zero() {
                Err(format!(
                    "the outbound time budget of {:?} per call is spent",
                    out.budget
                ))
            } else {
                Ok((build(req, uri, &key)?, out.client(tls)?))
            }
        });
        let (request, client) = match checked {
            Ok(r) => r,
            Err(why) => {
                services.metrics.outbound(false);
                return Ok(Err(why));
            }
        };
        let started = Instant::now();
        super::budget::pause(&mut self.call);
        let result = tokio::time::timeout(left, exchange(client, request, out.body_limit)).await;
        super::budget::resume(&mut self.call);
        services
            .metrics
            .outbound(!matches!(&result, Ok(Err(why)) if why.contains("outbound-deny")));
        self.call.outbound_left = left.saturating_sub(started.elapsed());
        Ok(match result {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer within the outbound time budget of {:?}",
                out.budget
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(hosts: &[&str], deny: &str) -> Outbound {
        let deny = DenyList::new(if deny.is_empty() {
            Vec::new()
        } else {
            parse_deny(deny).unwrap()
        });
        Outbound {
            allow_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            budget: Duration::from_secs(1),
            body_limit: 1024,
            clients: Clients::new(deny, None).unwrap(),
        }
    }

    #[tokio::test]
    async fn only_allow_listed_hosts_pass_on_each_schemes_port() {
        let o = outbound(&["auth.local:80", "127.0.0.1:9000", "keys.example"], "");
        assert!(o.allowed("http://auth.local/check").is_ok());
        assert!(o.allowed("http://AUTH.local:80/x").is_ok());
        assert!(o.allowed("http://127.0.0.1:9000/").is_ok());
        assert!(o
            .allowed("http://127.0.0.1:9001/")
            .unwrap_err()
            .contains("127.0.0.1:9001 is not in this filter's allow-hosts"));
        // auth.local:80 does not allow https (port 443); a bare host allows both defaults.
        assert!(o.allowed("https://auth.local/").is_err());
        let (_, key, tls) = o.allowed("https://keys.example/jwks").unwrap();
        assert_eq!((key.as_str(), tls), ("keys.example:443", true));
        assert!(o.allowed("http://keys.example/").is_ok());
        assert!(o.allowed("https://keys.example:8443/").is_err());
        assert!(o.allowed("/relative").is_err());
        assert!(o.allowed("ftp://auth.local/").is_err());
    }

    fn request(headers: &[(&str, &str)]) -> OutgoingRequest {
        OutgoingRequest {
            method: "GET".into(),
            url: "http://auth.local/check".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn host_is_the_urls() {
        let uri: http::Uri = "http://auth.local/check".parse().unwrap();
        let built = build(request(&[]), uri.clone(), "auth.local:80").unwrap();
        assert_eq!(built.headers()["host"], "auth.local");
        assert!(build(
            request(&[("Host", "AUTH.local")]),
            uri.clone(),
            "auth.local:80"
        )
        .is_ok());
        let e = build(request(&[("host", "admin.internal")]), uri, "auth.local:80").unwrap_err();
        assert!(e.contains("is not the URL's host"), "{e}");
        let tls: http::Uri = "https://keys.example/jwks".parse().unwrap();
        let built = build(request(&[]), tls, "keys.example:443").unwrap();
        assert_eq!(built.headers()["host"], "keys.example");
    }

    #[tokio::test]
    async fn denied_addresses_in_urls_are_refused_before_connecting() {
        let o = outbound(
            &["127.0.0.1:9000", "[::ffff:10.1.2.3]:80", "localhost:9000"],
            "private",
        );
        for url in ["http://127.0.0.1:9000/", "http://[::ffff:10.1.2.3]/"] {
            let e = o.allowed(url).unwrap_err();
            assert!(e.contains("outbound-deny"), "{url}: {e}");
        }
        // A name is checked when it is resolved, at connect time (see `client`).
        assert!(o.allowed("http://localhost:9000/").is_ok());
        let e = exchange(
            o.client(false).unwrap(),
            http::Request::get("http://localhost:9000/")
                .body(Body::empty())
                .unwrap(),
            1024,
        )
        .await
        .unwrap_err();
        assert!(
            e.contains("localhost resolves to") && e.contains("outbound-deny"),
            "{e}"
        );
    }
}
