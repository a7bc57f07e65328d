//! The `cache` import: a filter's caching and compression decisions for its request,
//! recorded on the request (see [`crate::cache::decisions`]).

use super::bindings::weir::filter::cache as wit;
use super::host::FilterState;

impl FilterState {
    fn decisions(&mut self) -> wasmtime::Result<&mut crate::cache::decisions::Decisions> {
        // Decisions are not sent anywhere: they may be made in the response phase too.
        self.call.before_request_change();
        match self.call.req.as_mut() {
            Some(r) => Ok(r.caching.get_or_insert_with(Default::default)),
            None => wasmtime::bail!("cache decisions made outside a hook call"),
        }
    }
}

impl wit::Host for FilterState {
    fn bypass(&mut self) -> wasmtime::Result<()> {
        self.decisions()?.bypass = true;
        Ok(())
    }

    fn add_to_key(&mut self, part: String) -> wasmtime::Result<Result<(), String>> {
        Ok(self.decisions()?.add_key_part(part))
    }

    fn uncacheable(&mut self) -> wasmtime::Result<()> {
        self.decisions()?.uncacheable = true;
        Ok(())
    }

    fn set_ttl(&mut self, seconds: u32) -> wasmtime::Result<()> {
        self.decisions()?.ttl = Some(seconds);
        Ok(())
    }

    fn set_stale(&mut self, while_revalidate: u32, if_error: u32) -> wasmtime::Result<()> {
        self.decisions()?.stale = Some((while_revalidate, if_error));
        Ok(())
    }

    fn add_tag(&mut self, tag: String) -> wasmtime::Result<Result<(), String>> {
        Ok(self.decisions()?.add_tag(tag))
    }

    fn no_compress(&mut self) -> wasmtime::Result<()> {
        self.decisions()?.no_compress = true;
        Ok(())
    }
}
