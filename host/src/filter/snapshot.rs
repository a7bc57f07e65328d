//! Snapshots of the directories a filter is granted (`files`), copied when the filter loads:
//! every instance of that load, made then or later (on another worker, after a trap), reads
//! the files as they were when it loaded. A change on disk reaches only the filter a reload
//! makes from it; a broken change that the reload refuses never reaches the filter that keeps
//! serving.

use crate::config::FileGrant;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Largest total size of a filter's granted trees that is copied; larger grants are read
/// where they are (and the log says so).
pub const MAX_BYTES: u64 = 64 << 20;

/// Deepest directory nesting copied.
const MAX_DEPTH: usize = 32;

/// Names of snapshot directories in the temporary folder start with this.
const PREFIX: &str = "weir-files-";

/// A file in each snapshot directory (outside the granted copies) that its owner keeps
/// locked while the snapshot lives: a directory whose lock can be taken was left by a
/// process that ended without removing it (killed), and the next snapshot taken removes it.
const OWNER_LOCK: &str = ".owner";

/// A lock file younger than this is left alone by the sweep: its owner may be between
/// creating the file and locking it.
const SWEEP_AFTER: Duration = Duration::from_secs(60);

/// A copy of a filter's granted trees, removed when the filter is dropped.
#[derive(Debug)]
pub struct Snapshot {
    root: PathBuf,
    grants: Vec<FileGrant>,
    /// Held locked while the snapshot lives (see [`OWNER_LOCK`]); declared after `root` so
    /// the directory is removed before the lock is let go.
    _owner: File,
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
        let parent = std::env::temp_dir();
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| {
            sweep_stale(&parent);
        });
        let (root, owner) = fresh_root(&parent, std::iter::repeat_with(random_name))
            .map_err(|e| format!("making a snapshot folder in {}: {e}", parent.display()))?;
        let mut snap = Snapshot {
            root,
            grants: Vec::new(),
            _owner: owner,
        };
        for (i, g) in grants.iter().enumerate() {
            let to = snap.root.join(i.to_string());
            std::fs::canonicalize(&g.host)
                .and_then(|root| copy_tree(&root, &to))
                .map_err(|e| {
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

/// A snapshot directory name no other process picks: the prefix and 64 random bits.
fn random_name() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    format!("{PREFIX}{:016x}", u64::from_le_bytes(b))
}

/// A new, empty directory under `parent` named by the first of `names` that is not taken
/// (an existing directory is never reused: it may hold another process's files), with its
/// owner lock taken.
fn fresh_root(parent: &Path, names: impl Iterator<Item = String>) -> io::Result<(PathBuf, File)> {
    for name in names.take(16) {
        let root = parent.join(name);
        // Only this user reads the copies: a granted tree may hold keys.
        let made = {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&root)
        };
        match made {
            Ok(()) => {
                let owner = File::create(root.join(OWNER_LOCK))?;
                try_lock(&owner)?;
                return Ok((root, owner));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "every name tried is taken",
    ))
}

/// Take `file`'s exclusive lock without waiting (`flock`: held by the open file, let go
/// when it is closed, by the kernel when its process dies).
fn try_lock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this `File` owns and keeps open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Remove the snapshot directories under `parent` that no live process owns: their owner
/// lock is older than [`SWEEP_AFTER`] and can be taken. Returns how many were removed.
fn sweep_stale(parent: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = entry.path();
        // Another user's folders are theirs to remove.
        let mine = {
            use std::os::unix::fs::MetadataExt;
            std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == me)
        };
        if !mine {
            continue;
        }
        let Ok(lock) = File::open(dir.join(OWNER_LOCK)) else {
            continue;
        };
        let old = lock
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= SWEEP_AFTER);
        if old && try_lock(&lock).is_ok() && std::fs::remove_dir_all(&dir).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "removed file snapshots left by processes that ended without removing them"
        );
    }
    removed
}

/// Bytes of the files in the tree under `dir`. Links are not followed: a link is copied as a
/// link (see [`copy_tree`]), so what it points to is counted where it is.
fn tree_size(dir: &Path, depth: usize) -> std::io::Result<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                total = total.saturating_add(tree_size(&path, depth + 1)?);
            }
        } else if meta.is_file() {
            total = total.saturating_add(meta.len());
        }
    }
    Ok(total)
}

/// Copy the tree at `root` (canonical) to `to` as the filter may see it. A link that resolves
/// inside the tree is copied as a link to the same place in the copy (the sandbox follows
/// it there, as it would in the original); one that leads out of the tree, or nowhere, is
/// left out: the filter would be refused it in the original, and copying what it points to
/// would hand the filter a file outside its grant.
fn copy_tree(root: &Path, to: &Path) -> std::io::Result<()> {
    copy_dir(root, root, to, 0)
}

fn copy_dir(root: &Path, from: &Path, to: &Path, depth: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src)?;
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                copy_dir(root, &src, &dst, depth + 1)?;
            }
        } else if meta.is_file() {
            std::fs::copy(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            match link_inside(root, &src, depth) {
                Some(target) => std::os::unix::fs::symlink(target, &dst)?,
                None => tracing::warn!(
                    link = %src.display(),
                    "a link in a granted directory leads out of it: the filter does not see it"
                ),
            }
        }
    }
    Ok(())
}

/// Where the link `link` (in a folder `depth` levels below `root`) resolves, relative to
/// that folder, if it resolves inside `root`.
fn link_inside(root: &Path, link: &Path, depth: usize) -> Option<PathBuf> {
    let target = std::fs::canonicalize(link).ok()?;
    let inside = target.strip_prefix(root).ok()?;
    let mut rel = PathBuf::new();
    for _ in 0..depth {
        rel.push("..");
    }
    rel.push(inside);
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    Some(rel)
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

    #[test]
    fn links_are_copied_as_links_inside_the_tree_and_left_out_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/a"), "a").unwrap();
        std::fs::write(dir.path().join("outside"), "no").unwrap();
        let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, tree.join(at));
        // Two links to their own folder: followed while copying, they would nest 2^depth
        // copies.
        link(".", "self1").unwrap();
        link(".", "self2").unwrap();
        link("a", "sub/to-a").unwrap();
        link("../outside", "out").unwrap();
        let grant = FileGrant {
            guest: "/t".into(),
            host: tree.clone(),
            stamp: None,
        };
        let snap = Snapshot::take("t", &[grant]).unwrap().unwrap();
        let copy = &snap.grants()[0].host;
        let target = |at: &str| std::fs::read_link(copy.join(at)).unwrap();
        assert_eq!(target("self1"), Path::new("."));
        assert_eq!(target("sub/to-a"), Path::new("../sub/a"));
        assert_eq!(std::fs::read_to_string(copy.join("sub/to-a")).unwrap(), "a");
        assert!(
            std::fs::symlink_metadata(copy.join("out")).is_err(),
            "left out"
        );
    }

    #[test]
    fn a_snapshot_never_reuses_an_existing_folder() {
        // A folder left under a name by another process (one that was killed, whose pid a
        // later process got) must not be filled with this snapshot's files, mixing the two.
        let parent = tempfile::tempdir().unwrap();
        let left = parent.path().join("weir-files-taken");
        std::fs::create_dir_all(left.join("rules")).unwrap();
        std::fs::write(left.join("rules/other.conf"), "someone else's").unwrap();
        let names = ["weir-files-taken", "weir-files-fresh"].map(String::from);
        let (root, _owner) = fresh_root(parent.path(), names.into_iter()).unwrap();
        assert_eq!(root, parent.path().join("weir-files-fresh"));
        let inside: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(inside, [OWNER_LOCK], "empty but for the owner lock");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "readable by this user only");
        assert!(
            left.join("rules/other.conf").exists(),
            "the other folder is untouched"
        );
        let all_taken = ["weir-files-taken"].map(String::from);
        assert!(fresh_root(parent.path(), all_taken.into_iter()).is_err());
    }

    #[test]
    fn the_sweep_removes_only_folders_whose_owner_is_gone() {
        let parent = tempfile::tempdir().unwrap();
        let aged = |dir: &Path| {
            let lock = File::options()
                .write(true)
                .open(dir.join(OWNER_LOCK))
                .unwrap();
            lock.set_modified(SystemTime::now() - 2 * SWEEP_AFTER)
                .unwrap();
        };
        // Owned: its lock is held (as a live process holds it).
        let names = ["weir-files-live", "weir-files-dead", "weir-files-young"].map(String::from);
        let (live, live_owner) = fresh_root(parent.path(), names[..1].iter().cloned()).unwrap();
        aged(&live);
        // Its owner died: the lock is free.
        let (dead, dead_owner) = fresh_root(parent.path(), names[1..2].iter().cloned()).unwrap();
        aged(&dead);
        drop(dead_owner);
        // Free but young: its owner may not have locked it yet.
        let (young, young_owner) = fresh_root(parent.path(), names[2..].iter().cloned()).unwrap();
        drop(young_owner);
        // A link named like a snapshot is not followed.
        let target = parent.path().join("target-dir");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, parent.path().join("weir-files-link")).unwrap();
        // Not a snapshot at all.
        let other = parent.path().join("other-files-x");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(OWNER_LOCK), "").unwrap();

        assert_eq!(sweep_stale(parent.path()), 1);
        assert!(!dead.exists());
        assert!(live.exists() && young.exists() && other.exists() && target.exists());
        drop(live_owner);
    }
}
