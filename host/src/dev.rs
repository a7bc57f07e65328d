//! `weir dev`: the proxy plus a rebuild loop. Each filter crate's sources are watched and
//! rebuilt (as by `weir build`) into the plugins directory when they change; the proxy's hot
//! reload then takes the new component, and logs its result as for any reload.

use crate::builder::{self, Toolchain};
use crate::config::Config;
use notify::{RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// How long sources must be quiet before a rebuild (editors write in several steps).
const QUIET: Duration = Duration::from_millis(300);

/// The crates to watch: those given, else `plugins/<name>/` (from the working directory) for
/// each filter whose plugin is `<name>.wasm`, where such a crate exists.
pub fn crates(config: &Config, given: &[PathBuf]) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let mut found: Vec<PathBuf> = config
        .filters
        .iter()
        .filter_map(|f| f.plugin_path.file_stem())
        .map(|stem| Path::new("plugins").join(stem))
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Build every crate once, then rebuild each on changes to its sources, on a thread of its
/// own, for as long as the process runs.
pub fn start(crates: Vec<PathBuf>, out: PathBuf, toolchain: Toolchain) -> notify::Result<()> {
    for dir in &crates {
        rebuild(dir, &out, toolchain);
    }
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for p in event.paths {
            let _ = tx.send(p);
        }
    })?;
    let crates: Vec<PathBuf> = crates
        .iter()
        .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()))
        .collect();
    for dir in &crates {
        watcher.watch(dir, RecursiveMode::Recursive)?;
    }
    std::thread::Builder::new()
        .name("weir-dev".into())
        .spawn(move || {
            // Owned here: dropping the watcher would stop it.
            let _watcher = watcher;
            while let Ok(first) = rx.recv() {
                let mut changed = vec![first];
                while let Ok(more) = rx.recv_timeout(QUIET) {
                    changed.push(more);
                }
                for dir in &crates {
                    if changed.iter().any(|p| is_source_of(dir, p)) {
                        rebuild(dir, &out, toolchain);
                    }
                }
            }
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(())
}

/// Whether a change at `path` is to the crate's sources (not its build output).
fn is_source_of(dir: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(dir) else {
        return false;
    };
    rel.starts_with("src") || rel == Path::new("Cargo.toml") || rel.starts_with("wit")
}

fn rebuild(dir: &Path, out: &Path, toolchain: Toolchain) {
    match builder::build(dir, out, toolchain) {
        Ok(wasm) => {
            tracing::info!(crate_dir = %dir.display(), "weir dev: built {}", wasm.display())
        }
        Err(e) => tracing::error!("weir dev: {e} (the last good build keeps serving)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sources_trigger_a_rebuild() {
        let dir = Path::new("/w/guard");
        assert!(is_source_of(dir, Path::new("/w/guard/src/lib.rs")));
        assert!(is_source_of(dir, Path::new("/w/guard/Cargo.toml")));
        assert!(!is_source_of(dir, Path::new("/w/guard/target/debug/x")));
        assert!(!is_source_of(dir, Path::new("/w/other/src/lib.rs")));
    }
}
