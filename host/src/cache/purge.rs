//! Purges: what a purge names ([`Purge`]), removing it from a zone's memory and disk tier,
//! and handing it to the zone's shared channel so that every node sharing it purges too.

use super::entry::Stored;
use super::zone::{Variants, Zone};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What one purge removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// Every variant under this key (and its compressed copies).
    Key(String),
    /// Every entry whose key starts with this.
    Prefix(String),
    /// Every variant tagged with this surrogate key.
    Tag(String),
    /// Everything in the zone.
    All,
}

impl Zone {
    /// Remove what `what` names here, and publish it to the nodes sharing this zone's
    /// purges (if it shares them); how many stored variants went here.
    pub fn purge(&self, what: Purge) -> usize {
        let n = self.purge_here(&what);
        if let Some(channel) = self.shared.load().as_ref() {
            channel.publish(self.name(), what);
        }
        n
    }

    /// Remove what `what` names from this node only; how many stored variants went.
    pub fn purge_here(&self, what: &Purge) -> usize {
        match what {
            Purge::Key(key) => self.purge_key(key),
            Purge::Prefix(prefix) => self.purge_prefix(prefix),
            Purge::Tag(tag) => self.purge_tag(tag),
            Purge::All => {
                let n = self.purge_where(|_, _| true);
                match &self.disk {
                    Some(disk) => n.max(disk.purge(|_, _| true)),
                    None => n,
                }
            }
        }
    }

    /// Share this zone's purges through `channel` from now on (`None`: keep them here).
    pub fn share_purges(&self, channel: Option<Arc<super::shared::PurgeChannel>>) {
        self.shared.store(channel);
    }

    /// With a disk tier: the number of the last shared purge its files saw (`Some(None)`:
    /// no record).
    pub fn purge_mark(&self) -> Option<Option<u64>> {
        self.disk.as_ref().map(|d| d.purge_mark())
    }

    /// With a disk tier: record `n` as the last shared purge its files saw.
    pub fn set_purge_mark(&self, n: u64) {
        if let Some(disk) = &self.disk {
            disk.set_purge_mark(n);
        }
    }

    /// Whether it holds anything, in memory or on disk.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.disk.as_ref().is_none_or(|d| d.usage().0 == 0)
    }

    /// The channel its purges are shared through, if any.
    pub fn purge_channel(&self) -> Option<Arc<super::shared::PurgeChannel>> {
        self.shared.load_full()
    }

    /// Remove every variant under `key` (and its compressed copies); how many there were.
    fn purge_key(&self, key: &str) -> usize {
        let mut n = self.entries.remove(key).map_or(0, |(_, v)| v.list.len());
        for coding in crate::compress::Coding::ALL {
            let copy = super::encoded::key_of(key, coding);
            n += self.entries.remove(&*copy).map_or(0, |(_, v)| v.list.len());
        }
        if let Some(disk) = &self.disk {
            let (exact, copies) = (key.to_string(), format!("{key}\n"));
            n = n.max(disk.purge(move |k, _| k == exact || k.starts_with(&copies)));
        }
        self.counters.purged.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Remove every entry whose key starts with `prefix`; how many variants went.
    fn purge_prefix(&self, prefix: &str) -> usize {
        let n = self.purge_where(|key, _| key.starts_with(prefix));
        match &self.disk {
            Some(disk) => {
                let prefix = prefix.to_string();
                n.max(disk.purge(move |k, _| k.starts_with(&prefix)))
            }
            None => n,
        }
    }

    /// Remove every variant tagged `tag`, keeping the others under their key.
    fn purge_tag(&self, tag: &str) -> usize {
        let mut removed = 0;
        for (key, variants) in self.entries.iter() {
            let kept: Vec<Arc<Stored>> = variants
                .list
                .iter()
                .filter(|s| !s.tags.iter().any(|t| &**t == tag))
                .cloned()
                .collect();
            let gone = variants.list.len() - kept.len();
            if gone == 0 {
                continue;
            }
            removed += gone;
            if kept.is_empty() {
                self.entries.remove(&key);
            } else {
                let weight = kept.iter().map(|s| s.weight(&key)).sum();
                self.entries
                    .insert(key, Arc::new(Variants { list: kept, weight }));
            }
        }
        self.counters
            .purged
            .fetch_add(removed as u64, Ordering::Relaxed);
        match &self.disk {
            Some(disk) => {
                let tag = tag.to_string();
                removed.max(disk.purge(move |_, tags| tags.iter().any(|t| **t == *tag)))
            }
            None => removed,
        }
    }

    /// Remove every entry (all of its variants) that `pred` picks.
    fn purge_where(&self, pred: impl Fn(&str, &Variants) -> bool) -> usize {
        let mut removed = 0;
        for (key, variants) in self.entries.iter() {
            if pred(&key, &variants) {
                removed += self.entries.remove(&key).map_or(0, |(_, v)| v.list.len());
            }
        }
        self.counters
            .purged
            .fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }
}
