//! Upstream services: their targets, balancing, sticky sessions and timeouts. Shared by all
//! workers; each worker has its own connection pool per upstream (see [`pool`]).

pub mod body;
pub mod counted;
pub mod pending;
pub mod pool;
pub mod resolve;
pub mod stats;
pub mod tls;

use crate::balance::sticky::Sticky;
use crate::balance::{Balancer, Lease, RequestKey, Target};
use crate::config::UpstreamConfig;
use crate::health::{ActiveCheck, Passive};
use crate::retry::RetryBudget;
use std::sync::Arc;
use std::time::Duration;

/// A named upstream service.
pub struct Upstream {
    /// Index in the manifest's upstreams (and in each worker's client list).
    pub id: usize,
    name: Arc<str>,
    targets: Vec<Target>,
    balancer: Balancer,
    sticky: Option<Sticky>,
    active: Option<ActiveCheck>,
    passive: Passive,
    /// Further attempts after a retryable failure.
    pub retries: u32,
    /// What happened on the way to it (kept across reloads).
    pub stats: Arc<stats::UpstreamStats>,
    /// The retry budget shared by all requests to this upstream.
    pub retry_budget: RetryBudget,
    max_requests: u64,
    /// Idle timeout of upgraded connections.
    pub upgrade_idle_timeout: Duration,
    /// Protocol and TLS spoken to the targets.
    pub transport: pool::Transport,
    /// Time to wait for the response head.
    pub timeout: Duration,
    /// Time to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Longest silence within a response body.
    pub idle_timeout: Duration,
    /// Time limit of a whole exchange.
    pub overall_timeout: Option<Duration>,
    /// How long idle keep-alive connections are kept.
    pub pool_idle_timeout: Duration,
    /// Time between two resolutions of target host names.
    pub resolve_interval: Duration,
    max_pending: u64,
    pending: pending::PendingCount,
}

/// A target chosen for one request.
pub struct Picked<'a> {
    /// The target, counted in flight while this lives.
    pub lease: Lease<'a>,
    /// A `Set-Cookie` to send back when the client is not yet pinned to this target.
    pub set_cookie: Option<http::HeaderValue>,
}

impl Upstream {
    /// From its validated configuration.
    pub fn new(id: usize, cfg: &UpstreamConfig) -> Self {
        let targets: Vec<Target> = cfg
            .targets
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let t = Target::new(a.clone(), cfg.weights.get(i).copied().unwrap_or(1));
                // A target drained from the admin endpoint stays drained across reloads.
                t.health
                    .set_drained(crate::health::is_drained(&cfg.name, a.as_str()));
                t
            })
            .collect();
        Upstream {
            id,
            name: Arc::from(cfg.name.as_str()),
            stats: stats::for_upstream(&cfg.name),
            balancer: Balancer::new(&cfg.balance, &targets),
            sticky: cfg
                .sticky
                .as_ref()
                .map(|(cookie, secret)| Sticky::new(cookie.clone(), secret, &targets)),
            targets,
            active: cfg.health.clone(),
            passive: cfg.passive.clone(),
            retries: cfg.retries,
            retry_budget: RetryBudget::default(),
            max_requests: cfg.max_requests,
            upgrade_idle_timeout: cfg.upgrade_idle_timeout,
            transport: cfg.transport.clone(),
            timeout: cfg.timeout,
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.idle_timeout,
            overall_timeout: cfg.overall_timeout,
            pool_idle_timeout: cfg.pool_idle_timeout,
            resolve_interval: cfg.resolve_interval,
            max_pending: cfg.max_pending,
            pending: pending::PendingCount::default(),
        }
    }

    /// Its name in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it has an active health check.
    pub fn has_active_check(&self) -> bool {
        self.active.is_some()
    }

    /// Its name, shared (a metrics label).
    pub fn label(&self) -> &Arc<str> {
        &self.name
    }

    /// Its targets, with their live figures.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The host names among its targets (not IP addresses), each once.
    pub fn target_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .targets
            .iter()
            .map(|t| t.authority.host())
            .filter(|h| resolve::is_name(h))
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Its active health check, if configured.
    pub fn active_check(&self) -> Option<&ActiveCheck> {
        self.active.as_ref()
    }

    /// Record how a request to target `index` went: a connect failure, timeout or 5xx is a
    /// failure for passive ejection.
    pub fn report(&self, index: usize, ok: bool) {
        let Some(target) = self.targets.get(index) else {
            return;
        };
        let ejected = self.targets.iter().filter(|t| t.health.ejected()).count();
        let may_eject =
            (ejected + 1) * 100 <= self.passive.max_ejected_percent as usize * self.targets.len();
        if target.health.passive_result(ok, &self.passive, may_eject) {
            tracing::warn!(upstream = %self.name, target = %target.authority, cooldown = ?self.passive.cooldown,
                "target ejected after {} consecutive failures", self.passive.consecutive_failures);
        }
    }

    /// Whether another request would exceed `max-requests` in flight, counting responses
    /// still streaming (circuit breaker).
    pub fn saturated(&self) -> bool {
        let in_flight: u64 = self.targets.iter().map(Target::in_flight).sum();
        in_flight >= self.max_requests
    }

    /// Count a request as waiting for its response head (once its body, if any is still to
    /// come, has been sent), unless `max-pending` are already waiting (circuit breaker:
    /// `None`, answer 503).
    pub fn begin_pending(&self, body_done: bool) -> Option<pending::Pending<'_>> {
        self.pending.begin(self.max_pending, body_done)
    }

    /// The target for a request: the one its sticky cookie names, else the balancer's
    /// choice, among healthy targets not in `tried` (`None` when there is none).
    pub fn pick(&self, req: &RequestKey<'_>, tried: &[usize]) -> Option<Picked<'_>> {
        let eligible = |i: usize| self.targets[i].health.eligible() && !tried.contains(&i);
        if let Some(i) = self
            .sticky
            .as_ref()
            .and_then(|s| s.target(req.headers))
            .filter(|&i| eligible(i))
        {
            return Some(Picked {
                lease: Lease::new(&self.targets[i], i),
                set_cookie: None,
            });
        }
        let i = self.balancer.pick(&self.targets, req, eligible)?;
        Some(Picked {
            lease: Lease::new(&self.targets[i], i),
            set_cookie: self.sticky.as_ref().and_then(|s| s.set_cookie(i)),
        })
    }
}
