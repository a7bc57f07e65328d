//! A JWS in compact serialisation (RFC 7515 §7.1): its header, claims, signing input and
//! signature, decoded but not yet trusted.

use super::keys::Alg;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest token considered.
pub const MAX_TOKEN: usize = 8192;

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// A decoded token.
pub struct Token<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

/// Why a token was not accepted (the `error_description` of the 401).
pub type Reason = &'static str;

impl<'a> Token<'a> {
    /// Decode `text`. Any `alg` outside `allowed` (and always `none`) is refused here,
    /// before any key is looked at.
    pub fn decode(text: &'a str, allowed: &[Alg]) -> Result<Self, Reason> {
        if text.len() > MAX_TOKEN {
            return Err("the token is too long");
        }
        let mut parts = text.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the token is not a compact JWS (three dot-separated parts)");
        };
        let header: Header = decode_json(h).ok_or("the token header is not base64url JSON")?;
        if header.crit.is_some() {
            return Err("the token has critical header extensions");
        }
        let alg = Alg::parse(&header.alg).ok_or("the token's algorithm is not accepted")?;
        if !allowed.contains(&alg) {
            return Err("the token's algorithm is not accepted");
        }
        let claims: Map<String, Value> =
            decode_json(p).ok_or("the token claims are not a base64url JSON object")?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "the token signature is not base64url")?;
        let signing_input = text
            .get(..h.len() + 1 + p.len())
            .ok_or("the token is not a compact JWS")?;
        Ok(Token {
            alg,
            kid: header.kid,
            claims,
            signing_input,
            signature,
        })
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}
