//! [`Throttle`]: at most one log line per interval for a warning that can repeat on every
//! request, with a count of the lines held back. Two atomics, no lock: the request path calls it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lets one line through per `interval_secs`; counts the others.
#[derive(Debug)]
pub struct Throttle {
    interval_secs: u64,
    /// Unix second after which the next line may be logged (0: never logged).
    next: AtomicU64,
    /// Lines held back since the last one logged.
    held: AtomicU64,
}

impl Throttle {
    /// A throttle letting one line through per `interval_secs`.
    pub const fn new(interval_secs: u64) -> Throttle {
        Throttle {
            interval_secs,
            next: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// At `now` (unix seconds): `Some(held back since the last line)` when this line may be
    /// logged, `None` when it is held back.
    pub fn allow(&self, now: u64) -> Option<u64> {
        let next = self.next.load(Ordering::Acquire);
        if now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_secs),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::AcqRel));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let throttle = Throttle::new(60);
        assert_eq!(throttle.allow(1_000), Some(0), "the first line is logged");
        assert_eq!(throttle.allow(1_001), None);
        assert_eq!(throttle.allow(1_059), None);
        assert_eq!(
            throttle.allow(1_060),
            Some(2),
            "the next interval's line tells what was held"
        );
        assert_eq!(throttle.allow(1_061), None);
        assert_eq!(throttle.allow(5_000), Some(1));
    }
}
