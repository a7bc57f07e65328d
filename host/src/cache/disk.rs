//! A zone's disk tier: every stored response also written to a directory (by a writer
//! thread, off the request path), looked up there when memory has no entry, and found again
//! after a restart. Files are written whole and renamed into place, so a crash leaves
//! complete files or none; a file that does not read back whole is ignored and removed.
//! The directory is held within its byte bound by removing the least recently used files.

use super::entry::Stored;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First bytes of every file: the format and its version.
const MAGIC: &[u8; 8] = b"WEIRC001";
/// Writes queued beyond this are dropped (the response stays in memory only).
const QUEUE: usize = 1024;

/// A disk tier's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSettings {
    /// Its directory.
    pub path: PathBuf,
    /// Bytes its files may take.
    pub size: u64,
}

/// What a file holds besides the body.
#[derive(Serialize, Deserialize)]
struct Meta {
    key: String,
    id: u64,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    response_ms: u64,
    initial_age_ms: u64,
    lifetime_ms: u64,
    swr_ms: u64,
    sie_ms: u64,
    must_revalidate: bool,
    no_cache: bool,
    selecting: Vec<(String, Option<String>)>,
    tags: Vec<String>,
    body_len: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Meta {
    fn of(key: &str, s: &Stored) -> Meta {
        Meta {
            key: key.to_string(),
            id: s.id,
            status: s.status.as_u16(),
            headers: s
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect(),
            response_ms: ms(s
                .response_time
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()),
            initial_age_ms: ms(s.initial_age),
            lifetime_ms: ms(s.lifetime),
            swr_ms: ms(s.stale_while_revalidate),
            sie_ms: ms(s.stale_if_error),
            must_revalidate: s.must_revalidate,
            no_cache: s.no_cache,
            selecting: s
                .selecting
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.clone()))
                .collect(),
            tags: s.tags.iter().map(|t| t.to_string()).collect(),
            body_len: s.body.len() as u64,
        }
    }

    fn stored(self, body: bytes::Bytes) -> Option<Stored> {
        let mut headers = HeaderMap::new();
        for (n, v) in self.headers {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_bytes(&v).ok()?,
            );
        }
        let selecting = self
            .selecting
            .into_iter()
            .map(|(n, v)| Some((HeaderName::from_bytes(n.as_bytes()).ok()?, v)))
            .collect::<Option<Vec<_>>>()?;
        Some(Stored {
            id: self.id,
            status: StatusCode::from_u16(self.status).ok()?,
            headers,
            body,
            response_time: UNIX_EPOCH + Duration::from_millis(self.response_ms),
            initial_age: Duration::from_millis(self.initial_age_ms),
            lifetime: Duration::from_millis(self.lifetime_ms),
            stale_while_revalidate: Duration::from_millis(self.swr_ms),
            stale_if_error: Duration::from_millis(self.sie_ms),
            must_revalidate: self.must_revalidate,
            no_cache: self.no_cache,
            selecting,
            tags: self.tags.into_iter().map(Into::into).collect(),
        })
    }
}

/// A file in the index.
struct File {
    key: Arc<str>,
    tags: Vec<Box<str>>,
    size: u64,
    used: u64,
}

#[derive(Default)]
struct Index {
    files: HashMap<String, File>,
    by_key: HashMap<Arc<str>, Vec<String>>,
    by_use: BTreeMap<u64, String>,
    bytes: u64,
    tick: u64,
}

impl Index {
    fn insert(&mut self, name: String, key: Arc<str>, tags: Vec<Box<str>>, size: u64) {
        self.remove(&name);
        self.tick += 1;
        self.by_use.insert(self.tick, name.clone());
        self.by_key
            .entry(key.clone())
            .or_default()
            .push(name.clone());
        self.bytes += size;
        self.files.insert(
            name,
            File {
                key,
                tags,
                size,
                used: self.tick,
            },
        );
    }

    fn touch(&mut self, name: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(f) = self.files.get_mut(name) {
            self.by_use.remove(&f.used);
            f.used = tick;
            self.by_use.insert(tick, name.to_string());
        }
    }

    fn remove(&mut self, name: &str) -> bool {
        let Some(f) = self.files.remove(name) else {
            return false;
        };
        self.by_use.remove(&f.used);
        self.bytes -= f.size;
        if let Some(names) = self.by_key.get_mut(&f.key) {
            names.retain(|n| n != name);
            if names.is_empty() {
                self.by_key.remove(&f.key);
            }
        }
        true
    }

    /// Remove the files `pick` picks from the index; their names.
    fn take(&mut self, pick: &dyn Fn(&str, &[Box<str>]) -> bool) -> Vec<String> {
        let names: Vec<String> = self
            .files
            .iter()
            .filter(|(_, f)| pick(&f.key, &f.tags))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &names {
            self.remove(n);
        }
        names
    }

    /// Names to delete so that the files fit `limit`.
    fn over(&mut self, limit: u64) -> Vec<String> {
        let mut gone = Vec::new();
        while self.bytes > limit {
            let Some((_, name)) = self.by_use.pop_first() else {
                break;
            };
            self.remove(&name);
            gone.push(name);
        }
        gone
    }
}

/// Picks the files a purge removes, by key and tags.
type Pick = Box<dyn Fn(&str, &[Box<str>]) -> bool + Send>;

/// The writer's work, done in the order it was asked for (so a purge after a write
/// removes what that write stored).
enum Job {
    Write(String, Arc<str>, Box<Stored>),
    Delete(Vec<String>),
    Purge(Pick),
}

/// A zone's files.
pub struct DiskTier {
    settings: DiskSettings,
    index: Arc<Mutex<Index>>,
    jobs: SyncSender<Job>,
}

fn lock(index: &Mutex<Index>) -> std::sync::MutexGuard<'_, Index> {
    index.lock().unwrap_or_else(|p| p.into_inner())
}

/// A file's name: the SHA-256 of its key and selecting values.
fn name_of(key: &str, stored: &Stored) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(key.as_bytes());
    for (n, v) in &stored.selecting {
        h.update([0]);
        h.update(n.as_str().as_bytes());
        h.update([1]);
        h.update(v.as_deref().unwrap_or("\u{0}").as_bytes());
    }
    crate::hex::encode(&h.finalize())
}

/// The file recording the last shared purge applied to a tier.
const PURGE_MARK: &str = "purges.seq";

impl DiskTier {
    /// The tier in `settings.path` (made if missing), its index read from the files there.
    pub fn open(zone: &str, settings: DiskSettings) -> std::io::Result<DiskTier> {
        std::fs::create_dir_all(&settings.path)?;
        let mut index = Index::default();
        let mut found: Vec<(SystemTime, String, Meta, u64)> = Vec::new();
        for entry in std::fs::read_dir(&settings.path)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".entry") {
                match read_meta(&path) {
                    Some((meta, size)) => {
                        let used = entry
                            .metadata()
                            .and_then(|m| m.modified())
                            .unwrap_or(UNIX_EPOCH);
                        found.push((used, stem.to_string(), meta, size));
                    }
                    None => {
                        tracing::warn!(zone, file = %path.display(), "cache file unreadable: removed");
                        let _ = std::fs::remove_file(&path);
                    }
                }
            } else if name.ends_with(".tmp") {
                // A write a crash cut short.
                let _ = std::fs::remove_file(&path);
            }
        }
        found.sort_by_key(|f| f.0);
        for (_, name, meta, size) in found {
            let tags = meta.tags.iter().map(|t| t.as_str().into()).collect();
            index.insert(name, meta.key.into(), tags, size);
        }
        let index = Arc::new(Mutex::new(index));
        let (jobs, rx) = sync_channel::<Job>(QUEUE);
        let dir = settings.path.clone();
        let limit = settings.size;
        let writer_index = index.clone();
        let zone_name = zone.to_string();
        std::thread::Builder::new()
            .name(format!("weir-cache-{zone}"))
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Write(name, key, stored) => match write(&dir, &name, &key, &stored) {
                            Ok(size) => {
                                let gone = {
                                    let mut ix = lock(&writer_index);
                                    ix.insert(name, key, stored.tags.clone(), size);
                                    ix.over(limit)
                                };
                                delete(&dir, &gone);
                            }
                            Err(e) => {
                                tracing::warn!(zone = zone_name, "cache file not written: {e}")
                            }
                        },
                        Job::Delete(names) => delete(&dir, &names),
                        Job::Purge(pick) => {
                            let names = lock(&writer_index).take(&*pick);
                            delete(&dir, &names);
                        }
                    }
                }
            })?;
        let gone = lock(&index).over(settings.size);
        delete(&settings.path, &gone);
        Ok(DiskTier {
            settings,
            index,
            jobs,
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &DiskSettings {
        &self.settings
    }

    /// The number of the last shared purge applied to these files (see `cache::shared`),
    /// as recorded in the directory; `None` when there is no record.
    pub fn purge_mark(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.settings.path.join(PURGE_MARK)).ok()?;
        text.trim().parse().ok()
    }

    /// Record `n` as the last shared purge applied (a whole file renamed into place).
    pub fn set_purge_mark(&self, n: u64) {
        let tmp = self.settings.path.join(format!("{PURGE_MARK}.tmp"));
        let done = std::fs::write(&tmp, n.to_string())
            .and_then(|()| std::fs::rename(&tmp, self.settings.path.join(PURGE_MARK)));
        if let Err(e) = done {
            tracing::warn!(dir = %self.settings.path.display(), "cannot record the last shared purge: {e}");
        }
    }

    /// Files and their bytes.
    pub fn usage(&self) -> (usize, u64) {
        let ix = lock(&self.index);
        (ix.files.len(), ix.bytes)
    }

    /// Write `stored` under `key` (in the background; dropped if the writer is behind).
    pub fn write(&self, key: &Arc<str>, stored: &Stored) {
        let job = Job::Write(name_of(key, stored), key.clone(), Box::new(stored.clone()));
        if let Err(TrySendError::Full(_)) = self.jobs.try_send(job) {
            tracing::debug!("cache disk writer behind: a response stays in memory only");
        }
    }

    /// The files stored under `key` (blocking: call off the request path).
    pub fn read(&self, key: &str) -> Vec<Stored> {
        let names = lock(&self.index)
            .by_key
            .get(key)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for name in names {
            match read_file(&self.settings.path.join(format!("{name}.entry"))) {
                Some(s) => {
                    lock(&self.index).touch(&name);
                    out.push(s);
                }
                None => self.forget(vec![name]),
            }
        }
        out
    }

    /// Whether any file is stored under `key`.
    pub fn has(&self, key: &str) -> bool {
        lock(&self.index).by_key.contains_key(key)
    }

    /// Remove the files `pick` picks (by key and tags), now and again after the writes
    /// queued before this purge; how many there were now.
    pub fn purge(&self, pick: impl Fn(&str, &[Box<str>]) -> bool + Send + 'static) -> usize {
        let names = lock(&self.index).take(&pick);
        let n = names.len();
        // Blocking send: a purge must not be lost behind a full queue.
        let _ = self.jobs.send(Job::Delete(names));
        let _ = self.jobs.send(Job::Purge(Box::new(pick)));
        n
    }

    fn forget(&self, names: Vec<String>) {
        let mut ix = lock(&self.index);
        for n in &names {
            ix.remove(n);
        }
        drop(ix);
        let _ = self.jobs.try_send(Job::Delete(names));
    }
}

fn write(dir: &Path, name: &str, key: &str, stored: &Stored) -> std::io::Result<u64> {
    let meta = serde_json::to_vec(&Meta::of(key, stored)).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(MAGIC)?;
    f.write_all(&(meta.len() as u32).to_le_bytes())?;
    f.write_all(&meta)?;
    f.write_all(&stored.body)?;
    drop(f);
    std::fs::rename(&tmp, dir.join(format!("{name}.entry")))?;
    Ok((MAGIC.len() + 4 + meta.len() + stored.body.len()) as u64)
}

fn delete(dir: &Path, names: &[String]) {
    for n in names {
        let _ = std::fs::remove_file(dir.join(format!("{n}.entry")));
    }
}

/// The metadata of a file and the file's size, if it is whole.
fn read_meta(path: &Path) -> Option<(Meta, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let size = f.metadata().ok()?.len();
    let mut head = [0u8; 12];
    f.read_exact(&mut head).ok()?;
    let (magic, len) = head.split_at(8);
    if magic != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(len.try_into().ok()?) as u64;
    if len > size {
        return None;
    }
    let mut meta = vec![0u8; len as usize];
    f.read_exact(&mut meta).ok()?;
    let meta: Meta = serde_json::from_slice(&meta).ok()?;
    (12 + len + meta.body_len == size).then_some((meta, size))
}

fn read_file(path: &Path) -> Option<Stored> {
    let bytes = std::fs::read(path).ok()?;
    let magic = bytes.get(..8)?;
    if magic != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
    let meta: Meta = serde_json::from_slice(bytes.get(12..12 + len)?).ok()?;
    let body = bytes::Bytes::from(bytes).slice(12 + len..);
    if body.len() as u64 != meta.body_len {
        return None;
    }
    meta.stored(body)
}
