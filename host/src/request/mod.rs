//! The canonical request: what a request is, settled once on arrival, before routing and
//! filters, so that routing, filters and the upstream never disagree about it.
//!
//! - [`path`]: the path normalised (escapes, dot-segments, slashes) the way upstreams read it;
//! - [`authority`]: one checked, lower-cased `host[:port]`, from an absolute-form target,
//!   `:authority` or `Host`, written to `Host`;
//! - [`headers`]: framing checked, hop-by-hop headers and underscored names removed;
//! - [`client`]: the client address behind trusted proxies, and the forwarding headers;
//! - [`id`]: the request id (`x-request-id`).
//!
//! A request that can't be made canonical is refused ([`Refusal`]) with a status naming why.

pub mod authority;
pub mod client;
pub mod headers;
pub mod id;
pub mod path;
pub mod trace;

use crate::body::Body;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Method, Response, StatusCode, Uri, Version};
pub use path::EscapedSlashes;

/// The manifest's request rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// What `%2F` and `%5C` in a path do.
    pub escaped_slashes: EscapedSlashes,
    /// Keep header names with underscores (dropped by default).
    pub underscores_in_headers: bool,
}

/// Why a request is refused before routing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: malformed or ambiguous.
    #[error("{0}")]
    BadRequest(String),
    /// 501: well-formed, but not something the proxy can pass on faithfully.
    #[error("{0}")]
    NotImplemented(&'static str),
    /// 405: a method the route does not allow.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 408: the client stopped sending its request.
    #[error("{0}")]
    TimedOut(String),
    /// 431: more headers than `max-headers` (HTTP/2; hyper counts HTTP/1.1's).
    #[error("more than {0} request headers")]
    TooManyHeaders(usize),
}

impl Refusal {
    pub(crate) fn bad(why: impl Into<String>) -> Self {
        Refusal::BadRequest(why.into())
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Refusal::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::TooManyHeaders(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// A plain-text answer naming the problem; the connection is closed after it.
    pub fn response(&self) -> Response<Body> {
        let status = self.status();
        let text = format!(
            "{} {}: {self}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let mut resp = Response::new(Body::full(text));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    }
}

/// What settling the request found that later steps need.
#[derive(Debug, Default)]
pub struct Canonical {
    /// The protocol of a requested upgrade (`Upgrade` header), to be allowed by the route.
    pub upgrade: Option<HeaderValue>,
    /// The path and query as the client sent them, when normalising changed them.
    pub raw_path_and_query: Option<PathAndQuery>,
}

/// Make `parts` canonical: method checked, headers cleaned, one authority in `Host`, the
/// URI reduced to its normalised path and the query as sent.
pub fn canonicalize(parts: &mut Parts, rules: &Rules) -> Result<Canonical, Refusal> {
    if parts.method == Method::CONNECT {
        return Err(Refusal::MethodNotAllowed(
            "CONNECT is not proxied".to_owned(),
        ));
    }
    let arrival = headers::on_arrival(
        &mut parts.headers,
        parts.version,
        rules.underscores_in_headers,
    )?;
    settle_authority(parts)?;
    let raw_path_and_query = settle_path(parts, rules.escaped_slashes)?;
    Ok(Canonical {
        upgrade: arrival.upgrade,
        raw_path_and_query,
    })
}

/// One authority: an absolute-form target (HTTP/1.1) or `:authority` (HTTP/2) wins over
/// `Host`; several `Host` headers, an invalid one, an HTTP/2 `host` that disagrees with
/// `:authority`, or an HTTP/1.1 request without any are refused.
fn settle_authority(parts: &mut Parts) -> Result<(), Refusal> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let sent = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::bad("more than one Host header"));
    }
    // The usual request: one Host, already canonical, and an origin-form target.
    let host = match sent {
        None => None,
        Some(h) => match authority::check(h.as_bytes()) {
            Err(e) => return Err(Refusal::bad(format!("invalid Host header: {e}"))),
            Ok(Some(lowered)) => Some(lowered),
            Ok(None) if parts.uri.authority().is_none() && parts.uri.scheme().is_none() => {
                return Ok(());
            }
            Ok(None) => Some(h.clone()),
        },
    };
    if let Some(scheme) = parts.uri.scheme_str() {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(Refusal::bad(format!(
                "unsupported scheme {scheme:?} in the target"
            )));
        }
    }
    let target = parts
        .uri
        .authority()
        .map(|a| authority::canonical(a.as_str().as_bytes()))
        .transpose()
        .map_err(|e| Refusal::bad(format!("invalid authority in the target: {e}")))?;
    let chosen = match (target, host) {
        (Some(t), Some(h)) if parts.version == Version::HTTP_2 && t != h => {
            return Err(Refusal::bad(":authority and host disagree"));
        }
        (Some(t), _) => Some(t),
        (None, Some(h)) => Some(h),
        (None, None) if parts.version == Version::HTTP_11 => {
            return Err(Refusal::bad("missing Host header"));
        }
        (None, None) => None,
    };
    if let Some(a) = chosen {
        parts.headers.insert(header::HOST, a);
    }
    Ok(())
}

/// Normalise the path, keep the query as sent, and reduce the URI to origin-form. Returns the
/// client's path and query when they changed.
fn settle_path(
    parts: &mut Parts,
    slashes: EscapedSlashes,
) -> Result<Option<PathAndQuery>, Refusal> {
    let sent = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let origin_form = parts.uri.scheme().is_none() && parts.uri.authority().is_none();
    if sent.as_str() == "*" {
        if parts.method == Method::OPTIONS && origin_form {
            return Ok(None);
        }
        return Err(Refusal::bad("'*' is only a target for OPTIONS"));
    }
    let normal = path::normalize(sent.path(), slashes).map_err(|e| Refusal::bad(format!("{e}")))?;
    let Some(normal) = normal else {
        if !origin_form {
            parts.uri = Uri::from(sent);
        }
        return Ok(None);
    };
    let text = match sent.query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let pq = PathAndQuery::try_from(text)
        .map_err(|_| Refusal::bad("the normalised path is not a valid target"))?;
    parts.uri = Uri::from(pq);
    Ok(Some(sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::request::Builder) -> Parts {
        req.body(()).unwrap().into_parts().0
    }

    fn settle(req: http::request::Builder) -> Result<Parts, Refusal> {
        let mut p = parts(req);
        canonicalize(&mut p, &Rules::default()).map(|_| p)
    }

    #[test]
    fn absolute_form_replaces_host() {
        let p = settle(http::Request::get("http://Public:8080/x").header("host", "admin")).unwrap();
        assert_eq!(p.headers["host"], "public:8080");
        assert_eq!(p.uri, "/x");
    }

    #[test]
    fn hosts_must_be_one_and_valid() {
        let two = http::Request::get("/")
            .header("host", "a")
            .header("host", "b");
        assert!(matches!(settle(two), Err(Refusal::BadRequest(_))));
        let bad = http::Request::get("/").header("host", "[");
        assert!(matches!(settle(bad), Err(Refusal::BadRequest(_))));
        assert!(matches!(
            settle(http::Request::get("/")),
            Err(Refusal::BadRequest(m)) if m == "missing Host header"
        ));
        let old = http::Request::get("/").version(Version::HTTP_10);
        assert!(settle(old).is_ok(), "HTTP/1.0 may omit Host");
    }

    #[test]
    fn http2_authority_and_host_must_agree() {
        let h2 = || http::Request::get("https://a.test/p").version(Version::HTTP_2);
        assert_eq!(settle(h2()).unwrap().headers["host"], "a.test");
        assert!(settle(h2().header("host", "A.test")).is_ok());
        assert!(matches!(
            settle(h2().header("host", "admin")),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn paths_are_normalised_and_raw_kept() {
        let mut p = parts(http::Request::get("/%61pi/./items?q=%2e%2E").header("host", "a"));
        let c = canonicalize(&mut p, &Rules::default()).unwrap();
        assert_eq!(p.uri, "/api/items?q=%2e%2E", "the query is left as sent");
        assert_eq!(c.raw_path_and_query.unwrap(), "/%61pi/./items?q=%2e%2E");
        assert!(matches!(
            settle(http::Request::get("/a%2fb").header("host", "a")),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn connect_and_bad_schemes_are_refused() {
        let c = http::Request::connect("a.test:443").header("host", "a.test:443");
        assert!(matches!(settle(c), Err(Refusal::MethodNotAllowed(_))));
        let ftp = http::Request::get("ftp://a.test/").header("host", "a.test");
        assert!(matches!(settle(ftp), Err(Refusal::BadRequest(_))));
        let star = http::Request::options("*").header("host", "a");
        assert!(settle(star).is_ok());
    }
}

#[cfg(test)]
mod proptests;
