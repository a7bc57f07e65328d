//! Response compression: the coding a client accepts (`Accept-Encoding` with q-values, RFC
//! 9110 §12.5.3), whether a response is worth compressing, and the header changes that go
//! with it (`Content-Encoding`, `Vary`, weakened `ETag`). The streaming encoders are in
//! [`encoder`].
//!
//! A filter switches compression off for a response (a BREACH-sensitive page) the
//! standard way: by adding `Cache-Control: no-transform`.

pub mod encoder;

pub use encoder::Encoding;

use crate::body::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

/// A content coding Weir produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `zstd`
    Zstd,
    /// `br`
    Brotli,
    /// `gzip`
    Gzip,
}

impl Coding {
    /// Every coding Weir produces.
    pub const ALL: [Coding; 3] = [Coding::Zstd, Coding::Brotli, Coding::Gzip];

    /// Its `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The coding a token names (`x-gzip` is gzip).
    pub fn parse(token: &str) -> Option<Coding> {
        match token.to_ascii_lowercase().as_str() {
            "zstd" => Some(Coding::Zstd),
            "br" => Some(Coding::Brotli),
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            _ => None,
        }
    }
}

/// A route's compression settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressSettings {
    /// Codings offered, most preferred first (the order breaks q-value ties).
    pub codings: Vec<Coding>,
    /// Media types compressed: `text/html`, `text/*`; `+json` / `+xml` suffixes of the
    /// `application/json` / `application/xml` entries count too.
    pub types: Vec<String>,
    /// Responses declaring fewer bytes are sent as they are.
    pub min_size: u64,
    /// gzip level (1–9).
    pub gzip_level: u32,
    /// Brotli quality (0–11).
    pub brotli_level: u32,
    /// zstd level (1–22).
    pub zstd_level: u32,
}

/// Media types compressed when a route does not list its own.
pub const DEFAULT_TYPES: [&str; 11] = [
    "text/html",
    "text/plain",
    "text/css",
    "text/javascript",
    "text/xml",
    "application/javascript",
    "application/json",
    "application/xml",
    "application/wasm",
    "image/svg+xml",
    "application/manifest+json",
];

impl Default for CompressSettings {
    fn default() -> Self {
        CompressSettings {
            codings: vec![Coding::Zstd, Coding::Brotli, Coding::Gzip],
            types: DEFAULT_TYPES.iter().map(|t| t.to_string()).collect(),
            min_size: 256,
            gzip_level: 6,
            brotli_level: 4,
            zstd_level: 3,
        }
    }
}

impl CompressSettings {
    fn level(&self, coding: Coding) -> u32 {
        match coding {
            Coding::Gzip => self.gzip_level,
            Coding::Brotli => self.brotli_level,
            Coding::Zstd => self.zstd_level,
        }
    }

    /// Whether responses of `content_type` are compressed.
    pub fn compressible(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.types.iter().any(|t| {
            if let Some(major) = t.strip_suffix("/*") {
                return essence.split('/').next() == Some(major);
            }
            if essence == *t {
                return true;
            }
            // `application/problem+json` counts as `application/json`.
            match t.as_str() {
                "application/json" => {
                    essence.starts_with("application/") && essence.ends_with("+json")
                }
                "application/xml" => {
                    essence.starts_with("application/") && essence.ends_with("+xml")
                }
                _ => false,
            }
        })
    }
}

/// The coding to use for a client sending `accept` (its `Accept-Encoding` lines): the
/// highest q-value among the codings offered, ties broken by their order; `None` when
/// the client sent none or accepts none of them.
pub fn negotiate(accept: &HeaderMap, offered: &[Coding]) -> Option<Coding> {
    let mut listed: Vec<(String, f32)> = Vec::new();
    for value in accept.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if coding.is_empty() {
                continue;
            }
            let mut q = 1.0f32;
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v
                            .trim()
                            .parse::<f32>()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0);
                    }
                }
            }
            listed.push((coding, q));
        }
    }
    let star = listed.iter().find(|(c, _)| c == "*").map(|(_, q)| *q);
    let mut best: Option<(Coding, f32)> = None;
    for &coding in offered {
        let q = listed
            .iter()
            .find(|(c, _)| Coding::parse(c) == Some(coding))
            .map(|(_, q)| *q)
            .or(star)
            .unwrap_or(0.0);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((coding, q));
        }
    }
    best.map(|(c, _)| c)
}

/// What compression does to a response with `status` and `headers` for a `method` request
/// that accepts `accept`: whether its type is compressed (it then varies on
/// `Accept-Encoding`), and the coding it gets, if any.
pub fn decide(
    status: StatusCode,
    headers: &HeaderMap,
    method: &Method,
    accept: &HeaderMap,
    settings: &CompressSettings,
) -> (bool, Option<Coding>) {
    let compressible = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| settings.compressible(t));
    if !compressible || skip_status(status) || encoded(headers) {
        return (false, None);
    }
    let no_transform = super::cache::control::Directives::of(headers).no_transform;
    let small = declared_len(headers).is_some_and(|n| n < settings.min_size);
    if *method == Method::HEAD
        || no_transform
        || small
        || headers.contains_key(header::CONTENT_RANGE)
    {
        return (true, None);
    }
    (true, negotiate(accept, &settings.codings))
}

/// The header changes of a response compressed with `coding`: no length or ranges, its
/// `Content-Encoding`, `Vary: Accept-Encoding`, a weak `ETag`.
pub fn encoded_headers(headers: &mut HeaderMap, coding: Coding) {
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(coding.token()),
    );
    add_vary(headers);
    weaken_etag(headers);
}

/// Compress `response` for a `method` request that accepts `accept`, as `settings` say;
/// or pass it on unchanged (but with `Vary: Accept-Encoding` if its type is one that is
/// compressed).
pub fn apply(
    response: Response<Body>,
    method: &Method,
    accept: &HeaderMap,
    settings: &CompressSettings,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let (vary, coding) = decide(parts.status, &parts.headers, method, accept, settings);
    if vary {
        add_vary(&mut parts.headers);
    }
    match coding {
        Some(coding) => encode(Response::from_parts(parts, body), coding, settings),
        None => Response::from_parts(parts, body),
    }
}

/// `response` compressed with `coding` (which [`decide`] chose for it); unchanged if the
/// encoder cannot start.
pub fn encode(
    response: Response<Body>,
    coding: Coding,
    settings: &CompressSettings,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let encoder = match encoder::Encoder::new(coding, settings.level(coding)) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(
                "compression skipped: the {} encoder failed to start: {e}",
                coding.token()
            );
            return Response::from_parts(parts, body);
        }
    };
    encoded_headers(&mut parts.headers, coding);
    let body = Body::Encoded {
        inner: Box::new(Encoding::new(body, encoder)),
    };
    Response::from_parts(parts, body)
}

/// Statuses whose bodies are never compressed: none, unchanged, or partial.
fn skip_status(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
}

/// Whether the response already has a content coding (other than `identity`).
fn encoded(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

fn declared_len(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `Vary: Accept-Encoding`, unless it is there already (or `Vary: *`).
fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|t| {
            t.split(',')
                .map(str::trim)
                .any(|n| n == "*" || n.eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !present {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// A strong `ETag` made weak: the compressed bytes are not the identity ones.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(header::ETAG) else {
        return;
    };
    if etag.as_bytes().starts_with(b"W/") {
        return;
    }
    let mut weak = b"W/".to_vec();
    weak.extend_from_slice(etag.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&weak) {
        headers.insert(header::ETAG, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
        h
    }

    const ALL: [Coding; 3] = [Coding::Zstd, Coding::Brotli, Coding::Gzip];

    #[test]
    fn negotiation_follows_q_values_then_preference() {
        assert_eq!(
            negotiate(&accept("gzip, br, zstd"), &ALL),
            Some(Coding::Zstd)
        );
        assert_eq!(negotiate(&accept("gzip, br"), &ALL), Some(Coding::Brotli));
        assert_eq!(
            negotiate(&accept("gzip;q=1, br;q=0.5"), &ALL),
            Some(Coding::Gzip)
        );
        assert_eq!(
            negotiate(&accept("br;q=0, gzip;q=0.1"), &ALL),
            Some(Coding::Gzip)
        );
        assert_eq!(
            negotiate(&accept("*;q=0.5, zstd;q=0"), &ALL),
            Some(Coding::Brotli)
        );
        assert_eq!(negotiate(&accept("identity"), &ALL), None);
        assert_eq!(negotiate(&accept("GZIP;Q=0.8"), &ALL), Some(Coding::Gzip));
        assert_eq!(
            negotiate(&accept("gzip;q=2"), &ALL),
            None,
            "an invalid q is 0"
        );
        assert_eq!(negotiate(&HeaderMap::new(), &ALL), None);
        assert_eq!(
            negotiate(&accept("x-gzip"), &[Coding::Gzip]),
            Some(Coding::Gzip)
        );
    }

    #[test]
    fn types_match_exactly_by_wildcard_or_suffix() {
        let s = CompressSettings::default();
        assert!(s.compressible("text/html; charset=utf-8"));
        assert!(s.compressible("Application/Problem+JSON"));
        assert!(!s.compressible("image/png"));
        assert!(!s.compressible("text/event-stream"));
        let star = CompressSettings {
            types: vec!["text/*".into()],
            ..CompressSettings::default()
        };
        assert!(star.compressible("text/csv"));
        assert!(!star.compressible("application/json"));
    }

    #[test]
    fn every_encoder_round_trips_streamed_chunks() {
        use std::io::Read;
        let text: Vec<u8> = (0..20_000).map(|i| b"weir compresses "[i % 16]).collect();
        for coding in ALL {
            let mut e = encoder::Encoder::new(coding, 5).unwrap();
            let mut out = Vec::new();
            for chunk in text.chunks(3000) {
                out.extend_from_slice(&e.write(chunk).unwrap());
                out.extend_from_slice(&e.flush().unwrap());
            }
            out.extend_from_slice(&e.finish().unwrap());
            assert!(out.len() < text.len() / 10, "{coding:?}: {}", out.len());
            let mut back = Vec::new();
            match coding {
                Coding::Gzip => {
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Coding::Brotli => {
                    brotli::Decompressor::new(&out[..], 4096)
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Coding::Zstd => back = zstd::decode_all(&out[..]).unwrap(),
            };
            assert_eq!(back, text, "{coding:?}");
        }
    }
}
