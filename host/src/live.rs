//! The live configuration: the generation of routes, upstreams and filters that new
//! requests are served by, swapped atomically by a reload, and the reload history.
//!
//! A request takes the current generation when it starts and keeps it to the end, so
//! requests in flight finish on the version they started with; the old generation (and its
//! filters' instances) is freed when its last request finishes.

use crate::config::Config;
use crate::filter::Filter;
use crate::route::{Backends, Route, RouteTable};
use crate::upstream::pool::{self, UpstreamClient};
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One complete, loaded configuration.
pub struct Generation {
    /// 1 for the configuration loaded at start, then one more per successful reload.
    pub id: u64,
    /// The manifest it was built from.
    pub config: Arc<Config>,
    /// Routes with their upstreams and filter chains.
    pub routes: RouteTable,
    /// Upstreams by index.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Filters by index (manifest order).
    pub filters: Vec<Arc<Filter>>,
    /// When it went live.
    pub loaded_at: SystemTime,
    /// Cache zones by name (those of the last generation with the same settings).
    pub zones: Vec<Arc<crate::cache::Zone>>,
    /// The channel its zones share purges through, if they do.
    pub purges: Option<Arc<crate::cache::shared::PurgeChannel>>,
}

impl Generation {
    /// Assemble a generation from a validated manifest and its loaded filters.
    pub fn build(id: u64, config: Arc<Config>, filters: Vec<Arc<Filter>>) -> Self {
        let upstreams: Vec<Arc<Upstream>> = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| Arc::new(Upstream::new(i, u)))
            .collect();
        let zones = crate::cache::zone::zones_for(&config.cache_zones);
        if let Some(otlp) = &config.otlp {
            crate::otlp::export::start(otlp);
        }
        let routes = config
            .routes
            .iter()
            .map(|r| Route {
                cache: r.cache.as_ref().and_then(|c| {
                    let zone = zones.get(c.zone)?.clone();
                    Some(Arc::new(crate::cache::RoutePolicy {
                        zone,
                        key: c.key.clone(),
                        default_ttl: c.default_ttl,
                        stale_while_revalidate: c.stale_while_revalidate,
                        stale_if_error: c.stale_if_error,
                        store_set_cookie: c.store_set_cookie,
                        tag_header: c.tag_header.clone(),
                        encoded_copies: r.compress.is_some()
                            && !r.filters.iter().any(|&i| filters[i].wants_response_body()),
                    }))
                }),
                compress: r.compress.clone(),
                host: r.host.clone(),
                path: r.path.clone(),
                methods: r.methods.clone(),
                headers: r.headers.clone(),
                geo: r.geo.clone(),
                backends: Backends::new(
                    r.backends
                        .iter()
                        .map(|&(u, w)| (upstreams[u].clone(), w))
                        .collect(),
                ),
                filters: r.filters.iter().map(|&i| filters[i].clone()).collect(),
                timeouts: r.timeouts,
                upgrades: r.upgrades.clone(),
                label: crate::route::label(r.host.as_ref(), &r.path),
            })
            .collect();
        Generation {
            id,
            config,
            routes: RouteTable::new(routes),
            upstreams,
            filters,
            loaded_at: SystemTime::now(),
            zones,
            purges: None,
        }
    }

    /// Share its zones' purges through `channel` (made for this generation's config by
    /// [`crate::cache::shared::PurgeChannel::for_config`]) as the manifest says
    /// (`cache-zones.*.share-purges`), or not at all; then start the channel (it starts
    /// once), so that its first subscription finds the zones that share it.
    pub fn share_purges(&mut self, channel: Option<Arc<crate::cache::shared::PurgeChannel>>) {
        let names = self
            .config
            .shared_purges
            .as_ref()
            .map_or(&[][..], |(_, names)| names.as_slice());
        for zone in &self.zones {
            let shares = names.iter().any(|n| **n == **zone.name());
            zone.share_purges(channel.clone().filter(|_| shares));
        }
        if let Some(c) = &channel {
            c.start();
        }
        self.purges = channel;
    }
}

impl Generation {
    /// The shared stores (Redis) its filters and cache zones use, each once, with the names
    /// of the filters using it.
    pub fn shared_stores(&self) -> Vec<(Arc<crate::store::RedisStore>, Vec<String>)> {
        let mut out: Vec<(Arc<crate::store::RedisStore>, Vec<String>)> = Vec::new();
        if let Some(purges) = &self.purges {
            out.push((purges.store().clone(), Vec::new()));
        }
        for f in &self.filters {
            let Some(redis) = f.shared_store() else {
                continue;
            };
            match out.iter_mut().find(|(r, _)| Arc::ptr_eq(r, &redis)) {
                Some((_, names)) => names.push(f.name().to_string()),
                None => out.push((redis, vec![f.name().to_string()])),
            }
        }
        out
    }

    /// Start the active health checks and name re-resolution of its upstreams on the
    /// current runtime; they stop when the generation is dropped.
    pub fn start_background_tasks(&self) {
        if let Some(output) = &self.config.access_log_output {
            crate::access_log::sink::global().configure(&output.destination);
        }
        crate::health::start(&self.upstreams);
        for u in &self.upstreams {
            let hosts = u.target_names();
            if !hosts.is_empty() {
                tokio::spawn(crate::upstream::resolve::run(
                    Arc::downgrade(u),
                    u.name().to_string(),
                    hosts,
                    u.resolve_interval,
                ));
            }
        }
    }
}

/// How reloads went.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Successful reloads.
    pub succeeded: u64,
    /// Reloads refused (the previous generation kept serving).
    pub failed: u64,
    /// When the last reload was attempted.
    pub last_attempt: Option<SystemTime>,
    /// Why the last failed reload failed, and when; cleared by a later success.
    pub last_error: Option<(SystemTime, String)>,
}

/// The current generation, shared by all workers.
pub struct Live {
    current: ArcSwap<Generation>,
    /// The current generation's id, for workers to notice a swap with one atomic load.
    id: AtomicU64,
    status: Mutex<ReloadStatus>,
    /// The process's listeners, once bound (a reload changes them too).
    listeners: std::sync::OnceLock<Arc<crate::listeners::ListenerSet>>,
}

impl Live {
    /// Start with `first`.
    pub fn new(first: Generation) -> Self {
        Live {
            id: AtomicU64::new(first.id),
            current: ArcSwap::from_pointee(first),
            status: Mutex::new(ReloadStatus::default()),
            listeners: std::sync::OnceLock::new(),
        }
    }

    /// The listeners, once bound: reloads apply their changes to them.
    pub fn set_listeners(&self, listeners: Arc<crate::listeners::ListenerSet>) {
        let _ = self.listeners.set(listeners);
    }

    /// The listeners, once bound.
    pub fn listeners(&self) -> Option<&Arc<crate::listeners::ListenerSet>> {
        self.listeners.get()
    }

    /// The generation new requests are served by.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Its id.
    pub fn current_id(&self) -> u64 {
        self.id.load(Ordering::Acquire)
    }

    /// Make `next` the current generation and record the successful reload.
    pub fn swap(&self, next: Generation) {
        let id = next.id;
        self.current.store(Arc::new(next));
        self.id.store(id, Ordering::Release);
        let mut s = self.status();
        s.succeeded += 1;
        s.last_attempt = Some(SystemTime::now());
        s.last_error = None;
    }

    /// Record a refused reload.
    pub fn refused(&self, why: String) {
        let mut s = self.status();
        let now = SystemTime::now();
        s.failed += 1;
        s.last_attempt = Some(now);
        s.last_error = Some((now, why));
    }

    /// The reload history.
    pub fn reload_status(&self) -> ReloadStatus {
        self.status().clone()
    }

    fn status(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A worker's view of the live generation: the generation plus the worker's own upstream
/// clients (connection pools) for it.
pub struct WorkerGeneration {
    /// The shared generation.
    pub generation: Arc<Generation>,
    /// This worker's client per upstream, by upstream index.
    pub clients: Vec<UpstreamClient>,
}

impl WorkerGeneration {
    /// Clients for `generation`, keeping the pooled connections of `previous`'s clients for
    /// upstreams with the same name, connect and pool timeouts and transport.
    pub fn new(generation: Arc<Generation>, previous: Option<&WorkerGeneration>) -> Self {
        let clients = generation
            .upstreams
            .iter()
            .map(|u| {
                previous
                    .and_then(|p| {
                        p.generation
                            .upstreams
                            .iter()
                            .position(|old| {
                                old.name() == u.name()
                                    && old.connect_timeout == u.connect_timeout
                                    && old.transport == u.transport
                                    && old.pool_idle_timeout == u.pool_idle_timeout
                            })
                            .map(|i| p.clients[i].clone())
                    })
                    .unwrap_or_else(|| {
                        pool::client_for(
                            u.connect_timeout,
                            u.pool_idle_timeout,
                            &u.transport,
                            Some(u.stats.connections.clone()),
                        )
                    })
            })
            .collect();
        WorkerGeneration {
            generation,
            clients,
        }
    }
}
