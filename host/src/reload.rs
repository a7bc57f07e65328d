//! Hot reload: watching the manifest and the plugins directory (and SIGHUP), and turning a
//! change into a new live generation, or into one clear error while the old one serves.
//!
//! A reload reads and validates the manifest, then loads its filters: entries and plugin
//! files that did not change keep their loaded filter (and warm instances); new or changed
//! ones are compiled off the request path (or taken from the compile cache), their world
//! checked and `init`ed. Only when everything succeeded is the whole generation (routes,
//! upstreams, filters) swapped in at once. A broken change (invalid Wasm, wrong world,
//! `init` refusing its config, a manifest error, a plugin a route uses that was deleted)
//! swaps nothing and is logged with the file and reason.
//!
//! Watching is debounced: a reload starts once the watched files have been quiet for
//! [`QUIET`], so an editor's rename dance or a file still being written (each write is an
//! event) triggers one load of the finished file, not of a half-written one.

use crate::config::{Config, Diagnostic};
use crate::filter::FilterEngine;
use crate::live::{Generation, Live};
use notify::{RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// How long the watched files must be quiet before a reload starts.
pub const QUIET: Duration = Duration::from_millis(200);

/// Reload from `manifest` now; on success the new generation is live. Reloads (from the
/// watcher, SIGHUP and the admin endpoint) run one at a time.
pub async fn reload(live: &Live, engine: &FilterEngine, manifest: &Path) -> Result<u64, String> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let result = build(live, engine, manifest).await;
    match result {
        Ok(next) => {
            let id = next.id;
            let summary = describe(&live.current(), &next);
            warn_restart_only(&live.current().config, &next.config);
            next.start_background_tasks();
            engine.set_geo(next.config.geo.clone());
            live.swap(next);
            tracing::info!(generation = id, took = ?started.elapsed(), "reloaded: {summary}");
            Ok(id)
        }
        Err(why) => {
            tracing::error!("reload refused, the previous configuration keeps serving:\n{why}");
            live.refused(why.clone());
            Err(why)
        }
    }
}

async fn build(live: &Live, engine: &FilterEngine, manifest: &Path) -> Result<Generation, String> {
    let config = Config::load(manifest).map_err(|d| d.to_string())?;
    let current = live.current();
    let filters = load_located(engine, &config.filters, &current.filters)
        .await
        .map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
    let purges = crate::cache::shared::PurgeChannel::for_config(&config, engine)?;
    // Listeners change with the generation, both or neither: this is the last step that can
    // fail, and what follows changes shared state (cache zones, their sharing).
    if let Some(listeners) = live.listeners() {
        for (addr, tls) in listeners.apply(&config, None)? {
            tracing::info!("now listening on {}", crate::listeners::url(addr, tls));
            crate::listeners::print_listening(addr, tls);
        }
    }
    let mut next = Generation::build(current.id + 1, Arc::new(config), filters);
    next.share_purges(purges);
    Ok(next)
}

/// Load `filters` (keeping unchanged ones of `previous`), turning each failure into a
/// diagnostic at its manifest entry.
pub async fn load_located(
    engine: &FilterEngine,
    filters: &[crate::config::FilterConfig],
    previous: &[Arc<crate::filter::Filter>],
) -> Result<Vec<Arc<crate::filter::Filter>>, Vec<Diagnostic>> {
    engine.load_all(filters, previous).await.map_err(|errors| {
        errors
            .into_iter()
            .map(|(i, e)| {
                let filter = &filters[i];
                // A refused config whose message names a key is placed at that key.
                let at = match &e {
                    crate::filter::LoadError::Init(why) => {
                        crate::config::key_location(&filter.config_keys, why)
                    }
                    _ => None,
                };
                Diagnostic {
                    message: format!("filters.{}: {e}", filter.name),
                    ..at.unwrap_or(&filter.location).clone()
                }
            })
            .collect()
    })
}

/// Which filters a reload changed, for the log.
fn describe(old: &Generation, new: &Generation) -> String {
    let mut parts = Vec::new();
    for f in &new.filters {
        let kept = old.filters.iter().any(|o| Arc::ptr_eq(o, f));
        let hash = &f.version().sha256[..12];
        parts.push(format!(
            "{}@{hash}{}",
            f.name(),
            if kept { "" } else { " (loaded)" }
        ));
    }
    for o in &old.filters {
        if !new.filters.iter().any(|f| f.name() == o.name()) {
            parts.push(format!("{} (removed)", o.name()));
        }
    }
    format!(
        "{} route(s), {} upstream(s), filters: {}",
        new.config.routes.len(),
        new.config.upstreams.len(),
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    )
}

/// Workers, client limits, the admin address and watching are set up at start: say so when
/// a reload changes them.
fn warn_restart_only(old: &Config, new: &Config) {
    let mut changed = Vec::new();
    if old.limits.max_header_size != new.limits.max_header_size
        || old.limits.max_headers != new.limits.max_headers
        || old.limits.header_read_timeout != new.limits.header_read_timeout
    {
        changed.push("max-header-size, max-headers, header-read-timeout");
    }
    if old.workers != new.workers {
        changed.push("workers");
    }
    if old.admin != new.admin {
        changed.push("admin");
    }
    if old.watch != new.watch {
        changed.push("watch");
    }
    if old.compile_cache != new.compile_cache {
        changed.push("compile-cache");
    }
    if !changed.is_empty() {
        tracing::warn!(
            "changed {} take effect on restart only; the rest is reloaded",
            changed.join(", ")
        );
    }
}

/// What starts a reload, set up before the proxy says it is ready (a change or a SIGHUP
/// right after that is seen): SIGHUP, the watched manifest and plugins directory, and the
/// files the manifest names as they were when the first generation loaded.
pub struct Triggers {
    rx: mpsc::UnboundedReceiver<()>,
    watcher: Option<Watch>,
    hup: Option<tokio::signal::unix::Signal>,
    named_files: Vec<Stamp>,
}

/// Set up the [`Triggers`]; must be called on the main runtime.
pub fn triggers(live: &Live, manifest: &Path) -> Triggers {
    let named_files = named_files_stamp(&live.current());
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    let watcher = if live.current().config.watch {
        match Watch::start(manifest, &live.current().config.plugins_dir, tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!("cannot watch for changes (reload with SIGHUP): {e}");
                None
            }
        }
    } else {
        None
    };
    let hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot watch SIGHUP: {e}");
            None
        }
    };
    Triggers {
        rx,
        watcher,
        hup,
        named_files,
    }
}

/// Reload on SIGHUP, and on changes to the manifest or plugins directory when the manifest
/// says `watch = true`. Runs until the process ends.
pub async fn run(live: Arc<Live>, engine: FilterEngine, manifest: PathBuf, triggers: Triggers) {
    let Triggers {
        mut rx,
        mut watcher,
        mut hup,
        mut named_files,
    } = triggers;
    // Files the manifest names outside the watched folders (upstream CA bundles and client
    // certificates, filters' outbound CAs, geo databases, directories granted to filters)
    // are polled, wherever they are.
    let mut poll = tokio::time::interval(crate::tls::POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let hup_recv = async {
            match hup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = rx.recv() => {
                if event.is_none() {
                    // The watcher is gone; keep serving SIGHUP.
                    watcher = None;
                    rx = mpsc::unbounded_channel().1;
                    continue;
                }
                // Debounce: wait until nothing changed for QUIET.
                while let Ok(Some(())) = tokio::time::timeout(QUIET, rx.recv()).await {}
                tracing::info!("change on disk: reloading");
            }
            _ = hup_recv => tracing::info!("SIGHUP: reloading"),
            _ = poll.tick() => {
                let now = named_files_stamp(&live.current());
                let Some(changed) = first_change(&named_files, &now) else {
                    continue;
                };
                tracing::info!(file = %changed.display(), "a file the manifest names changed: reloading");
            }
        }
        let old_dir = live.current().config.plugins_dir.clone();
        if reload(&live, &engine, &manifest).await.is_ok() {
            let new_dir = live.current().config.plugins_dir.clone();
            if let (Some(w), true) = (watcher.as_mut(), new_dir != old_dir) {
                w.move_plugins_dir(&old_dir, &new_dir);
            }
        }
        named_files = named_files_stamp(&live.current());
    }
}

/// A file and its modification time (`None`: unreadable).
type Stamp = (PathBuf, Option<SystemTime>);

/// The files the live generation's manifest names outside the watched folders (upstream TLS
/// files, filters' outbound CAs and geo databases, and the trees granted to filters), each
/// with its modification time.
fn named_files_stamp(generation: &Generation) -> Vec<Stamp> {
    let config = &generation.config;
    let files: Vec<&PathBuf> = generation
        .upstreams
        .iter()
        .filter_map(|u| u.transport.tls.as_ref())
        .flat_map(|tls| tls.files())
        .chain(config.filters.iter().filter_map(|f| f.outbound_ca.as_ref()))
        .chain(config.geo.iter().flat_map(|db| db.files()))
        .collect();
    let stamps = crate::tls::stamps(files.iter().copied());
    let mut out: Vec<Stamp> = files.into_iter().cloned().zip(stamps).collect();
    // Directories granted to filters: the newest time anywhere in each tree.
    for grant in config.filters.iter().flat_map(|f| &f.files) {
        out.push((grant.host.clone(), crate::config::tree_stamp(&grant.host)));
    }
    out
}

/// The first file whose time differs between `before` and `now` (or, when the list itself
/// changed, the first file of `now`, or the first of `before` when `now` is empty).
fn first_change<'a>(before: &'a [Stamp], now: &'a [Stamp]) -> Option<&'a Path> {
    if before.len() != now.len() {
        return now.first().or(before.first()).map(|(p, _)| p.as_path());
    }
    before
        .iter()
        .zip(now)
        .find(|(b, n)| b != n)
        .map(|(_, (p, _))| p.as_path())
}

/// The file watcher: the manifest's folder (so renames onto the manifest are seen) and the
/// plugins directory, not recursive. Paths are compared canonicalized: the watcher reports
/// absolute paths whatever the manifest's were.
struct Watch {
    watcher: notify::RecommendedWatcher,
    plugins: Arc<std::sync::Mutex<PathBuf>>,
}

impl Watch {
    fn start(
        manifest: &Path,
        plugins: &Path,
        tx: mpsc::UnboundedSender<()>,
    ) -> notify::Result<Self> {
        let manifest_name = manifest.file_name().map(|n| n.to_os_string());
        let manifest_dir = canonical(&parent(manifest));
        let plugins_dir = Arc::new(std::sync::Mutex::new(canonical(plugins)));
        let (watched_manifest_dir, watched_plugins) = (manifest_dir.clone(), plugins_dir.clone());
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                let plugins = watched_plugins
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let relevant = event.paths.iter().any(|p| {
                    let (dir, name) = (parent(p), p.file_name());
                    (dir == watched_manifest_dir && name == manifest_name.as_deref())
                        || (dir == plugins
                            && name.and_then(|n| n.to_str()).is_some_and(is_plugin_name))
                });
                if relevant {
                    tracing::debug!(?event, "watched file changed");
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&manifest_dir, RecursiveMode::NonRecursive)?;
        let mut w = Watch {
            watcher,
            plugins: plugins_dir,
        };
        w.watch_plugins(plugins);
        Ok(w)
    }

    fn watch_plugins(&mut self, dir: &Path) {
        let dir = canonical(dir);
        if !dir.is_dir() {
            // A manifest without filters needs no plugins directory.
            tracing::info!(dir = %dir.display(), "no plugins directory: not watched (filters added later need a restart to be watched)");
        } else if let Err(e) = self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::error!(dir = %dir.display(), "cannot watch the plugins directory: {e}");
        }
        *self.plugins.lock().unwrap_or_else(|p| p.into_inner()) = dir;
    }

    fn move_plugins_dir(&mut self, old: &Path, new: &Path) {
        let _ = self.watcher.unwatch(&canonical(old));
        self.watch_plugins(new);
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Files in the plugins directory worth a reload: not hidden, not an editor's backup or
/// swap file, not a temporary.
fn is_plugin_name(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".tmp")
        || name.starts_with('#'))
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_droppings_do_not_count() {
        assert!(is_plugin_name("auth.wasm"));
        assert!(!is_plugin_name(".auth.wasm.swp"));
        assert!(!is_plugin_name("auth.wasm~"));
        assert!(!is_plugin_name("#auth.wasm#"));
        assert!(!is_plugin_name("auth.wasm.tmp"));
    }
}
