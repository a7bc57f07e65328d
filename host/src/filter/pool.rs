//! Instance pooling: each filter keeps idle, initialised instances and reuses them across
//! requests instead of instantiating per request.
//!
//! Instances come from wasmtime's pooling allocator (pre-reserved slots, so creating one is
//! a few page mappings, not fresh allocations) and a pre-instantiated component (imports
//! resolved once per file). A hook call keeps its instance only while the guest runs, so
//! about one instance per worker thread is busy per filter. Idle instances are kept per
//! worker thread: a worker reuses the instance whose memory is already in its core's cache,
//! and workers never contend for one lock.
//!
//! An instance whose call failed is dropped, never returned; so is one that served
//! `max-requests-per-instance` calls, and every instance of a `per-request` filter.

use super::bindings::{self, FilterWorld, FilterWorldIndices, FilterWorldPre, Hooks};
use super::host::FilterState;
use super::per_worker::PerWorker;
use super::services::FilterServices;
use super::snapshot::Snapshot;
use super::LoadError;
use crate::config::{FilterConfig, Isolation};
use spin::{mutex::SpinMutex, relax::Yield};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use wasmtime::Store;

/// Epoch ticks instantiation and `init` may take (about one second).
const INIT_DEADLINE_TICKS: u64 = 1000;
/// Idle instances kept per worker slot of a filter called synchronously: its calls on one
/// worker never overlap.
const MAX_IDLE: usize = 4;
/// The same for a filter whose calls wait (outbound HTTP, a shared store): a worker has as
/// many of its calls in flight as it has requests waiting, and an instance dropped after
/// each is an instantiation per request. Fewer for filters allowed much memory (a WAF with
/// its rule set), so that the idle ones of one filter on one worker may use at most
/// [`IDLE_MEMORY`] between them.
const MAX_IDLE_WAITING: usize = 64;
/// The linear memory a filter's idle instances on one worker may be allowed in all.
const IDLE_MEMORY: usize = 1 << 30;

/// Idle instances one worker keeps of a filter called `sync`hronously or not, whose
/// instances may each grow to `memory_limit` bytes.
fn max_idle(sync: bool, memory_limit: usize) -> usize {
    if sync {
        MAX_IDLE
    } else {
        (IDLE_MEMORY / memory_limit.max(1)).clamp(MAX_IDLE, MAX_IDLE_WAITING)
    }
}

/// An initialised instance with its own store.
pub(super) struct Instance {
    pub store: Store<FilterState>,
    pub world: World,
    /// The component instance behind `world` (its other exports, for a snapshot).
    pub raw: wasmtime::component::Instance,
    /// Hook calls served.
    pub uses: u64,
    /// Counts it among its filter's live instances until dropped.
    _live: LiveInstance,
}

/// One worker's idle instances. Behind a spin lock rather than a `Mutex`: it is taken twice
/// per call (checkout and checkin), almost never by two threads at once, and a spin lock's
/// unlock is a plain store where a `Mutex`'s is a second locked instruction. Each list has
/// cache lines of its own, so that workers do not share one.
#[derive(Default)]
#[repr(align(128))]
struct IdleList(SpinMutex<Vec<Instance>, Yield>);

/// One of a filter's live instances (busy or idle), counted against `max-instances`.
struct LiveInstance(Arc<AtomicU32>);

impl LiveInstance {
    /// Count one more instance, unless `max` already live.
    fn reserve(live: &Arc<AtomicU32>, max: u32) -> Result<Self, LoadError> {
        live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .map_err(|_| LoadError::AtCapacity(max))?;
        Ok(LiveInstance(live.clone()))
    }
}

impl Drop for LiveInstance {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A component's exports, bound for the way it is called.
pub(super) enum World {
    /// A plain function call (the component cannot wait on anything).
    Sync(bindings::sync::FilterWorld),
    /// On a fiber, so it can wait for outbound HTTP or a timer.
    Async(FilterWorld),
}

/// A compiled component with its imports resolved, ready to instantiate.
#[derive(Clone)]
pub struct Prepared {
    pre: FilterWorldPre<FilterState>,
    /// Where the exports are, found once: binding a new instance (kept unbound as well, for
    /// a snapshot's accessors) looks nothing up by name.
    indices: Arc<FilterWorldIndices>,
    /// The same for plain function calls, if every import is synchronous.
    sync: Option<SyncPre>,
}

/// A component bound for plain function calls, and where its exports are.
#[derive(Clone)]
struct SyncPre {
    pre: bindings::sync::FilterWorldPre<FilterState>,
    indices: Arc<bindings::sync::FilterWorldIndices>,
}

impl Prepared {
    /// Bind `pre`'s exports; `sync` if every import it uses is synchronous.
    pub fn new(
        pre: wasmtime::component::InstancePre<FilterState>,
        sync: bool,
    ) -> wasmtime::Result<Self> {
        let sync = sync
            .then(|| {
                Ok::<_, wasmtime::Error>(SyncPre {
                    indices: Arc::new(bindings::sync::FilterWorldIndices::new(&pre)?),
                    pre: bindings::sync::FilterWorldPre::new(pre.clone())?,
                })
            })
            .transpose()?;
        Ok(Prepared {
            indices: Arc::new(FilterWorldIndices::new(&pre)?),
            pre: FilterWorldPre::new(pre)?,
            sync,
        })
    }

    /// Whether hooks are plain function calls (no fiber).
    pub fn is_sync(&self) -> bool {
        self.sync.is_some()
    }

    fn engine(&self) -> &wasmtime::Engine {
        self.pre.engine()
    }
}

/// Idle instances of one filter.
pub(super) struct InstancePool {
    pre: Prepared,
    cfg: FilterConfig,
    services: Arc<FilterServices>,
    /// One idle list per worker.
    idle: PerWorker<IdleList>,
    created: AtomicU64,
    /// The last instance made: how long it took to create and `init` (µs), and the linear
    /// memory it had then (bytes).
    last_start_us: AtomicU64,
    last_memory: AtomicU64,
    /// Instances that exist now, busy or idle.
    live: Arc<AtomicU32>,
    /// The granted files as they were at load, which every instance reads.
    snapshot: Option<Arc<Snapshot>>,
    /// Set when `pre` already holds an initialised state (`instance-start = "snapshot"`):
    /// the hooks its `init` declared, and new instances do not run `init`.
    preinitialised: Option<Hooks>,
}

impl InstancePool {
    pub fn new(
        pre: Prepared,
        cfg: &FilterConfig,
        services: Arc<FilterServices>,
        snapshot: Option<Arc<Snapshot>>,
    ) -> Self {
        InstancePool {
            pre,
            cfg: cfg.clone(),
            services,
            snapshot,
            idle: PerWorker::new(IdleList::default),
            created: AtomicU64::new(0),
            last_start_us: AtomicU64::new(0),
            last_memory: AtomicU64::new(0),
            live: Arc::new(AtomicU32::new(0)),
            preinitialised: None,
        }
    }

    /// New instances of this pool start initialised (its component is a snapshot taken after
    /// an `init` that declared `hooks`), so they skip `init`.
    pub fn preinitialised(mut self, hooks: Hooks) -> Self {
        self.preinitialised = Some(hooks);
        self
    }

    /// Create and `init` a fresh instance; also returns the hooks its `init` declared.
    pub async fn instantiate(&self) -> Result<(Instance, Hooks), LoadError> {
        let live = LiveInstance::reserve(&self.live, self.cfg.max_instances)?;
        self.created.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        // `init` runs guest code under an epoch deadline too.
        let _running = super::budget::Activity::global().enter();
        let state = FilterState::new(
            self.services.clone(),
            self.cfg.inherit_stdio,
            self.cfg.memory_limit,
            self.snapshot
                .as_ref()
                .map_or(&self.cfg.files[..], |s| s.grants()),
        )
        .map_err(LoadError::Files)?;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(INIT_DEADLINE_TICKS);
        if self.cfg.fuel.is_some() {
            // `init` is bounded by its epoch deadline, not by fuel.
            store
                .set_fuel(u64::MAX)
                .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        }
        super::budget::install(&mut store, self.cfg.cpu_deadline);
        let config = &self.cfg.config_json;
        let ready = self.preinitialised;
        let made = match &self.pre.sync {
            Some(sync) => sync
                .pre
                .instance_pre()
                .instantiate(&mut store)
                .and_then(|raw| {
                    let world = sync.indices.load(&mut store, &raw)?;
                    let hooks = match ready {
                        Some(hooks) => Ok(hooks),
                        None => world.weir_filter_filter().call_init(&mut store, config)?,
                    };
                    Ok((World::Sync(world), raw, hooks))
                }),
            None => {
                async {
                    let raw = self
                        .pre
                        .pre
                        .instance_pre()
                        .instantiate_async(&mut store)
                        .await?;
                    let world = self.pre.indices.load(&mut store, &raw)?;
                    let hooks = match ready {
                        Some(hooks) => Ok(hooks),
                        None => {
                            world
                                .weir_filter_filter()
                                .call_init(&mut store, config)
                                .await?
                        }
                    };
                    Ok((World::Async(world), raw, hooks))
                }
                .await
            }
        };
        let (world, raw, hooks) = match made {
            Ok((world, raw, refused_or_hooks)) => {
                (world, raw, refused_or_hooks.map_err(LoadError::Init)?)
            }
            Err(e) => return Err(LoadError::Trap(trap_reason(&e, store.data()))),
        };
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_start_us.store(took, Ordering::Relaxed);
        let memory = u64::try_from(store.data().limits.in_use).unwrap_or(u64::MAX);
        self.last_memory.store(memory, Ordering::Relaxed);
        Ok((
            Instance {
                store,
                world,
                raw,
                uses: 0,
                _live: live,
            },
            hooks,
        ))
    }

    /// An idle instance of this worker's, if there is one.
    pub fn idle(&self) -> Option<Instance> {
        self.idle.mine().0.lock().pop()
    }

    /// Return an instance after a successful call, unless its isolation or request count
    /// says it is done.
    pub fn checkin(&self, mut instance: Instance) {
        instance.uses += 1;
        if self.cfg.isolation == Isolation::PerRequest
            || self
                .cfg
                .max_requests_per_instance
                .is_some_and(|max| instance.uses >= max)
        {
            return;
        }
        self.keep_idle(instance);
    }

    /// Keep an unused instance (made at load time) for the next call.
    pub fn keep_idle(&self, instance: Instance) {
        self.keep_in(self.idle.mine(), instance);
    }

    fn keep_in(&self, slot: &IdleList, instance: Instance) {
        let max = max_idle(self.pre.is_sync(), self.cfg.memory_limit);
        let mut idle = slot.0.lock();
        if idle.len() < max {
            idle.push(instance);
        } else {
            // Dropped (its store torn down) after the lock is released.
            drop(idle);
            drop(instance);
        }
    }

    /// Give every other worker's slot an initialised instance too, so that no request waits
    /// for a filter whose `init` is slow (one that loads a rule set, say).
    pub async fn prewarm_other_slots(&self) -> Result<(), LoadError> {
        let mine = self.idle.my_index();
        for (i, slot) in self.idle.worker_slots() {
            if i != mine {
                let (instance, _) = self.instantiate().await?;
                self.keep_in(slot, instance);
            }
        }
        Ok(())
    }

    /// The last instance made: its create-and-`init` time and its linear memory then.
    pub fn last_start(&self) -> (std::time::Duration, u64) {
        (
            std::time::Duration::from_micros(self.last_start_us.load(Ordering::Relaxed)),
            self.last_memory.load(Ordering::Relaxed),
        )
    }

    /// How many instances were ever created (the first at load time included).
    pub fn created_count(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// How many idle instances are kept now, over all workers.
    pub fn idle_count(&self) -> usize {
        self.idle.iter().map(|s| s.0.lock().len()).sum()
    }

    /// The pre-instantiated component, to share with a reloaded filter of the same file.
    pub fn pre(&self) -> &Prepared {
        &self.pre
    }

    /// The manifest entry this pool was made for.
    pub fn config(&self) -> &FilterConfig {
        &self.cfg
    }
}

/// Why instantiation or `init` failed, in one line (the guest backtrace goes to the debug
/// log).
fn trap_reason(e: &wasmtime::Error, state: &FilterState) -> String {
    tracing::debug!(filter = state.filter(), "init trap details: {e:?}");
    super::error::trap_reason(e, state.stderr.panic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_filters_keep_more_idle_instances_unless_they_may_be_large() {
        assert_eq!(max_idle(true, 16 << 20), MAX_IDLE);
        assert_eq!(max_idle(false, 16 << 20), 64, "16 MiB (the default): 64");
        assert_eq!(max_idle(false, 128 << 20), 8, "a WAF at 128 MiB: 8");
        assert_eq!(
            max_idle(false, 1 << 30),
            MAX_IDLE,
            "never fewer than a direct filter's"
        );
    }
}
