//! `wasi:io/poll` for filters called on a fiber: a guest that waits (a sleep, a timer) leaves
//! its fiber and the worker runs other requests meanwhile, so the wait is taken out of the
//! call's CPU accounting (see `budget::pause`), as outbound HTTP is.

use super::budget;
use super::host::{CallData, FilterState};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll;
use wasmtime_wasi::p2::DynPollable;

/// Replace `linker`'s `wasi:io/poll` with the accounted version.
pub fn install(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    poll::add_to_linker::<FilterState, Accounted>(linker, FilterState::waits)?;
    linker.allow_shadowing(false);
    Ok(())
}

struct Accounted;

impl HasData for Accounted {
    type Data<'a> = Waits<'a>;
}

/// What a wait needs: the pollables, and the call to pause.
pub struct Waits<'a> {
    pub table: &'a mut ResourceTable,
    pub call: &'a mut CallData,
}

impl poll::Host for Waits<'_> {
    async fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        budget::pause(self.call);
        let ready = poll::Host::poll(self.table, pollables).await;
        budget::resume(self.call);
        ready
    }
}

impl poll::HostPollable for Waits<'_> {
    async fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        budget::pause(self.call);
        let done = poll::HostPollable::block(self.table, pollable).await;
        budget::resume(self.call);
        done
    }
    async fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        poll::HostPollable::ready(self.table, pollable).await
    }
    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(self.table, pollable)
    }
}
