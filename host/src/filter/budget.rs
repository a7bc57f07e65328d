//! CPU deadlines of hook calls: an epoch ticker, and a per-thread CPU clock so that a call is
//! stopped for the CPU it burned, not for time its thread spent preempted.
//!
//! Each call gets a deadline of `ticks` epochs. When it passes, the store's callback reads
//! the thread's CPU clock: on the first expiry it only takes a mark and extends the deadline
//! by one window; on a later expiry it traps if the guest used at least 3/4 of its budget of
//! CPU during the window, and otherwise (the thread was preempted) extends it again. A guest
//! that spins is thus stopped after about twice its deadline; a guest that was merely
//! descheduled on a loaded machine is not.
//!
//! The ticker only runs while filter code runs (and for a short linger after): epochs need
//! to advance only under a running call, so an idle proxy does not wake a thousand times a
//! second. A call that finds no call running wakes a parked ticker.

use super::host::FilterState;
use super::LoadError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;
use wasmtime::{Engine, Store, UpdateDeadline};

/// How often the epoch advances: the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Ticks without a running call before the ticker parks.
const LINGER_TICKS: u32 = 50;

/// How long a parked ticker sleeps before checking that its engines still exist.
const PARK_CHECK: Duration = Duration::from_secs(1);

/// Filter code running now, and the tickers that advance epochs for it.
#[derive(Debug, Default)]
pub struct Activity {
    running: AtomicUsize,
    parked: AtomicBool,
    tickers: Mutex<Vec<Thread>>,
}

/// Counts filter code as running until dropped.
pub struct Running<'a>(&'a Activity);

impl Activity {
    /// The process's activity, shared by every engine.
    pub fn global() -> &'static Arc<Activity> {
        static ACTIVITY: OnceLock<Arc<Activity>> = OnceLock::new();
        ACTIVITY.get_or_init(Default::default)
    }

    /// Filter code starts running (a hook call, an instantiation): make sure epochs advance.
    pub fn enter(&self) -> Running<'_> {
        // SeqCst on both sides: either this call sees the ticker parked and wakes it, or the
        // ticker sees this call running and does not park.
        if self.running.fetch_add(1, SeqCst) == 0 && self.parked.load(SeqCst) {
            for t in self
                .tickers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                t.unpark();
            }
        }
        Running(self)
    }

    /// Whether the tickers are parked (no filter code ran for a while).
    #[cfg(test)]
    fn parked(&self) -> bool {
        self.parked.load(SeqCst)
    }

    /// The ticker's loop: advance `engines`' epochs every tick while code runs (and for a
    /// linger after), park otherwise; return when the engines are gone.
    fn tick(&self, engines: Vec<wasmtime::EngineWeak>) {
        let mut idle = 0;
        loop {
            if self.running.load(SeqCst) > 0 {
                idle = 0;
            } else {
                idle += 1;
            }
            if idle >= LINGER_TICKS {
                self.parked.store(true, SeqCst);
                if self.running.load(SeqCst) == 0 {
                    std::thread::park_timeout(PARK_CHECK);
                }
                self.parked.store(false, SeqCst);
                if engines.iter().all(|w| w.upgrade().is_none()) {
                    return;
                }
                if self.running.load(SeqCst) == 0 {
                    continue;
                }
                idle = 0;
            }
            let mut alive = false;
            for engine in engines.iter().filter_map(|w| w.upgrade()) {
                engine.increment_epoch();
                alive = true;
            }
            if !alive {
                return;
            }
            std::thread::sleep(EPOCH_TICK);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, SeqCst);
    }
}

/// Advance the engines' epochs every [`EPOCH_TICK`] while filter code runs (see
/// [`Activity`]), until the engines are dropped.
pub fn start_epoch_ticker(engines: &[&Engine]) -> Result<(), LoadError> {
    start_ticker(Activity::global().clone(), engines)
}

fn start_ticker(activity: Arc<Activity>, engines: &[&Engine]) -> Result<(), LoadError> {
    let weak: Vec<_> = engines.iter().map(|e| e.weak()).collect();
    let handle = std::thread::Builder::new()
        .name("weir-epoch".into())
        .spawn({
            let activity = activity.clone();
            move || activity.tick(weak)
        })
        .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))?;
    activity
        .tickers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(handle.thread().clone());
    Ok(())
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
    fn the_ticker_parks_when_idle_and_wakes_for_a_call() {
        let activity = Arc::new(Activity::default());
        let engine = Engine::default();
        start_ticker(activity.clone(), &[&engine]).unwrap();
        let wait_for = |parked: bool| {
            for _ in 0..200 {
                if activity.parked() == parked {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        };
        assert!(wait_for(true), "parks after the linger");
        let running = activity.enter();
        assert!(wait_for(false), "a call wakes it");
        std::thread::sleep(Duration::from_millis(100));
        assert!(!activity.parked(), "it keeps ticking while the call runs");
        drop(running);
        assert!(wait_for(true), "parks again");
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
