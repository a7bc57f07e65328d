//! Target health: active checks (HTTP or TCP, on an interval, with rise/fall thresholds) and
//! passive outlier ejection (consecutive connect failures or 5xx answers eject a target for
//! a cooldown, never more than a maximum share of the upstream at once). Balancers only pick
//! targets that are up and not ejected; when none is, the request gets 503 at once.

use crate::upstream::Upstream;
use http_body_util::BodyExt as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Active checking of an upstream's targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCheck {
    /// `Some(path)`: an HTTP GET of this path; `None`: a TCP connect.
    pub path: Option<String>,
    /// Status an HTTP check expects; `None`: any 2xx.
    pub expect_status: Option<u16>,
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// Consecutive successes that bring a down target up.
    pub rise: u32,
    /// Consecutive failures that take an up target down.
    pub fall: u32,
}

/// Passive outlier ejection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passive {
    /// Consecutive failures (connect errors, 5xx) that eject a target.
    pub consecutive_failures: u32,
    /// How long an ejected target is left out.
    pub cooldown: Duration,
    /// Most targets ejected at once, in percent of the upstream's targets.
    pub max_ejected_percent: u32,
}

impl Default for Passive {
    fn default() -> Self {
        Passive {
            consecutive_failures: 5,
            cooldown: Duration::from_secs(30),
            max_ejected_percent: 50,
        }
    }
}

/// One target's health state.
#[derive(Debug)]
pub struct Health {
    /// Up per the active check (up until a check says otherwise).
    up: AtomicBool,
    /// Consecutive active-check results in the direction of a change.
    streak: AtomicU32,
    /// Consecutive passive failures.
    failures: AtomicU32,
    /// Ejected until this many nanoseconds after [`epoch`]; 0 when not ejected.
    ejected_until: AtomicU64,
    /// Drained by the operator: no new requests.
    drained: AtomicBool,
}

/// Targets drained from the admin endpoint, as (upstream, `host:port`): kept across reloads.
fn drained_targets() -> &'static std::sync::Mutex<std::collections::HashSet<(String, String)>> {
    static DRAINED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    > = std::sync::OnceLock::new();
    DRAINED.get_or_init(Default::default)
}

/// Remember that `target` of `upstream` is drained (or no longer is).
pub fn set_drained(upstream: &str, target: &str, drained: bool) {
    let mut set = drained_targets().lock().unwrap_or_else(|p| p.into_inner());
    let key = (upstream.to_string(), target.to_string());
    if drained {
        set.insert(key);
    } else {
        set.remove(&key);
    }
}

/// Whether `target` of `upstream` was drained.
pub fn is_drained(upstream: &str, target: &str) -> bool {
    let set = drained_targets().lock().unwrap_or_else(|p| p.into_inner());
    set.contains(&(upstream.to_string(), target.to_string()))
}

impl Default for Health {
    fn default() -> Self {
        Health {
            up: AtomicBool::new(true),
            streak: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            drained: AtomicBool::new(false),
        }
    }
}

/// A process-wide reference instant for ejection deadlines.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

impl Health {
    /// Whether the target may take requests now.
    pub fn eligible(&self) -> bool {
        self.up.load(Ordering::Relaxed) && !self.ejected() && !self.drained()
    }

    /// Drained by the operator.
    pub fn drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    /// Drain (no new requests) or undrain.
    pub fn set_drained(&self, drained: bool) {
        self.drained.store(drained, Ordering::Relaxed);
    }

    /// Up per the active check.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Ejected by passive checks right now.
    pub fn ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && now_ns() < until
    }

    /// Record an active check result; returns the new state if it changed.
    pub fn active_result(&self, ok: bool, check: &ActiveCheck) -> Option<bool> {
        let up = self.up.load(Ordering::Relaxed);
        if ok == up {
            self.streak.store(0, Ordering::Relaxed);
            return None;
        }
        let n = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
        let needed = if ok { check.rise } else { check.fall };
        if n >= needed {
            self.up.store(ok, Ordering::Relaxed);
            self.streak.store(0, Ordering::Relaxed);
            return Some(ok);
        }
        None
    }

    /// Record a request's outcome; a failure streak may eject the target if `may_eject`.
    /// Returns true when this call ejected it.
    pub fn passive_result(&self, ok: bool, passive: &Passive, may_eject: bool) -> bool {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            return false;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= passive.consecutive_failures && may_eject && !self.ejected() {
            let until = now_ns() + passive.cooldown.as_nanos() as u64;
            self.ejected_until.store(until.max(1), Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Run the active checks of `upstream` until it is dropped (a reload replaced it). Targets
/// are probed concurrently.
pub async fn run_active(upstream: Weak<Upstream>, check: ActiveCheck) {
    let Some(transport) = upstream.upgrade().map(|u| u.transport.clone()) else {
        return;
    };
    let client = crate::upstream::pool::client_for(
        check.timeout,
        crate::upstream::pool::POOL_IDLE_TIMEOUT,
        &transport,
        None,
    );
    let scheme = transport.scheme();
    loop {
        let Some(up) = upstream.upgrade() else { return };
        let probes: Vec<_> = up
            .targets()
            .iter()
            .map(|t| {
                tokio::spawn(probe(
                    client.clone(),
                    scheme.clone(),
                    t.authority.clone(),
                    check.clone(),
                ))
            })
            .collect();
        drop(up);
        let mut results = Vec::with_capacity(probes.len());
        for p in probes {
            results.push(p.await.unwrap_or(false));
        }
        let Some(up) = upstream.upgrade() else { return };
        for (target, ok) in up.targets().iter().zip(results) {
            match target.health.active_result(ok, &check) {
                Some(true) => {
                    tracing::info!(upstream = up.name(), target = %target.authority, "target is up again (active check)")
                }
                Some(false) => {
                    tracing::warn!(upstream = up.name(), target = %target.authority, "target is down: {} active checks failed", check.fall)
                }
                None => {}
            }
        }
        drop(up);
        tokio::time::sleep(check.interval).await;
    }
}

/// One check of one target.
async fn probe(
    client: crate::upstream::pool::UpstreamClient,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    check: ActiveCheck,
) -> bool {
    let attempt = async {
        match &check.path {
            None => tokio::net::TcpStream::connect(authority.as_str())
                .await
                .is_ok(),
            Some(path) => {
                let uri = format!("{scheme}://{authority}{path}");
                let Ok(req) = http::Request::get(uri)
                    .header(http::header::USER_AGENT, "weir-health-check")
                    .body(crate::body::Body::empty())
                else {
                    return false;
                };
                match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        match check.expect_status {
                            Some(s) => status.as_u16() == s,
                            None => status.is_success(),
                        }
                    }
                    Err(_) => false,
                }
            }
        }
    };
    tokio::time::timeout(check.timeout, attempt)
        .await
        .unwrap_or(false)
}

/// Start the active checks of every upstream that has them, on the current runtime.
pub fn start(upstreams: &[Arc<Upstream>]) {
    for u in upstreams {
        if let Some(check) = u.active_check().cloned() {
            tokio::spawn(run_active(Arc::downgrade(u), check));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> ActiveCheck {
        ActiveCheck {
            path: None,
            expect_status: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let h = Health::default();
        let c = check();
        assert_eq!(h.active_result(false, &c), None);
        assert_eq!(h.active_result(false, &c), None);
        assert_eq!(
            h.active_result(true, &c),
            None,
            "a success breaks the streak"
        );
        assert_eq!(h.active_result(false, &c), None);
        assert_eq!(h.active_result(false, &c), None);
        assert_eq!(h.active_result(false, &c), Some(false));
        assert!(!h.eligible());
        assert_eq!(h.active_result(true, &c), None);
        assert_eq!(h.active_result(true, &c), Some(true));
        assert!(h.eligible());
    }

    #[test]
    fn passive_failures_eject_for_a_cooldown() {
        let h = Health::default();
        let p = Passive {
            consecutive_failures: 2,
            cooldown: Duration::from_millis(30),
            max_ejected_percent: 50,
        };
        assert!(!h.passive_result(false, &p, true));
        assert!(!h.passive_result(true, &p, true), "success resets");
        assert!(!h.passive_result(false, &p, true));
        assert!(
            !h.passive_result(false, &p, false),
            "not allowed: over the ejected share"
        );
        assert!(h.eligible());
        assert!(h.passive_result(false, &p, true));
        assert!(!h.eligible() && h.ejected());
        std::thread::sleep(Duration::from_millis(40));
        assert!(h.eligible(), "back after the cooldown");
    }
}
