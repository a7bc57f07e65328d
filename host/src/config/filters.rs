//! Validating `[filters.*]`: plugin files, budgets, failure policy, host-service limits.

use super::*;

impl Validator {
    pub(super) fn filter(
        &mut self,
        base: &Path,
        plugins_dir: &Path,
        name: &toml::Spanned<String>,
        spec: &toml::Spanned<manifest::FilterSpec>,
        default_store: &crate::store::StoreSettings,
    ) -> FilterConfig {
        let s = spec.get_ref();
        let plugin = s.plugin.get_ref();
        let errors_before = self.errors.len();
        self.plugin_name(&s.plugin, name.get_ref(), plugins_dir);
        let config_json = self.config_json(s, name.get_ref());
        let field = |key: &str| format!("filters.{}.{key}", name.get_ref());
        let memory_limit = self.size_within(
            s.memory_limit.as_ref(),
            &field("memory-limit"),
            (1 << 20, crate::filter::MAX_MEMORY_LIMIT),
            DEFAULT_MEMORY_LIMIT,
        );
        let fuel = s
            .fuel
            .as_ref()
            .and_then(|f| self.positive(f, &field("fuel")));
        let on_failure = self.failure_policy(s, &field);
        let isolation = self.isolation(s, &field);
        let instance_start = self.instance_start(s, &field);
        let max_requests_per_instance = s
            .max_requests_per_instance
            .as_ref()
            .and_then(|n| self.positive(n, &field("max-requests-per-instance")));
        let max_instances = self.max_instances(s, &field);
        // The filter holds a buffered body in its own memory: no more than that.
        let body_limit = self.size_within(
            s.body_limit.as_ref(),
            &field("body-limit"),
            (1, memory_limit.min(MAX_BODY_LIMIT)),
            DEFAULT_BODY_LIMIT.min(memory_limit),
        );
        let (allow_hosts, outbound_deny) = self.outbound_hosts(s, &field);
        let store = self.kv_bounds(s, &field);
        let rate_limit_keys = self.count_within(
            s.rate_limit_keys.as_ref(),
            &field("rate-limit-keys"),
            MAX_RATE_LIMIT_KEYS,
            DEFAULT_RATE_LIMIT_KEYS,
        );
        let outbound_ca = s.outbound_ca.as_ref().map(|c| base.join(c.get_ref()));
        let files = self.file_grants(base, &field("files"), &s.files);
        let shared_store = match &s.store {
            Some(store) => self.store(store, &field("store"), base),
            None => default_store.clone(),
        };
        let on_store_failure = self.store_failure(
            s.on_store_failure.as_ref(),
            &shared_store,
            &field("on-store-failure"),
        );
        FilterConfig {
            name: name.get_ref().clone(),
            plugin_path: plugins_dir.join(plugin),
            config_json,
            inherit_stdio: s.inherit_stdio.unwrap_or(false),
            cpu_deadline: s.cpu_deadline.map_or(DEFAULT_CPU_DEADLINE, |d| d.0),
            memory_limit,
            fuel,
            on_failure,
            isolation,
            instance_start,
            max_requests_per_instance,
            max_instances,
            body_limit,
            allow_hosts,
            outbound_deny,
            outbound_ca_modified: outbound_ca
                .as_ref()
                .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()),
            outbound_ca,
            files,
            outbound_timeout: s.outbound_timeout.map_or(DEFAULT_OUTBOUND_TIMEOUT, |d| d.0),
            store,
            rate_limit_keys,
            shared_store,
            on_store_failure,
            location: self.map.at(Some(s.plugin.span()), String::new()),
            config_keys: Vec::new(),
            loadable: self.errors.len() == errors_before,
        }
    }

    /// `plugin`: a file name inside the plugins directory, nothing that leads out of it.
    fn plugin_name(&mut self, plugin: &toml::Spanned<String>, name: &str, plugins_dir: &Path) {
        let file = plugin.get_ref();
        if file.is_empty() || file.contains('/') || file.contains('\\') || file.starts_with('.') {
            self.error(
                plugin.span(),
                format!(
                    "filters.{name}.plugin: {file:?} must be a file name inside the plugins directory {}",
                    plugins_dir.display()
                ),
            );
        }
    }

    /// `config`, as the JSON the filter's `init` receives (`{}` when absent).
    fn config_json(&mut self, s: &manifest::FilterSpec, name: &str) -> String {
        let Some(table) = &s.config else {
            return "{}".to_string();
        };
        serde_json::to_string(table.get_ref()).unwrap_or_else(|e| {
            self.error(table.span(), format!("filters.{name}.config: {e}"));
            String::new()
        })
    }

    /// `store-max-entries` and `store-max-bytes`: the bounds of the filter's kv store.
    fn kv_bounds(
        &mut self,
        s: &manifest::FilterSpec,
        field: &dyn Fn(&str) -> String,
    ) -> crate::filter::kv::KvBounds {
        crate::filter::kv::KvBounds {
            max_entries: self.count_within(
                s.store_max_entries.as_ref(),
                &field("store-max-entries"),
                MAX_STORE_ENTRIES,
                DEFAULT_STORE_MAX_ENTRIES,
            ),
            max_bytes: self.size_within(
                s.store_max_bytes.as_ref(),
                &field("store-max-bytes"),
                (64 << 10, MAX_STORE_BYTES),
                DEFAULT_STORE_MAX_BYTES,
            ),
        }
    }

    /// `on-failure` and its `failure-status`.
    fn failure_policy(
        &mut self,
        s: &manifest::FilterSpec,
        field: &dyn Fn(&str) -> String,
    ) -> FailurePolicy {
        let failure_status = match &s.failure_status {
            None => http::StatusCode::SERVICE_UNAVAILABLE,
            Some(st) => match u16::try_from(*st.get_ref()).ok().and_then(|n| {
                (400..=599)
                    .contains(&n)
                    .then(|| http::StatusCode::from_u16(n).ok())
                    .flatten()
            }) {
                Some(code) => code,
                None => {
                    self.error(
                        st.span(),
                        format!(
                            "{}: {} is not an error status (400..=599)",
                            field("failure-status"),
                            st.get_ref()
                        ),
                    );
                    http::StatusCode::SERVICE_UNAVAILABLE
                }
            },
        };
        match s
            .on_failure
            .as_ref()
            .map(|p| (p.get_ref().as_str(), p.span()))
        {
            None | Some(("fail-closed", _)) => FailurePolicy::Closed(failure_status),
            Some(("fail-open", _)) => {
                if let Some(st) = &s.failure_status {
                    self.error(
                        st.span(),
                        format!(
                            "{}: only applies with on-failure = \"fail-closed\"",
                            field("failure-status")
                        ),
                    );
                }
                FailurePolicy::Open
            }
            Some((other, span)) => {
                self.error(
                    span,
                    format!(
                        "{}: {other:?} is not \"fail-closed\" or \"fail-open\"",
                        field("on-failure")
                    ),
                );
                FailurePolicy::Closed(failure_status)
            }
        }
    }

    /// `isolation`: pooled instances or one per call.
    fn isolation(&mut self, s: &manifest::FilterSpec, field: &dyn Fn(&str) -> String) -> Isolation {
        self.one_of(
            s.isolation.as_ref(),
            &field("isolation"),
            ("pooled", Isolation::Pooled),
            &[("per-request", Isolation::PerRequest)],
        )
    }

    /// `instance-start`: `init` in every instance, or a snapshot taken after one `init`.
    fn instance_start(
        &mut self,
        s: &manifest::FilterSpec,
        field: &dyn Fn(&str) -> String,
    ) -> InstanceStart {
        self.one_of(
            s.instance_start.as_ref(),
            &field("instance-start"),
            ("init", InstanceStart::Init),
            &[("snapshot", InstanceStart::Snapshot)],
        )
    }

    /// `max-instances`: this filter's share of the instances all filters share.
    fn max_instances(&mut self, s: &manifest::FilterSpec, field: &dyn Fn(&str) -> String) -> u32 {
        s.max_instances
            .as_ref()
            .and_then(|n| {
                let all = crate::filter::MAX_INSTANCES;
                let v = self.positive(n, &field("max-instances"))?;
                let within = u32::try_from(v).ok().filter(|v| *v <= all);
                if within.is_none() {
                    let why = format!("{v} is more than the {all} instances all filters share");
                    self.error(n.span(), format!("{}: {why}", field("max-instances")));
                }
                within
            })
            .unwrap_or(DEFAULT_MAX_INSTANCES)
    }

    /// `allow-hosts` and `outbound-deny`: where the filter's outbound HTTP may go.
    fn outbound_hosts(
        &mut self,
        s: &manifest::FilterSpec,
        field: &dyn Fn(&str) -> String,
    ) -> (Vec<String>, Vec<ipnet::IpNet>) {
        if s.allow_hosts.len() > MAX_ALLOW_HOSTS {
            self.error(
                s.allow_hosts[MAX_ALLOW_HOSTS].span(),
                format!(
                    "{}: at most {MAX_ALLOW_HOSTS} hosts (put a sidecar in front of more)",
                    field("allow-hosts")
                ),
            );
        }
        let mut allow_hosts = Vec::new();
        for h in &s.allow_hosts {
            match parse_allowed_host(h.get_ref()) {
                Ok(a) => allow_hosts.push(a),
                Err(why) => self.error(
                    h.span(),
                    format!("{}: {:?} {why}", field("allow-hosts"), h.get_ref()),
                ),
            }
        }
        let mut outbound_deny = Vec::new();
        for d in &s.outbound_deny {
            match crate::filter::outbound::parse_deny(d.get_ref()) {
                Ok(nets) => outbound_deny.extend(nets),
                Err(why) => self.error(
                    d.span(),
                    format!("{}: {:?} {why}", field("outbound-deny"), d.get_ref()),
                ),
            }
        }
        (allow_hosts, outbound_deny)
    }
}

impl Validator {
    /// A size field within `min..=max` (bytes), `default` when absent or wrong.
    fn size_within(
        &mut self,
        text: Option<&toml::Spanned<String>>,
        field: &str,
        (min, max): (usize, usize),
        default: usize,
    ) -> usize {
        let Some(text) = text else {
            return default;
        };
        match parse_size(text.get_ref()) {
            Ok(n) if (min..=max).contains(&n) => n,
            Ok(_) => {
                self.error(
                    text.span(),
                    format!(
                        "{field}: must be between {} and {}",
                        show_size(min),
                        show_size(max)
                    ),
                );
                default
            }
            Err(why) => {
                self.error(text.span(), format!("{field}: {why}"));
                default
            }
        }
    }
}

/// A byte count in the manifest's units.
fn show_size(n: usize) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{}GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}
