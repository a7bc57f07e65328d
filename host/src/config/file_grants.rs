//! Validating a filter's `files` table: host directories it may read, and the guest paths
//! it sees them at (WASI preopens, read-only).

use super::Validator;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use toml::Spanned;

/// Grants one filter may have.
const MAX_GRANTS: usize = 16;
/// Entries a granted tree is walked for, when stamping it for change detection.
const MAX_STAMPED_ENTRIES: usize = 20_000;
/// Directory depth a granted tree is walked to.
const MAX_STAMPED_DEPTH: usize = 16;

/// A host directory a filter may read, seen by it at `guest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    /// Absolute guest path (`/rules`), normalised: no `.`, `..` or empty components.
    pub guest: String,
    /// The host directory, relative paths resolved against the manifest's folder.
    pub host: PathBuf,
    /// The newest modification time in the tree when validated: a change reloads the filter.
    pub stamp: Option<SystemTime>,
}

impl Validator {
    /// The grants of `filters.<name>.files`.
    pub(super) fn file_grants(
        &mut self,
        base: &Path,
        field: &str,
        files: &std::collections::BTreeMap<String, Spanned<String>>,
    ) -> Vec<FileGrant> {
        let mut grants: Vec<FileGrant> = Vec::new();
        if files.len() > MAX_GRANTS {
            if let Some((_, v)) = files.iter().nth(MAX_GRANTS) {
                self.error(
                    v.span(),
                    format!("{field}: at most {MAX_GRANTS} directories"),
                );
            }
            return grants;
        }
        for (guest, host) in files {
            let at = host.span();
            if let Err(why) = check_guest_path(guest) {
                self.error(at, format!("{field}.{guest:?}: {why}"));
                continue;
            }
            if let Some(other) = grants.iter().find(|g| nested(&g.guest, guest)) {
                self.error(
                    at,
                    format!(
                        "{field}.{guest:?}: overlaps {:?}; grant directories at separate paths",
                        other.guest
                    ),
                );
                continue;
            }
            let path = base.join(host.get_ref());
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => grants.push(FileGrant {
                    guest: guest.clone(),
                    stamp: tree_stamp(&path),
                    host: path,
                }),
                Ok(_) => self.error(
                    at,
                    format!("{field}.{guest:?}: {} is not a directory", path.display()),
                ),
                Err(e) => self.error(at, format!("{field}.{guest:?}: {}: {e}", path.display())),
            }
        }
        grants
    }
}

/// Whether `p` is a guest path a filter can be given: absolute, normalised, printable.
fn check_guest_path(p: &str) -> Result<(), &'static str> {
    let Some(rest) = p.strip_prefix('/') else {
        return Err("the guest path must be absolute (start with /)");
    };
    if rest.is_empty() {
        return Err("the guest path cannot be / itself; name a directory such as /rules");
    }
    if p.chars().any(|c| c.is_control() || c == '\\') {
        return Err("the guest path has a control character or a backslash");
    }
    if rest
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("the guest path must be normalised (no empty, . or .. parts)");
    }
    Ok(())
}

/// Whether one guest path is the other or inside it.
fn nested(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

/// The newest modification time of `root` and everything under it (directories too, so a
/// file created, removed or renamed shows), following symbolic links, within bounds.
pub fn tree_stamp(root: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(root).and_then(|m| m.modified()).ok()?;
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_STAMPED_ENTRIES {
                return Some(newest);
            }
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if let Ok(t) = meta.modified() {
                newest = newest.max(t);
            }
            if meta.is_dir() && depth < MAX_STAMPED_DEPTH {
                stack.push((path, depth + 1));
            }
        }
    }
    Some(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_are_absolute_and_normalised() {
        assert!(check_guest_path("/rules").is_ok());
        assert!(check_guest_path("/etc/crs").is_ok());
        for bad in [
            "rules", "/", "/a//b", "/a/../b", "/./a", "/a/", "/a\\b", "/a\nb",
        ] {
            assert!(check_guest_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overlapping_guest_paths_are_found() {
        assert!(nested("/rules", "/rules"));
        assert!(nested("/rules", "/rules/crs"));
        assert!(nested("/rules/crs", "/rules"));
        assert!(!nested("/rules", "/rules2"));
        assert!(!nested("/a", "/b"));
    }

    #[test]
    fn a_tree_stamp_moves_when_a_file_inside_changes() {
        let dir = std::env::temp_dir().join(format!("weir-grant-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let file = dir.join("sub/rules.conf");
        std::fs::write(&file, "a").unwrap();
        let before = tree_stamp(&dir).unwrap();
        let later = before + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(tree_stamp(&dir), Some(later));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(tree_stamp(&dir), None);
    }
}
