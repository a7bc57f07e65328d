//! `weir check`: validate a manifest and load and `init` every filter, listing every problem.

use crate::config::{Config, Diagnostic};
use crate::filter::FilterEngine;
use std::path::Path;

/// The result of checking a manifest.
pub enum CheckReport {
    /// Everything is valid; a one-line summary.
    Valid(String),
    /// Every problem found, located in the manifest.
    Invalid(Vec<Diagnostic>),
}

/// Check the manifest at `path`.
pub async fn check(path: &Path) -> CheckReport {
    let (config, mut problems) = match Config::load_partial(path) {
        Ok(partial) => partial,
        Err(d) => return CheckReport::Invalid(d.0),
    };
    let loadable: Vec<_> = config
        .filters
        .iter()
        .filter(|f| f.loadable)
        .cloned()
        .collect();
    for l in &config.listeners {
        if let Some(settings) = &l.tls {
            if let Err(e) = settings.check() {
                problems.push(Diagnostic {
                    message: format!("listeners.tls: {e}"),
                    ..l.location.clone()
                });
            }
        }
    }
    match FilterEngine::new() {
        Err(e) => problems.push(config.source.at(None, e.to_string())),
        Ok(engine) => {
            let engine = engine.with_cache(config.compile_cache.as_deref());
            if let Err(located) = crate::reload::load_located(&engine, &loadable, &[]).await {
                problems.extend(located);
            }
        }
    }
    if problems.is_empty() {
        CheckReport::Valid(format!(
            "{} is valid: {} listener(s), {} upstream(s), {} route(s), {} filter(s) loaded",
            path.display(),
            config.listeners.len(),
            config.upstreams.len(),
            config.routes.len(),
            config.filters.len()
        ))
    } else {
        problems.sort_by_key(|d| (d.line, d.column));
        CheckReport::Invalid(problems)
    }
}
