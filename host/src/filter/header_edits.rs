//! The hot header edits (`set-header`, `append-header` on requests and responses), read
//! straight from the guest's memory instead of through owned strings, with the names and
//! values a filter sets over and over (its configured ones) kept ready to reuse: setting
//! the same header again copies and allocates nothing.
//!
//! They replace the generated bindings of the same functions in the linker; the generated
//! ones (in `resources`) do the same through the same checks, and stay for the types.

use super::bindings::{Request, Response};
use super::host::FilterState;
use super::resources::headers;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use wasmtime::component::{Linker, LinkerInstance, Resource, WasmStr};
use wasmtime::StoreContextMut;

/// Names and values kept per instance.
const KEEP: usize = 16;
/// Longest value kept (longer ones are parsed each time).
const KEEP_VALUE_LEN: usize = 1024;

/// Header names and values this instance set recently.
#[derive(Default)]
pub struct Recent {
    names: Vec<(Box<[u8]>, HeaderName)>,
    values: Vec<(Box<[u8]>, HeaderValue)>,
    /// Where the next new entry goes once full (oldest first).
    next_name: usize,
    next_value: usize,
}

impl Recent {
    /// The header name spelled `raw`, checked as [`headers::parse`] checks it.
    fn name(&mut self, raw: &str) -> Result<HeaderName, String> {
        if let Some((_, n)) = self.names.iter().find(|(k, _)| **k == *raw.as_bytes()) {
            return Ok(n.clone());
        }
        let n = headers::parse_name(raw)?;
        keep(&mut self.names, &mut self.next_name, raw.as_bytes(), &n);
        Ok(n)
    }

    /// The value `raw` of header `name`.
    fn value(&mut self, name: &str, raw: &str) -> Result<HeaderValue, String> {
        if let Some((_, v)) = self.values.iter().find(|(k, _)| **k == *raw.as_bytes()) {
            return Ok(v.clone());
        }
        let v = headers::parse_value(name, raw)?;
        if raw.len() <= KEEP_VALUE_LEN {
            keep(&mut self.values, &mut self.next_value, raw.as_bytes(), &v);
        }
        Ok(v)
    }
}

fn keep<T: Clone>(list: &mut Vec<(Box<[u8]>, T)>, next: &mut usize, raw: &[u8], item: &T) {
    let entry = (Box::from(raw), item.clone());
    if list.len() < KEEP {
        list.push(entry);
    } else if let Some(slot) = list.get_mut(*next) {
        *slot = entry;
        *next = (*next + 1) % KEEP;
    }
}

/// Whether an edit sets (replaces) or appends.
#[derive(Clone, Copy)]
enum Edit {
    Set,
    Append,
}

/// Which head an edit goes to.
#[derive(Clone, Copy)]
enum Head {
    Request,
    Response,
}

type EditResult = wasmtime::Result<(Result<(), String>,)>;

/// Install the fast edits in `linker`, over the generated ones.
pub fn install(linker: &mut Linker<FilterState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(super::bindings::TYPES)?;
    wrap::<Request>(
        &mut types,
        "[method]request.set-header",
        Head::Request,
        Edit::Set,
    )?;
    wrap::<Request>(
        &mut types,
        "[method]request.append-header",
        Head::Request,
        Edit::Append,
    )?;
    wrap::<Response>(
        &mut types,
        "[method]response.set-header",
        Head::Response,
        Edit::Set,
    )?;
    wrap::<Response>(
        &mut types,
        "[method]response.append-header",
        Head::Response,
        Edit::Append,
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Define `name`, a method of resource `R` taking a header name and value, as edit `how`.
fn wrap<R: 'static>(
    types: &mut LinkerInstance<'_, FilterState>,
    name: &str,
    head: Head,
    how: Edit,
) -> wasmtime::Result<()> {
    types.func_wrap(
        name,
        move |store, (_, n, v): (Resource<R>, WasmStr, WasmStr)| -> EditResult {
            edit(store, head, how, &n, &v)
        },
    )
}

fn edit(
    mut store: StoreContextMut<'_, FilterState>,
    head: Head,
    how: Edit,
    name: &WasmStr,
    value: &WasmStr,
) -> EditResult {
    // The recent list lives in the store, which the guest strings borrow: take it out while
    // they are read.
    let mut recent = std::mem::take(&mut store.data_mut().recent);
    let parsed = (|| -> wasmtime::Result<Result<(HeaderName, HeaderValue), String>> {
        let name = name.to_str(&store)?;
        let value = value.to_str(&store)?;
        Ok(recent
            .name(&name)
            .and_then(|n| Ok((n, recent.value(&name, &value)?))))
    })();
    let state = store.data_mut();
    state.recent = recent;
    let (n, v) = match parsed? {
        Ok(nv) => nv,
        Err(why) => return Ok((Err(why),)),
    };
    let map: &mut HeaderMap = match head {
        Head::Request => match state.req_mut()? {
            Ok(r) => &mut r.parts.headers,
            Err(why) => return Ok((Err(why),)),
        },
        Head::Response => &mut state.resp_mut()?.headers,
    };
    match how {
        Edit::Set => drop(map.insert(n, v)),
        Edit::Append => drop(map.append(n, v)),
    }
    Ok((Ok(()),))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_names_and_values_are_reused_and_still_checked() {
        let mut r = Recent::default();
        let a = r.name("X-Served-By").unwrap();
        assert_eq!(a.as_str(), "x-served-by");
        assert_eq!(r.name("X-Served-By").unwrap(), a);
        assert_eq!(r.names.len(), 1);
        assert!(r.name("bad name").is_err());
        assert!(r.name("content-length").is_err(), "managed by the proxy");
        assert_eq!(r.value("x", "weir").unwrap(), "weir");
        assert_eq!(r.value("x", "weir").unwrap(), "weir");
        assert_eq!(r.values.len(), 1);
        assert!(r.value("x", "a\nb").is_err());
        for i in 0..40 {
            r.value("x", &format!("v{i}")).unwrap();
        }
        assert_eq!(r.values.len(), KEEP, "bounded");
        assert_eq!(r.value("x", "v39").unwrap(), "v39");
    }
}
