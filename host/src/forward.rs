//! Rewriting messages as they cross the proxy: hop-by-hop headers removed (again: filters
//! may have added some), `X-Forwarded-Proto` and `X-Forwarded-Host` set, the canonical `Host`
//! passed on. `X-Forwarded-For` was settled on arrival ([`crate::request::client`]).

use crate::body::Body;
use crate::filter::RequestHead;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version};

/// `X-Forwarded-For`
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

static HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

/// Headers that a `Connection` header may not remove: they carry the message's identity and
/// framing, which the proxy itself reads.
fn protected(name: &HeaderName) -> bool {
    name == header::HOST || name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING
}

/// Whether `name` is a hop-by-hop header (one of those always removed).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    // One string match (by length, then bytes) rather than ten name comparisons: this runs
    // for every header of every request and response.
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "http2-settings"
    )
}

/// Remove hop-by-hop headers, including those the `Connection` header names (but never the
/// host or the framing). One pass over the names finds the usual case, none, cheaply.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
            .filter(|n| !protected(n))
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether a comma-separated header (`Connection`, `TE`...) lists `token` (any case).
pub fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The client's IP as a header value, made once per connection.
pub fn client_ip_value(client: std::net::IpAddr) -> HeaderValue {
    HeaderValue::try_from(client.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Build the request to send to `target` from the (canonical, filtered) head and the
/// client's body.
pub fn upstream_request(
    head: RequestHead,
    target: &Authority,
    scheme: Scheme,
    body: Body,
) -> Result<Request<Body>, http::Error> {
    // The canonical Host (or a filter's replacement) goes on as it is.
    let host = head.parts.headers.get(header::HOST).cloned();
    let mut parts = head.parts;
    let headers = &mut parts.headers;
    // `TE: trailers` is the one hop-by-hop value that must go on (gRPC needs it).
    let te_trailers = has_token(headers, &header::TE, "trailers");
    strip_hop_by_hop(headers);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }

    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(head.scheme),
    );
    match host {
        Some(value) => {
            headers.insert(X_FORWARDED_HOST.clone(), value);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }

    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::builder()
        .scheme(scheme)
        .authority(target.clone())
        .path_and_query(path_and_query)
        .build()?;
    parts.version = Version::HTTP_11;
    Ok(Request::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn the_hop_by_hop_match_and_list_agree() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
        }
        let matched = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "http2-settings",
        ];
        assert_eq!(matched.len(), HOP_BY_HOP.len());
        for other in ["host", "content-length", "x-te", "cookie", "connectio"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(other)), "{other}");
        }
    }

    fn head(req: Request<()>) -> RequestHead {
        RequestHead::new(
            req.into_parts().0,
            "10.0.0.9".parse::<IpAddr>().unwrap(),
            "http",
        )
    }

    #[test]
    fn strips_hop_by_hop_and_connection_listed_headers() {
        let req = Request::get("/a?b=1")
            .header("host", "example.com")
            .header("connection", "keep-alive, x-secret")
            .header("keep-alive", "timeout=5")
            .header("x-secret", "1")
            .header("te", "gzip")
            .header("upgrade", "websocket")
            .header("http2-settings", "AAMAAABkAAQAAP__")
            .header("x-forwarded-host", "forged")
            .header("x-kept", "yes")
            .body(())
            .unwrap();
        let target: Authority = "127.0.0.1:9000".parse().unwrap();
        let out = upstream_request(head(req), &target, Scheme::HTTP, Body::empty()).unwrap();
        let h = out.headers();
        for gone in [
            "connection",
            "keep-alive",
            "x-secret",
            "te",
            "upgrade",
            "http2-settings",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h["x-kept"], "yes");
        assert_eq!(h["host"], "example.com");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(out.uri(), "http://127.0.0.1:9000/a?b=1");
        let grpc = Request::post("/svc/M")
            .header("te", "trailers, deflate")
            .header("x-forwarded-host", "forged")
            .body(())
            .unwrap();
        let out = upstream_request(head(grpc), &target, Scheme::HTTP, Body::empty()).unwrap();
        assert_eq!(
            out.headers()["te"],
            "trailers",
            "TE: trailers goes on (gRPC)"
        );
        assert!(
            !out.headers().contains_key("x-forwarded-host"),
            "no host, no forwarded host"
        );
        assert_eq!(out.version(), Version::HTTP_11);
    }
}
