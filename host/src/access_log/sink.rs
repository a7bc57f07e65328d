//! Where access log lines wait and get written: each worker appends to a buffer of its own
//! (an uncontended lock, no system call), and one writer thread takes the buffers every few
//! milliseconds and writes them to the destination. A full buffer drops the line and counts
//! it rather than stall the request; a slow or blocked destination (a full disk, a pipe
//! nobody reads) therefore costs lines, never latency. SIGUSR1 makes the writer reopen a
//! file (for logrotate).

use super::Destination;
use crate::filter::per_worker::PerWorker;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How often the writer takes the buffers. Often enough that a busy worker's buffer stays
/// small (about 90 KiB at 40k lines a second) and in its CPU's cache.
const FLUSH_EVERY: Duration = Duration::from_millis(5);

/// The process's access log sink.
pub fn global() -> &'static Sink {
    static SINK: OnceLock<Sink> = OnceLock::new();
    SINK.get_or_init(|| Sink {
        buffers: PerWorker::new(Buffer::default),
        destination: Mutex::new(None),
        reopen: AtomicBool::new(false),
        written: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        writer: OnceLock::new(),
    })
}

#[derive(Default)]
#[repr(align(128))]
struct Buffer {
    bytes: Mutex<Vec<u8>>,
    lines: AtomicU64,
}

/// Buffers per worker and the writer thread.
pub struct Sink {
    buffers: PerWorker<Buffer>,
    destination: Mutex<Option<Destination>>,
    reopen: AtomicBool,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    writer: OnceLock<()>,
}

impl Sink {
    /// Send lines to `destination` from now on (reopened if it changed), starting the writer
    /// thread on first use.
    pub fn configure(&'static self, destination: &Destination) {
        let mut current = self.destination.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref() != Some(destination) {
            *current = Some(destination.clone());
            self.reopen.store(true, Relaxed);
        }
        drop(current);
        self.writer.get_or_init(|| {
            let spawned = std::thread::Builder::new()
                .name("weir-access-log".into())
                .spawn(move || self.write_forever());
            if let Err(e) = spawned {
                tracing::error!("cannot start the access log writer: {e}");
            }
        });
    }

    /// Reopen the file (SIGUSR1).
    pub fn reopen(&self) {
        self.reopen.store(true, Relaxed);
    }

    /// Queue the line `write` appends (newline included, or nothing: no line) straight to
    /// this worker's buffer, if it fits under `limit` bytes; else drop and count it.
    pub fn push_with(&self, limit: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let buffer = self.buffers.mine();
        let mut bytes = buffer.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let before = bytes.len();
        if before >= limit {
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        write(&mut bytes);
        if bytes.len() > limit {
            bytes.truncate(before);
            self.dropped.fetch_add(1, Relaxed);
        } else if bytes.len() > before {
            buffer.lines.fetch_add(1, Relaxed);
        }
    }

    /// Lines written, dropped (buffer full) and lost (the destination failed).
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.written.load(Relaxed),
            self.dropped.load(Relaxed),
            self.failed.load(Relaxed),
        )
    }

    fn write_forever(&self) {
        let mut out: Option<Box<dyn Write + Send>> = None;
        let mut taken = Vec::new();
        let mut warned = false;
        loop {
            std::thread::sleep(FLUSH_EVERY);
            if self.reopen.swap(false, Relaxed) || out.is_none() {
                out = self.open(&mut warned);
            }
            for buffer in self.buffers.iter() {
                {
                    let mut bytes = buffer.bytes.lock().unwrap_or_else(|p| p.into_inner());
                    if bytes.is_empty() {
                        continue;
                    }
                    std::mem::swap(&mut *bytes, &mut taken);
                }
                let lines = buffer.lines.swap(0, Relaxed);
                let ok = out
                    .as_mut()
                    .is_some_and(|w| w.write_all(&taken).and_then(|()| w.flush()).is_ok());
                if ok {
                    self.written.fetch_add(lines, Relaxed);
                    warned = false;
                } else {
                    self.failed.fetch_add(lines, Relaxed);
                    if !warned {
                        tracing::warn!("cannot write the access log; lines are being lost");
                        warned = true;
                    }
                    // Try the destination afresh next time.
                    out = None;
                }
                // Keep the capacity: a worker's buffer holds at most `access-log-buffer`
                // bytes, and shrinking it made the next interval grow it again (reallocating
                // and faulting in fresh pages on the request path).
                taken.clear();
            }
        }
    }

    fn open(&self, warned: &mut bool) -> Option<Box<dyn Write + Send>> {
        let destination = self
            .destination
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        match destination {
            Destination::Stdout => Some(Box::new(std::io::stdout())),
            Destination::Stderr => Some(Box::new(std::io::stderr())),
            Destination::File(path) => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(f) => Some(Box::new(f)),
                Err(e) => {
                    if !*warned {
                        tracing::warn!("cannot open the access log {}: {e}", path.display());
                        *warned = true;
                    }
                    None
                }
            },
        }
    }
}
