//! Sticky sessions: the proxy sets a cookie naming the target that served a client, and
//! later requests carrying it go to the same target while it is eligible. The value is
//! HMAC-SHA256 of the target's address (truncated to 128 bits) under a key that is random per
//! process unless the manifest sets `sticky-secret`, so it neither reveals the address nor
//! lets a client confirm a guess of it.

use super::Target;
use hmac::Mac as _;

/// The cookie values of an upstream's targets.
#[derive(Debug)]
pub struct Sticky {
    /// Cookie name.
    pub cookie: String,
    values: Vec<String>,
}

impl Sticky {
    /// Values for `targets`, keyed by `secret`.
    pub fn new(cookie: String, secret: &str, targets: &[Target]) -> Self {
        let values = targets
            .iter()
            .map(|t| {
                // HMAC takes keys of any length: `new_from_slice` cannot fail.
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                    .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
                mac.update(t.authority.as_str().as_bytes());
                let tag = mac.finalize().into_bytes();
                crate::hex::encode(tag.get(..16).unwrap_or(&tag))
            })
            .collect();
        Sticky { cookie, values }
    }

    /// The target index a request's cookie names, if any.
    pub fn target(&self, headers: &http::HeaderMap) -> Option<usize> {
        let value = cookie(headers, &self.cookie)?;
        self.values.iter().position(|v| v == value)
    }

    /// The `Set-Cookie` value pinning a client to target `index`.
    pub fn set_cookie(&self, index: usize) -> Option<http::HeaderValue> {
        let v = self.values.get(index)?;
        http::HeaderValue::from_str(&format!(
            "{}={v}; Path=/; HttpOnly; SameSite=Lax",
            self.cookie
        ))
        .ok()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::super::targets;
    use super::*;

    #[test]
    fn cookies_name_targets_without_revealing_them() {
        let t = targets(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 1)]);
        let s = Sticky::new("weir-sticky".into(), "secret", &t);
        let set = s.set_cookie(1).unwrap();
        let set = set.to_str().unwrap();
        assert!(!set.contains("10.0.0.2"), "{set}");
        let value = set.split(';').next().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            format!("other=1; {value}").parse().unwrap(),
        );
        assert_eq!(s.target(&h), Some(1));
        let other_key = Sticky::new("weir-sticky".into(), "other", &t);
        assert_eq!(other_key.target(&h), None, "another secret, other values");
        assert_eq!(cookie(&h, "other"), Some("1"));
    }
}
