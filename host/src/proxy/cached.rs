//! A request on a caching route: answered from the zone (fresh, or stale while a refresh
//! runs), revalidated with the stored validators, or fetched once for all concurrent
//! requests of its key and stored; unsafe methods that succeed invalidate their URI.

use super::Fetch;
use crate::body::Body;
use crate::cache::control::Directives;
use crate::cache::entry::{Stored, Timing};
use crate::cache::fill::{Filling, Pending};
use crate::cache::zone::{wait_fill, Fill, FillGuard};
use crate::cache::{admit, key, respond, Outcome, RoutePolicy};
use crate::filter::RequestHead;
use http::uri::Authority;
use http::{header, HeaderMap, Method, Response, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;

/// The answer to `head` on a route that caches with `policy`.
pub(super) async fn exchange(
    policy: &Arc<RoutePolicy>,
    fetch: &Fetch,
    head: RequestHead,
    body: Body,
) -> (Response<Body>, Option<Authority>) {
    let Some(key) = key_of(policy, &head) else {
        return fetch.forward(head, body, None).await;
    };
    let method = head.parts.method.clone();
    if method.as_str() == "PURGE" {
        return (purge(policy, &key, head.client), None);
    }
    if method != Method::GET && method != Method::HEAD {
        let scheme = head.scheme;
        let host = head.authority().unwrap_or("").to_string();
        let (mut resp, target) = fetch.forward(head, body, None).await;
        if !method.is_safe() && (resp.status().is_success() || resp.status().is_redirection()) {
            invalidate(policy, &key, scheme, &host, resp.headers());
        }
        resp.headers_mut().remove(&policy.tag_header);
        return (resp, target);
    }
    let key: Arc<str> = key.into();
    let lookup = Lookup {
        method,
        policy,
        fetch,
        req: Directives::of(&head.parts.headers),
        key,
    };
    lookup.run(head, body).await
}

/// The key of a request on the route, `None` without a host.
fn key_of(policy: &RoutePolicy, head: &RequestHead) -> Option<String> {
    let host = head.authority()?;
    let uri = &head.parts.uri;
    Some(key::primary(
        head.scheme,
        host,
        uri.path(),
        uri.query(),
        &policy.key,
    ))
}

/// `PURGE` of the request's URI: allowed from the zone's `purge-from` clients, refused
/// (405) from others.
fn purge(policy: &RoutePolicy, key: &str, client: std::net::IpAddr) -> Response<Body> {
    let allowed = policy
        .zone
        .settings()
        .purge_from
        .iter()
        .any(|net| net.contains(&client));
    if !allowed {
        let mut resp = Response::new(Body::full("PURGE is not allowed from this client\n"));
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return resp;
    }
    let purged = policy.zone.purge_key(key);
    let mut resp = Response::new(Body::full(format!("{{\"purged\":{purged}}}\n")));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Remove what an unsafe request changed: its URI and the same-origin `Location` and
/// `Content-Location` of the response (RFC 9111 §4.4).
fn invalidate(policy: &RoutePolicy, key: &str, scheme: &str, host: &str, resp: &HeaderMap) {
    let zone = &policy.zone;
    zone.purge_key(key);
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(uri) = resp.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Ok(uri) = uri.parse::<http::Uri>() else {
            continue;
        };
        let same_origin = match uri.authority() {
            None => uri.path().starts_with('/'),
            Some(a) => a.as_str().eq_ignore_ascii_case(host) && uri.scheme_str() == Some(scheme),
        };
        if same_origin {
            zone.purge_key(&key::primary(
                scheme,
                host,
                uri.path(),
                uri.query(),
                &policy.key,
            ));
        }
    }
}

/// A `GET` or `HEAD` looked up in the zone.
struct Lookup<'a> {
    /// `GET` or `HEAD` (answered from stored `GET` responses; only `GET` ones are stored).
    method: Method,
    policy: &'a Arc<RoutePolicy>,
    fetch: &'a Fetch,
    req: Directives,
    key: Arc<str>,
}

impl Lookup<'_> {
    async fn run(self, mut head: RequestHead, body: Body) -> (Response<Body>, Option<Authority>) {
        let zone = &self.policy.zone;
        let now = SystemTime::now();
        let found = zone.lookup(&self.key, &head.parts.headers);
        if let Some(stored) = &found {
            if stored.usable(&self.req, now) {
                return self.hit(stored, &head, now, None, false);
            }
            if !self.req.no_cache && stored.within_stale_while_revalidate(now) {
                self.refresh_in_background(&head, stored.clone());
                return self.hit(stored, &head, now, Some("stale-while-revalidate"), false);
            }
        }
        if found.is_none() && self.req.only_if_cached {
            let mut resp = crate::error::ProxyError::GatewayTimeout.response();
            let outcome = Outcome::Forward {
                fwd: "miss",
                status: 504,
                stored: false,
                detail: Some("only-if-cached"),
                ttl: None,
            };
            outcome.mark(resp.headers_mut());
            return (resp, None);
        }
        // One fetch per key at a time: the others wait for it, then look again.
        let mut guard = None;
        if found.is_none() && !self.req.no_cache {
            match zone.begin_fill(&self.key) {
                Fill::Lead(g) => guard = Some(g),
                Fill::Wait(rx) => {
                    zone.counters
                        .coalesced
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if wait_fill(rx, zone.settings().lock_timeout).await {
                        let now = SystemTime::now();
                        if let Some(stored) = zone.lookup(&self.key, &head.parts.headers) {
                            if stored.usable(&self.req, now) {
                                return self.hit(&stored, &head, now, None, true);
                            }
                        }
                    }
                }
            }
        }
        // A stale entry with validators is revalidated, unless the client asks for a range
        // (then the request goes on as it is).
        let revalidate = found.filter(|s| {
            let (etag, modified) = s.validators();
            (etag.is_some() || modified.is_some())
                && !head.parts.headers.contains_key(header::RANGE)
        });
        let client_headers = head.parts.headers.clone();
        if let Some(stored) = &revalidate {
            set_validators(&mut head.parts.headers, stored);
        }
        let fwd = if self.req.no_cache {
            "request"
        } else if revalidate.is_some() {
            "stale"
        } else {
            "miss"
        };
        let request_time = SystemTime::now();
        let (resp, target) = self.fetch.forward(head, body, None).await;
        let timing = Timing {
            request_time,
            response_time: SystemTime::now(),
            default_ttl: self.policy.default_ttl,
        };
        let zone_found = zone.lookup(&self.key, &client_headers);
        let resp = self.settle(
            resp,
            revalidate,
            zone_found,
            &client_headers,
            timing,
            fwd,
            guard,
        );
        (resp, target)
    }

    /// The answer once the upstream answered: a revalidated entry, a stale one (the origin
    /// failed within `stale-if-error`), or the upstream's response, stored if allowed.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        mut resp: Response<Body>,
        revalidated: Option<Arc<Stored>>,
        stale: Option<Arc<Stored>>,
        client: &HeaderMap,
        timing: Timing,
        fwd: &'static str,
        guard: Option<FillGuard>,
    ) -> Response<Body> {
        let zone = &self.policy.zone;
        let status = resp.status();
        if let Some(old) = &revalidated {
            zone.counters
                .revalidated
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if status == StatusCode::NOT_MODIFIED {
                if let Some(fresh) = old.refreshed(resp.headers(), timing) {
                    let fresh = Arc::new(fresh);
                    zone.store(self.key.clone(), (*fresh).clone());
                    let mut out =
                        respond::respond(&fresh, &self.method, client, timing.response_time);
                    Outcome::Forward {
                        fwd,
                        status: 304,
                        stored: true,
                        detail: None,
                        ttl: Some(fresh.ttl(timing.response_time)),
                    }
                    .mark(out.headers_mut());
                    return out;
                }
            }
        }
        if status.is_server_error() {
            if let Some(old) = stale.filter(|s| s.within_stale_if_error(timing.response_time)) {
                let now = timing.response_time;
                let mut out = respond::respond(&old, &self.method, client, now);
                Outcome::Forward {
                    fwd: "stale",
                    status: status.as_u16(),
                    stored: false,
                    detail: Some("stale-if-error"),
                    ttl: Some(old.ttl(now)),
                }
                .mark(out.headers_mut());
                return out;
            }
        }
        let admitted = admit::admit(
            &self.method,
            client,
            &self.req,
            status,
            resp.headers(),
            self.policy,
            timing,
        );
        resp.headers_mut().remove(&self.policy.tag_header);
        let (stored, detail) = match admitted {
            Ok(stored) => {
                let declared = admit::content_length(resp.headers());
                let (parts, body) = resp.into_parts();
                let pending = Pending {
                    zone: zone.clone(),
                    key: self.key.clone(),
                    stored,
                    declared,
                    guard,
                };
                let body = Body::Filling {
                    inner: Filling::new(body, pending),
                };
                resp = Response::from_parts(parts, body);
                (true, None)
            }
            Err(why) => (false, Some(why)),
        };
        zone.counters
            .misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Outcome::Forward {
            fwd,
            status: status.as_u16(),
            stored,
            detail,
            ttl: None,
        }
        .mark(resp.headers_mut());
        resp
    }

    fn hit(
        &self,
        stored: &Stored,
        head: &RequestHead,
        now: SystemTime,
        detail: Option<&'static str>,
        collapsed: bool,
    ) -> (Response<Body>, Option<Authority>) {
        let zone = &self.policy.zone;
        zone.counters
            .hits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut resp = respond::respond(stored, &head.parts.method, &head.parts.headers, now);
        Outcome::Hit {
            ttl: stored.ttl(now),
            detail,
            collapsed,
        }
        .mark(resp.headers_mut());
        (resp, None)
    }

    /// Revalidate (or fetch again) `stored` in the background, once per key at a time.
    fn refresh_in_background(&self, head: &RequestHead, stored: Arc<Stored>) {
        let zone = self.policy.zone.clone();
        let Fill::Lead(guard) = zone.begin_fill(&self.key) else {
            return;
        };
        let policy = self.policy.clone();
        let fetch = self.fetch.clone();
        let key = self.key.clone();
        let mut head = head.clone();
        head.parts.method = Method::GET;
        head.body = None;
        let client = head.parts.headers.clone();
        set_validators(&mut head.parts.headers, &stored);
        tokio::spawn(async move {
            let request_time = SystemTime::now();
            let (resp, _) = fetch.forward(head, Body::empty(), None).await;
            let timing = Timing {
                request_time,
                response_time: SystemTime::now(),
                default_ttl: policy.default_ttl,
            };
            if resp.status() == StatusCode::NOT_MODIFIED {
                if let Some(fresh) = stored.refreshed(resp.headers(), timing) {
                    zone.store(key, fresh);
                }
                return;
            }
            let req = Directives::of(&client);
            let Ok(fresh) = admit::admit(
                &Method::GET,
                &client,
                &req,
                resp.status(),
                resp.headers(),
                &policy,
                timing,
            ) else {
                return;
            };
            let declared = admit::content_length(resp.headers());
            let pending = Pending {
                zone,
                key,
                stored: fresh,
                declared,
                guard: Some(guard),
            };
            let filling = Filling::new(resp.into_body(), pending);
            // Reading it to the end stores it.
            let _ = http_body_util::BodyExt::collect(filling).await;
        });
    }
}

/// Replace the client's validators with the stored response's.
fn set_validators(headers: &mut HeaderMap, stored: &Stored) {
    for name in [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ] {
        headers.remove(name);
    }
    let (etag, modified) = stored.validators();
    if let Some(etag) = etag {
        headers.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = modified {
        headers.insert(header::IF_MODIFIED_SINCE, modified.clone());
    }
}
