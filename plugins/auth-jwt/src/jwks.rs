//! Keys from a JWKS URL: fetched through outbound HTTP(S), kept in the filter's store so
//! every instance and worker shares one copy, refreshed every `jwks-refresh` by whichever
//! instance first sees it due (a lock in the store keeps the others from fetching too). A
//! failed refresh keeps the last good keys and is retried after `RETRY`. A token naming a
//! `kid` no key has triggers an early refresh, at most once per `RETRY`.
//!
//! Store layout: `jwks:body` the last good JWKS document, `jwks:version` a counter bumped
//! when it changes, `jwks:next` when (Unix ms) to refresh next, `jwks:lock` the refresher.

use super::keys::{Jwk, Key};
use serde::Deserialize;
use std::cell::RefCell;
use std::time::{Duration, UNIX_EPOCH};
use weir_sdk::http_client::HttpRequest;
use weir_sdk::{clock, kv, log, Level};

/// Wait before retrying a failed refresh, or refreshing early for an unknown `kid`.
pub const RETRY: Duration = Duration::from_secs(30);
/// How often an instance looks at the store for a newer key set.
const LOOK_EVERY_MS: u64 = 1000;

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// Parse a JWKS document into keys; keys of unsupported types are skipped, but a document
/// with no usable key is an error.
pub fn parse(body: &[u8]) -> Result<Vec<Key>, String> {
    let doc: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, raw) in doc.keys.into_iter().enumerate() {
        let parsed = serde_json::from_value::<Jwk>(raw)
            .map_err(|e| e.to_string())
            .and_then(|jwk| Key::from_jwk(&jwk));
        match parsed {
            Ok(Some(k)) => keys.push(k),
            Ok(None) => {}
            Err(why) => skipped.push(format!("keys[{i}]: {why}")),
        }
    }
    if keys.is_empty() {
        return Err(format!("no usable signing key ({})", skipped.join("; ")));
    }
    Ok(keys)
}

fn now_ms() -> u64 {
    clock::system_time()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn read_u64(key: &str) -> u64 {
    kv::get(key)
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One instance's view of the JWKS.
pub struct Jwks {
    url: String,
    refresh: Duration,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    keys: Vec<Key>,
    version: u64,
    looked_ms: u64,
    kid_miss_ms: u64,
}

impl Jwks {
    pub fn new(url: String, refresh: Duration) -> Self {
        Jwks {
            url,
            refresh,
            state: RefCell::default(),
        }
    }

    /// Fetch now, if no other instance is: store the document if it has usable keys.
    fn refresh_now(&self, now: u64) {
        let Ok(lock) = kv::incr_window("jwks:lock", 1, Duration::from_secs(10)) else {
            return;
        };
        if lock.value != 1 {
            return; // another instance is at it
        }
        let fetched = HttpRequest::get(&self.url)
            .header("accept", "application/json")
            .send()
            .map_err(|e| e.to_string())
            .and_then(|r| match r.status {
                200 => Ok(r.body),
                s => Err(format!("answered {s}")),
            })
            .and_then(|body| parse(&body).map(|_| body));
        let next = match fetched {
            Ok(body) => {
                let changed = kv::get("jwks:body").is_none_or(|old| old != body);
                if changed && kv::set("jwks:body", &body, None).is_ok() {
                    let _ = kv::incr("jwks:version", 1, None);
                }
                now.saturating_add(ms(self.refresh))
            }
            Err(why) => {
                log(
                    Level::Warn,
                    &format!(
                        "JWKS refresh from {} failed, keeping the last good keys: {why}",
                        self.url
                    ),
                );
                now.saturating_add(ms(RETRY.min(self.refresh)))
            }
        };
        let _ = kv::set("jwks:next", next.to_string().as_bytes(), None);
        kv::delete("jwks:lock");
    }

    /// Bring this instance's keys up to date with the store (refreshing it when due).
    fn sync(&self, force: bool) {
        let now = now_ms();
        {
            let s = self.state.borrow();
            if !force && now.saturating_sub(s.looked_ms) < LOOK_EVERY_MS && s.version != 0 {
                return;
            }
        }
        if force || now >= read_u64("jwks:next") {
            self.refresh_now(now);
        }
        let version = read_u64("jwks:version");
        let mut s = self.state.borrow_mut();
        s.looked_ms = now;
        if version != s.version {
            if let Some(body) = kv::get("jwks:body") {
                match parse(&body) {
                    Ok(keys) => {
                        s.keys = keys;
                        s.version = version;
                    }
                    Err(why) => log(Level::Error, &format!("stored JWKS unreadable: {why}")),
                }
            }
        }
    }

    /// The version of the keys this instance holds, once brought up to date (0: none yet).
    pub fn version(&self) -> u64 {
        self.sync(false);
        self.state.borrow().version
    }

    /// Run `f` over the current keys and their version; if `kid` is given and no key has
    /// it, refresh early (at most once per `RETRY` per instance) first.
    pub fn with_keys<T>(&self, kid: Option<&str>, f: impl Fn(&[Key], u64) -> T) -> T {
        self.sync(false);
        let known =
            |keys: &[Key]| kid.is_none_or(|k| keys.iter().any(|key| key.kid.as_deref() == Some(k)));
        let missing = !known(&self.state.borrow().keys);
        if missing {
            let now = now_ms();
            let due = now.saturating_sub(self.state.borrow().kid_miss_ms) >= ms(RETRY);
            if due {
                self.state.borrow_mut().kid_miss_ms = now;
                self.sync(true);
            }
        }
        let s = self.state.borrow();
        f(&s.keys, s.version)
    }
}
