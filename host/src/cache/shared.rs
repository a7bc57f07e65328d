//! Purges shared by the nodes on one Redis: every purge of a shared zone (admin API,
//! `PURGE`, invalidation by an unsafe method) is published on the store's purge channel and
//! every other node applies it to its zone of the same name.
//!
//! Nothing is lost silently. A node's own purges wait in a bounded outbox while Redis is
//! unreachable and go out in order when it is back (an outbox that overflows becomes one
//! "purge everything" per zone). Messages are numbered by Redis; a node that finds numbers
//! missing (it was cut off while others purged, or Redis lost its state) cannot know what
//! they removed, so it empties its shared zones and says so in the log.

use super::purge::Purge;
use super::zone::{self, Zone};
use crate::store::RedisStore;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Purges kept while Redis is unreachable; beyond, a zone's pending purges become one
/// purge of everything in it.
const OUTBOX: usize = 1024;
/// How often a quiet subscription is checked with a ping.
const PING_EVERY: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Most missing numbers looked for one by one; more is a gap whatever arrived.
const MAX_RECOVERABLE: u64 = 4096;

/// What a shared channel counted, for `/cache` and `/metrics`.
#[derive(Debug, Default)]
pub struct SharedCounters {
    /// This node's purges published.
    pub sent: AtomicU64,
    /// Other nodes' purges applied here.
    pub received: AtomicU64,
    /// Times numbers were found missing and the shared zones emptied.
    pub gaps: AtomicU64,
    /// This node's purges folded into a purge of everything (outbox full).
    pub overflowed: AtomicU64,
    /// Messages on the channel that were not purges.
    pub malformed: AtomicU64,
    /// Whether this node is subscribed to the channel now.
    pub subscribed: AtomicBool,
}

/// One message on the channel.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Message {
    /// The sending node (a node skips its own: it purged already).
    node: String,
    zone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    all: bool,
}

impl Message {
    fn new(node: &str, zone: &str, what: &Purge) -> Self {
        let mut m = Message {
            node: node.to_string(),
            zone: zone.to_string(),
            key: None,
            prefix: None,
            tag: None,
            all: false,
        };
        match what {
            Purge::Key(k) => m.key = Some(k.clone()),
            Purge::Prefix(p) => m.prefix = Some(p.clone()),
            Purge::Tag(t) => m.tag = Some(t.clone()),
            Purge::All => m.all = true,
        }
        m
    }

    /// The purge it names: exactly one non-empty kind.
    fn purge(&self) -> Option<Purge> {
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        match (
            non_empty(&self.key),
            non_empty(&self.prefix),
            non_empty(&self.tag),
            self.all,
        ) {
            (Some(k), None, None, false) => Some(Purge::Key(k)),
            (None, Some(p), None, false) => Some(Purge::Prefix(p)),
            (None, None, Some(t), false) => Some(Purge::Tag(t)),
            (None, None, None, true) => Some(Purge::All),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<(Arc<str>, Purge)>,
    /// Zones whose purges did not fit: each becomes one purge of everything.
    overflowed: Vec<Arc<str>>,
}

/// The purge channel of one Redis store, shared by the zones that share their purges.
pub struct PurgeChannel {
    store: Arc<RedisStore>,
    /// This process's name on the channel.
    node: String,
    outbox: Mutex<Outbox>,
    wake: Notify,
    /// Whether its send and receive tasks run (see [`PurgeChannel::start`]).
    started: AtomicBool,
    /// What it counted.
    pub counters: SharedCounters,
}

impl std::fmt::Debug for PurgeChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PurgeChannel")
            .field("store", &self.store.settings().shown())
            .finish()
    }
}

/// Channels by store, one each, alive while a zone shares through it.
static CHANNELS: Mutex<Vec<Weak<PurgeChannel>>> = Mutex::new(Vec::new());

impl PurgeChannel {
    /// The channel of `store`; it publishes and subscribes once [started](Self::start).
    pub fn of(store: Arc<RedisStore>) -> Arc<PurgeChannel> {
        let mut open = CHANNELS.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|w| w.strong_count() > 0);
        if let Some(found) = open
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| Arc::ptr_eq(&c.store, &store))
        {
            return found;
        }
        let channel = Arc::new(PurgeChannel {
            store,
            node: format!(
                "{:016x}",
                getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()))
            ),
            outbox: Mutex::new(Outbox::default()),
            wake: Notify::new(),
            started: AtomicBool::new(false),
            counters: SharedCounters::default(),
        });
        open.push(Arc::downgrade(&channel));
        channel
    }

    /// Publish and subscribe in the background on the current (main) runtime, until the
    /// last zone sharing through the channel lets go; nothing when it runs already. Called
    /// once the zones share it: the first subscription empties the zones whose contents
    /// may predate it, and a zone that did not share the channel yet would be missed (a
    /// restarted node would then serve disk entries purged while it was down).
    pub fn start(self: &Arc<Self>) {
        if !self.started.swap(true, Relaxed) {
            tokio::spawn(send(Arc::downgrade(self)));
            tokio::spawn(receive(Arc::downgrade(self)));
        }
    }

    /// The channel `config`'s shared zones use (`config.shared_purges`), opening its Redis
    /// store through `engine` (the one filters with the same settings use); `None` when no
    /// zone shares its purges. Must be called on the main runtime.
    pub fn for_config(
        config: &crate::config::Config,
        engine: &crate::filter::FilterEngine,
    ) -> Result<Option<Arc<PurgeChannel>>, String> {
        let Some((settings, _)) = &config.shared_purges else {
            return Ok(None);
        };
        let store = engine
            .redis_store(settings)
            .map_err(|e| format!("store (sharing cache purges) {}: {e}", settings.shown()))?;
        Ok(Some(PurgeChannel::of(store)))
    }

    /// The store it goes through.
    pub fn store(&self) -> &Arc<RedisStore> {
        &self.store
    }

    /// Queue `what`, purged here already from `zone`, for the other nodes.
    pub fn publish(&self, zone: &Arc<str>, what: Purge) {
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        if outbox.overflowed.contains(zone) {
            self.counters.overflowed.fetch_add(1, Relaxed);
        } else if outbox.queue.len() >= OUTBOX {
            self.counters.overflowed.fetch_add(1, Relaxed);
            outbox.overflowed.push(zone.clone());
        } else {
            outbox.queue.push_back((zone.clone(), what));
        }
        drop(outbox);
        self.wake.notify_one();
    }

    /// The next purge to send, without taking it off the outbox, and whether it is a zone's
    /// overflow (else the queue's first).
    fn next(&self) -> Option<(Arc<str>, Purge, bool)> {
        let outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        match outbox.queue.front() {
            Some((zone, what)) => Some((zone.clone(), what.clone(), false)),
            None => outbox
                .overflowed
                .first()
                .map(|z| (z.clone(), Purge::All, true)),
        }
    }

    /// The purge [`Self::next`] gave is out: take it off the outbox (purges queued since
    /// stay, whichever list it came from).
    fn sent(&self, overflow: bool) {
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        if overflow {
            if !outbox.overflowed.is_empty() {
                outbox.overflowed.remove(0);
            }
        } else {
            outbox.queue.pop_front();
        }
        self.counters.sent.fetch_add(1, Relaxed);
    }

    /// The zones sharing through this channel now.
    fn zones(&self) -> Vec<Arc<Zone>> {
        zone::running()
            .into_iter()
            .filter(|z| z.purge_channel().is_some_and(|c| std::ptr::eq(&*c, self)))
            .collect()
    }

    /// Apply one message from the channel (`<number> <json>`); its number.
    fn apply(&self, payload: &str) -> Option<u64> {
        let parsed = payload.split_once(' ').and_then(|(n, json)| {
            let n = n.parse::<u64>().ok()?;
            let m = serde_json::from_str::<Message>(json).ok()?;
            Some((n, m))
        });
        let Some((n, message)) = parsed else {
            self.counters.malformed.fetch_add(1, Relaxed);
            tracing::warn!(
                store = %self.store.settings().shown(),
                "ignored a message on the purge channel that is not a purge"
            );
            return None;
        };
        if message.node == self.node {
            return Some(n);
        }
        let Some(purge) = message.purge() else {
            self.counters.malformed.fetch_add(1, Relaxed);
            return Some(n);
        };
        let zone = self
            .zones()
            .into_iter()
            .find(|z| **z.name() == *message.zone);
        if let Some(zone) = zone {
            zone.purge_here(&purge);
            self.counters.received.fetch_add(1, Relaxed);
        }
        Some(n)
    }

    /// `missed` purges (`None`: an unknown number) did not reach `zones`: empty them.
    fn gap(&self, missed: Option<u64>, zones: Vec<Arc<Zone>>) {
        if zones.is_empty() {
            return;
        }
        self.counters.gaps.fetch_add(1, Relaxed);
        let names: Vec<&str> = zones.iter().map(|z| &**z.name()).collect();
        let store = self.store.settings().shown();
        match missed {
            Some(n) => tracing::warn!(
                store,
                zones = ?names,
                "missed {n} shared purges while not subscribed: emptied the shared cache zones"
            ),
            None => tracing::warn!(
                store,
                zones = ?names,
                "cannot tell which shared purges were missed while not subscribed (Redis \
                 restarted empty, or this node has just started): emptied the shared cache zones"
            ),
        }
        for z in &zones {
            z.purge_here(&Purge::All);
        }
    }

    /// The first subscription of this process: what its zones hold may predate it. A disk
    /// tier whose record says it saw every purge up to `newest` keeps its files; other
    /// zones that hold anything are emptied (in memory, only what a few milliseconds of
    /// traffic before subscribing stored).
    fn first_subscription(&self, newest: u64, seen: &[u64]) {
        let stale: Vec<Arc<Zone>> = self
            .zones()
            .into_iter()
            .filter(|z| !z.is_empty())
            .filter(|z| match z.purge_mark() {
                Some(Some(mark)) => missed(mark, newest, seen) != Some(0),
                _ => true,
            })
            .collect();
        self.gap(None, stale);
    }

    /// Record `n` as the last purge every shared zone saw (for disk tiers, which outlive
    /// the process).
    fn mark(&self, n: u64) {
        for z in self.zones() {
            z.set_purge_mark(n);
        }
    }
}

/// Publish the outbox in order, waiting for Redis while it is down.
async fn send(channel: Weak<PurgeChannel>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(c) = channel.upgrade() else { return };
        let Some((zone, what, overflow)) = c.next() else {
            // Wakes for new purges; the timeout lets the task end (at most a second late)
            // once the channel is gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), c.wake.notified()).await;
            continue;
        };
        let json = match serde_json::to_string(&Message::new(&c.node, &zone, &what)) {
            Ok(json) => json,
            Err(_) => {
                c.sent(overflow);
                continue;
            }
        };
        match c.store.publish_purge(&json).await {
            Ok(_) => {
                c.sent(overflow);
                backoff = MIN_BACKOFF;
            }
            Err(_) => {
                drop(c);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Subscribe (again after every loss), apply other nodes' purges, and find gaps.
async fn receive(channel: Weak<PurgeChannel>) {
    let mut backoff = MIN_BACKOFF;
    let mut attempt = 0usize;
    // The highest number up to which every message was seen.
    let mut last: Option<u64> = None;
    let mut logged = false;
    loop {
        let Some(c) = channel.upgrade() else { return };
        if !c.store.is_up() {
            // The store says why (once per outage); subscribe when it is back.
            drop(c);
            tokio::time::sleep(MIN_BACKOFF).await;
            continue;
        }
        let timeout = c.store.settings().timeout;
        let (sub, newest) = match subscribe(&c, attempt).await {
            Ok(ok) => ok,
            Err(why) => {
                if !logged {
                    tracing::warn!(store = %c.store.settings().shown(), "cannot subscribe to shared cache purges (retrying in the background): {why}");
                    logged = true;
                }
                drop(c);
                attempt += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        logged = false;
        backoff = MIN_BACKOFF;
        let (mut sink, mut stream) = sub;
        let mut seen = Vec::new();
        while let Some(Some(msg)) = stream.next().now_or_never() {
            if let Some(n) = msg.get_payload::<String>().ok().and_then(|p| c.apply(&p)) {
                seen.push(n);
            }
        }
        last = Some(recover(&c, last, newest, &seen));
        c.counters.subscribed.store(true, Relaxed);
        drop(c);
        let ended = follow(&channel, &mut sink, &mut stream, last.unwrap_or(0), timeout).await;
        let Some(c) = channel.upgrade() else { return };
        c.counters.subscribed.store(false, Relaxed);
        tracing::warn!(store = %c.store.settings().shown(), "lost the subscription to shared cache purges: subscribing again");
        match ended {
            Some(n) => last = Some(n),
            None => return,
        }
    }
}

/// A subscription, and the number of the last purge published before it surely began.
async fn subscribe(
    c: &PurgeChannel,
    attempt: usize,
) -> Result<((redis::aio::PubSubSink, redis::aio::PubSubStream), u64), String> {
    let timeout = c.store.settings().timeout;
    let sub = c.store.subscribe_purges(attempt).await?;
    let newest = c.store.last_purge().await.map_err(|e| e.to_string())?;
    let (mut sink, stream) = sub.split();
    // A ping's answer comes after every message published before it was sent: those
    // published between subscribing and reading `newest` are all in the stream then.
    match tokio::time::timeout(ping_within(timeout), sink.ping::<redis::Value>()).await {
        Ok(Ok(_)) => Ok(((sink, stream), newest)),
        Ok(Err(e)) => Err(format!("ping on the subscription: {e}")),
        Err(_) => Err("no answer to a ping on the subscription".to_string()),
    }
}

/// How many purges numbered after `last` up to `newest` were missed, `seen` having arrived
/// since subscribing; `None` when that cannot be told (Redis restarted empty and numbers
/// again from 0).
fn missed(last: u64, newest: u64, seen: &[u64]) -> Option<u64> {
    if newest < last {
        return None;
    }
    let wanted = newest - last;
    if wanted > MAX_RECOVERABLE {
        return Some(wanted);
    }
    Some((last + 1..=newest).filter(|n| !seen.contains(n)).count() as u64)
}

/// After (re)subscribing: purges numbered up to `newest` that were published while this
/// node was not subscribed are lost to it, unless `seen` since. The number to go on from.
fn recover(c: &PurgeChannel, last: Option<u64>, newest: u64, seen: &[u64]) -> u64 {
    match last {
        Some(last) => match missed(last, newest, seen) {
            Some(0) => {}
            missed => c.gap(missed, c.zones()),
        },
        None => c.first_subscription(newest, seen),
    }
    let next = seen.iter().copied().max().unwrap_or(0).max(newest);
    c.mark(next);
    next
}

/// How long a ping on the subscription may take: the call timeout, but not under 500 ms
/// (a subscription is not on any request's path).
fn ping_within(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(500))
}

/// Apply messages until the subscription is lost; the number to go on from, or `None`
/// when the channel is gone.
async fn follow(
    channel: &Weak<PurgeChannel>,
    sink: &mut redis::aio::PubSubSink,
    stream: &mut redis::aio::PubSubStream,
    mut last: u64,
    timeout: Duration,
) -> Option<u64> {
    // What disk tiers have recorded: at most a second behind (a record behind only makes a
    // restarted node empty a tier it need not have).
    let mut marked = last;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return Some(last) };
                let c = channel.upgrade()?;
                let Some(n) = msg.get_payload::<String>().ok().and_then(|p| c.apply(&p)) else {
                    continue;
                };
                if n > last + 1 {
                    c.gap(Some(n - last - 1), c.zones());
                }
                last = last.max(n);
            }
            () = tokio::time::sleep(PING_EVERY) => {
                let c = channel.upgrade()?;
                if last != marked {
                    c.mark(last);
                    marked = last;
                }
                drop(c);
                let ping = sink.ping::<redis::Value>();
                if !matches!(tokio::time::timeout(ping_within(timeout), ping).await, Ok(Ok(_))) {
                    return Some(last);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_overflow_sent_leaves_the_purges_queued_meanwhile() {
        let settings = crate::store::RedisSettings {
            urls: vec!["redis://127.0.0.1:1/0".into()],
            cluster: false,
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(50),
            max_pending: 10,
            prefix: "weir".into(),
            ca: None,
            client_cert: None,
        };
        // Never started: no background tasks take from the outbox.
        let c = PurgeChannel::of(RedisStore::open(settings).unwrap());
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        for i in 0..=OUTBOX {
            c.publish(&a, Purge::Key(format!("k{i}")));
        }
        assert_eq!(c.counters.overflowed.load(Relaxed), 1);
        for _ in 0..OUTBOX {
            let (_, _, overflow) = c.next().unwrap();
            c.sent(overflow);
        }
        assert_eq!(c.next(), Some((a.clone(), Purge::All, true)));
        // Queued while the overflow is being published: it must stay queued.
        c.publish(&b, Purge::Key("kb".into()));
        c.sent(true);
        assert_eq!(c.next(), Some((b, Purge::Key("kb".into()), false)));
        c.sent(false);
        assert_eq!(c.next(), None);
    }

    #[test]
    fn missing_numbers_are_counted_unless_seen_since_subscribing() {
        assert_eq!(missed(5, 5, &[]), Some(0));
        assert_eq!(missed(5, 8, &[6, 7, 8]), Some(0));
        assert_eq!(missed(5, 8, &[7]), Some(2));
        assert_eq!(missed(5, 8, &[]), Some(3));
        // Redis restarted empty: its numbers began again.
        assert_eq!(missed(5, 2, &[1, 2]), None);
        assert_eq!(
            missed(0, MAX_RECOVERABLE + 10, &[]),
            Some(MAX_RECOVERABLE + 10)
        );
    }

    #[test]
    fn messages_name_exactly_one_purge() {
        for what in [
            Purge::Key("http://h/a".into()),
            Purge::Prefix("http://h/".into()),
            Purge::Tag("t".into()),
            Purge::All,
        ] {
            let json = serde_json::to_string(&Message::new("n", "main", &what)).unwrap();
            let back: Message = serde_json::from_str(&json).unwrap();
            assert_eq!(back.purge(), Some(what), "{json}");
        }
        for bad in [
            r#"{"node":"n","zone":"z"}"#,
            r#"{"node":"n","zone":"z","key":""}"#,
            r#"{"node":"n","zone":"z","key":"a","tag":"b"}"#,
            r#"{"node":"n","zone":"z","key":"a","all":true}"#,
        ] {
            let m: Message = serde_json::from_str(bad).unwrap();
            assert_eq!(m.purge(), None, "{bad}");
        }
    }
}
