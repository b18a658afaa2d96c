//! [`LeaseSignal`]: the request path's side of cluster metering. A leased meter that runs short
//! or low calls [`LeaseSource::wake`]; a refused request may wait for the fetch round it woke
//! ([`LeaseSource::after`], bounded by `lease_wait_ms`). Flags and a watch channel only: no
//! lock, no I/O.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use asbru_filters::policy::meter::LeaseSource;
use prometheus::Histogram;
use tokio::sync::{Notify, watch};

/// The longest a refused request waits for a meter's first lease on this node. The first fetch
/// may open a store connection on a node just started and busy warming up; refusing there
/// after `lease_wait_ms` would turn a cold start into a burst of 402s.
pub const FIRST_WAIT: Duration = Duration::from_secs(2);

/// Wakes the lease manager and lets refused requests wait for its next round.
#[derive(Debug)]
pub struct LeaseSignal {
    notify: Notify,
    /// A wake arrived since the current round started.
    awake: AtomicBool,
    /// A round is running.
    running: AtomicBool,
    /// Rounds started.
    started: AtomicU64,
    /// Rounds ended.
    ended: watch::Sender<u64>,
    /// Rounds ended, readable without the watch channel's lock.
    rounds_ended: AtomicU64,
    /// The longest a refused request waits.
    wait: Duration,
    /// Time refused requests spent waiting.
    waited: Histogram,
    /// Failing open: leased meters admit against their limits alone.
    open: AtomicBool,
}

impl LeaseSignal {
    /// A signal whose waits last at most `wait`, recorded in `waited`.
    pub fn new(wait: Duration, waited: Histogram) -> LeaseSignal {
        LeaseSignal {
            notify: Notify::new(),
            awake: AtomicBool::new(false),
            running: AtomicBool::new(false),
            started: AtomicU64::new(0),
            ended: watch::Sender::new(0),
            rounds_ended: AtomicU64::new(0),
            wait,
            waited,
            open: AtomicBool::new(false),
        }
    }

    /// Turns failing open on or off.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Release);
    }

    /// Waits until woken, or `tick` passes.
    pub async fn woken(&self, tick: Duration) {
        let _ = tokio::time::timeout(tick, self.notify.notified()).await;
    }

    /// A round begins: wakes so far are served by it.
    pub fn begin_round(&self) {
        // Running first and awake cleared last, so `pending` always names a round: this one,
        // or (for an instant) the next.
        self.running.store(true, Ordering::Release);
        self.started.fetch_add(1, Ordering::AcqRel);
        self.awake.store(false, Ordering::Release);
    }

    /// The round ended: requests waiting for it ask again.
    pub fn end_round(&self) {
        self.running.store(false, Ordering::Release);
        let done = self.started.load(Ordering::Acquire);
        self.rounds_ended.store(done, Ordering::Release);
        self.ended.send_replace(done);
    }
}

impl LeaseSource for LeaseSignal {
    fn wake(&self) {
        self.awake.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn pending(&self) -> Option<u64> {
        let started = self.started.load(Ordering::Acquire);
        if self.awake.load(Ordering::Acquire) {
            Some(started + 1)
        } else if self.running.load(Ordering::Acquire) {
            Some(started)
        } else {
            None
        }
    }

    fn open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn rounds_ended(&self) -> u64 {
        self.rounds_ended.load(Ordering::Acquire)
    }

    fn after(&self, round: u64, first: bool) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let mut ended = self.ended.subscribe();
        let wait = if first { self.wait.max(FIRST_WAIT) } else { self.wait };
        let waited = self.waited.clone();
        Box::pin(async move {
            let begun = Instant::now();
            let _ = tokio::time::timeout(wait, ended.wait_for(|done| *done >= round)).await;
            waited.observe(begun.elapsed().as_secs_f64());
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(wait_ms: u64) -> LeaseSignal {
        let waited = Histogram::with_opts(prometheus::HistogramOpts::new("w", "w")).expect("histogram");
        LeaseSignal::new(Duration::from_millis(wait_ms), waited)
    }

    #[tokio::test]
    async fn a_wait_ends_with_the_round_after_the_wake() {
        let signal = std::sync::Arc::new(signal(5_000));
        assert_eq!(signal.pending(), None, "nothing asked, nothing to wait for");
        signal.wake();
        let round = signal.pending().expect("a fetch is pending");
        let waiting = signal.after(round, false);
        let ender = signal.clone();
        let begun = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            ender.begin_round();
            ender.end_round();
        });
        waiting.await;
        assert!(
            begun.elapsed() < Duration::from_secs(4),
            "woken by the round, not the bound"
        );
        assert_eq!(signal.pending(), None);
    }

    #[tokio::test]
    async fn a_wait_is_bounded() {
        let signal = signal(30);
        signal.wake();
        let begun = Instant::now();
        signal.after(signal.pending().expect("pending"), false).await;
        assert!(begun.elapsed() >= Duration::from_millis(30));
        assert!(begun.elapsed() < FIRST_WAIT, "{:?}", begun.elapsed());
        assert_eq!(signal.waited.get_sample_count(), 1);
    }
}
