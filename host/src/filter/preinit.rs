//! Instances that start initialised (`instance-start = "snapshot"`): when the filter loads,
//! its `init` runs once, in a copy of its component instrumented to read its own state back
//! (wizer), and the component is compiled again with that instance's memories and globals
//! as their initial values. New instances then start from that state (wasmtime maps it
//! copy-on-write) and do not run `init`.
//!
//! What does not carry over: handles the instance held when `init` returned (open files and
//! directories, streams) belonged to that instance and are unknown to the others, and
//! anything `init` drew from randomness is the same in every instance.

use super::bindings::Hooks;
use super::engine::Runtime;
use super::host::FilterState;
use super::pool::{InstancePool, Prepared};
use super::LoadError;
use futures_util::FutureExt as _;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::{Duration, Instant};
use wasmtime::component::{ComponentNamedList, ComponentType, Lift, WasmList};
use wasmtime::Store;
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// A filter's component with its `init` already run.
pub(super) struct Preinitialised {
    /// The snapshot, compiled and linked.
    pub pre: Prepared,
    /// What its `init` declared.
    pub hooks: Hooks,
    /// How long making it took (instrumenting, compiling twice, `init`, reading the state).
    pub took: Duration,
}

/// Run `init` once in an instrumented copy of `bytes` (the plugin at `path`), in an instance
/// of the pool `pool_for` makes around the instrumented component, and compile the
/// component again with that instance's state as its initial state.
pub(super) async fn preinitialise(
    rt: &Runtime,
    path: &Path,
    bytes: &[u8],
    shared_store: bool,
    pool_for: impl FnOnce(Prepared) -> InstancePool,
) -> Result<Preinitialised, LoadError> {
    let started = Instant::now();
    let failed =
        |step: &str, e: &dyn std::fmt::Display| LoadError::Snapshot(format!("{step}: {e:#}"));
    let mut wizer = Wizer::new();
    wizer.keep_init_func(true);
    // Wizer asserts what it expects of a component rather than returning every error: a
    // panic in it fails this filter's load, not the reload.
    let (cx, instrumented) =
        std::panic::catch_unwind(AssertUnwindSafe(|| wizer.instrument_component(bytes)))
            .map_err(|p| failed("instrumenting the component", &panic_text(&p)))?
            .map_err(|e| failed("instrumenting the component", &e))?;
    let instrumented = compile_blocking(rt, path, instrumented, shared_store, true).await?;
    let pool = pool_for(instrumented);
    let (mut instance, hooks) = pool.instantiate().await?;
    let mut access = Access {
        store: &mut instance.store,
        raw: instance.raw,
        error: None,
    };
    let snapshot = AssertUnwindSafe(wizer.snapshot_component(&cx, &mut access))
        .catch_unwind()
        .await;
    if let Some(e) = access.error {
        return Err(failed("reading the initialised state", &e));
    }
    let snapshot = snapshot
        .map_err(|p| failed("writing the snapshot", &panic_text(&p)))?
        .map_err(|e| failed("writing the snapshot", &e))?;
    drop(instance);
    // Each snapshot differs (whatever `init` drew from randomness): not worth a cache entry.
    let pre = compile_blocking(rt, path, snapshot, shared_store, false).await?;
    // The state read back, the rewritten component and the compiler's work are all freed.
    crate::trim::release_freed_memory();
    Ok(Preinitialised {
        pre,
        hooks,
        took: started.elapsed(),
    })
}

/// What a caught panic said.
fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .map_or_else(
            || "it panicked".to_string(),
            |s| format!("it panicked: {s}"),
        )
}

/// Compile `bytes` on a blocking thread.
async fn compile_blocking(
    rt: &Runtime,
    path: &Path,
    bytes: Vec<u8>,
    shared_store: bool,
    cacheable: bool,
) -> Result<Prepared, LoadError> {
    let (rt, path) = (rt.clone(), path.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let sha256 = crate::hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        rt.compile_as(&path, &bytes, sha256, shared_store, cacheable)
    })
    .await
    .unwrap_or_else(|e| Err(LoadError::Engine(format!("compiler task failed: {e}"))))
    .map(|c| c.pre)
}

/// Reads an instrumented instance's state through the functions wizer added to it.
struct Access<'a> {
    store: &'a mut Store<FilterState>,
    raw: wasmtime::component::Instance,
    /// The first call that failed (the trait's functions cannot return an error).
    error: Option<String>,
}

impl Access<'_> {
    /// Call `instance`'s export `func`, which takes nothing and returns one `R`, and give
    /// `read` what it returned; on failure remember why and give nothing.
    async fn call<R, T>(
        &mut self,
        instance: &str,
        func: &str,
        read: impl FnOnce(&Store<FilterState>, R) -> T,
    ) -> Option<T>
    where
        R: ComponentType + Lift + Send + Sync + 'static,
        (R,): ComponentNamedList + Lift + Send + Sync,
    {
        if self.error.is_some() {
            return None;
        }
        let result = async {
            let (_, outer) = self
                .raw
                .get_export(&mut *self.store, None, instance)
                .ok_or_else(|| format!("no export {instance}"))?;
            let (_, inner) = self
                .raw
                .get_export(&mut *self.store, Some(&outer), func)
                .ok_or_else(|| format!("no export {instance}#{func}"))?;
            let f = self
                .raw
                .get_typed_func::<(), (R,)>(&mut *self.store, inner)
                .map_err(|e| format!("{instance}#{func}: {e:#}"))?;
            // Fiber filters' stores take only async calls; the others' take both.
            let (r,) = f
                .call_async(&mut *self.store, ())
                .await
                .map_err(|e| format!("{instance}#{func}: {e:#}"))?;
            Ok::<T, String>(read(self.store, r))
        }
        .await;
        result.map_err(|e| self.error = Some(e)).ok()
    }
}

impl ComponentInstanceState for Access<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        // A failure is kept in `error`, and the snapshot is then not used.
        let read =
            |store: &Store<FilterState>, list: WasmList<u8>| contents(list.as_le_slice(store));
        self.call(instance, func, read).await;
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, v: i32| v).await.unwrap_or(0)
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, v: i64| v).await.unwrap_or(0)
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, v: f32| v.to_bits())
            .await
            .unwrap_or(0)
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, v: f64| v.to_bits())
            .await
            .unwrap_or(0)
    }
}
