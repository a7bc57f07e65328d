//! Where access log lines wait and get written: each worker appends to a buffer of its own
//! (an uncontended lock, no system call), and one writer thread takes the buffers every
//! [`FLUSH_EVERY`], or sooner when a buffer passes a quarter of its limit (the worker that
//! fills it past that wakes the writer, once), and writes them to the destination. A full
//! buffer drops the line and counts it rather than stall the request; a slow or blocked
//! destination (a full disk, a pipe nobody reads) therefore costs lines, never latency.
//! SIGUSR1 makes the writer reopen a file (for logrotate).

use super::Destination;
use crate::filter::per_worker::PerWorker;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How often the writer takes the buffers when none fills faster. Each round wakes the
/// writer and makes a system call per buffer: at 5 ms these cost about as much as writing the
/// lines out. A busy worker's buffer holds about 350 KiB by then at 40k lines a second; one
/// that passes a quarter of its limit sooner wakes the writer itself.
const FLUSH_EVERY: Duration = Duration::from_millis(25);

/// The process's access log sink.
pub fn global() -> &'static Sink {
    static SINK: OnceLock<Sink> = OnceLock::new();
    SINK.get_or_init(|| Sink::new(FLUSH_EVERY))
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
    /// The writer thread, once started (`None`: it could not be).
    writer: OnceLock<Option<std::thread::Thread>>,
    /// A worker has woken the writer since it last took the buffers.
    woken: AtomicBool,
    /// [`FLUSH_EVERY`] (tests set their own).
    every: Duration,
}

impl Sink {
    /// Empty buffers, no destination yet, a round every `every`.
    fn new(every: Duration) -> Sink {
        Sink {
            buffers: PerWorker::new(Buffer::default),
            destination: Mutex::new(None),
            reopen: AtomicBool::new(false),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            writer: OnceLock::new(),
            woken: AtomicBool::new(false),
            every,
        }
    }

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
            match spawned {
                Ok(handle) => Some(handle.thread().clone()),
                Err(e) => {
                    tracing::error!("cannot start the access log writer: {e}");
                    None
                }
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
            // Crossing a quarter of the limit: wake the writer rather than wait for its round.
            if before <= limit / 4 && bytes.len() > limit / 4 && !self.woken.swap(true, Relaxed) {
                if let Some(Some(writer)) = self.writer.get() {
                    writer.unpark();
                }
            }
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
            std::thread::park_timeout(self.every);
            self.woken.store(false, Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(every: Duration) -> &'static Sink {
        Box::leak(Box::new(Sink::new(every)))
    }

    fn wait_written(sink: &Sink, lines: u64, within: Duration) -> bool {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            if sink.counts().0 >= lines {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_buffer_past_a_quarter_of_its_limit_wakes_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        // A round every minute: lines written sooner were written because a worker woke it.
        let sink = sink(Duration::from_secs(60));
        sink.configure(&Destination::File(path.clone()));
        let line = [b'x'; 99];
        let limit = 40_000;
        // 90 lines: 9,000 bytes, under a quarter of the limit. Nothing wakes the writer.
        for _ in 0..90 {
            sink.push_with(limit, |b| {
                b.extend_from_slice(&line);
                b.push(b'\n');
            });
        }
        assert!(!wait_written(sink, 1, Duration::from_millis(300)));
        // Past 10,000 bytes: the writer takes everything.
        for _ in 0..20 {
            sink.push_with(limit, |b| {
                b.extend_from_slice(&line);
                b.push(b'\n');
            });
        }
        assert!(wait_written(sink, 110, Duration::from_secs(20)));
        assert_eq!(std::fs::read(&path).unwrap().len(), 110 * 100);
        assert_eq!(sink.counts(), (110, 0, 0));
    }
}
