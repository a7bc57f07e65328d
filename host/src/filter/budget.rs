//! CPU deadlines of hook calls: an epoch ticker, and a per-thread CPU clock so that a call is
//! stopped for the CPU it burned, not for time its thread spent preempted.
//!
//! Each call gets a deadline of `ticks` epochs. When it passes, the store's callback reads
//! the thread's CPU clock: on the first expiry it only takes a mark and extends the deadline
//! by one window; on a later expiry it traps if the guest used at least 3/4 of its budget of
//! CPU during the window, and otherwise (the thread was preempted) extends it again. A guest
//! that spins is thus stopped after about twice its deadline; a guest that was merely
//! descheduled on a loaded machine is not.

use super::host::FilterState;
use super::LoadError;
use std::time::Duration;
use wasmtime::{Engine, Store, UpdateDeadline};

/// How often the epoch advances: the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Advance the engines' epochs every [`EPOCH_TICK`] until they are dropped.
pub fn start_epoch_ticker(engines: &[&Engine]) -> Result<(), LoadError> {
    let weak: Vec<_> = engines.iter().map(|e| e.weak()).collect();
    std::thread::Builder::new()
        .name("weir-epoch".into())
        .spawn(move || loop {
            let mut alive = false;
            for engine in weak.iter().filter_map(|w| w.upgrade()) {
                engine.increment_epoch();
                alive = true;
            }
            if !alive {
                return;
            }
            std::thread::sleep(EPOCH_TICK);
        })
        .map(|_| ())
        .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))
}

/// Epoch ticks for a CPU deadline (one more than the deadline: the first tick may come right
/// after the call starts).
pub fn ticks(deadline: Duration) -> u64 {
    u64::try_from(deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos())).unwrap_or(u64::MAX / 2) + 1
}

/// Install the deadline callback on a new store.
pub fn install(store: &mut Store<FilterState>, budget: Duration) {
    let window = ticks(budget);
    store.epoch_deadline_callback(move |mut ctx| {
        let now = thread_cpu_time();
        let call = &mut ctx.data_mut().call;
        let used = call.cpu_mark.map(|mark| now.saturating_sub(mark));
        call.cpu_mark = Some(now);
        Ok(match used {
            Some(used) if used * 4 >= budget * 3 => UpdateDeadline::Interrupt,
            _ => UpdateDeadline::Continue(window),
        })
    });
}

/// CPU time consumed by the calling thread.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer; the thread CPU
    // clock exists on every Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up_plus_one() {
        assert_eq!(ticks(Duration::from_millis(5)), 6);
        assert_eq!(ticks(Duration::from_micros(1500)), 3);
    }

    #[test]
    fn thread_cpu_time_advances_with_work() {
        let start = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() - start < Duration::from_millis(2) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(thread_cpu_time() > start);
    }
}
