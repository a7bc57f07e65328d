//! CPU deadlines of hook calls: an epoch ticker, and a per-thread CPU clock so that a call is
//! stopped for the CPU it burned, not for time its thread spent preempted.
//!
//! Each call's first deadline is the next epoch tick, so calls shorter than a tick (nearly all)
//! never reach the callback and pay no clock read. When a deadline passes, the store's
//! callback reads the thread's CPU clock and adds the CPU used since its last reading (before
//! the first reading: the wall time since the call started, at most one tick). With more than
//! two ticks of budget left it sets the next deadline one tick before the budget's end; closer
//! than that it asks the ticker for fine ticks ([`FINE_TICK`]) until then and checks at each;
//! it traps when less than half a fine tick is left. A guest that spins is thus stopped within
//! about a fine tick (plus the ticker's wake-up latency) of its deadline, and only calls near
//! their end pay for fine ticks; a guest merely descheduled on a loaded machine is not charged
//! for the time it did not run. A call that waits (outbound HTTP, a timer) is paused for the
//! wait ([`pause`] / [`resume`]): its worker runs other requests meanwhile, and their CPU is
//! not this call's.
//!
//! Nearly every call is over in microseconds, and ticks matter only to a call that runs
//! long: each worker slot counts the calls it started, and while every running call
//! started after the ticker's last look, the ticker wakes only every [`watch_period`] (a
//! fraction of the shortest CPU deadline), advancing the epochs once per wake. A call it
//! finds still running from its last look has run for a while: from then on it ticks every
//! [`EPOCH_TICK`] until no such call is left. So under a steady load of short calls the
//! ticker wakes a few hundred times a second rather than a thousand, and each wake it saves
//! is a context switch off a busy worker's CPU. Threads that share a slot (non-workers use
//! slot 0, and workers wrap around when there are more than slots) can hide a long call
//! behind the calls they start; it still meets a tick at every look, so its deadline is
//! enforced, with coarse ticks up to a look long until it is close. The first deadline
//! check of a direct call counts the wall time since it started, up to one look, as its
//! CPU; a call on a fiber (one that may wait) reads its thread's CPU clock when it starts,
//! so a wait before any check charges it nothing but its own CPU.
//!
//! The ticker parks when no filter code has run for a while (an idle proxy does not wake
//! at all); a call that finds no call running wakes a parked ticker.

use super::host::{CallData, FilterState};
use super::per_worker::PerWorker;
use super::LoadError;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;
use wasmtime::{Engine, Store, UpdateDeadline};

/// How often the epoch advances.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);
/// How often it advances while a call is close to its deadline.
pub const FINE_TICK: Duration = Duration::from_micros(100);

/// Looks without a running call before the ticker parks.
const LINGER_TICKS: u32 = 50;

/// The longest the ticker waits between looks while calls are short.
const MAX_WATCH: Duration = Duration::from_millis(4);

/// How often the ticker looks for long calls while none runs: two fifths of the shortest
/// CPU deadline of a filter loaded so far, between one tick and [`MAX_WATCH`]. A call is
/// seen long within two looks, so a call at the default 5 ms deadline is found at 4 ms at
/// the latest, in time for fine ticks to stop it at its deadline.
fn watch_period(shortest_deadline: Duration) -> Duration {
    (shortest_deadline * 2 / 5).clamp(EPOCH_TICK, MAX_WATCH)
}

/// How long a parked ticker sleeps before checking that its engines still exist.
const PARK_CHECK: Duration = Duration::from_secs(1);

/// Filter code running now, and the tickers that advance epochs for it.
#[derive(Debug)]
pub struct Activity {
    /// Calls running, counted per worker slot (each on its own cache line, so workers
    /// entering calls do not contend); the ticker sums them.
    running: PerWorker<Running0>,
    parked: AtomicBool,
    /// Until when (nanoseconds after [`clock_zero`]) a call wants fine ticks.
    fine_until: AtomicU64,
    /// The shortest CPU deadline of a store made so far, nanoseconds.
    shortest_deadline: AtomicU64,
    /// Times the ticker advanced the epochs.
    advanced: AtomicU64,
    tickers: Mutex<Vec<Thread>>,
}

/// One worker slot's running calls, and the calls it ever started.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Running0 {
    now: AtomicUsize,
    started: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            running: PerWorker::new(Running0::default),
            parked: AtomicBool::new(false),
            fine_until: AtomicU64::new(0),
            shortest_deadline: AtomicU64::new(u64::MAX),
            advanced: AtomicU64::new(0),
            tickers: Mutex::new(Vec::new()),
        }
    }
}

/// Counts filter code as running (in its worker slot) until dropped.
pub struct Running<'a>(&'a AtomicUsize);

/// What the ticker saw of the worker slots at one look: each slot's running calls and the
/// calls it had started.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Look(Vec<(usize, u64)>);

impl Look {
    /// Calls running, over all slots.
    fn running(&self) -> usize {
        self.0.iter().map(|(running, _)| running).sum()
    }

    /// Whether a call that was running at `before` still runs now: a slot that had calls
    /// running then and now, and started none in between.
    fn long_call_since(&self, before: &Look) -> bool {
        self.0
            .iter()
            .zip(&before.0)
            .any(|(&(now, started), &(then, started_then))| {
                now > 0 && then > 0 && started == started_then
            })
    }
}

impl Activity {
    /// The process's activity, shared by every engine.
    pub fn global() -> &'static Arc<Activity> {
        static ACTIVITY: OnceLock<Arc<Activity>> = OnceLock::new();
        ACTIVITY.get_or_init(Default::default)
    }

    /// Filter code starts running (a hook call, an instantiation): make sure epochs advance.
    pub fn enter(&self) -> Running<'_> {
        let slot = self.running.mine();
        // A load and a store, not a locked add: only the slot's worker counts here, except
        // when threads that are not workers share slot 0, and a count lost to such a race
        // only makes the ticker take a running call for a long one (and tick finely).
        slot.started
            .store(slot.started.load(Relaxed).wrapping_add(1), Relaxed);
        let count = &slot.now;
        // SeqCst on both sides: either this call sees the ticker parked and wakes it, or the
        // ticker sees this call running and does not park.
        if count.fetch_add(1, SeqCst) == 0 && self.parked.load(SeqCst) {
            for t in self
                .tickers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                t.unpark();
            }
        }
        Running(count)
    }

    /// Calls running now, over all worker slots.
    fn running(&self) -> usize {
        self.running.iter().map(|r| r.now.load(SeqCst)).sum()
    }

    /// Each slot's running calls, and the calls it started, now.
    fn look(&self) -> Look {
        Look(
            self.running
                .iter()
                .map(|r| (r.now.load(SeqCst), r.started.load(Relaxed)))
                .collect(),
        )
    }

    /// A store with this CPU deadline exists: the ticker must look often enough for it.
    fn note_deadline(&self, budget: Duration) {
        let nanos = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        self.shortest_deadline.fetch_min(nanos, Relaxed);
    }

    /// How long the ticker waits between looks while no call runs long.
    fn watch(&self) -> Duration {
        watch_period(Duration::from_nanos(self.shortest_deadline.load(Relaxed)))
    }

    /// Whether the tickers are parked (no filter code ran for a while).
    #[cfg(test)]
    fn parked(&self) -> bool {
        self.parked.load(SeqCst)
    }

    /// The ticker's loop: advance `engines`' epochs every tick while a call runs long or
    /// wants fine ticks, look every watch period otherwise, park when no code has run for a
    /// while; return when the engines are gone.
    fn tick(&self, engines: Vec<wasmtime::EngineWeak>) {
        let mut idle = 0;
        let mut last = Look::default();
        loop {
            let look = self.look();
            if look.running() > 0 {
                idle = 0;
            } else {
                idle += 1;
            }
            let long = look.long_call_since(&last);
            last = look;
            if idle >= LINGER_TICKS {
                self.parked.store(true, SeqCst);
                if self.running() == 0 {
                    std::thread::park_timeout(PARK_CHECK);
                }
                self.parked.store(false, SeqCst);
                if engines.iter().all(|w| w.upgrade().is_none()) {
                    return;
                }
                if self.running() == 0 {
                    continue;
                }
                idle = 0;
                // Whatever runs now started after this look.
                last = self.look();
                std::thread::sleep(self.watch());
                continue;
            }
            let fine = nanos_now() < self.fine_until.load(Relaxed);
            let mut alive = false;
            for engine in engines.iter().filter_map(|w| w.upgrade()) {
                engine.increment_epoch();
                alive = true;
            }
            if !alive {
                return;
            }
            self.advanced.fetch_add(1, Relaxed);
            std::thread::sleep(if fine {
                FINE_TICK
            } else if long {
                EPOCH_TICK
            } else {
                self.watch()
            });
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
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

/// A fixed point of the monotonic clock, for storing instants in atomics.
fn clock_zero() -> std::time::Instant {
    static ZERO: OnceLock<std::time::Instant> = OnceLock::new();
    *ZERO.get_or_init(std::time::Instant::now)
}

fn nanos_now() -> u64 {
    u64::try_from(clock_zero().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What the deadline callback decides for a call that has used `used` of `budget` CPU.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Stop it.
    Stop,
    /// Check again after this many (coarse) ticks.
    Coarse(u64),
    /// Check again at the next fine tick; fine ticks are wanted for this long.
    Fine(Duration),
}

fn verdict(used: Duration, budget: Duration) -> Verdict {
    let left = budget.saturating_sub(used);
    if left < FINE_TICK / 2 {
        Verdict::Stop
    } else if left <= EPOCH_TICK * 2 {
        Verdict::Fine(left)
    } else {
        // One tick early: the rest is done in fine ticks.
        let ticks = (left - EPOCH_TICK).as_nanos() / EPOCH_TICK.as_nanos();
        Verdict::Coarse(u64::try_from(ticks).unwrap_or(u64::MAX / 2).max(1))
    }
}

/// The CPU `call` used up to `now` (the thread's CPU clock).
fn used(call: &CallData, now: Duration) -> Duration {
    match call.cpu_mark {
        Some(mark) => call.cpu_used + now.saturating_sub(mark),
        // A call read no clock at its start (a direct call: reading the thread's CPU clock
        // is a system call). Before the first reading it ran at most since it started, and
        // the ticker advances the epochs at every look, so the first check comes within one.
        None => call
            .started
            .map_or(Duration::ZERO, |s| s.elapsed())
            .min(Activity::global().watch()),
    }
}

/// The call stops running to wait (outbound HTTP, a timer): account for the CPU it used so
/// far. While it waits, its worker runs other requests, whose CPU is not this call's.
pub fn pause(call: &mut CallData) {
    call.cpu_used = used(call, thread_cpu_time());
    call.cpu_mark = None;
}

/// The wait is over: count the call's CPU from now on. (Epoch deadlines are checked only
/// while guest code runs, so none is checked during the wait.)
pub fn resume(call: &mut CallData) {
    call.cpu_mark = Some(thread_cpu_time());
}

/// Install the deadline callback on a new store.
pub fn install(store: &mut Store<FilterState>, budget: Duration) {
    Activity::global().note_deadline(budget);
    store.epoch_deadline_callback(move |mut ctx| {
        let call = &mut ctx.data_mut().call;
        let now = thread_cpu_time();
        let used = used(call, now);
        call.cpu_mark = Some(now);
        call.cpu_used = used;
        Ok(match verdict(used, budget) {
            Verdict::Stop => UpdateDeadline::Interrupt,
            Verdict::Coarse(ticks) => UpdateDeadline::Continue(ticks),
            Verdict::Fine(left) => {
                let until = nanos_now()
                    .saturating_add(u64::try_from((left + EPOCH_TICK).as_nanos()).unwrap_or(0));
                Activity::global().fine_until.fetch_max(until, Relaxed);
                UpdateDeadline::Continue(1)
            }
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
    fn a_call_stops_within_half_a_tick_of_its_budget() {
        let (ms, us) = (Duration::from_millis, Duration::from_micros);
        assert_eq!(verdict(ms(1), ms(5)), Verdict::Coarse(3));
        assert_eq!(verdict(us(700), ms(5)), Verdict::Coarse(3));
        assert_eq!(verdict(us(3500), ms(5)), Verdict::Fine(us(1500)));
        assert_eq!(verdict(us(4940), ms(5)), Verdict::Fine(us(60)));
        assert_eq!(verdict(us(4960), ms(5)), Verdict::Stop);
        assert_eq!(verdict(ms(9), ms(5)), Verdict::Stop);
        assert_eq!(verdict(Duration::ZERO, ms(100)), Verdict::Coarse(99));
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
    fn the_ticker_looks_at_a_fraction_of_the_shortest_deadline() {
        let ms = Duration::from_millis;
        assert_eq!(watch_period(ms(5)), ms(2));
        assert_eq!(watch_period(ms(1)), EPOCH_TICK);
        assert_eq!(watch_period(ms(500)), MAX_WATCH);
        assert_eq!(watch_period(Duration::from_nanos(u64::MAX)), MAX_WATCH);
    }

    #[test]
    fn a_call_is_long_when_it_runs_at_two_looks_with_none_started_between() {
        let look = |slots: &[(usize, u64)]| Look(slots.to_vec());
        let before = look(&[(1, 10), (0, 5)]);
        assert!(look(&[(1, 10), (0, 5)]).long_call_since(&before));
        assert!(
            !look(&[(1, 11), (0, 5)]).long_call_since(&before),
            "a new call"
        );
        assert!(
            !look(&[(0, 10), (0, 5)]).long_call_since(&before),
            "it ended"
        );
        assert!(
            !look(&[(0, 10), (1, 6)]).long_call_since(&before),
            "another slot's call started since"
        );
        assert!(!look(&[(1, 10)]).long_call_since(&Look::default()));
    }

    /// Times `activity`'s ticker advanced the epochs while `work` ran.
    fn advances_during(activity: &Activity, work: impl FnOnce()) -> u64 {
        let before = activity.advanced.load(Relaxed);
        work();
        activity.advanced.load(Relaxed) - before
    }

    /// Start and end calls back to back in this thread for `d`.
    fn short_calls_for(activity: &Activity, d: Duration) {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until {
            let _call = activity.enter();
            std::hint::black_box(0);
        }
    }

    /// An activity with its own ticker over a new engine, for filters with 5 ms deadlines.
    fn ticking_for_5ms_deadlines() -> (Arc<Activity>, Engine) {
        let activity = Arc::new(Activity::default());
        activity.note_deadline(Duration::from_millis(5));
        let engine = Engine::default();
        start_ticker(activity.clone(), &[&engine]).unwrap();
        (activity, engine)
    }

    #[test]
    fn the_ticker_ticks_fast_only_under_a_long_call() {
        let (activity, _engine) = ticking_for_5ms_deadlines();
        let window = Duration::from_millis(120);
        // Short calls, back to back: every look finds a call started since the last one, so
        // the ticker wakes once a look (2 ms): about 60 times. (Every millisecond: 120.)
        let short = advances_during(&activity, || short_calls_for(&activity, window));
        assert!(short <= 80, "{short} ticks under short calls");
        // One call running all along: found long within two looks, then a tick a
        // millisecond.
        let long = advances_during(&activity, || {
            let _call = activity.enter();
            std::thread::sleep(window);
        });
        assert!(
            long > short * 3 / 2,
            "{long} ticks under a long call, {short} under short ones"
        );
    }

    #[test]
    fn a_long_call_hidden_by_calls_in_its_slot_still_meets_ticks() {
        // Threads that are not workers share slot 0: one runs a long call while another
        // starts short calls all along, so no look sees the slot's calls unchanged.
        let (activity, _engine) = ticking_for_5ms_deadlines();
        let ticks = advances_during(&activity, || {
            let long = activity.enter();
            std::thread::scope(|s| {
                s.spawn(|| short_calls_for(&activity, Duration::from_millis(60)));
            });
            drop(long);
        });
        assert!(
            ticks >= 10,
            "{ticks} ticks in 60 ms under a hidden long call"
        );
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
