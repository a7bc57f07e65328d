//! Answering from a stored response: `Age`, `HEAD` without a body, the client's own
//! conditions (`304`, RFC 9110 §13.2.2: `If-None-Match` before `If-Modified-Since`) and a
//! single byte range of the stored body (`206` / `416`, with `If-Range`).

use super::entry::{http_date, Stored};
use crate::body::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use std::time::SystemTime;

/// Fields a `304` carries from the stored response (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: [header::HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::LAST_MODIFIED,
    header::VARY,
];

/// The answer from `stored` to a `method` request with `req` headers, `now`.
pub fn respond(
    stored: &Stored,
    method: &Method,
    req: &HeaderMap,
    now: SystemTime,
) -> Response<Body> {
    let age = HeaderValue::from(stored.age(now).as_secs());
    if stored.status == StatusCode::OK && not_modified(req, &stored.headers) {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        for name in NOT_MODIFIED_FIELDS {
            for v in stored.headers.get_all(&name) {
                resp.headers_mut().append(name.clone(), v.clone());
            }
        }
        resp.headers_mut().insert(header::AGE, age);
        return resp;
    }
    let mut headers = stored.headers.clone();
    headers.insert(header::AGE, age);
    let len = stored.body.len() as u64;
    let (status, body) = match range(stored, req) {
        Some(Range::Satisfiable(first, last)) => {
            let content_range = format!("bytes {first}-{last}/{len}");
            if let Ok(v) = HeaderValue::try_from(content_range) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            let part = stored.body.slice(first as usize..(last + 1) as usize);
            (StatusCode::PARTIAL_CONTENT, part)
        }
        Some(Range::Unsatisfiable) => {
            if let Ok(v) = HeaderValue::try_from(format!("bytes */{len}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::RANGE_NOT_SATISFIABLE, bytes::Bytes::new())
        }
        None => (stored.status, stored.body.clone()),
    };
    // A 204 has no body and must not say it has a length (RFC 9110 §8.6).
    if status == StatusCode::NO_CONTENT {
        headers.remove(header::CONTENT_LENGTH);
    } else {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::full(body)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// Whether the client's conditions say its copy is current: `If-None-Match` (weak
/// comparison) when present, else `If-Modified-Since` against `Last-Modified`.
pub fn not_modified(req: &HeaderMap, stored: &HeaderMap) -> bool {
    if req.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = stored.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        return req
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || weak(tag) == weak(etag));
    }
    let (Some(since), Some(modified)) = (
        req.get(header::IF_MODIFIED_SINCE).and_then(http_date),
        stored.get(header::LAST_MODIFIED).and_then(http_date),
    ) else {
        return false;
    };
    modified <= since
}

/// An entity tag without its weakness prefix.
fn weak(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

enum Range {
    /// First and last byte (inclusive), within the body.
    Satisfiable(u64, u64),
    Unsatisfiable,
}

/// The one byte range asked for, if it is to be honoured: a `200` body, a single
/// `bytes=` range, and an `If-Range` (if any) that matches strongly. Several ranges, other
/// units or malformed ones get the whole body (RFC 9110 §14.2 lets a server ignore them).
fn range(stored: &Stored, req: &HeaderMap) -> Option<Range> {
    if stored.status != StatusCode::OK {
        return None;
    }
    let spec = req.get(header::RANGE)?.to_str().ok()?.trim();
    if let Some(cond) = req.get(header::IF_RANGE) {
        let cond = cond.to_str().ok()?.trim();
        let matches = if cond.starts_with('"') {
            stored
                .headers
                .get(header::ETAG)
                .and_then(|e| e.to_str().ok())
                == Some(cond)
        } else {
            stored
                .headers
                .get(header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                == Some(cond)
        };
        if !matches {
            return None;
        }
    }
    let set = spec.strip_prefix("bytes=")?;
    if set.contains(',') {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let len = stored.body.len() as u64;
    let number = |s: &str| -> Option<Option<u64>> {
        let s = s.trim();
        if s.is_empty() {
            return Some(None);
        }
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
            .map(Some)
    };
    match (number(first)?, number(last)?) {
        (Some(first), last) => {
            let last = last.unwrap_or(u64::MAX);
            if last < first {
                return None;
            }
            if first >= len {
                return Some(Range::Unsatisfiable);
            }
            Some(Range::Satisfiable(first, last.min(len - 1)))
        }
        (None, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                return Some(Range::Unsatisfiable);
            }
            Some(Range::Satisfiable(len.saturating_sub(suffix), len - 1))
        }
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stored(body: &str, pairs: &[(&str, &str)]) -> Stored {
        let mut headers = HeaderMap::new();
        for (n, v) in pairs {
            headers.append(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Stored {
            id: 0,
            status: StatusCode::OK,
            headers,
            body: bytes::Bytes::from(body.to_string()),
            response_time: SystemTime::now(),
            initial_age: Duration::from_secs(3),
            lifetime: Duration::from_secs(60),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            must_revalidate: false,
            no_cache: false,
            selecting: Vec::new(),
            tags: Vec::new(),
        }
    }

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        stored("", pairs).headers
    }

    fn answer(s: &Stored, method: Method, pairs: &[(&str, &str)]) -> Response<Body> {
        respond(s, &method, &req(pairs), SystemTime::now())
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let s = stored(
            "x",
            &[
                ("etag", "\"v1\""),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
        );
        let later = "Tue, 02 Jan 2024 00:00:00 GMT";
        assert_eq!(
            answer(&s, Method::GET, &[("if-none-match", "W/\"v1\"")]).status(),
            304
        );
        assert_eq!(
            answer(&s, Method::GET, &[("if-none-match", "\"v0\", *")]).status(),
            304
        );
        assert_eq!(
            answer(
                &s,
                Method::GET,
                &[("if-none-match", "\"v0\""), ("if-modified-since", later)]
            )
            .status(),
            200,
            "a failing If-None-Match is not rescued by If-Modified-Since"
        );
        assert_eq!(
            answer(&s, Method::GET, &[("if-modified-since", later)]).status(),
            304
        );
        let r = answer(
            &s,
            Method::GET,
            &[("if-modified-since", "Sun, 31 Dec 2023 00:00:00 GMT")],
        );
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["age"], "3");
    }

    #[test]
    fn ranges_of_the_stored_body() {
        let s = stored("0123456789", &[("etag", "\"v1\"")]);
        let r = answer(&s, Method::GET, &[("range", "bytes=2-4")]);
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["content-range"], "bytes 2-4/10");
        assert_eq!(r.headers()["content-length"], "3");
        assert_eq!(
            answer(&s, Method::GET, &[("range", "bytes=-3")]).headers()["content-range"],
            "bytes 7-9/10"
        );
        assert_eq!(
            answer(&s, Method::GET, &[("range", "bytes=8-")]).headers()["content-range"],
            "bytes 8-9/10"
        );
        assert_eq!(
            answer(&s, Method::GET, &[("range", "bytes=5-100")]).headers()["content-range"],
            "bytes 5-9/10"
        );
        let r = answer(&s, Method::GET, &[("range", "bytes=10-")]);
        assert_eq!(r.status(), 416);
        assert_eq!(r.headers()["content-range"], "bytes */10");
        for ignored in [
            "bytes=1-2,4-5",
            "items=1-2",
            "bytes=x-y",
            "bytes=4-2",
            "bytes=-",
        ] {
            assert_eq!(
                answer(&s, Method::GET, &[("range", ignored)]).status(),
                200,
                "{ignored}"
            );
        }
        assert_eq!(
            answer(
                &s,
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", "\"v0\"")]
            )
            .status(),
            200
        );
        assert_eq!(
            answer(
                &s,
                Method::GET,
                &[("range", "bytes=0-1"), ("if-range", "\"v1\"")]
            )
            .status(),
            206
        );
    }

    #[test]
    fn a_stored_204_has_no_length() {
        let mut s = stored("", &[]);
        s.status = StatusCode::NO_CONTENT;
        let r = answer(&s, Method::GET, &[]);
        assert_eq!(r.status(), 204);
        assert!(r.headers().get("content-length").is_none());
    }

    #[test]
    fn head_has_the_length_and_no_body() {
        let s = stored("hello", &[]);
        let r = answer(&s, Method::HEAD, &[]);
        assert_eq!(r.headers()["content-length"], "5");
        assert!(http_body::Body::is_end_stream(r.body()));
    }
}
