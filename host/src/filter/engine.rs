//! The Wasm engine: one wasmtime `Engine` and `Linker` for all filters; compiling plugin
//! files (through the on-disk cache), checking their world, and loading a manifest's
//! filters, keeping the loaded ones a reload did not change.

use super::bindings::{self, FilterWorld};
use super::budget;
use super::cache::CompileCache;
use super::host::FilterState;
use super::kv::{KvBackend, MemoryKv};
use super::metrics::FilterMetrics;
use super::outbound::{Clients, DenyList, Outbound};
use super::pool::{InstancePool, Prepared};
use super::rate_limit::{MemoryRateLimit, RateLimitBackend};
use super::services::FilterServices;
use super::snapshot::Snapshot;
use super::SharedStore;
use super::{header_edits, preinit, sync_io, waits};
use super::{Filter, FilterVersion, LoadError};
use crate::config::{FilterConfig, InstanceStart};
use crate::store::StoreSettings;
use sha2::Digest as _;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Largest linear memory any filter may be given (`memory-limit`); the pooling allocator
/// reserves address space for it per slot.
pub const MAX_MEMORY_LIMIT: usize = 1 << 30;
/// Instances that may exist at once over all filters (pooling allocator slots); each filter
/// may have at most its `max-instances` of them (default a quarter), so that one filter whose
/// calls pile up cannot take them all. Beyond either bound a call fails per its filter's
/// policy.
pub const MAX_INSTANCES: u32 = 1000;

/// Compiles and links filters. Cheap to clone.
///
/// There are two wasmtime engines: filters with a `fuel` budget are compiled with fuel
/// metering, the others without, because metering instruments every block and costs every
/// call of every filter about a fifth of its time.
#[derive(Clone)]
pub struct FilterEngine {
    plain: Runtime,
    metered: Runtime,
    /// Started with the first filter, so a proxy without filters runs no ticker thread.
    ticker: Arc<std::sync::OnceLock<Result<(), LoadError>>>,
    kv: Arc<dyn KvBackend>,
    rate_limit: Arc<dyn RateLimitBackend>,
    /// Open shared stores (Redis), kept across reloads while a filter uses them.
    stores: Arc<crate::store::Stores>,
    geo: crate::geo::GeoHandle,
}

/// One wasmtime engine with its linkers and compile cache.
#[derive(Clone)]
pub(super) struct Runtime {
    engine: Engine,
    /// For filters that can wait (see `sync_io`): WASI as wasmtime-wasi's async host.
    linker: Arc<Linker<FilterState>>,
    /// For the others: the same, with `wasi:io` that never waits, so that every import is
    /// synchronous and so are the calls.
    sync_linker: Arc<Linker<FilterState>>,
    cache: Option<CompileCache>,
    metered: bool,
}

/// An instance that takes this long to create and `init` is made for every worker at load.
const SLOW_INIT: std::time::Duration = std::time::Duration::from_millis(20);

impl Runtime {
    /// An engine with the component model, WASI p2 (capability-less), the Weir imports,
    /// the pooling allocator, epoch interruption, and fuel metering if `metered`.
    fn new(metered: bool) -> Result<Self, LoadError> {
        let engine_error = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        // CPU deadlines: a ticker advances the epoch; each call gets a deadline in ticks.
        config.epoch_interruption(true);
        config.consume_fuel(metered);
        #[cfg(feature = "profile-filters")]
        if std::env::var_os("WEIR_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(MAX_INSTANCES)
            .total_core_instances(MAX_INSTANCES * 4)
            .total_memories(MAX_INSTANCES * 2)
            .total_tables(MAX_INSTANCES * 4)
            .total_stacks(MAX_INSTANCES)
            .max_memory_size(MAX_MEMORY_LIMIT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        FilterWorld::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_error)?;
        header_edits::install(&mut linker).map_err(engine_error)?;
        let mut sync_linker = linker.clone();
        sync_io::shadow_io(&mut sync_linker).map_err(engine_error)?;
        sync_io::shadow_local_store(&mut sync_linker).map_err(engine_error)?;
        waits::install(&mut linker).map_err(engine_error)?;
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            sync_linker: Arc::new(sync_linker),
            cache: None,
            metered,
        })
    }

    /// Compile `bytes` (the plugin at `path`); `shared_store` if the filter's store is on
    /// the network, so that its `kv` and `rate-limit` calls can wait.
    fn compile(
        &self,
        path: &Path,
        bytes: &[u8],
        sha256: String,
        shared_store: bool,
    ) -> Result<Compiled, LoadError> {
        self.compile_as(path, bytes, sha256, shared_store, true)
    }

    /// [`Runtime::compile`], through the compile cache only if `cacheable`.
    pub(super) fn compile_as(
        &self,
        path: &Path,
        bytes: &[u8],
        sha256: String,
        shared_store: bool,
        cacheable: bool,
    ) -> Result<Compiled, LoadError> {
        let shown = path.display().to_string();
        let started = std::time::Instant::now();
        let cache = self.cache.as_ref().filter(|_| cacheable);
        let cached = cache.and_then(|c| c.get(&self.engine, &sha256));
        let component = match cached {
            Some(c) => {
                tracing::info!(plugin = %shown, sha256 = &sha256[..12], took = ?started.elapsed(), "loaded from the compile cache");
                c
            }
            None => {
                let c = Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile {
                    path: shown.clone(),
                    reason: format!("{e:#}"),
                })?;
                tracing::info!(plugin = %shown, sha256 = &sha256[..12], took = ?started.elapsed(), metered = self.metered, "compiled");
                crate::trim::release_freed_memory();
                if let Some(cache) = cache {
                    cache.put(&sha256, &c);
                }
                c
            }
        };
        let world = |reason: String| LoadError::World {
            path: shown.clone(),
            reason,
        };
        check_world(&self.engine, &component).map_err(world)?;
        let ty = component.component_type();
        let sync =
            sync_io::can_run_sync(ty.imports(&self.engine).map(|(name, _)| name), shared_store);
        let linker = if sync {
            &self.sync_linker
        } else {
            &self.linker
        };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| world(format!("{e:#}")))?;
        let pre = Prepared::new(pre, sync).map_err(|e| world(format!("{e:#}")))?;
        Ok(Compiled { pre, sha256 })
    }
}

/// A compiled, checked plugin file.
#[derive(Clone)]
pub struct Compiled {
    pub(super) pre: Prepared,
    sha256: String,
}

impl FilterEngine {
    /// Both engines (see [`FilterEngine`]).
    pub fn new() -> Result<Self, LoadError> {
        Ok(FilterEngine {
            plain: Runtime::new(false)?,
            metered: Runtime::new(true)?,
            ticker: Arc::new(std::sync::OnceLock::new()),
            kv: Arc::new(MemoryKv::default()),
            rate_limit: Arc::new(MemoryRateLimit::default()),
            stores: Arc::default(),
            geo: crate::geo::GeoHandle::default(),
        })
    }

    /// Answer filters' geo lookups from `db` (the generation going live's databases).
    pub fn set_geo(&self, db: Option<Arc<crate::geo::GeoDb>>) {
        self.geo.set(db);
    }

    /// The open Redis store for `settings` (the one filters with the same settings use).
    pub fn redis_store(
        &self,
        settings: &crate::store::RedisSettings,
    ) -> Result<Arc<crate::store::RedisStore>, String> {
        self.stores.redis(settings)
    }

    /// Use the on-disk compile cache at `dir`. A folder that cannot be used is logged and
    /// the engine compiles every time.
    pub fn with_cache(mut self, dir: Option<&Path>) -> Self {
        for rt in [&mut self.plain, &mut self.metered] {
            rt.cache = dir.and_then(|d| match CompileCache::open(d, &rt.engine) {
                Ok(c) => Some(c),
                Err(why) => {
                    tracing::warn!("compile cache disabled: {why}");
                    None
                }
            });
        }
        self
    }

    fn runtime(&self, cfg: &FilterConfig) -> &Runtime {
        if cfg.fuel.is_some() {
            &self.metered
        } else {
            &self.plain
        }
    }

    /// Read the plugin at `path` and its content hash.
    fn read(path: &Path) -> Result<(Vec<u8>, String), LoadError> {
        let bytes = std::fs::read(path).map_err(|e| LoadError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let sha256 = crate::hex::encode(&sha2::Sha256::digest(&bytes));
        Ok((bytes, sha256))
    }

    /// Compile the component at `path` (or take it from the cache) for filters without a
    /// fuel budget, and check that it is a compatible filter.
    pub fn compile(&self, path: &Path) -> Result<Prepared, LoadError> {
        let (bytes, sha256) = Self::read(path)?;
        self.plain
            .compile(path, &bytes, sha256, false)
            .map(|c| c.pre)
    }

    /// Load every filter of a manifest. A filter whose entry and plugin content are the same
    /// as one in `previous` is kept as it is (with its warm instances); the others are
    /// compiled (once per file, off the async workers) and `init`ed. Returns the filters in
    /// manifest order, or every failure with the index of the filter it belongs to.
    pub async fn load_all(
        &self,
        filters: &[FilterConfig],
        previous: &[Arc<Filter>],
    ) -> Result<Vec<Arc<Filter>>, Vec<(usize, LoadError)>> {
        let mut compiled: HashMap<(String, bool, bool), Result<Compiled, LoadError>> =
            HashMap::new();
        let mut out = Vec::new();
        let mut errors = Vec::new();
        if !filters.is_empty() {
            let started = self.ticker.get_or_init(|| {
                budget::start_epoch_ticker(&[&self.plain.engine, &self.metered.engine])
            });
            if let Err(e) = started {
                return Err((0..filters.len()).map(|i| (i, e.clone())).collect());
            }
        }
        for (i, cfg) in filters.iter().enumerate() {
            let (bytes, sha256): (Arc<[u8]>, String) = match Self::read(&cfg.plugin_path) {
                Ok((bytes, sha256)) => (bytes.into(), sha256),
                Err(e) => {
                    errors.push((i, e));
                    continue;
                }
            };
            if let Some(same) = previous
                .iter()
                .find(|p| p.version.sha256 == sha256 && p.config().same_filter(cfg))
            {
                out.push(same.clone());
                continue;
            }
            let metered = cfg.fuel.is_some();
            let shared = cfg.shared_store.is_remote();
            let known = previous
                .iter()
                .find(|p| {
                    p.version.sha256 == sha256
                        && p.config().fuel.is_some() == metered
                        && p.config().shared_store.is_remote() == shared
                })
                .map(|p| {
                    Ok(Compiled {
                        pre: p.pool_pre(),
                        sha256: sha256.clone(),
                    })
                });
            let key = (sha256.clone(), metered, shared);
            let result = match compiled.get(&key) {
                Some(r) => r.clone(),
                None => {
                    let r = match known {
                        Some(k) => k,
                        None => {
                            let rt = self.runtime(cfg).clone();
                            let (path, hash) = (cfg.plugin_path.clone(), sha256.clone());
                            let bytes = bytes.clone();
                            tokio::task::spawn_blocking(move || {
                                rt.compile(&path, &bytes, hash, shared)
                            })
                            .await
                            .unwrap_or_else(|e| {
                                Err(LoadError::Engine(format!("compiler task failed: {e}")))
                            })
                        }
                    };
                    compiled.insert(key, r.clone());
                    r
                }
            };
            match result {
                Ok(c) => match self.new_filter(c, cfg, &bytes).await {
                    Ok(f) => out.push(Arc::new(f)),
                    Err(e) => errors.push((i, e)),
                },
                Err(e) => errors.push((i, e)),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Prepare a filter's services and pool and create (and `init`) its first instance, so
    /// a bad config is refused at load time. `bytes` is the plugin's content (for a
    /// snapshot).
    async fn new_filter(
        &self,
        compiled: Compiled,
        cfg: &FilterConfig,
        bytes: &[u8],
    ) -> Result<Filter, LoadError> {
        let name: Arc<str> = Arc::from(cfg.name.as_str());
        let clients = if cfg.allow_hosts.is_empty() {
            Clients::none()
        } else {
            let (deny, ca) = (
                DenyList::new(cfg.outbound_deny.clone()),
                cfg.outbound_ca.clone(),
            );
            // Reads CA files: off the async workers.
            tokio::task::spawn_blocking(move || Clients::new(deny, ca))
                .await
                .unwrap_or_else(|e| Err(format!("client setup failed: {e}")))
                .map_err(LoadError::Outbound)?
        };
        let shared = match &cfg.shared_store {
            StoreSettings::Memory => None,
            StoreSettings::Redis(settings) => {
                let redis = self.stores.redis(settings).map_err(LoadError::Store)?;
                Some(Arc::new(SharedStore::new(redis, cfg.on_store_failure)))
            }
        };
        let services = Arc::new(FilterServices {
            name: name.clone(),
            kv: self.kv.namespace(&cfg.name, cfg.store),
            rate_limit: self.rate_limit.namespace(&cfg.name, cfg.rate_limit_keys),
            shared,
            geo: self.geo.clone(),
            metrics: FilterMetrics::default(),
            outbound: Outbound {
                allow_hosts: cfg.allow_hosts.clone(),
                budget: cfg.outbound_timeout,
                body_limit: cfg.body_limit,
                clients,
            },
        });
        // The granted files as they are now: what every instance of this load reads.
        let snapshot = {
            let (name, files) = (cfg.name.clone(), cfg.files.clone());
            tokio::task::spawn_blocking(move || Snapshot::take(&name, &files))
                .await
                .unwrap_or_else(|e| Err(format!("copying the granted files failed: {e}")))
                .map_err(LoadError::Files)?
                .map(Arc::new)
        };
        let (pool, snapshot_took) = self
            .instance_pool(&compiled, cfg, &services, snapshot, bytes)
            .await?;
        let started = std::time::Instant::now();
        let (first, hooks) = pool.instantiate().await?;
        pool.keep_idle(first);
        // A filter this slow to start gets an instance per worker now, before it serves,
        // rather than one per worker on that worker's first request (which would wait).
        if started.elapsed() >= SLOW_INIT {
            pool.prewarm_other_slots().await?;
        }
        Ok(Filter {
            name,
            pool,
            services,
            hooks,
            version: FilterVersion {
                sha256: compiled.sha256,
                loaded_at: SystemTime::now(),
            },
            compiled: compiled.pre,
            snapshot_took,
        })
    }

    /// The filter's pool of instances: of its compiled plugin, or, with `instance-start =
    /// "snapshot"`, of a snapshot taken after one `init` (and how long that took).
    async fn instance_pool(
        &self,
        compiled: &Compiled,
        cfg: &FilterConfig,
        services: &Arc<FilterServices>,
        files: Option<Arc<Snapshot>>,
        bytes: &[u8],
    ) -> Result<(InstancePool, Option<std::time::Duration>), LoadError> {
        match cfg.instance_start {
            InstanceStart::Init => Ok((
                InstancePool::new(compiled.pre.clone(), cfg, services.clone(), files),
                None,
            )),
            InstanceStart::Snapshot => {
                let made = preinit::preinitialise(
                    self.runtime(cfg),
                    &cfg.plugin_path,
                    bytes,
                    cfg.shared_store.is_remote(),
                    |pre| InstancePool::new(pre, cfg, services.clone(), files.clone()),
                )
                .await?;
                tracing::info!(filter = %cfg.name, took = ?made.took, "initialised once, instances start from its snapshot");
                let pool = InstancePool::new(made.pre, cfg, services.clone(), files)
                    .preinitialised(made.hooks);
                Ok((pool, Some(made.took)))
            }
        }
    }

    /// Load one filter from its entry (embedding, tests, benchmarks).
    pub async fn load(&self, cfg: &FilterConfig) -> Result<Arc<Filter>, LoadError> {
        self.load_all(std::slice::from_ref(cfg), &[])
            .await
            .map(|mut v| v.remove(0))
            .map_err(|mut e| e.remove(0).1)
    }
}

/// Check the component's exports and imports against the world this host provides, naming
/// what is missing or of another version.
fn check_world(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let ours = |name: &str, prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.split_once('@'))
            .is_some_and(|(_, v)| bindings::COMPATIBLE.contains(&v))
    };
    if !exports.iter().any(|e| ours(e, "weir:filter/filter")) {
        if let Some(other) = exports
            .iter()
            .find(|e| e.starts_with("weir:filter/filter@"))
        {
            return Err(format!(
                "it exports {other}, but this host implements {} (and loads {})",
                bindings::EXPORT,
                bindings::COMPATIBLE.join(", ")
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
        let supported = name.starts_with("wasi:") || ours(name, "weir:filter/");
        if !supported {
            return Err(format!(
                "it imports {name}, which this host ({}) does not provide",
                bindings::PACKAGE
            ));
        }
    }
    Ok(())
}
