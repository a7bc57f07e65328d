//! Whether a response may be stored (RFC 9111 §3, shared cache) and what is kept of it.

use super::control::Directives;
use super::entry::{self, Stored, Timing};
use super::{key, RoutePolicy};
use http::{HeaderMap, Method, StatusCode};

/// Statuses a cache may store without explicit freshness (RFC 9110 §15.1), to which an
/// operator's `default-ttl` applies.
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Why a response was not stored (`Cache-Status` `detail`).
pub type Refusal = &'static str;

/// A response that may be stored.
#[derive(Debug)]
pub struct Admitted {
    /// What is kept of it, its body still empty.
    pub stored: Stored,
    /// Why it is stored only if a filter gives it a TTL (`no-freshness`, `expired`).
    pub needs_ttl: Option<Refusal>,
}

/// What is kept of a response to a `GET` with `req_headers` (and the key `parts` its
/// filters added; `authorized` when the client sent `Authorization`, whether or not a
/// filter removed it), before its body has come, or why it is never stored.
#[allow(clippy::too_many_arguments)]
pub fn admit(
    method: &Method,
    req_headers: &HeaderMap,
    authorized: bool,
    parts: Option<&str>,
    req: &Directives,
    status: StatusCode,
    headers: &HeaderMap,
    policy: &RoutePolicy,
    timing: Timing,
) -> Result<Admitted, Refusal> {
    if method != Method::GET {
        return Err("method");
    }
    if req.no_store {
        return Err("request-no-store");
    }
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err("status");
    }
    let d = Directives::of(headers);
    if d.no_store {
        return Err("no-store");
    }
    if d.private {
        return Err("private");
    }
    if (authorized || req_headers.contains_key(http::header::AUTHORIZATION))
        && !(d.public || d.must_revalidate || d.s_maxage.is_some())
    {
        return Err("authorization");
    }
    if headers.contains_key(http::header::SET_COOKIE) && !policy.store_set_cookie {
        return Err("set-cookie");
    }
    let Some(vary) = key::vary(headers) else {
        return Err("vary-star");
    };
    if let Some(len) = content_length(headers) {
        if len > policy.zone.settings().max_object_size {
            return Err("too-large");
        }
    }
    let default_ttl = policy
        .default_ttl
        .filter(|_| heuristically_cacheable(status));
    let timing = Timing {
        default_ttl,
        ..timing
    };
    let validators = headers.contains_key(http::header::ETAG)
        || headers.contains_key(http::header::LAST_MODIFIED);
    let (lifetime, mut needs_ttl) = match entry::lifetime(headers, &d, timing) {
        Some(l) => (l, None),
        // `no-cache` responses with a validator are worth keeping: each use revalidates.
        None if d.no_cache && validators => (std::time::Duration::ZERO, None),
        None => (std::time::Duration::ZERO, Some("no-freshness")),
    };
    if needs_ttl.is_none() && lifetime.is_zero() && !validators && d.stale_if_error.is_none() {
        needs_ttl = Some("expired");
    }
    let mut kept = headers.clone();
    entry::keepable(&mut kept);
    let tags = take_tags(&mut kept, &policy.tag_header);
    let mut names = vary;
    for extra in &policy.key.headers {
        if !names.contains(extra) {
            names.push(extra.clone());
        }
    }
    let stored = Stored {
        id: entry::next_id(),
        status,
        initial_age: entry::initial_age(headers, timing),
        response_time: timing.response_time,
        lifetime,
        stale_while_revalidate: entry::secs(
            d.stale_while_revalidate.or(policy.stale_while_revalidate),
        ),
        stale_if_error: entry::secs(d.stale_if_error.or(policy.stale_if_error)),
        must_revalidate: d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some(),
        no_cache: d.no_cache,
        selecting: key::selecting(req_headers, &names, parts),
        tags,
        headers: kept,
        body: bytes::Bytes::new(),
    };
    Ok(Admitted { stored, needs_ttl })
}

/// The declared `Content-Length`, when there is exactly one valid one.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()?.trim().parse().ok()
}

/// The surrogate keys `header` lists (space- or comma-separated), removed from `headers`.
pub fn take_tags(headers: &mut HeaderMap, header: &http::HeaderName) -> Vec<Box<str>> {
    let mut tags: Vec<Box<str>> = Vec::new();
    for value in headers.get_all(header) {
        for tag in String::from_utf8_lossy(value.as_bytes()).split([' ', ',']) {
            if !tag.is_empty() && !tags.iter().any(|t| t.as_ref() == tag) {
                tags.push(tag.into());
            }
        }
    }
    headers.remove(header);
    tags
}
