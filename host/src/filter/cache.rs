//! The on-disk compile cache: compiled components keyed by the plugin's content hash and
//! the engine's configuration, so restarts and reloads of known files skip compilation.
//!
//! Loading a cached artifact maps native code into the process, so the cache is trusted
//! like the binary: its folder is created private (0700), and a folder that other users can
//! write to, or that belongs to someone else, is refused (the proxy then compiles every
//! time and says why). Entries are written to a temporary file and renamed into place, so a
//! crash never leaves a half-written artifact under a valid name. Each entry ends with the
//! SHA-256 of the artifact, and is read into memory and checked before use (never mapped), so
//! an entry changed, truncated or corrupted under a running proxy can't crash it: it fails
//! the check, and is compiled again and replaced.

use sha2::Digest as _;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// A folder of compiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    /// Hex of the engine's compatibility hash, weir's and wasmtime's versions.
    engine_key: String,
}

impl CompileCache {
    /// Open (creating it private if needed) the cache at `dir` for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create compile cache {}: {e}", dir.display()))?;
        let meta = std::fs::metadata(dir)
            .map_err(|e| format!("cannot read compile cache {}: {e}", dir.display()))?;
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        if meta.uid() != uid {
            return Err(format!(
                "compile cache {} belongs to another user (uid {}); not trusting it",
                dir.display(),
                meta.uid()
            ));
        }
        if meta.permissions().mode() & 0o022 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                format!(
                    "compile cache {} is writable by others and cannot be made private: {e}",
                    dir.display()
                )
            })?;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        // The entry format: 2 = artifact followed by its SHA-256.
        2u32.hash(&mut h);
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", h.finish()),
        })
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of the plugin whose content hash is `sha256`, if any.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read a compile cache entry: {e}");
                return None;
            }
        };
        let Some(artifact) = checked(&bytes) else {
            tracing::warn!(path = %path.display(), "ignoring a corrupt compile cache entry (checksum mismatch): compiling again");
            return None;
        };
        // SAFETY: the bytes are our own copy (a change to the file can't reach them), they
        // were written by `put` below from `Component::serialize` of this engine
        // configuration (the file name carries its key) into a private folder checked in
        // `open`, and their checksum matches. Wasmtime still checks the header and version.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring an unusable compile cache entry: {e:#}");
                None
            }
        }
    }

    /// Store the compilation of the plugin `sha256`. Failures are logged, not returned: the
    /// cache only saves time.
    pub fn put(&self, sha256: &str, component: &Component) {
        let result = component
            .serialize()
            .map_err(|e| format!("{e:#}"))
            .and_then(|bytes| {
                let mut tmp = tempfile_in(&self.dir).map_err(|e| e.to_string())?;
                tmp.1.write_all(&bytes).map_err(|e| e.to_string())?;
                tmp.1
                    .write_all(&sha2::Sha256::digest(&bytes))
                    .map_err(|e| e.to_string())?;
                tmp.1.sync_all().map_err(|e| e.to_string())?;
                std::fs::rename(&tmp.0, self.entry(sha256)).map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), "cannot write to the compile cache: {e}");
        }
    }
}

/// The artifact of an entry whose trailing SHA-256 matches it.
fn checked(entry: &[u8]) -> Option<&[u8]> {
    let split = entry.len().checked_sub(32)?;
    let (artifact, sum) = entry.split_at(split);
    (sha2::Sha256::digest(artifact).as_slice() == sum).then_some(artifact)
}

/// A new private file in `dir` with a unique name.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    let path = dir.join(format!(".tmp-{}", u64::from_le_bytes(random)));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    Ok((path, file))
}
