//! Per-request context: string properties shared by the filters of one request, and the
//! host side of the `context` import.

use super::bindings::weir::filter::context;
use super::host::FilterState;

/// Longest property key, in bytes.
pub const MAX_KEY: usize = 256;
/// Longest property value, in bytes.
pub const MAX_VALUE: usize = 4096;
/// Most properties per request.
pub const MAX_PROPERTIES: usize = 64;

/// A request's properties, in the order they were first set. A request has few, so a
/// vector beats a map, and an empty one costs no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context(Vec<(String, String)>);

impl Context {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Set `key` to `value`, within the size limits.
    pub fn set(&mut self, key: String, value: String) -> Result<(), String> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(format!("context keys are 1..={MAX_KEY} bytes"));
        }
        if value.len() > MAX_VALUE {
            return Err(format!(
                "context value of {key:?} is over {MAX_VALUE} bytes"
            ));
        }
        if let Some((_, v)) = self.0.iter_mut().find(|(k, _)| *k == key) {
            *v = value;
            return Ok(());
        }
        if self.0.len() >= MAX_PROPERTIES {
            return Err(format!("a request has at most {MAX_PROPERTIES} properties"));
        }
        self.0.push((key, value));
        Ok(())
    }

    /// Remove `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// Every property, in the order first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl context::Host for FilterState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .call
            .req
            .as_ref()
            .and_then(|r| r.context.get(&key).map(str::to_owned)))
    }

    fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), String>> {
        // The context may be written in the response phase too: it is not sent anywhere.
        self.call.before_request_change();
        Ok(match self.call.req.as_mut() {
            Some(r) => r.context.set(key, value),
            None => Err("there is no request outside a hook call".into()),
        })
    }

    fn remove(&mut self, key: String) -> wasmtime::Result<()> {
        self.call.before_request_change();
        if let Some(r) = self.call.req.as_mut() {
            r.context.remove(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_replace_remove_and_limits() {
        let mut c = Context::default();
        c.set("user".into(), "ann".into()).unwrap();
        c.set("user".into(), "bob".into()).unwrap();
        assert_eq!(c.get("user"), Some("bob"));
        assert_eq!(c.iter().count(), 1);
        c.remove("user");
        assert_eq!(c.get("user"), None);
        assert!(c.set(String::new(), "x".into()).is_err());
        assert!(c.set("k".into(), "v".repeat(MAX_VALUE + 1)).is_err());
        for i in 0..MAX_PROPERTIES {
            c.set(format!("k{i}"), "v".into()).unwrap();
        }
        assert!(c
            .set("one-more".into(), "v".into())
            .unwrap_err()
            .contains("at most"));
    }
}
