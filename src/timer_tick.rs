//! A once-a-second tick on each request runtime, so that a request's deadline costs no system
//! call.
//!
//! Tokio's timer wakes the runtime's I/O driver (a write to its eventfd, and one more pass of
//! `epoll_wait`) whenever a timer is registered that expires before the driver's next planned
//! wake-up, and with no other timer pending there is no planned wake-up at all. Each request
//! sets deadlines (the upstream's answer, the body reads), so an idle-ish gateway paid one
//! `write` per request (`strace -c -f`, 1,000 requests at 500/s). A timer firing every second
//! keeps the next planned wake-up under a second away; deadlines, which are seconds long, then
//! never come first and register silently. A shorter deadline still works; it just pays the
//! wake-up.

use std::cell::Cell;
use std::time::Duration;

/// How often the tick fires.
const PERIOD: Duration = Duration::from_secs(1);

thread_local! {
    static STARTED: Cell<bool> = const { Cell::new(false) };
}

/// Starts the tick on the current runtime, once per worker thread (so every runtime serving
/// requests gets one); a no-op afterwards or outside a runtime.
pub fn ensure() {
    if STARTED.get() {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        STARTED.set(true);
        runtime.spawn(async {
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
            }
        });
    }
}
