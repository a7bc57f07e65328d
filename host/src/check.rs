//! `weir check`: validate a manifest and load and `init` every filter, listing every problem.

use crate::config::{Config, Diagnostic};
use crate::filter::FilterEngine;
use std::path::Path;

/// The result of checking a manifest.
pub struct CheckReport {
    /// Every problem found, located in the manifest; none when it is valid.
    pub problems: Vec<Diagnostic>,
    /// What is valid but probably not meant: filters no route uses, plugins no filter uses.
    pub warnings: Vec<Diagnostic>,
    /// One line about what a valid manifest holds.
    pub summary: String,
}

impl CheckReport {
    fn invalid(problems: Vec<Diagnostic>) -> Self {
        CheckReport {
            problems,
            warnings: Vec::new(),
            summary: String::new(),
        }
    }
}

/// Check the manifest at `path`.
pub async fn check(path: &Path) -> CheckReport {
    let (config, mut problems) = match Config::load_partial(path) {
        Ok(partial) => partial,
        Err(d) => return CheckReport::invalid(d.0),
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
    let summary = format!(
        "{} is valid: {} listener(s), {} upstream(s), {} route(s), {} filter(s) loaded",
        path.display(),
        config.listeners.len(),
        config.upstreams.len(),
        config.routes.len(),
        config.filters.len()
    );
    problems.sort_by_key(|d| (d.line, d.column));
    CheckReport {
        problems,
        warnings: warnings(&config),
        summary,
    }
}

/// Filters that no route names, and `.wasm` files in the plugins directory that no filter
/// loads.
fn warnings(config: &Config) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for (i, f) in config.filters.iter().enumerate() {
        if !config.routes.iter().any(|r| r.filters.contains(&i)) {
            warnings.push(Diagnostic {
                message: format!("filters.{}: no route uses this filter", f.name),
                ..f.location.clone()
            });
        }
    }
    let Ok(dir) = std::fs::read_dir(&config.plugins_dir) else {
        return warnings;
    };
    let mut unused: Vec<String> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .filter(|p| !config.filters.iter().any(|f| &f.plugin_path == p))
        .map(|p| p.display().to_string())
        .collect();
    unused.sort();
    for plugin in unused {
        warnings.push(config.source.at(
            None,
            format!("plugin {plugin} in plugins-dir: no filter loads it"),
        ));
    }
    warnings
}
