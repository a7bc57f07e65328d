//! Outbound HTTP from filters (auth callouts and the like): the host side of the
//! `http-client` import. Only allow-listed hosts; each hook call has a time budget that all
//! its outbound requests share; answers are read up to the filter's body limit.
//!
//! The call is async: while the request is on the network the guest's fiber is suspended
//! and the worker serves other requests. Waiting costs no CPU, so it does not count
//! against the CPU deadline (see `budget`), only against the outbound time budget.

use super::bindings::weir::filter::http_client;
use super::bindings::{IncomingResponse, OutgoingRequest};
use super::host::FilterState;
use crate::body::Body;
use crate::upstream::pool::UpstreamClient;
use http_body_util::BodyExt as _;
use std::time::{Duration, Instant};

/// A filter's outbound HTTP settings.
pub struct Outbound {
    /// Lower-case `host:port` authorities the filter may reach.
    pub allow_hosts: Vec<String>,
    /// Time all outbound requests of one hook call may take together.
    pub budget: Duration,
    /// Largest answer body.
    pub body_limit: usize,
    /// The engine's shared client.
    pub client: UpstreamClient,
}

impl Outbound {
    /// Check `url` against the allow-list; the URI to send to on success.
    fn allowed(&self, url: &str) -> Result<http::Uri, String> {
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
        Ok(uri)
    }
}

fn build(req: OutgoingRequest, uri: http::Uri) -> Result<http::Request<Body>, String> {
    let method = http::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", req.method))?;
    let mut out = http::Request::builder().method(method).uri(uri);
    for (name, value) in &req.headers {
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
        let checked = out.allowed(&req.url).and_then(|uri| {
            if left.is_zero() {
                Err(format!(
                    "the outbound time budget of {:?} per call is spent",
                    out.budget
                ))
            } else {
                build(req, uri)
            }
        });
        let request = match checked {
            Ok(r) => r,
            Err(why) => {
                services.metrics.outbound(false);
                return Ok(Err(why));
            }
        };
        services.metrics.outbound(true);
        let started = Instant::now();
        let result =
            tokio::time::timeout(left, exchange(&out.client, request, out.body_limit)).await;
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
}
