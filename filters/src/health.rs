//! Each provider's recent health: successes and failures over the last minute, in six buckets of
//! ten seconds. The forwarder records every try; filters read it through [`crate::Live::health`]
//! (a routing rule that avoids a failing provider, a log line). Lock-free: a bucket is reset by
//! the first writer of a new ten-second period, so the figures are approximate at the edges.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const BUCKET_SECONDS: i64 = 10;
const BUCKETS: usize = 6;

#[derive(Debug, Default)]
struct Bucket {
    period: AtomicI64,
    successes: AtomicU64,
    failures: AtomicU64,
}

/// One provider's window.
#[derive(Debug, Default)]
pub struct HealthWindow {
    buckets: [Bucket; BUCKETS],
}

/// What a window holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Health {
    /// Tries that got an answer with a success status.
    pub successes: u64,
    /// Tries that failed (connection error, timeout, 429, 5xx).
    pub failures: u64,
}

impl Health {
    /// Failures over all tries, 0 when there were none.
    pub fn error_rate(&self) -> f64 {
        let total = self.successes + self.failures;
        if total == 0 {
            0.0
        } else {
            self.failures as f64 / total as f64
        }
    }
}

impl HealthWindow {
    /// Records one try at Unix second `now`.
    pub fn record(&self, now: i64, ok: bool) {
        let period = now.div_euclid(BUCKET_SECONDS);
        let bucket = &self.buckets[period.rem_euclid(BUCKETS as i64) as usize];
        let seen = bucket.period.load(Ordering::Relaxed);
        if seen != period
            && bucket
                .period
                .compare_exchange(seen, period, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            bucket.successes.store(0, Ordering::Relaxed);
            bucket.failures.store(0, Ordering::Relaxed);
        }
        let counter = if ok { &bucket.successes } else { &bucket.failures };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The last minute as of Unix second `now`.
    pub fn read(&self, now: i64) -> Health {
        let current = now.div_euclid(BUCKET_SECONDS);
        let mut health = Health::default();
        for bucket in &self.buckets {
            let period = bucket.period.load(Ordering::Relaxed);
            if period > current - BUCKETS as i64 && period <= current {
                health.successes += bucket.successes.load(Ordering::Relaxed);
                health.failures += bucket.failures.load(Ordering::Relaxed);
            }
        }
        health
    }
}

/// Every provider's window by name, kept across config changes (a rebuilt config keeps the
/// history of the providers that survive). Locked only when a config is built.
#[derive(Debug, Default)]
pub struct HealthBoard {
    windows: Mutex<HashMap<String, Arc<HealthWindow>>>,
}

impl HealthBoard {
    /// The windows of `names`, created as needed; windows of other names are dropped.
    pub fn resolve<'a>(&self, names: impl Iterator<Item = &'a String>) -> HashMap<String, Arc<HealthWindow>> {
        let mut windows = match self.windows.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let resolved: HashMap<String, Arc<HealthWindow>> = names
            .map(|name| (name.clone(), windows.entry(name.clone()).or_default().clone()))
            .collect();
        windows.retain(|name, _| resolved.contains_key(name));
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_minute_only() {
        let window = HealthWindow::default();
        window.record(1000, true);
        window.record(1005, false);
        window.record(1031, true);
        assert_eq!(
            window.read(1031),
            Health {
                successes: 2,
                failures: 1
            }
        );
        assert!((window.read(1031).error_rate() - 1.0 / 3.0).abs() < 1e-9);
        // A minute later the first bucket has aged out; reusing its slot resets it.
        assert_eq!(
            window.read(1061),
            Health {
                successes: 1,
                failures: 0
            }
        );
        window.record(1062, false);
        assert_eq!(
            window.read(1062),
            Health {
                successes: 1,
                failures: 1
            }
        );
        assert_eq!(window.read(2000), Health::default());
    }

    #[test]
    fn board_keeps_surviving_windows() {
        let board = HealthBoard::default();
        let names = ["a".to_string(), "b".to_string()];
        let first = board.resolve(names.iter());
        first["a"].record(10, true);
        let second = board.resolve(names[..1].iter());
        assert_eq!(second["a"].read(10).successes, 1);
        assert!(!second.contains_key("b"));
    }
}
