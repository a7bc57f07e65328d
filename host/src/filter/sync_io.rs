//! `wasi:io` (streams and poll) for filters called synchronously: each operation runs
//! wasmtime-wasi's own implementation to completion at once, and one that would have to wait
//! traps instead of blocking the worker thread.
//!
//! Filters that cannot wait on anything — no outbound HTTP, no timers, no files, no sockets
//! (see [`can_run_sync`]) — are called without a fiber or a future: their only streams are
//! stdin (empty) and stdout/stderr (kept in memory or written through), which are always
//! ready. wasmtime-wasi's synchronous bindings would run such operations through `block_on`,
//! which panics on a tokio worker thread; these run them in place.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use wasmtime::component::{HasData, HasSelf, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::io::streams as async_streams;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};

use super::host::FilterState;

/// Imports through which a filter can wait (for the network, a timer, the file system): a
/// component importing any of them is called on a fiber, the others synchronously.
const WAITING_IMPORTS: &[&str] = &[
    "weir:filter/http-client",
    "wasi:clocks/monotonic-clock",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// Imports that wait when the filter's store is shared (on Redis).
const SHARED_STORE_IMPORTS: &[&str] = &["weir:filter/kv", "weir:filter/rate-limit"];

/// Whether a component with these imports can be called synchronously; `shared_store` if
/// its key/value store and rate limits are on the network.
pub fn can_run_sync<'a>(mut imports: impl Iterator<Item = &'a str>, shared_store: bool) -> bool {
    !imports.any(|name| {
        WAITING_IMPORTS.iter().any(|w| name.starts_with(w))
            || (shared_store && SHARED_STORE_IMPORTS.iter().any(|w| name.starts_with(w)))
    })
}

/// Replace `linker`'s `kv` and `rate-limit` with synchronous versions, which answer from the
/// node-local store (a filter with a shared store is never linked with them).
pub fn shadow_local_store(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    use super::bindings::sync::weir::filter::{kv, rate_limit};
    linker.allow_shadowing(true);
    kv::add_to_linker::<FilterState, HasSelf<FilterState>>(linker, |s| s)?;
    rate_limit::add_to_linker::<FilterState, HasSelf<FilterState>>(linker, |s| s)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Replace `linker`'s `wasi:io/poll` and `wasi:io/streams` with the in-place versions.
pub fn shadow_io(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    poll::add_to_linker::<FilterState, InPlace>(linker, |s| Table(s.table_mut()))?;
    streams::add_to_linker::<FilterState, InPlace>(linker, |s| Table(s.table_mut()))?;
    linker.allow_shadowing(false);
    Ok(())
}

struct InPlace;

impl HasData for InPlace {
    type Data<'a> = Table<'a>;
}

/// The store's resource table, seen through the in-place `wasi:io`.
pub struct Table<'a>(&'a mut ResourceTable);

const WOULD_WAIT: &str = "the filter waited on a stream that was not ready, which a filter \
                          without outbound HTTP, timers, files or sockets cannot do";

/// Run `f` to completion now, or fail if it would wait.
fn now<T>(f: impl Future<Output = T>) -> Option<T> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fn now_or_trap<T>(f: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    now(f).unwrap_or_else(|| Err(wasmtime::format_err!("{WOULD_WAIT}")))
}

fn stream_now<T>(f: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    now(f).unwrap_or_else(|| Err(StreamError::trap(WOULD_WAIT)))
}

impl poll::Host for Table<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        now_or_trap(async_poll::Host::poll(self.0, pollables))
    }
}

impl poll::HostPollable for Table<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        now_or_trap(async_poll::HostPollable::ready(self.0, pollable))
    }
    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        now_or_trap(async_poll::HostPollable::block(self.0, pollable))
    }
    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.0, pollable)
    }
}

impl streams::Host for Table<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        Ok(
            match async_streams::Host::convert_stream_error(self.0, err)? {
                async_streams::StreamError::LastOperationFailed(e) => {
                    streams::StreamError::LastOperationFailed(e)
                }
                async_streams::StreamError::Closed => streams::StreamError::Closed,
            },
        )
    }
}

use async_streams::HostInputStream as AsyncIn;
use async_streams::HostOutputStream as AsyncOut;

impl streams::HostOutputStream for Table<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        now_or_trap(AsyncOut::drop(self.0, stream))
    }
    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        AsyncOut::check_write(self.0, stream)
    }
    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        AsyncOut::write(self.0, stream, bytes)
    }
    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        stream_now(AsyncOut::blocking_write_and_flush(self.0, stream, bytes))
    }
    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        stream_now(AsyncOut::blocking_write_zeroes_and_flush(
            self.0, stream, len,
        ))
    }
    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncOut::subscribe(self.0, stream)
    }
    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        AsyncOut::write_zeroes(self.0, stream, len)
    }
    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        AsyncOut::flush(self.0, stream)
    }
    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        stream_now(AsyncOut::blocking_flush(self.0, stream))
    }
    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        AsyncOut::splice(self.0, dst, src, len)
    }
    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        stream_now(AsyncOut::blocking_splice(self.0, dst, src, len))
    }
}

impl streams::HostInputStream for Table<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        now_or_trap(AsyncIn::drop(self.0, stream))
    }
    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        AsyncIn::read(self.0, stream, len)
    }
    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        stream_now(AsyncIn::blocking_read(self.0, stream, len))
    }
    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        AsyncIn::skip(self.0, stream, len)
    }
    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        stream_now(AsyncIn::blocking_skip(self.0, stream, len))
    }
    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncIn::subscribe(self.0, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_components_that_cannot_wait_run_sync() {
        let plain = [
            "wasi:cli/stderr@0.2.6",
            "wasi:io/streams@0.2.6",
            "weir:filter/kv@0.2.2",
        ];
        assert!(can_run_sync(plain.into_iter(), false));
        // The same component with its store on Redis waits on the network.
        assert!(!can_run_sync(plain.into_iter(), true));
        let rate_limited = ["wasi:io/streams@0.2.6", "weir:filter/rate-limit@0.2.3"];
        assert!(!can_run_sync(rate_limited.into_iter(), true));
        assert!(can_run_sync(["wasi:io/streams@0.2.6"].into_iter(), true));
        for waiting in [
            "weir:filter/http-client@0.2.2",
            "wasi:clocks/monotonic-clock@0.2.0",
            "wasi:filesystem/types@0.2.6",
            "wasi:sockets/tcp@0.2.0",
        ] {
            assert!(
                !can_run_sync(plain.into_iter().chain([waiting]), false),
                "{waiting}"
            );
        }
    }

    #[test]
    fn an_operation_that_would_wait_fails_instead_of_blocking() {
        assert_eq!(now(async { 7 }), Some(7));
        assert_eq!(now(std::future::pending::<u8>()), None);
        assert!(now_or_trap(std::future::pending::<wasmtime::Result<()>>())
            .unwrap_err()
            .to_string()
            .contains("not ready"));
    }
}
