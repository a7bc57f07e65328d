//! Validating `[filters.*]`: plugin files, budgets, failure policy, host-service limits.

use super::*;

impl Validator {
    pub(super) fn filter(
        &mut self,
        plugins_dir: &Path,
        name: &toml::Spanned<String>,
        spec: &toml::Spanned<manifest::FilterSpec>,
    ) -> FilterConfig {
        let s = spec.get_ref();
        let plugin = s.plugin.get_ref();
        let errors_before = self.errors.len();
        if plugin.is_empty()
            || plugin.contains('/')
            || plugin.contains('\\')
            || plugin.starts_with('.')
        {
            self.error(
                s.plugin.span(),
                format!(
                    "filters.{}.plugin: {plugin:?} must be a file name inside the plugins directory {}",
                    name.get_ref(),
                    plugins_dir.display()
                ),
            );
        }
        let config_json = match &s.config {
            None => "{}".to_string(),
            Some(table) => match serde_json::to_string(table.get_ref()) {
                Ok(json) => json,
                Err(e) => {
                    self.error(
                        table.span(),
                        format!("filters.{}.config: {e}", name.get_ref()),
                    );
                    String::new()
                }
            },
        };
        let memory_limit = match &s.memory_limit {
            None => DEFAULT_MEMORY_LIMIT,
            Some(text) => match parse_size(text.get_ref()) {
                Ok(n) if (1 << 20..=crate::filter::MAX_MEMORY_LIMIT).contains(&n) => n,
                Ok(_) => {
                    self.error(
                        text.span(),
                        format!(
                            "filters.{}.memory-limit: must be between 1MiB and 1GiB",
                            name.get_ref()
                        ),
                    );
                    DEFAULT_MEMORY_LIMIT
                }
                Err(why) => {
                    self.error(
                        text.span(),
                        format!("filters.{}.memory-limit: {why}", name.get_ref()),
                    );
                    DEFAULT_MEMORY_LIMIT
                }
            },
        };
        let field = |key: &str| format!("filters.{}.{key}", name.get_ref());
        let fuel = s
            .fuel
            .as_ref()
            .and_then(|f| self.positive(f, &field("fuel")));
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
        let on_failure = match s
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
        };
        let isolation = match s
            .isolation
            .as_ref()
            .map(|p| (p.get_ref().as_str(), p.span()))
        {
            None | Some(("pooled", _)) => Isolation::Pooled,
            Some(("per-request", _)) => Isolation::PerRequest,
            Some((other, span)) => {
                self.error(
                    span,
                    format!(
                        "{}: {other:?} is not \"pooled\" or \"per-request\"",
                        field("isolation")
                    ),
                );
                Isolation::Pooled
            }
        };
        let max_requests_per_instance = s
            .max_requests_per_instance
            .as_ref()
            .and_then(|n| self.positive(n, &field("max-requests-per-instance")));
        let body_limit = match &s.body_limit {
            None => DEFAULT_BODY_LIMIT,
            Some(text) => parse_size(text.get_ref()).unwrap_or_else(|why| {
                self.error(text.span(), format!("{}: {why}", field("body-limit")));
                DEFAULT_BODY_LIMIT
            }),
        };
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
        let store_max_entries = s
            .store_max_entries
            .as_ref()
            .and_then(|n| self.positive(n, &field("store-max-entries")))
            .map_or(DEFAULT_STORE_MAX_ENTRIES, |n| n as usize);
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
            max_requests_per_instance,
            body_limit,
            allow_hosts,
            outbound_timeout: s.outbound_timeout.map_or(DEFAULT_OUTBOUND_TIMEOUT, |d| d.0),
            store_max_entries,
            location: self.map.at(Some(s.plugin.span()), String::new()),
            loadable: self.errors.len() == errors_before,
        }
    }
}
