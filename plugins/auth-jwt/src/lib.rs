//! `auth-jwt`: verify JSON Web Tokens (RFC 7519) and pass their claims on.
//!
//! ```toml
//! [filters.jwt]
//! plugin = "auth-jwt.wasm"
//! allow-hosts = ["issuer.example.com"]         # for jwks-url
//! [filters.jwt.config]
//! algorithms = ["ES256", "RS256"]             # accepted algorithms (never "none")
//! jwks-url = "https://issuer.example.com/.well-known/jwks.json"
//! jwks-refresh = "10m"                        # default 10m; a failed refresh keeps the keys
//! keys = [{ pem = "-----BEGIN PUBLIC KEY-----\n..." , kid = "k1" },
//!         { jwk = { kty = "EC", crv = "P-256", x = "...", y = "..." } },
//!         { secret = "...", kid = "hs" }]     # HMAC secret (HS256/384/512)
//! issuer = ["https://issuer.example.com"]     # accepted `iss` (one or a list)
//! audience = ["api"]                          # `aud` must contain one of these
//! leeway = "30s"                              # clock skew allowed on exp/nbf/iat
//! require = ["sub", "exp"]                    # claims that must be present
//! claims = { role = ["admin", "ops"] }        # required values: 403 otherwise
//! token-from = ["header:authorization", "cookie:session", "query:access_token"]
//! forward-claims = { sub = "x-user" }         # upstream headers (client copies dropped)
//! context-claims = ["sub"]                    # into the request context as jwt.<claim>
//! strip-token = true                          # drop the Authorization header upstream
//! realm = "api"
//! verified-cache = 4096                      # public-key checks remembered per instance; 0: off
//! ```

mod claims;
mod jwks;
mod keys;
mod token;
mod verified;

use claims::{Refusal, Rules};
use keys::{Alg, Jwk, Key};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};
use token::Token;
use verified::{By, Verified};
use weir_sdk::{clock, header, metrics, units, Action, Config, Filter, LocalResponse, Request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    algorithms: Vec<String>,
    #[serde(default)]
    keys: Vec<KeySettings>,
    jwks_url: Option<String>,
    jwks_refresh: Option<units::Duration>,
    #[serde(default)]
    issuer: OneOrMany,
    #[serde(default)]
    audience: OneOrMany,
    leeway: Option<units::Duration>,
    #[serde(default)]
    require: Vec<String>,
    #[serde(default)]
    claims: BTreeMap<String, OneOrMany>,
    #[serde(default = "default_sources")]
    token_from: Vec<String>,
    #[serde(default)]
    forward_claims: BTreeMap<String, String>,
    #[serde(default = "default_context")]
    context_claims: Vec<String>,
    #[serde(default = "yes")]
    strip_token: bool,
    #[serde(default = "default_realm")]
    realm: String,
    #[serde(default = "default_verified_cache")]
    verified_cache: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySettings {
    kid: Option<String>,
    pem: Option<String>,
    jwk: Option<serde_json::Value>,
    secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

impl OneOrMany {
    fn list(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
            OneOrMany::None => Vec::new(),
        }
    }
}

fn default_sources() -> Vec<String> {
    vec!["header:authorization".into()]
}

fn default_context() -> Vec<String> {
    vec!["sub".into()]
}

fn default_realm() -> String {
    "api".into()
}

fn default_verified_cache() -> usize {
    4096
}

fn yes() -> bool {
    true
}

/// Where a token is read from.
enum Source {
    /// `Authorization: Bearer <token>`.
    Bearer,
    Header(String),
    Cookie(String),
    Query(String),
}

pub struct AuthJwt {
    algorithms: Vec<Alg>,
    keys: Vec<Key>,
    jwks: Option<jwks::Jwks>,
    rules: Rules,
    sources: Vec<Source>,
    forward: Vec<(String, String)>,
    context: Vec<String>,
    strip: bool,
    realm: String,
    verified: Verified,
}

/// What went wrong with a request's token.
enum Failure {
    Missing,
    Invalid(&'static str),
    Forbidden(String),
    NoKeys,
}

fn static_key(i: usize, k: KeySettings) -> Result<Key, String> {
    let at = |why: String| format!("keys[{i}]: {why}");
    match (k.pem, k.jwk, k.secret) {
        (Some(pem), None, None) => Key::from_pem(&pem, k.kid).map_err(|e| at(format!("pem {e}"))),
        (None, Some(jwk), None) => {
            let jwk: Jwk = serde_json::from_value(jwk).map_err(|e| at(format!("jwk: {e}")))?;
            let mut key = Key::from_jwk(&jwk)
                .map_err(|e| at(format!("jwk {e}")))?
                .ok_or_else(|| at("jwk is for encryption (use: enc), not signatures".into()))?;
            if k.kid.is_some() {
                key.kid = k.kid;
            }
            Ok(key)
        }
        (None, None, Some(secret)) => {
            if secret.len() < 32 {
                return Err(at(
                    "secret: at least 32 bytes (RFC 7518 §3.2 wants the hash size)".into(),
                ));
            }
            Ok(Key {
                kid: k.kid,
                alg: None,
                material: keys::Material::Secret(secret.into_bytes()),
            })
        }
        _ => Err(at("give exactly one of pem, jwk or secret".into())),
    }
}

fn source(i: usize, text: &str) -> Result<Source, String> {
    let named = |p: &str| {
        text.strip_prefix(p)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    };
    if text.eq_ignore_ascii_case("header:authorization") {
        Ok(Source::Bearer)
    } else if let Some(h) = named("header:") {
        header::validate_name(&h).map_err(|e| format!("token-from[{i}]: {e}"))?;
        Ok(Source::Header(h.to_ascii_lowercase()))
    } else if let Some(c) = named("cookie:") {
        Ok(Source::Cookie(c))
    } else if let Some(q) = named("query:") {
        Ok(Source::Query(q))
    } else {
        Err(format!(
            "token-from[{i}]: {text:?} is not header:<name>, cookie:<name> or query:<name>"
        ))
    }
}

impl AuthJwt {
    /// The token, from the first source that has one; `Err` for an ambiguous request.
    fn find_token(&self, req: &Request) -> Result<Option<(String, usize)>, Failure> {
        for (i, s) in self.sources.iter().enumerate() {
            let found = match s {
                Source::Bearer => {
                    let all = req.header_all("authorization");
                    match all.as_slice() {
                        [] => None,
                        [one] => {
                            let (scheme, token) = one.trim().split_once(' ').ok_or(
                                Failure::Invalid("the Authorization header is not a Bearer token"),
                            )?;
                            if !scheme.eq_ignore_ascii_case("bearer") {
                                return Err(Failure::Invalid(
                                    "the Authorization header is not a Bearer token",
                                ));
                            }
                            Some(token.trim().to_string())
                        }
                        _ => return Err(Failure::Invalid("more than one Authorization header")),
                    }
                }
                Source::Header(h) => req.header(h),
                Source::Cookie(c) => req.cookie(c),
                Source::Query(q) => req.query().and_then(|query| {
                    query
                        .split('&')
                        .filter_map(|p| p.split_once('='))
                        .find(|(n, _)| n == q)
                        .map(|(_, v)| v.to_string())
                }),
            };
            if let Some(t) = found.filter(|t| !t.is_empty()) {
                return Ok(Some((t, i)));
            }
        }
        Ok(None)
    }

    fn verify(&self, text: &str) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
        let token = Token::decode(text, &self.algorithms).map_err(Failure::Invalid)?;
        // HMAC costs what the digest would: only public-key checks are remembered.
        let digest = (!token.alg.is_hmac())
            .then(|| self.verified.digest(text))
            .flatten();
        let jwks_version = self.jwks.as_ref().map(jwks::Jwks::version);
        let remembered = digest.is_some_and(|d| self.verified.holds(&d, jwks_version));
        if !remembered {
            let by = self.verify_signature(&token)?;
            metrics::counter_add("signatures-verified", 1);
            if let Some(d) = digest {
                self.verified.remember(d, by);
            }
        }
        let now = clock::system_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match self.rules.check(&token.claims, now) {
            Ok(()) => Ok(token.claims),
            Err(Refusal::Invalid(why)) => Err(Failure::Invalid(why)),
            Err(Refusal::Forbidden(why)) => Err(Failure::Forbidden(why)),
        }
    }

    /// Check `token`'s signature with the configured keys, then the JWKS: which verified it.
    fn verify_signature(&self, token: &Token) -> Result<By, Failure> {
        let fits = |keys: &[Key]| {
            keys.iter()
                .filter(|k| token.kid.is_none() || k.kid.is_none() || k.kid == token.kid)
                .any(|k| k.verify(token.alg, token.signing_input.as_bytes(), &token.signature))
        };
        if fits(&self.keys) {
            return Ok(By::Static);
        }
        if let Some(j) = &self.jwks {
            let (ok, have, version) = j.with_keys(token.kid.as_deref(), |keys, version| {
                (fits(keys), !keys.is_empty(), version)
            });
            if !have && self.keys.is_empty() {
                return Err(Failure::NoKeys);
            }
            if ok {
                return Ok(By::Jwks(version));
            }
        }
        Err(Failure::Invalid("the token's signature does not verify"))
    }

    fn refuse(&self, f: Failure) -> Action {
        let (status, challenge, body) = match f {
            Failure::Missing => (
                401,
                format!("Bearer realm=\"{}\"", self.realm),
                "unauthorized\n".to_string(),
            ),
            Failure::Invalid(why) => (
                401,
                format!(
                    "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{why}\"",
                    self.realm
                ),
                "unauthorized\n".to_string(),
            ),
            Failure::Forbidden(why) => (
                403,
                format!(
                    "Bearer realm=\"{}\", error=\"insufficient_scope\"",
                    self.realm
                ),
                format!("forbidden: {why}\n"),
            ),
            Failure::NoKeys => {
                metrics::counter_add("no-keys", 1);
                return Action::respond_text(503, "signing keys are unavailable\n");
            }
        };
        metrics::counter_add(
            if status == 401 {
                "refused"
            } else {
                "forbidden"
            },
            1,
        );
        Action::Respond(LocalResponse::text(status, body).header("www-authenticate", challenge))
    }
}

impl Filter for AuthJwt {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if s.algorithms.is_empty() {
            return Err(format!(
                "algorithms: name the accepted ones ({})",
                Alg::NAMES
            ));
        }
        let algorithms = s
            .algorithms
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Alg::parse(a).ok_or_else(|| {
                    format!(
                        "algorithms[{i}]: {a:?} is not accepted (supported: {})",
                        Alg::NAMES
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let keys = s
            .keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| static_key(i, k))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, k) in keys.iter().enumerate() {
            if !algorithms.iter().any(|a| k.fits(*a)) {
                return Err(format!(
                    "keys[{i}]: cannot verify any of the algorithms listed"
                ));
            }
        }
        if keys.is_empty() && s.jwks_url.is_none() {
            return Err("keys or jwks-url: give the keys tokens are verified with".into());
        }
        if let Some(u) = &s.jwks_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(format!("jwks-url: {u:?} is not an http(s) URL"));
            }
        }
        let refresh = s.jwks_refresh.map_or(Duration::from_secs(600), |d| d.get());
        if s.realm
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(format!(
                "realm: {:?} may not hold quotes, backslashes or control characters",
                s.realm
            ));
        }
        for (claim, h) in &s.forward_claims {
            header::validate_name(h).map_err(|e| format!("forward-claims.{claim}: {e}"))?;
        }
        let sources = s
            .token_from
            .iter()
            .enumerate()
            .map(|(i, t)| source(i, t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuthJwt {
            algorithms,
            keys,
            jwks: s.jwks_url.map(|u| jwks::Jwks::new(u, refresh)),
            rules: Rules {
                leeway: s.leeway.map_or(0, |d| d.get().as_secs()),
                issuers: s.issuer.list(),
                audiences: s.audience.list(),
                required: s.require,
                values: s.claims.into_iter().map(|(k, v)| (k, v.list())).collect(),
            },
            sources,
            forward: s
                .forward_claims
                .into_iter()
                .map(|(c, h)| (c, h.to_ascii_lowercase()))
                .collect(),
            context: s.context_claims,
            strip: s.strip_token,
            realm: s.realm,
            verified: Verified::new(s.verified_cache),
        })
    }

    fn on_request(&self, req: &mut Request) -> Action {
        // Claims reach the upstream only from a verified token.
        for (_, h) in &self.forward {
            req.remove_header(h);
        }
        let (text, from) = match self.find_token(req) {
            Ok(Some(found)) => found,
            Ok(None) => return self.refuse(Failure::Missing),
            Err(f) => return self.refuse(f),
        };
        let claims = match self.verify(&text) {
            Ok(c) => c,
            Err(f) => return self.refuse(f),
        };
        let text_of = |name: &str| {
            claims.get(name).and_then(|v| match v {
                serde_json::Value::Array(items) => {
                    let parts: Vec<String> = items.iter().filter_map(claims::scalar).collect();
                    Some(parts.join(","))
                }
                v => claims::scalar(v),
            })
        };
        for (claim, h) in &self.forward {
            if let Some(v) = text_of(claim) {
                if req.set_header(h, &v).is_err() {
                    return self.refuse(Failure::Invalid(
                        "a forwarded claim is not a valid header value",
                    ));
                }
            }
        }
        for claim in &self.context {
            if let Some(v) = text_of(claim) {
                let _ = req.set_context(&format!("jwt.{claim}"), &v);
            }
        }
        if self.strip && matches!(self.sources.get(from), Some(Source::Bearer)) {
            req.remove_header("authorization");
        }
        Action::Continue
    }
}

weir_sdk::export_filter!(AuthJwt);

#[cfg(test)]
mod tests;
