//! The Wasm engine: one wasmtime `Engine` and `Linker` for all filters; compiling plugin
//! files, checking their world, and preparing instance pools.

use super::bindings::{self, FilterWorld, FilterWorldPre};
use super::budget;
use super::host::FilterState;
use super::pool::InstancePool;
use super::{Filter, LoadError};
use crate::config::FilterConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::Engine;

/// Compiles and links filters. Cheap to clone.
#[derive(Clone)]
pub struct FilterEngine {
    engine: Engine,
    linker: Arc<Linker<FilterState>>,
    /// Started with the first filter, so a proxy without filters runs no ticker thread.
    ticker: Arc<std::sync::OnceLock<Result<(), LoadError>>>,
}

impl FilterEngine {
    /// An engine with the component model, WASI p2 (capability-less) and the Weir imports.
    pub fn new() -> Result<Self, LoadError> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        // CPU deadlines: a ticker advances the epoch; each call gets a deadline in ticks.
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        FilterWorld::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        Ok(FilterEngine {
            engine,
            linker: Arc::new(linker),
            ticker: Arc::new(std::sync::OnceLock::new()),
        })
    }

    /// Compile the component at `path` and check that it is a compatible filter.
    pub fn compile(&self, path: &Path) -> Result<FilterWorldPre<FilterState>, LoadError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| LoadError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let component = Component::new(&self.engine, &bytes).map_err(|e| LoadError::Compile {
            path: shown.clone(),
            reason: format!("{e:#}"),
        })?;
        let world = |reason: String| LoadError::World {
            path: shown.clone(),
            reason,
        };
        check_world(&self.engine, &component).map_err(world)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| world(format!("{e:#}")))?;
        FilterWorldPre::new(pre).map_err(|e| world(format!("{e:#}")))
    }

    /// Load every filter of a manifest, compiling each plugin file once. Returns the filters
    /// in manifest order, or every failure with the filter it belongs to.
    pub async fn load_all(
        &self,
        filters: &[FilterConfig],
    ) -> Result<Vec<Arc<Filter>>, Vec<(usize, LoadError)>> {
        let mut compiled: HashMap<PathBuf, Result<FilterWorldPre<FilterState>, LoadError>> =
            HashMap::new();
        let mut out = Vec::new();
        let mut errors = Vec::new();
        if !filters.is_empty() {
            let started = self
                .ticker
                .get_or_init(|| budget::start_epoch_ticker(&self.engine));
            if let Err(e) = started {
                return Err((0..filters.len()).map(|i| (i, e.clone())).collect());
            }
        }
        for (i, cfg) in filters.iter().enumerate() {
            let pre = compiled
                .entry(cfg.plugin_path.clone())
                .or_insert_with(|| self.compile(&cfg.plugin_path));
            let pre = match pre {
                Ok(pre) => pre.clone(),
                Err(e) => {
                    errors.push((i, e.clone()));
                    continue;
                }
            };
            match Filter::new(pre, cfg).await {
                Ok(f) => out.push(Arc::new(f)),
                Err(e) => errors.push((i, e)),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

impl Filter {
    /// Prepare a filter's pool and create (and `init`) its first instance, so a bad config
    /// is refused at load time.
    pub async fn new(
        pre: FilterWorldPre<FilterState>,
        cfg: &FilterConfig,
    ) -> Result<Self, LoadError> {
        let name: Arc<str> = Arc::from(cfg.name.as_str());
        let pool = InstancePool::new(pre, name.clone(), cfg);
        let (first, hooks) = pool.instantiate().await?;
        pool.checkin(first);
        Ok(Filter {
            name,
            pool,
            hooks,
            deadline_ticks: budget::ticks(cfg.cpu_deadline),
            cpu_deadline: cfg.cpu_deadline,
        })
    }
}

/// Check the component's exports and imports against the world this host provides, naming
/// what is missing or of another version.
fn check_world(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    if !exports.iter().any(|e| e == bindings::EXPORT) {
        if let Some(other) = exports
            .iter()
            .find(|e| e.starts_with("weir:filter/filter@"))
        {
            return Err(format!(
                "it exports {other}, but this host implements {}",
                bindings::EXPORT
            ));
        }
        return Err(format!(
            "it does not export {} (its exports: {}); build it with weir-sdk's export_filter!",
            bindings::EXPORT,
            if exports.is_empty() {
                "none".to_string()
            } else {
                exports.join(", ")
            }
        ));
    }
    for (name, _) in ty.imports(engine) {
        let supported = name.starts_with("wasi:")
            || name.strip_prefix("weir:filter/").is_some_and(|rest| {
                rest.ends_with(&format!("@{}", &bindings::PACKAGE["weir:filter@".len()..]))
            });
        if !supported {
            return Err(format!(
                "it imports {name}, which this host ({}) does not provide",
                bindings::PACKAGE
            ));
        }
    }
    Ok(())
}
