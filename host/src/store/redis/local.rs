//! Per-worker Redis connections: each worker thread (a single-threaded runtime) opens its
//! own connection to each store it calls, in the background, so that its calls never cross
//! threads. A thread that is not a worker, a worker whose connection is not up yet, and one
//! whose connection belongs to an older generation (the store went down since) use the
//! store's main connection.

use super::{Conn, RedisStore};
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, RuntimeFlavor};

/// A failed per-worker connection is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One store's connection on this thread.
struct Local {
    store: u64,
    generation: u64,
    state: State,
}

enum State {
    Connecting,
    Up(Conn),
    Failed(Instant),
}

thread_local! {
    static LOCAL: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

/// This worker's own connection to `store`, if it is up; starts opening one if there is
/// none (or only a stale or long-failed one).
pub(super) fn connection(store: &RedisStore) -> Option<Conn> {
    let on_worker = Handle::try_current()
        .is_ok_and(|h| matches!(h.runtime_flavor(), RuntimeFlavor::CurrentThread));
    if !on_worker {
        return None;
    }
    let generation = store.generation.load(Ordering::Acquire);
    let start = LOCAL.with(|all| {
        let mut all = all.borrow_mut();
        let entry = match all.iter_mut().find(|l| l.store == store.id) {
            Some(e) => e,
            None => {
                // Of no generation yet: opened below.
                all.push(Local {
                    store: store.id,
                    generation: u64::MAX,
                    state: State::Connecting,
                });
                let last = all.len() - 1;
                &mut all[last]
            }
        };
        let fresh = entry.generation == generation;
        match &entry.state {
            State::Up(conn) if fresh => return Ok(conn.clone()),
            State::Connecting if fresh => return Err(false),
            State::Failed(at) if fresh && at.elapsed() < RETRY_AFTER => return Err(false),
            _ => {}
        }
        entry.generation = generation;
        entry.state = State::Connecting;
        Err(true)
    });
    match start {
        Ok(conn) => Some(conn),
        Err(false) => None,
        Err(true) => {
            let (client, id) = (store.client.clone(), store.id);
            let within = store.settings.connect_timeout;
            // On this worker's runtime: the connection's task runs on this thread too.
            tokio::spawn(async move {
                let state = match client.connect(within).await {
                    Ok(conn) => State::Up(conn),
                    Err(why) => {
                        tracing::debug!("worker connection to the shared store failed: {why}");
                        State::Failed(Instant::now())
                    }
                };
                LOCAL.with(|all| {
                    let mut all = all.borrow_mut();
                    if let Some(e) = all
                        .iter_mut()
                        .find(|l| l.store == id && l.generation == generation)
                    {
                        e.state = state;
                    }
                });
            });
            None
        }
    }
}
