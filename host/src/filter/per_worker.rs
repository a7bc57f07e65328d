//! State kept once per worker thread (idle instances, call counters), so that workers do not
//! share a lock or a cache line: which worker a thread is, and a value per worker slot.

use std::cell::Cell;

thread_local! {
    static WORKER_SLOT: Cell<usize> = const { Cell::new(0) };
}

/// How many worker threads the proxy runs (0: not said, taken as one per slot).
static WORKERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Say how many worker threads the proxy runs (workers `0..n` use slots `0..n`, wrapping),
/// so that work done for every worker is not done for slots no worker uses.
pub fn set_worker_count(n: usize) {
    WORKERS.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// Mark the current thread as worker `id`, so it uses its own slot of every [`PerWorker`]
/// (ids past the last slot wrap around; the slot is worked out here, once, not at every use).
pub fn set_worker_slot(id: usize) {
    WORKER_SLOT.with(|s| s.set(id % slots()));
}

/// How many slots a [`PerWorker`] has: one per CPU.
fn slots() -> usize {
    static SLOTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SLOTS.get_or_init(|| std::thread::available_parallelism().map_or(4, |n| n.get()))
}

/// One `T` per worker slot (threads that are not workers use slot 0), each on its own cache
/// lines when `T` is aligned to them.
#[derive(Debug)]
pub struct PerWorker<T> {
    first: T,
    rest: Box<[T]>,
}

impl<T> PerWorker<T> {
    /// A value per slot, each made by `make`.
    pub fn new(mut make: impl FnMut() -> T) -> Self {
        PerWorker {
            first: make(),
            rest: (1..slots()).map(|_| make()).collect(),
        }
    }

    /// The current thread's value.
    pub fn mine(&self) -> &T {
        match self.my_index().checked_sub(1) {
            None => &self.first,
            Some(i) => self.rest.get(i).unwrap_or(&self.first),
        }
    }

    /// The index of the current thread's slot.
    pub fn my_index(&self) -> usize {
        // Below `slots()`, which is every `PerWorker`'s length (see `set_worker_slot`).
        let slot = WORKER_SLOT.with(Cell::get);
        if slot <= self.rest.len() {
            slot
        } else {
            0
        }
    }

    /// The slots worker threads use, with their indexes.
    pub fn worker_slots(&self) -> impl Iterator<Item = (usize, &T)> {
        let all = self.rest.len() + 1;
        let used = match WORKERS.load(std::sync::atomic::Ordering::Relaxed) {
            0 => all,
            n => n.min(all),
        };
        self.iter().enumerate().take(used)
    }

    /// Every slot's value.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_gets_its_own_slot_and_others_share_slot_0() {
        let per = PerWorker::new(|| std::sync::atomic::AtomicUsize::new(0));
        let n = per.iter().count();
        assert_eq!(n, slots());
        let bump = |id: Option<usize>| {
            let per = &per;
            std::thread::scope(|s| {
                s.spawn(move || {
                    if let Some(id) = id {
                        set_worker_slot(id);
                    }
                    per.mine()
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                });
            });
        };
        bump(None);
        bump(Some(0));
        bump(Some(n)); // wraps around to slot 0
        bump(Some(n + n - 1));
        let counts: Vec<usize> = per
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 4);
        assert_eq!(counts[0], if n == 1 { 4 } else { 3 });
    }
}
