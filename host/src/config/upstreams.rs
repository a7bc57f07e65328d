//! Validating `[upstreams.*]`: targets, balancing, health, retries, timeouts, transport.

use super::*;

/// Manifest-wide upstream defaults.
pub(super) struct UpstreamDefaults<'a> {
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) overall_timeout: Option<Duration>,
    /// The manifest's folder (relative file names).
    pub(super) base: &'a Path,
}

impl Validator {
    pub(super) fn transport(
        &mut self,
        name: &str,
        spec: &manifest::UpstreamSpec,
        base: &Path,
    ) -> Transport {
        let field = |f: &str| format!("upstreams.{name}.{f}");
        let tls = spec.tls.as_ref().and_then(|t| {
            let settings = self.upstream_tls(&field("tls"), t.get_ref(), base);
            match crate::upstream::tls::UpstreamTls::load(&settings) {
                Ok(tls) => Some(tls),
                Err(e) => {
                    self.error(t.span(), format!("{}: {e}", field("tls")));
                    None
                }
            }
        });
        let protocol = match spec
            .protocol
            .as_ref()
            .map(|p| (p.get_ref().as_str(), p.span()))
        {
            None | Some(("http1", _)) => Protocol::Http1,
            Some(("h2c", span)) if spec.tls.is_some() => {
                self.error(
                    span,
                    format!(
                        "{}: h2c is cleartext; over tls use h2 or auto",
                        field("protocol")
                    ),
                );
                Protocol::Http1
            }
            Some(("h2c", _)) => Protocol::H2c,
            Some((p @ ("h2" | "auto"), span)) if spec.tls.is_none() => {
                self.error(
                    span,
                    format!(
                        "{}: {p} is negotiated by TLS ALPN and needs tls; for cleartext HTTP/2 use h2c",
                        field("protocol")
                    ),
                );
                Protocol::Http1
            }
            Some(("h2", _)) => Protocol::H2,
            Some(("auto", _)) => Protocol::Auto,
            Some((other, span)) => {
                self.error(
                    span,
                    format!(
                        "{}: {other:?} is not http1, h2c, h2 or auto",
                        field("protocol")
                    ),
                );
                Protocol::Http1
            }
        };
        Transport { protocol, tls }
    }

    pub(super) fn upstream(
        &mut self,
        name: &toml::Spanned<String>,
        spec: &manifest::UpstreamSpec,
        defaults: &UpstreamDefaults<'_>,
    ) -> UpstreamConfig {
        let up = name.get_ref();
        let field = |key: &str| format!("upstreams.{up}.{key}");
        let (targets, weights) = self.targets(spec, &field);
        let balance = self.balance(spec, &field);
        let sticky = self.sticky(spec, &field);
        let health = spec
            .health
            .as_ref()
            .map(|h| self.active_check(h.get_ref(), &field));
        let passive = match &spec.passive {
            None => Passive::default(),
            Some(p) => self.passive(p.get_ref(), &field),
        };
        let retries = spec
            .retries
            .as_ref()
            .and_then(|n| self.in_range(n, &field("retries"), 0..=10))
            .map_or(1, |n| n as u32);
        let max_requests = self.count(
            &spec.max_requests,
            &field("max-requests"),
            10_000,
            1_000_000,
        );
        let max_pending = self.count(&spec.max_pending, &field("max-pending"), 1_000, 1_000_000);
        UpstreamConfig {
            name: up.clone(),
            weights,
            balance,
            sticky,
            retries,
            max_requests: u64::from(max_requests),
            transport: self.transport(up, spec, defaults.base),
            upgrade_idle_timeout: spec
                .upgrade_idle_timeout
                .map_or(crate::upgrade::DEFAULT_IDLE_TIMEOUT, |d| d.0),
            health,
            passive,
            targets,
            timeout: spec.timeout.map_or(defaults.timeout, |d| d.0),
            connect_timeout: spec
                .connect_timeout
                .map_or(defaults.connect_timeout, |d| d.0),
            idle_timeout: spec.idle_timeout.map_or(defaults.idle_timeout, |d| d.0),
            overall_timeout: spec
                .overall_timeout
                .map(|d| d.0)
                .or(defaults.overall_timeout),
            max_pending: u64::from(max_pending),
            pool_idle_timeout: spec
                .pool_idle_timeout
                .map_or(crate::upstream::pool::POOL_IDLE_TIMEOUT, |d| d.0),
            resolve_interval: spec
                .resolve_interval
                .map_or(crate::upstream::resolve::DEFAULT_INTERVAL, |d| d.0),
        }
    }

    /// A count setting in `1..=max`, or `default` when unset (or refused).
    fn count(
        &mut self,
        n: &Option<toml::Spanned<i64>>,
        field: &str,
        default: u32,
        max: u32,
    ) -> u32 {
        n.as_ref()
            .and_then(|n| self.in_range(n, field, 1..=u64::from(max)))
            .map_or(default, |n| n as u32)
    }

    /// The targets and their weights (1 unless set).
    fn targets(
        &mut self,
        spec: &manifest::UpstreamSpec,
        field: &dyn Fn(&str) -> String,
    ) -> (Vec<Authority>, Vec<u32>) {
        if spec.targets.get_ref().is_empty() {
            self.error(
                spec.targets.span(),
                format!("{}: at least one target is required", field("targets")),
            );
        }
        let mut targets = Vec::new();
        for t in spec.targets.get_ref() {
            match parse_target(t.get_ref()) {
                Ok(a) => targets.push(a),
                Err(why) => self.error(
                    t.span(),
                    format!("{}: {:?} {why}", field("targets"), t.get_ref()),
                ),
            }
        }
        let mut weights = vec![1; targets.len()];
        for (target, w) in &spec.weights {
            let Some(i) = spec
                .targets
                .get_ref()
                .iter()
                .position(|t| t.get_ref() == target.get_ref())
            else {
                self.error(
                    target.span(),
                    format!(
                        "{}: {:?} is not one of the targets",
                        field("weights"),
                        target.get_ref()
                    ),
                );
                continue;
            };
            if let (Some(v), Some(slot)) = (
                self.in_range(w, &field("weights"), 1..=10_000),
                weights.get_mut(i),
            ) {
                *slot = v as u32;
            }
        }
        (targets, weights)
    }

    /// The balancing algorithm, with its hash key for `consistent-hash`.
    fn balance(
        &mut self,
        spec: &manifest::UpstreamSpec,
        field: &dyn Fn(&str) -> String,
    ) -> Algorithm {
        let hash_key = spec
            .hash_key
            .as_ref()
            .map_or(HashKey::ClientIp, |k| self.hash_key(k, field));
        let balance = match spec
            .balance
            .as_ref()
            .map(|b| (b.get_ref().as_str(), b.span()))
        {
            None | Some(("round-robin", _)) => Algorithm::RoundRobin,
            Some(("weighted", _)) => Algorithm::Weighted,
            Some(("least-connections", _)) => Algorithm::LeastConnections,
            Some(("p2c", _)) => Algorithm::PowerOfTwo,
            Some(("consistent-hash", _)) => Algorithm::ConsistentHash(hash_key),
            Some((other, span)) => {
                self.error(
                    span,
                    format!(
                        "{}: {other:?} is not round-robin, weighted, least-connections, p2c or consistent-hash",
                        field("balance")
                    ),
                );
                Algorithm::RoundRobin
            }
        };
        if let (Some(k), false) = (
            &spec.hash_key,
            matches!(balance, Algorithm::ConsistentHash(_)),
        ) {
            self.error(
                k.span(),
                format!(
                    "{}: only applies with balance = \"consistent-hash\"",
                    field("hash-key")
                ),
            );
        }
        balance
    }

    /// `hash-key`: `client-ip`, `header:<name>` or `cookie:<name>`.
    fn hash_key(&mut self, k: &toml::Spanned<String>, field: &dyn Fn(&str) -> String) -> HashKey {
        let other = k.get_ref().as_str();
        if other == "client-ip" {
            return HashKey::ClientIp;
        }
        let parsed = if let Some(h) = other.strip_prefix("header:") {
            http::HeaderName::from_bytes(h.as_bytes())
                .ok()
                .map(HashKey::Header)
        } else {
            other
                .strip_prefix("cookie:")
                .filter(|c| !c.is_empty() && !c.contains([';', '=', ' ']))
                .map(|c| HashKey::Cookie(c.to_string()))
        };
        parsed.unwrap_or_else(|| {
            self.error(
                k.span(),
                format!(
                    "{}: {other:?} is not client-ip, header:<name> or cookie:<name>",
                    field("hash-key")
                ),
            );
            HashKey::ClientIp
        })
    }

    /// The sticky cookie's name and the secret its values are signed with.
    fn sticky(
        &mut self,
        spec: &manifest::UpstreamSpec,
        field: &dyn Fn(&str) -> String,
    ) -> Option<(String, String)> {
        let c = spec.sticky_cookie.as_ref()?;
        if c.get_ref().is_empty()
            || !c
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.error(
                c.span(),
                format!(
                    "{}: {:?} is not a cookie name (letters, digits, - and _)",
                    field("sticky-cookie"),
                    c.get_ref()
                ),
            );
        }
        let secret = spec
            .sticky_secret
            .clone()
            .unwrap_or_else(|| process_secret().to_string());
        Some((c.get_ref().clone(), secret))
    }

    /// `health`: the active check.
    fn active_check(
        &mut self,
        h: &manifest::HealthSpec,
        field: &dyn Fn(&str) -> String,
    ) -> ActiveCheck {
        if let Some(p) = &h.path {
            if !p.get_ref().starts_with('/') {
                self.error(
                    p.span(),
                    format!(
                        "{}: {:?} must start with '/'",
                        field("health.path"),
                        p.get_ref()
                    ),
                );
            }
        }
        let expect_status = h.expect_status.as_ref().and_then(|st| {
            let status = u16::try_from(*st.get_ref())
                .ok()
                .filter(|s| (100..=599).contains(s));
            if status.is_none() {
                self.error(
                    st.span(),
                    format!(
                        "{}: {} is not a status",
                        field("health.expect-status"),
                        st.get_ref()
                    ),
                );
            }
            status
        });
        ActiveCheck {
            path: h.path.as_ref().map(|p| p.get_ref().clone()),
            expect_status,
            interval: h.interval.map_or(Duration::from_secs(5), |d| d.0),
            timeout: h.timeout.map_or(Duration::from_secs(1), |d| d.0),
            rise: self.count(&h.rise, &field("health.rise"), 2, 100),
            fall: self.count(&h.fall, &field("health.fall"), 3, 100),
        }
    }

    /// `passive`: ejecting targets that fail requests.
    fn passive(&mut self, p: &manifest::PassiveSpec, field: &dyn Fn(&str) -> String) -> Passive {
        Passive {
            consecutive_failures: self.count(
                &p.consecutive_failures,
                &field("passive.consecutive-failures"),
                5,
                1000,
            ),
            cooldown: p.cooldown.map_or(Duration::from_secs(30), |d| d.0),
            max_ejected_percent: p
                .max_ejected_percent
                .as_ref()
                .and_then(|n| self.in_range(n, &field("passive.max-ejected-percent"), 0..=100))
                .map_or(50, |n| n as u32),
        }
    }
}
