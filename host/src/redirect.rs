//! A plaintext listener's `redirect-https`: every request is answered with a permanent
//! redirect (308, which keeps the method and body) to the same URL over https.

use crate::body::Body;
use http::{header, HeaderValue, Request, Response, StatusCode};

/// The redirect for `req` to https on `port` (443 is left out of the URL); 400 when the
/// request names no host.
pub fn to_https<B>(req: &Request<B>, port: u16) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .or_else(|| req.uri().authority().cloned());
    let Some(host) = host else {
        return plain(
            StatusCode::BAD_REQUEST,
            "a redirect to https needs a Host header\n",
        );
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{}{path}", host.host())
    } else {
        format!("https://{}:{port}{path}", host.host())
    };
    match HeaderValue::try_from(location) {
        Ok(location) => {
            let mut resp = plain(StatusCode::PERMANENT_REDIRECT, "");
            resp.headers_mut().insert(header::LOCATION, location);
            resp
        }
        Err(_) => plain(
            StatusCode::BAD_REQUEST,
            "the request's URL cannot be redirected\n",
        ),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: &str, target: &str, port: u16) -> (StatusCode, Option<String>) {
        let req = Request::get(target).header("host", host).body(()).unwrap();
        let resp = to_https(&req, port);
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        (resp.status(), loc)
    }

    #[test]
    fn keeps_host_path_and_query_and_drops_the_plaintext_port() {
        assert_eq!(
            location("shop.test:8080", "/a/b?x=1", 443),
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://shop.test/a/b?x=1".into())
            )
        );
        assert_eq!(
            location("shop.test", "/", 8443).1.as_deref(),
            Some("https://shop.test:8443/")
        );
        assert_eq!(
            location("[::1]:80", "/v6", 443).1.as_deref(),
            Some("https://[::1]/v6")
        );
    }

    #[test]
    fn a_request_without_a_host_is_refused() {
        let req = Request::get("/x").body(()).unwrap();
        assert_eq!(to_https(&req, 443).status(), StatusCode::BAD_REQUEST);
    }
}
