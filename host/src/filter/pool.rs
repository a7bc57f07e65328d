//! Instance pooling: each filter keeps idle, initialised instances and reuses them across
//! requests instead of instantiating per request.
//!
//! A hook call keeps its instance only while the guest runs (it does not wait on I/O), so
//! about one instance per worker thread is busy per filter. Idle instances are kept per
//! worker thread: a worker reuses the instance whose memory is already in its core's cache,
//! and workers never contend for one lock.
//! An instance whose call failed is dropped, never returned.

use super::bindings::{FilterWorld, FilterWorldPre, Hooks};
use super::host::FilterState;
use super::LoadError;
use crate::config::FilterConfig;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::Store;
use wasmtime::StoreLimitsBuilder;

/// Core instances a component may create (a Rust filter needs a handful).
const INSTANCE_LIMIT: usize = 64;
/// Tables per store.
const TABLE_LIMIT: usize = 64;
/// Elements per table.
const TABLE_ELEMENT_LIMIT: usize = 100_000;
/// Epoch ticks instantiation and `init` may take (about one second).
const INIT_DEADLINE_TICKS: u64 = 1000;

/// An initialised instance with its own store.
pub(super) struct Instance {
    pub store: Store<FilterState>,
    pub world: FilterWorld,
}

/// Idle instances of one filter.
pub(super) struct InstancePool {
    pre: FilterWorldPre<FilterState>,
    name: Arc<str>,
    config_json: String,
    inherit_stdio: bool,
    memory_limit: usize,
    cpu_deadline: std::time::Duration,
    /// One idle list per worker slot.
    idle: Box<[Mutex<Vec<Instance>>]>,
    max_idle: usize,
    created: AtomicU64,
}

impl InstancePool {
    pub fn new(pre: FilterWorldPre<FilterState>, name: Arc<str>, cfg: &FilterConfig) -> Self {
        let slots = std::thread::available_parallelism().map_or(4, |n| n.get());
        InstancePool {
            pre,
            name,
            config_json: cfg.config_json.clone(),
            inherit_stdio: cfg.inherit_stdio,
            memory_limit: cfg.memory_limit,
            cpu_deadline: cfg.cpu_deadline,
            idle: (0..slots).map(|_| Mutex::new(Vec::new())).collect(),
            max_idle: 4,
            created: AtomicU64::new(0),
        }
    }

    /// Create and `init` a fresh instance; also returns the hooks its `init` declared.
    pub async fn instantiate(&self) -> Result<(Instance, Hooks), LoadError> {
        self.created.fetch_add(1, Ordering::Relaxed);
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.memory_limit)
            .instances(INSTANCE_LIMIT)
            .tables(TABLE_LIMIT)
            .table_elements(TABLE_ELEMENT_LIMIT)
            .build();
        let state = FilterState::new(self.name.clone(), self.inherit_stdio, limits);
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| s.limits());
        store.set_epoch_deadline(INIT_DEADLINE_TICKS);
        super::budget::install(&mut store, self.cpu_deadline);
        let world = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| LoadError::Trap(format!("{e:#}")))?;
        let hooks = world
            .weir_filter_filter()
            .call_init(&mut store, &self.config_json)
            .await
            .map_err(|e| LoadError::Trap(format!("{e:#}")))?
            .map_err(LoadError::Init)?;
        Ok((Instance { store, world }, hooks))
    }

    /// An idle instance, or a new one.
    pub async fn checkout(&self) -> Result<Instance, LoadError> {
        let idle = self.slot().lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(i) => Ok(i),
            None => self.instantiate().await.map(|(instance, _)| instance),
        }
    }

    /// Return a healthy instance for reuse.
    pub fn checkin(&self, instance: Instance) {
        let mut idle = self.slot().lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }

    /// How many instances were ever created (the first at load time included).
    pub fn created_count(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// How many idle instances are kept now, over all workers.
    pub fn idle_count(&self) -> usize {
        self.idle
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    fn slot(&self) -> &Mutex<Vec<Instance>> {
        let i = WORKER_SLOT.with(Cell::get) % self.idle.len().max(1);
        &self.idle[i]
    }
}

thread_local! {
    static WORKER_SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Mark the current thread as worker `id`, so it gets its own idle instances.
pub fn set_worker_slot(id: usize) {
    WORKER_SLOT.with(|s| s.set(id));
}
