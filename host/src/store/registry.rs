//! The open Redis stores: one per distinct setting, shared by every filter configured with
//! it and kept across reloads while a loaded filter uses it (so a reload does not reconnect).

use super::{RedisSettings, RedisStore};
use std::sync::{Arc, Mutex, Weak};

/// Open stores, held weakly: a store lives while a loaded filter uses it.
#[derive(Default)]
pub struct Stores {
    open: Mutex<Vec<(RedisSettings, Weak<RedisStore>)>>,
}

impl Stores {
    /// The store for `settings`, opened (and connecting in the background) on first use.
    /// Must be called within the main tokio runtime.
    pub fn redis(&self, settings: &RedisSettings) -> Result<Arc<RedisStore>, String> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(store) = open
            .iter()
            .find(|(s, _)| s == settings)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(store);
        }
        let store = RedisStore::open(settings.clone())?;
        open.push((settings.clone(), Arc::downgrade(&store)));
        Ok(store)
    }
}
