//! Validating `store` (top level and per filter) and `on-store-failure`: where filters'
//! key/value stores and rate limits live.

use super::*;
use crate::store::{RedisSettings, StoreFailure, StoreSettings};
use manifest::StoreSpec;

/// Default longest Redis call (a filter's own wait budget may cut it shorter).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(50);
/// Default longest Redis (re)connection.
pub const DEFAULT_STORE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default most Redis calls in flight per node.
pub const DEFAULT_STORE_MAX_PENDING: usize = 1000;
/// Most `max-pending` may be.
pub const MAX_STORE_MAX_PENDING: usize = 100_000;

impl Validator {
    /// A `store` table; `field` names it in errors (`store`, `filters.x.store`).
    pub(super) fn store(
        &mut self,
        spec: &toml::Spanned<StoreSpec>,
        field: &str,
        base: &Path,
    ) -> StoreSettings {
        let s = spec.get_ref();
        match s.backend.get_ref().as_str() {
            "memory" => {
                let extra = [
                    s.url.as_ref().map(|u| (u.span(), "url")),
                    s.cluster_nodes.first().map(|u| (u.span(), "cluster-nodes")),
                    s.prefix.as_ref().map(|p| (p.span(), "prefix")),
                    s.max_pending.as_ref().map(|p| (p.span(), "max-pending")),
                    s.ca.as_ref().map(|p| (p.span(), "ca")),
                    s.cert.as_ref().map(|p| (p.span(), "cert")),
                ];
                for (span, key) in extra.into_iter().flatten() {
                    self.error(
                        span,
                        format!("{field}.{key}: only applies with backend = \"redis\""),
                    );
                }
                StoreSettings::Memory
            }
            "redis" => self.redis(s, spec.span(), field, base),
            other => {
                self.error(
                    s.backend.span(),
                    format!("{field}.backend: {other:?} is not \"memory\" or \"redis\""),
                );
                StoreSettings::Memory
            }
        }
    }

    fn redis(
        &mut self,
        s: &StoreSpec,
        span: std::ops::Range<usize>,
        field: &str,
        base: &Path,
    ) -> StoreSettings {
        let (urls, cluster) = match (&s.url, s.cluster_nodes.is_empty()) {
            (Some(url), true) => (vec![url.clone()], false),
            (None, false) => (s.cluster_nodes.clone(), true),
            (Some(url), false) => {
                let why = "give either url (one server) or cluster-nodes (a cluster), not both";
                self.error(url.span(), format!("{field}: {why}"));
                return StoreSettings::Memory;
            }
            (None, true) => {
                let why =
                    "backend = \"redis\" needs url = \"redis://host:port/db\" (or cluster-nodes)";
                self.error(span, format!("{field}: {why}"));
                return StoreSettings::Memory;
            }
        };
        let key = if cluster { "cluster-nodes" } else { "url" };
        for url in &urls {
            if let Err(why) = check_url(url.get_ref()) {
                let shown = crate::store::redact(url.get_ref());
                self.error(url.span(), format!("{field}.{key}: {shown:?} {why}"));
            }
        }
        let timeout = self.store_duration(
            s.timeout.as_ref(),
            &format!("{field}.timeout"),
            DEFAULT_STORE_TIMEOUT,
        );
        let connect_timeout = self.store_duration(
            s.connect_timeout.as_ref(),
            &format!("{field}.connect-timeout"),
            DEFAULT_STORE_CONNECT_TIMEOUT,
        );
        let max_pending = self.count_within(
            s.max_pending.as_ref(),
            &format!("{field}.max-pending"),
            MAX_STORE_MAX_PENDING,
            DEFAULT_STORE_MAX_PENDING,
        );
        let prefix = match &s.prefix {
            None => "weir".to_string(),
            Some(p) => {
                let text = p.get_ref();
                let bad = text.is_empty()
                    || text.len() > 64
                    || text
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '{' || c == '}');
                if bad {
                    self.error(
                        p.span(),
                        format!("{field}.prefix: {text:?} must be 1 to 64 characters without spaces or braces"),
                    );
                }
                text.clone()
            }
        };
        let tls = urls.iter().any(|u| u.get_ref().starts_with("rediss://"));
        let (ca, client_cert) = self.store_tls(s, field, base, tls);
        StoreSettings::Redis(RedisSettings {
            ca,
            client_cert,
            urls: urls.iter().map(|u| u.get_ref().clone()).collect(),
            cluster,
            timeout,
            connect_timeout,
            max_pending,
            prefix,
        })
    }

    /// `ca`, `cert` and `key`: readable files, for `rediss://` URLs only.
    fn store_tls(
        &mut self,
        s: &StoreSpec,
        field: &str,
        base: &Path,
        tls: bool,
    ) -> (Option<PathBuf>, Option<(PathBuf, PathBuf)>) {
        let mut file = |v: Option<&toml::Spanned<String>>, key: &str| {
            let v = v?;
            if !tls {
                let why = "only applies to rediss:// (TLS) URLs";
                self.error(v.span(), format!("{field}.{key}: {why}"));
                return None;
            }
            let path = base.join(v.get_ref());
            if let Err(e) = std::fs::metadata(&path) {
                let shown = path.display();
                self.error(v.span(), format!("{field}.{key}: cannot read {shown}: {e}"));
            }
            Some(path)
        };
        let ca = file(s.ca.as_ref(), "ca");
        let cert = file(s.cert.as_ref(), "cert");
        let key = file(s.key.as_ref(), "key");
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                let at = s.cert.as_ref().or(s.key.as_ref()).map(|v| v.span());
                let why = "cert and key go together (mutual TLS)";
                if let Some(at) = at {
                    self.error(at, format!("{field}: {why}"));
                }
                None
            }
        };
        (ca, client_cert)
    }

    fn store_duration(
        &mut self,
        d: Option<&toml::Spanned<super::duration::ManifestDuration>>,
        field: &str,
        default: Duration,
    ) -> Duration {
        let Some(d) = d else { return default };
        let within = Duration::from_millis(1)..=Duration::from_secs(60);
        if within.contains(&d.get_ref().0) {
            d.get_ref().0
        } else {
            self.error(d.span(), format!("{field}: must be between 1ms and 60s"));
            default
        }
    }

    /// A filter's `on-store-failure`, which needs a shared store.
    pub(super) fn store_failure(
        &mut self,
        policy: Option<&toml::Spanned<String>>,
        store: &StoreSettings,
        field: &str,
    ) -> StoreFailure {
        let Some(p) = policy else {
            return StoreFailure::default();
        };
        let chosen = match p.get_ref().as_str() {
            "local" => StoreFailure::Local,
            "fail-open" => StoreFailure::FailOpen,
            "fail-closed" => StoreFailure::FailClosed,
            other => {
                self.error(
                    p.span(),
                    format!(
                        "{field}: {other:?} is not \"local\", \"fail-open\" or \"fail-closed\""
                    ),
                );
                return StoreFailure::default();
            }
        };
        if !store.is_remote() {
            self.error(
                p.span(),
                format!("{field}: only applies with a shared store (store = {{ backend = \"redis\", ... }})"),
            );
        }
        chosen
    }
}

/// Whether `url` is a Redis URL this host can connect to.
fn check_url(url: &str) -> Result<(), String> {
    use redis::IntoConnectionInfo as _;
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("is not a redis:// or rediss:// URL".to_string());
    }
    url.into_connection_info().map(|_| ()).map_err(|e| {
        format!(
            "is not a valid Redis URL: {}",
            e.to_string().replace('\n', " ")
        )
    })
}
