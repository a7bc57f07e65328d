//! `auth-basic`: HTTP Basic authentication (RFC 7617) against htpasswd-style users.
//!
//! ```toml
//! [filters.staff]
//! plugin = "auth-basic.wasm"
//! cpu-deadline = "250ms"          # a hash check takes milliseconds by design (see below)
//! [filters.staff.config]
//! realm = "staff"
//! users = [                       # htpasswd lines: bcrypt, argon2id, SHA-256/512-crypt
//!   "ada:$2y$10$...",
//!   "bob:$argon2id$v=19$m=19456,t=2,p=1$...",
//! ]
//! allow-plain = false             # true: accept "name:password" lines (don't)
//! cache-ttl = "5m"                # successful checks remembered this long; false: never
//! forward-user = "x-remote-user"  # header the upstream gets with the user; default none
//! strip-authorization = true      # drop the credentials before the upstream; default true
//! ```
//! A slow hash is what makes a stolen password file useless, so a check costs what the hash
//! costs (bcrypt cost 10: about 50-100 ms). A successful check is remembered in the filter's
//! store under an HMAC of the user, the password and the stored hash (so changing a hash
//! forgets it), with a per-filter random key: the hot path is one HMAC and one store read.
//! Failed checks are never remembered: put a `rate-limit` before this filter.

mod users;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::time::Duration;
use users::User;
use weir_sdk::{
    header, kv, metrics, random, units, Action, Config, Filter, LocalResponse, Request,
};

/// Longest `Authorization` header considered; longer ones are refused unread.
const MAX_AUTHORIZATION: usize = 4096;
/// Store key of the per-filter HMAC key.
const SECRET_KEY: &str = "hmac-key";
/// Request context property naming the authenticated user.
pub const CONTEXT_USER: &str = "auth.user";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default = "default_realm")]
    realm: String,
    users: Vec<String>,
    #[serde(default)]
    allow_plain: bool,
    #[serde(default)]
    cache_ttl: CacheTtl,
    forward_user: Option<String>,
    #[serde(default = "yes")]
    strip_authorization: bool,
}

/// `"5m"`, or `false` for no cache.
#[derive(Deserialize)]
#[serde(untagged)]
enum CacheTtl {
    Off(bool),
    Ttl(units::Duration),
}

impl Default for CacheTtl {
    fn default() -> Self {
        CacheTtl::Ttl("5m".parse().unwrap_or_else(|_| unreachable!()))
    }
}

fn default_realm() -> String {
    "restricted".into()
}

fn yes() -> bool {
    true
}

pub struct AuthBasic {
    users: HashMap<String, User>,
    /// Checked when the user is unknown, so that a wrong name costs what a wrong password
    /// does (no user enumeration by timing).
    decoy: User,
    challenge: String,
    cache_ttl: Option<Duration>,
    secret: Vec<u8>,
    forward_user: Option<String>,
    strip_authorization: bool,
}

/// The user and password of a `Basic` `Authorization` value.
fn credentials(value: &str) -> Option<(String, String)> {
    if value.len() > MAX_AUTHORIZATION {
        return None;
    }
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// This filter's HMAC key, shared by its instances through the store (the first instance
/// makes it; a race between two first instances only costs a cache miss).
fn shared_secret() -> Vec<u8> {
    if let Some(k) = kv::get(SECRET_KEY) {
        return k;
    }
    let fresh = random::bytes(32);
    let _ = kv::set(SECRET_KEY, &fresh, None);
    kv::get(SECRET_KEY).unwrap_or(fresh)
}

impl AuthBasic {
    fn cache_key(&self, user: &str, password: &str, stored: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return String::new();
        };
        for part in [user, password, stored] {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part.as_bytes());
        }
        let tag = mac.finalize().into_bytes();
        let mut key = String::from("ok:");
        for b in tag.iter().take(16) {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }

    /// The user, if the credentials are right.
    fn authenticate(&self, value: &str) -> Option<String> {
        let (name, password) = credentials(value)?;
        let Some(user) = self.users.get(&name) else {
            let _ = self.decoy.verify(&password);
            return None;
        };
        let key = self
            .cache_ttl
            .map(|_| self.cache_key(&name, &password, &user.stored));
        if let Some(k) = &key {
            if kv::get(k).is_some() {
                metrics::counter_add("cache-hits", 1);
                return Some(name);
            }
        }
        if !user.verify(&password) {
            return None;
        }
        if let (Some(k), Some(ttl)) = (key, self.cache_ttl) {
            let _ = kv::set(&k, b"1", Some(ttl));
        }
        Some(name)
    }

    fn refuse(&self) -> Action {
        metrics::counter_add("refused", 1);
        Action::Respond(
            LocalResponse::text(401, "unauthorized\n")
                .header("www-authenticate", self.challenge.clone()),
        )
    }
}

impl Filter for AuthBasic {
    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if s.realm.is_empty()
            || s.realm
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(format!(
                "realm: {:?} must be non-empty, without quotes, backslashes or control characters",
                s.realm
            ));
        }
        if let Some(h) = &s.forward_user {
            header::validate_name(h).map_err(|e| format!("forward-user: {e}"))?;
        }
        let users = users::parse(&s.users, s.allow_plain)?;
        let decoy = users
            .values()
            .max_by_key(|u| u.stored.len())
            .cloned()
            .ok_or("users: name at least one user")?;
        Ok(AuthBasic {
            users,
            decoy,
            challenge: format!("Basic realm=\"{}\", charset=\"UTF-8\"", s.realm),
            cache_ttl: match s.cache_ttl {
                CacheTtl::Ttl(d) => Some(d.get()),
                CacheTtl::Off(false) => None,
                CacheTtl::Off(true) => {
                    return Err("cache-ttl: a duration such as \"5m\", or false".into())
                }
            },
            secret: shared_secret(),
            forward_user: s.forward_user.map(|h| h.to_ascii_lowercase()),
            strip_authorization: s.strip_authorization,
        })
    }

    fn on_request(&self, req: &mut Request) -> Action {
        // Whatever the client says about the user is never believed.
        if let Some(h) = &self.forward_user {
            req.remove_header(h);
        }
        let values = req.header_all("authorization");
        let user = match values.as_slice() {
            [one] => self.authenticate(one),
            // None, or several (ambiguous): refused.
            _ => None,
        };
        let Some(user) = user else {
            return self.refuse();
        };
        if self.strip_authorization {
            req.remove_header("authorization");
        }
        if let Some(h) = &self.forward_user {
            if req.set_header(h, &user).is_err() {
                // A name that cannot be a header value (control characters) is not forwarded.
                return self.refuse();
            }
        }
        let _ = req.set_context(CONTEXT_USER, &user);
        Action::Continue
    }
}

weir_sdk::export_filter!(AuthBasic);

#[cfg(test)]
mod tests {
    use super::*;
    use users::tests::{ARGON2, BCRYPT, SHA256};
    use weir_sdk::testing::{self, MockRequest};

    fn basic(user: &str, pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    }

    fn filter(extra: &str) -> AuthBasic {
        testing::reset_kv();
        let cfg =
            format!(r#"{{"realm":"staff","users":["{BCRYPT}","{ARGON2}","{SHA256}"]{extra}}}"#);
        testing::init::<AuthBasic>(&cfg).unwrap()
    }

    fn call(f: &AuthBasic, auth: Option<&str>) -> (Action, MockRequest) {
        let mut req = MockRequest::get("/").with_header("x-remote-user", "forged");
        if let Some(a) = auth {
            req = req.with_header("authorization", a);
        }
        (testing::on_request(f, &mut req), req)
    }

    #[test]
    fn right_credentials_pass_and_are_forwarded_as_the_user_only() {
        let f = filter(r#","forward-user":"X-Remote-User""#);
        for (u, p) in [("ada", "s3cret"), ("bob", "hunter2"), ("cy", "pa55")] {
            let (act, mut req) = call(&f, Some(&basic(u, p)));
            testing::assert_continues(&act);
            let r = req.request();
            assert_eq!(r.header("x-remote-user").as_deref(), Some(u));
            assert_eq!(r.header("authorization"), None, "stripped");
            assert_eq!(r.context(CONTEXT_USER).as_deref(), Some(u));
        }
        // Scheme names are case-insensitive.
        let (act, _) = call(&f, Some(&basic("ada", "s3cret").replace("Basic", "bAsIc")));
        testing::assert_continues(&act);
    }

    #[test]
    fn wrong_missing_or_odd_credentials_get_401_with_the_challenge() {
        let f = filter("");
        let bad = [
            None,
            Some(basic("ada", "wrong")),
            Some(basic("nobody", "s3cret")),
            Some(basic("ada", "")),
            Some("Bearer abc".into()),
            Some("Basic !!!notbase64".into()),
            Some("Basic".into()),
            Some(format!("Basic {}", "A".repeat(5000))),
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x'])
            )),
        ];
        for auth in bad {
            let (act, _) = call(&f, auth.as_deref());
            let resp = testing::assert_responds(&act, 401);
            assert_eq!(
                resp.header_value("www-authenticate"),
                Some("Basic realm=\"staff\", charset=\"UTF-8\""),
                "{auth:?}"
            );
        }
        // Two Authorization headers: ambiguous, refused even if one is right.
        let mut req = MockRequest::get("/")
            .with_header("authorization", &basic("ada", "s3cret"))
            .with_header("authorization", &basic("bob", "x"));
        testing::assert_responds(&testing::on_request(&f, &mut req), 401);
    }

    #[test]
    fn a_success_is_cached_and_the_cache_is_keyed_by_the_password_and_hash() {
        let f = filter("");
        let _ = testing::take_metrics();
        for _ in 0..3 {
            testing::assert_continues(&call(&f, Some(&basic("ada", "s3cret"))).0);
        }
        assert_eq!(testing::take_metrics().0["cache-hits"], 2);
        // A wrong password is not helped by the cached right one.
        testing::assert_responds(&call(&f, Some(&basic("ada", "s3cret2"))).0, 401);
        let key = f.cache_key("ada", "s3cret", &f.users["ada"].stored);
        assert!(kv::get(&key).is_some());
        assert_ne!(key, f.cache_key("ada", "s3cret", "$2y$04$other"));
        // Without a cache, every check runs the hash.
        let f = filter(r#","cache-ttl":false"#);
        testing::assert_continues(&call(&f, Some(&basic("ada", "s3cret"))).0);
        testing::assert_continues(&call(&f, Some(&basic("ada", "s3cret"))).0);
        assert!(!testing::take_metrics().0.contains_key("cache-hits"));
    }

    #[test]
    fn configs_are_checked() {
        let err = |cfg: &str| testing::init::<AuthBasic>(cfg).err().unwrap();
        assert!(err(&format!(r#"{{"realm":"a\"b","users":["{BCRYPT}"]}}"#)).contains("realm"));
        assert!(err(r#"{"users":["x:plain"]}"#).contains("allow-plain"));
        assert!(err(&format!(
            r#"{{"users":["{BCRYPT}"],"forward-user":"bad name"}}"#
        ))
        .contains("forward-user"));
        assert!(
            err(&format!(r#"{{"users":["{BCRYPT}"],"cache-ttl":true}}"#)).contains("cache-ttl")
        );
        assert!(
            err(&format!(r#"{{"users":["{BCRYPT}"],"cache-ttl":"1.5m"}}"#)).contains("cache-ttl")
        );
    }
}
