//! A request on a caching route: answered from the zone (fresh, or stale while a refresh
//! runs), revalidated with the stored validators, or fetched once for all concurrent
//! requests of its key and stored; unsafe methods that succeed invalidate their URI.
//! Filters' decisions (bypass, key parts) shape the lookup; the [`Settle`] returned with a
//! fetched response applies the response-phase ones.

use super::Fetch;
use crate::body::Body;
use crate::cache::control::Directives;
use crate::cache::encoded::HitSource;
use crate::cache::entry::{Stored, Timing};
use crate::cache::fill::{Pending, Settle};
use crate::cache::purge::Purge;
use crate::cache::zone::{wait_fill, Fill, FillGuard};
use crate::cache::{admit, key, respond, Outcome, RoutePolicy};
use crate::filter::RequestHead;
use http::uri::Authority;
use http::{header, HeaderMap, Method, Response, StatusCode};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;

/// A response from the cache's side of the request path.
pub(super) struct Answer {
    pub(super) response: Response<Body>,
    pub(super) target: Option<Authority>,
    /// What is left to do once response filters ran (`Cache-Status`, storing).
    pub(super) settle: Option<Settle>,
    /// A hit whose compressed copy compression may use or make (boxed: it is held across
    /// the response phase).
    pub(super) hit: Option<Box<HitSource>>,
}

impl Answer {
    fn done(response: Response<Body>, target: Option<Authority>, outcome: Option<Outcome>) -> Self {
        Answer {
            response,
            target,
            settle: outcome.map(Settle::outcome),
            hit: None,
        }
    }
}

/// The answer to `head` on a route that caches with `policy`.
pub(super) async fn exchange(
    policy: &Arc<RoutePolicy>,
    fetch: &Fetch,
    head: RequestHead,
    body: Body,
) -> Answer {
    let Some(key) = key_of(policy, &head) else {
        let (response, target) = fetch.forward(head, body, None).await;
        return Answer::done(response, target, None);
    };
    let method = head.parts.method.clone();
    if method.as_str() == "PURGE" {
        return Answer::done(purge(policy, &key, head.client), None, None);
    }
    let bypass = head.caching.as_ref().is_some_and(|d| d.bypass);
    if method != Method::GET && method != Method::HEAD || bypass {
        let scheme = head.scheme;
        let host = head.authority().unwrap_or("").to_string();
        let (mut response, target) = fetch.forward(head, body, None).await;
        let status = response.status();
        if !method.is_safe() && (status.is_success() || status.is_redirection()) {
            invalidate(policy, &key, scheme, &host, response.headers());
        }
        response.headers_mut().remove(&policy.tag_header);
        let outcome = Outcome::Forward {
            fwd: if bypass { "bypass" } else { "method" },
            status: status.as_u16(),
            stored: false,
            detail: None,
            ttl: None,
        };
        return Answer::done(response, target, Some(outcome));
    }
    let lookup = Lookup {
        method,
        parts: head
            .caching
            .as_ref()
            .and_then(|d| key::joined_parts(&d.key_parts)),
        authorized: head.authorized,
        policy,
        fetch,
        req: Directives::of(&head.parts.headers),
        key: key.into(),
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
    let purged = policy.zone.purge(Purge::Key(key.to_string()));
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
    zone.purge(Purge::Key(key.to_string()));
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
            zone.purge(Purge::Key(key::primary(
                scheme,
                host,
                uri.path(),
                uri.query(),
                &policy.key,
            )));
        }
    }
}

/// A `GET` or `HEAD` looked up in the zone.
struct Lookup<'a> {
    /// `GET` or `HEAD` (answered from stored `GET` responses; only `GET` ones are stored).
    method: Method,
    /// The key parts the request's filters added.
    parts: Option<String>,
    /// The client sent `Authorization`.
    authorized: bool,
    policy: &'a Arc<RoutePolicy>,
    fetch: &'a Fetch,
    req: Directives,
    key: Arc<str>,
}

impl Lookup<'_> {
    fn find(&self, headers: &HeaderMap) -> Option<Arc<Stored>> {
        self.policy
            .zone
            .lookup(&self.key, headers, self.parts.as_deref())
    }

    async fn run(self, mut head: RequestHead, body: Body) -> Answer {
        let zone = &self.policy.zone;
        let now = SystemTime::now();
        let found = match self.find(&head.parts.headers) {
            Some(found) => Some(found),
            // Not in memory: on disk, with a disk tier (read on a blocking thread).
            None => {
                zone.lookup_disk(&self.key, &head.parts.headers, self.parts.as_deref())
                    .await
            }
        };
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
            let outcome = Outcome::Forward {
                fwd: "miss",
                status: 504,
                stored: false,
                detail: Some("only-if-cached"),
                ttl: None,
            };
            return Answer::done(
                crate::error::ProxyError::GatewayTimeout.response(),
                None,
                Some(outcome),
            );
        }
        // One fetch per key at a time: the others wait for it, then look again.
        let mut guard = None;
        if found.is_none() && !self.req.no_cache {
            match zone.begin_fill(&self.key) {
                Fill::Lead(g) => guard = Some(g),
                Fill::Wait(rx) => {
                    zone.counters.coalesced.fetch_add(1, Relaxed);
                    if wait_fill(rx, zone.settings().lock_timeout).await {
                        let now = SystemTime::now();
                        if let Some(stored) = self.find(&head.parts.headers) {
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
        // What was found stays the stale answer should the upstream fail.
        let stale = found.clone();
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
        let (response, target) = self.fetch.forward(head, body, None).await;
        let timing = Timing {
            request_time,
            response_time: SystemTime::now(),
            default_ttl: self.policy.default_ttl,
        };
        let (response, settle) = self.settle(
            response,
            revalidate,
            stale,
            &client_headers,
            timing,
            fwd,
            guard,
        );
        Answer {
            response,
            target,
            settle: Some(settle),
            hit: None,
        }
    }

    /// The answer once the upstream answered: a revalidated entry, a stale one (the origin
    /// failed within `stale-if-error`), or the upstream's response, to be stored if allowed.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        mut response: Response<Body>,
        revalidated: Option<Arc<Stored>>,
        stale: Option<Arc<Stored>>,
        client: &HeaderMap,
        timing: Timing,
        fwd: &'static str,
        guard: Option<FillGuard>,
    ) -> (Response<Body>, Settle) {
        let zone = &self.policy.zone;
        let status = response.status();
        if let Some(old) = &revalidated {
            zone.counters.revalidated.fetch_add(1, Relaxed);
            if status == StatusCode::NOT_MODIFIED {
                if let Some(fresh) = old.refreshed(response.headers(), timing) {
                    let out = respond::respond(&fresh, &self.method, client, timing.response_time);
                    let ttl = fresh.ttl(timing.response_time);
                    zone.store(self.key.clone(), fresh);
                    let outcome = Outcome::Forward {
                        fwd,
                        status: 304,
                        stored: true,
                        detail: None,
                        ttl: Some(ttl),
                    };
                    return (out, Settle::outcome(outcome));
                }
            }
        }
        if status.is_server_error() {
            let now = timing.response_time;
            if let Some(old) = stale.filter(|s| s.within_stale_if_error(now)) {
                let out = respond::respond(&old, &self.method, client, now);
                let outcome = Outcome::Forward {
                    fwd: "stale",
                    status: status.as_u16(),
                    stored: false,
                    detail: Some("stale-if-error"),
                    ttl: Some(old.ttl(now)),
                };
                return (out, Settle::outcome(outcome));
            }
        }
        zone.counters.misses.fetch_add(1, Relaxed);
        let admitted = admit::admit(
            &self.method,
            client,
            self.authorized,
            self.parts.as_deref(),
            &self.req,
            status,
            response.headers(),
            self.policy,
            timing,
        );
        response.headers_mut().remove(&self.policy.tag_header);
        let outcome = Outcome::Forward {
            fwd,
            status: status.as_u16(),
            stored: false,
            detail: None,
            ttl: None,
        };
        match admitted {
            Ok(admitted) => {
                let pending = Pending {
                    zone: zone.clone(),
                    key: self.key.clone(),
                    declared: admit::content_length(response.headers()),
                    stored: admitted.stored,
                    guard,
                    needs_ttl: admitted.needs_ttl,
                };
                Settle::filling(response, pending, outcome)
            }
            Err(why) => (response, Settle::outcome(outcome.refused(why))),
        }
    }

    fn hit(
        &self,
        stored: &Arc<Stored>,
        head: &RequestHead,
        now: SystemTime,
        detail: Option<&'static str>,
        collapsed: bool,
    ) -> Answer {
        self.policy.zone.counters.hits.fetch_add(1, Relaxed);
        let response = respond::respond(stored, &head.parts.method, &head.parts.headers, now);
        let outcome = Outcome::Hit {
            ttl: stored.ttl(now),
            detail,
            collapsed,
        };
        // Only a whole `200` body can be served from (or make) a compressed copy.
        let whole = response.status() == StatusCode::OK;
        let hit = (self.policy.encoded_copies && whole).then(|| {
            Box::new(HitSource {
                zone: self.policy.zone.clone(),
                key: self.key.clone(),
                stored: stored.clone(),
                headers: head.parts.headers.clone(),
                parts: self.parts.clone(),
            })
        });
        Answer {
            hit,
            ..Answer::done(response, None, Some(outcome))
        }
    }

    /// Revalidate (or fetch again) `stored` in the background, once per key at a time.
    /// The request-phase decisions of its filters apply (there is no response phase).
    fn refresh_in_background(&self, head: &RequestHead, stored: Arc<Stored>) {
        let zone = self.policy.zone.clone();
        let Fill::Lead(guard) = zone.begin_fill(&self.key) else {
            return;
        };
        let policy = self.policy.clone();
        let fetch = self.fetch.clone();
        let key = self.key.clone();
        let parts = self.parts.clone();
        let authorized = self.authorized;
        let mut head = head.clone();
        head.parts.method = Method::GET;
        head.body = None;
        let client = head.parts.headers.clone();
        let decisions = head.caching.as_deref().cloned().unwrap_or_default();
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
            let status = resp.status();
            let Ok(admitted) = admit::admit(
                &Method::GET,
                &client,
                authorized,
                parts.as_deref(),
                &req,
                status,
                resp.headers(),
                &policy,
                timing,
            ) else {
                return;
            };
            let pending = Pending {
                zone,
                key,
                declared: admit::content_length(resp.headers()),
                stored: admitted.stored,
                guard: Some(guard),
                needs_ttl: admitted.needs_ttl,
            };
            let outcome = Outcome::Forward {
                fwd: "stale",
                status: status.as_u16(),
                stored: false,
                detail: None,
                ttl: None,
            };
            let (resp, settle) = Settle::filling(resp, pending, outcome);
            let mut unused = HeaderMap::new();
            settle.finish(&decisions, &mut unused);
            // Reading it to the end stores it.
            let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
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
