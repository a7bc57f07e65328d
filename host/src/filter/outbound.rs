//! Outbound HTTP from filters (auth callouts and the like): the host side of the
//! `http-client` import. Only allow-listed hosts, with `Host` always the URL's (a filter
//! can't reach another virtual host behind an allowed address); with `outbound-deny` the
//! host is resolved here and only an address outside the denied ranges is connected to (so
//! DNS can't point an allowed name at an internal service). Each hook call has a time
//! budget that all its outbound requests share; answers are read up to the filter's body
//! limit.
//!
//! The call is async: while the request is on the network the guest's fiber is suspended
//! and the worker serves other requests. The wait is taken out of the call's CPU accounting
//! (`budget::pause` / `resume`), so the CPU those requests use is not charged to this call:
//! waiting counts only against the outbound time budget.

use super::bindings::weir::filter::http_client;
use super::bindings::{IncomingResponse, OutgoingRequest};
use super::host::FilterState;
use crate::body::Body;
use crate::upstream::pool::UpstreamClient;
use http_body_util::BodyExt as _;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

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

/// A filter's outbound HTTP settings.
pub struct Outbound {
    /// Lower-case `host:port` authorities the filter may reach.
    pub allow_hosts: Vec<String>,
    /// Ranges never connected to, whatever an allowed host resolves to.
    pub deny: Vec<IpNet>,
    /// Time all outbound requests of one hook call may take together.
    pub budget: Duration,
    /// Largest answer body.
    pub body_limit: usize,
    /// The engine's shared client.
    pub client: UpstreamClient,
}

impl Outbound {
    /// Check `url` against the allow-list; the URI to send to and its `host:port` on
    /// success.
    fn allowed(&self, url: &str) -> Result<(http::Uri, String), String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| format!("{url:?} is not an absolute http:// URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{url:?}: https callouts are not supported yet (use http:// to a local sidecar)"
                ))
            }
            _ => return Err(format!("{url:?} is not an absolute http:// URL")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        let key = format!(
            "{}:{}",
            authority.host().to_ascii_lowercase(),
            authority.port_u16().unwrap_or(80)
        );
        if !self.allow_hosts.contains(&key) {
            return Err(format!("host {key} is not in this filter's allow-hosts"));
        }
        Ok((uri, key))
    }

    /// With a deny list: resolve `uri`'s host and point the URI at the first address outside
    /// the denied ranges (`Host` stays the name). Without one, `uri` as it is.
    async fn pin_address(&self, uri: http::Uri) -> Result<http::Uri, String> {
        if self.deny.is_empty() {
            return Ok(uri);
        }
        let authority = uri.authority().ok_or("the URL has no host")?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect(),
        };
        let Some(addr) = addrs.iter().find(|a| !self.denied(a.ip())) else {
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            return Err(format!(
                "{host} resolves to {} only, in this filter's outbound-deny",
                shown.join(", ")
            ));
        };
        let mut parts = uri.into_parts();
        parts.authority = Some(
            addr.to_string()
                .parse()
                .map_err(|e| format!("address {addr}: {e}"))?,
        );
        http::Uri::from_parts(parts).map_err(|e| format!("address {addr}: {e}"))
    }

    fn denied(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.deny.iter().any(|net| net.contains(&ip))
    }
}

/// The request to send: the filter's method, headers and body, to `uri`, with `Host` set to
/// `key` (a `Host` of the filter's naming anything else is refused).
fn build(req: OutgoingRequest, uri: http::Uri, key: &str) -> Result<http::Request<Body>, String> {
    let method = http::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", req.method))?;
    let host = key.strip_suffix(":80").unwrap_or(key);
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

async fn exchange(
    client: &UpstreamClient,
    req: http::Request<Body>,
    body_limit: usize,
) -> Result<IncomingResponse, String> {
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
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
        let checked = out.allowed(&req.url).and_then(|(uri, key)| {
            if left.is_zero() {
                Err(format!(
                    "the outbound time budget of {:?} per call is spent",
                    out.budget
                ))
            } else {
                build(req, uri, &key)
            }
        });
        let request = match checked {
            Ok(r) => r,
            Err(why) => {
                services.metrics.outbound(false);
                return Ok(Err(why));
            }
        };
        let started = Instant::now();
        super::budget::pause(&mut self.call);
        let result = tokio::time::timeout(left, async {
            let (mut parts, body) = request.into_parts();
            parts.uri = out.pin_address(parts.uri).await?;
            let request = http::Request::from_parts(parts, body);
            exchange(&out.client, request, out.body_limit).await
        })
        .await;
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

    fn outbound(hosts: &[&str]) -> Outbound {
        Outbound {
            allow_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            deny: Vec::new(),
            budget: Duration::from_secs(1),
            body_limit: 1024,
            client: crate::upstream::pool::client(Duration::from_secs(1)),
        }
    }

    #[tokio::test]
    async fn only_allow_listed_http_hosts_pass() {
        let o = outbound(&["auth.local:80", "127.0.0.1:9000"]);
        assert!(o.allowed("http://auth.local/check").is_ok());
        assert!(o.allowed("http://AUTH.local:80/x").is_ok());
        assert!(o.allowed("http://127.0.0.1:9000/").is_ok());
        assert!(o
            .allowed("http://127.0.0.1:9001/")
            .unwrap_err()
            .contains("127.0.0.1:9001 is not in this filter's allow-hosts"));
        assert!(o
            .allowed("https://auth.local/")
            .unwrap_err()
            .contains("https"));
        assert!(o.allowed("/relative").is_err());
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
    }

    #[tokio::test]
    async fn denied_ranges_are_never_connected_to() {
        let mut o = outbound(&["localhost:9000", "127.0.0.1:9000", "[::ffff:10.1.2.3]:80"]);
        o.deny = parse_deny("private").unwrap();
        for url in [
            "http://localhost:9000/",
            "http://127.0.0.1:9000/",
            "http://[::ffff:10.1.2.3]/",
        ] {
            let e = o.pin_address(url.parse().unwrap()).await.unwrap_err();
            assert!(e.contains("outbound-deny"), "{url}: {e}");
        }
        o.deny = parse_deny("10.0.0.0/8").unwrap();
        let pinned = o
            .pin_address("http://localhost:9000/x?y".parse().unwrap())
            .await
            .unwrap();
        assert!(
            ["http://127.0.0.1:9000/x?y", "http://[::1]:9000/x?y"]
                .contains(&pinned.to_string().as_str()),
            "{pinned}"
        );
        assert!(parse_deny("private!").is_err());
        assert_eq!(
            parse_deny("192.168.1.7/16").unwrap()[0].to_string(),
            "192.168.0.0/16"
        );
    }
}
