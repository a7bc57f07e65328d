//! Snapshots of the directories a filter is granted (`files`), copied when the filter loads:
//! every instance of that load, made then or later (on another worker, after a trap), reads
//! the files as they were when it loaded. A change on disk reaches only the filter a reload
//! makes from it; a broken change that the reload refuses never reaches the filter that keeps
//! serving.

use crate::config::FileGrant;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest total size of a filter's granted trees that is copied; larger grants are read
/// where they are (and the log says so).
pub const MAX_BYTES: u64 = 64 << 20;

/// Deepest directory nesting copied.
const MAX_DEPTH: usize = 32;

/// A copy of a filter's granted trees, removed when the filter is dropped.
#[derive(Debug)]
pub struct Snapshot {
    root: PathBuf,
    grants: Vec<FileGrant>,
}

impl Snapshot {
    /// Copy `grants` for filter `name` into a fresh directory under the system's temporary
    /// folder. `Ok(None)`: nothing granted, or more than [`MAX_BYTES`] (read in place).
    pub fn take(name: &str, grants: &[FileGrant]) -> Result<Option<Snapshot>, String> {
        if grants.is_empty() {
            return Ok(None);
        }
        let mut total = 0u64;
        for g in grants {
            total = total.saturating_add(
                tree_size(&g.host, 0)
                    .map_err(|e| format!("{} (granted as {}): {e}", g.host.display(), g.guest))?,
            );
        }
        if total > MAX_BYTES {
            tracing::warn!(
                filter = name,
                bytes = total,
                "granted files are larger than the snapshot bound: instances read them where they are"
            );
            return Ok(None);
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "weir-{}-files-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut snap = Snapshot {
            root,
            grants: Vec::new(),
        };
        for (i, g) in grants.iter().enumerate() {
            let to = snap.root.join(i.to_string());
            copy_tree(&g.host, &to, 0).map_err(|e| {
                format!("copying {} (granted as {}): {e}", g.host.display(), g.guest)
            })?;
            snap.grants.push(FileGrant {
                host: to,
                ..g.clone()
            });
        }
        Ok(Some(snap))
    }

    /// The grants, pointing at the copies.
    pub fn grants(&self) -> &[FileGrant] {
        &self.grants
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn tree_size(dir: &Path, depth: usize) -> std::io::Result<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // Links are followed, as the filter would follow them.
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                total = total.saturating_add(tree_size(&path, depth + 1)?);
            }
        } else {
            total = total.saturating_add(meta.len());
        }
    }
    Ok(total)
}

fn copy_tree(from: &Path, to: &Path, depth: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::metadata(&src)?;
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                copy_tree(&src, &dst, depth + 1)?;
            }
        } else if meta.is_file() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_the_files_as_they_were_and_goes_with_its_filter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.conf"), "one").unwrap();
        std::fs::write(dir.path().join("sub/b.data"), "two").unwrap();
        let grant = FileGrant {
            guest: "/rules".into(),
            host: dir.path().to_path_buf(),
            stamp: None,
        };
        let snap = Snapshot::take("waf", std::slice::from_ref(&grant))
            .unwrap()
            .unwrap();
        let copy = snap.grants()[0].host.clone();
        assert_eq!(snap.grants()[0].guest, "/rules");
        std::fs::write(dir.path().join("a.conf"), "changed").unwrap();
        assert_eq!(std::fs::read_to_string(copy.join("a.conf")).unwrap(), "one");
        assert_eq!(
            std::fs::read_to_string(copy.join("sub/b.data")).unwrap(),
            "two"
        );
        drop(snap);
        assert!(!copy.exists(), "removed with its filter");
        assert!(Snapshot::take("none", &[]).unwrap().is_none());
    }
}
