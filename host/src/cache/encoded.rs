//! Compressed copies of stored responses, one per coding: made the first time a hit is
//! compressed on its way out (the compressed bytes fill the zone as they pass), then served
//! as they are, so a hit costs no compression. A copy is used only while it was made from
//! the same fetched body as the entry (`Stored::id`), and with the entry's current fields
//! (a `304` may have refreshed them).

use super::entry::Stored;
use super::fill::Pending;
use super::zone::Zone;
use crate::body::Body;
use crate::compress::{self, Coding};
use http::{HeaderMap, HeaderValue, Response};
use std::sync::Arc;

/// The key of `key`'s copy compressed with `coding` (a newline cannot be in a URI).
pub fn key_of(key: &str, coding: Coding) -> String {
    format!("{key}\n{}", coding.token())
}

/// A hit the compression step may serve from (or make) a compressed copy of.
pub struct HitSource {
    /// The zone and key of the entry.
    pub zone: Arc<Zone>,
    /// The entry's key.
    pub key: Arc<str>,
    /// The entry served.
    pub stored: Arc<Stored>,
    /// The request's headers and filter key parts, which selected it.
    pub headers: HeaderMap,
    /// Key parts added by filters.
    pub parts: Option<String>,
}

impl HitSource {
    /// `response` (the hit, after response filters), compressed as `settings` say for a
    /// request that accepts `accept`: from the stored copy when there is one, else
    /// compressed now with the copy filling the zone.
    pub fn compress(
        self,
        response: Response<Body>,
        method: &http::Method,
        accept: &HeaderMap,
        settings: &compress::CompressSettings,
    ) -> Response<Body> {
        let (_, coding) = compress::decide(
            response.status(),
            response.headers(),
            method,
            accept,
            settings,
        );
        let Some(coding) = coding else {
            return compress::apply(response, method, accept, settings);
        };
        let copy_key = key_of(&self.key, coding);
        let copy = self
            .zone
            .lookup(&copy_key, &self.headers, self.parts.as_deref())
            .filter(|c| c.id == self.stored.id);
        if let Some(copy) = copy {
            let (mut parts, _) = response.into_parts();
            compress::encoded_headers(&mut parts.headers, coding);
            parts.headers.insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from(copy.body.len() as u64),
            );
            return Response::from_parts(parts, Body::full(copy.body.clone()));
        }
        let response = compress::encode(response, coding, settings);
        let encoded_as = |h: &HeaderMap| {
            h.get(http::header::CONTENT_ENCODING)
                .map(|v| v.as_bytes() == coding.token().as_bytes())
        };
        if encoded_as(response.headers()) != Some(true) {
            return response;
        }
        let mut headers = self.stored.headers.clone();
        compress::encoded_headers(&mut headers, coding);
        let pending = Pending {
            zone: self.zone.clone(),
            key: copy_key.into(),
            stored: Stored {
                headers,
                body: bytes::Bytes::new(),
                ..(*self.stored).clone()
            },
            declared: None,
            guard: None,
            needs_ttl: None,
        };
        super::fill::tee(response, pending)
    }
}
