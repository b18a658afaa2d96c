//! Spend other processes add to the config store, counted here too: during a zero-downtime
//! upgrade the old and the new process both serve for a few seconds, and two gateways may
//! share a data dir. Each process only ever adds its own settlements to the store (see
//! `crate::spend_journal`), so what the store holds beyond what this process read at start and
//! added since is other processes' spend.
//!
//! The expected view of each meter starts from the usage read at start and follows this
//! process's own flushed entries through the same rule the store applies
//! ([`asbru_config::usage::combine`]). Reading the store right after a flush (under the flush
//! lock, so no own entry lands in between), each meter's stored value minus the expected one
//! is the others' spend; it is added to the live meter and the view moves to the stored value.
//!
//! This runs after each flush while another journal owner is alive in the data dir, and once
//! more after the last of them has gone (its final flush, or its journal replayed), so the
//! process that remains counts everything the other one served.

use std::collections::HashMap;
use std::sync::Mutex;

use asbru_config::usage::{SpendEntry, UsageRecord, combine};
use asbru_filters::governance::Registry;
use asbru_filters::governance::meter::Absorbed;

/// What this process expects the store to hold, meter by meter.
#[derive(Debug, Default)]
pub struct Reconciler {
    expected: Mutex<HashMap<String, UsageRecord>>,
}

impl Reconciler {
    /// Starts from the usage read at start.
    pub fn new(read_at_start: &[UsageRecord]) -> Reconciler {
        Reconciler {
            expected: Mutex::new(
                read_at_start
                    .iter()
                    .map(|r| (r.counter_id.clone(), r.clone()))
                    .collect(),
            ),
        }
    }

    /// This process added `entries` to the store.
    pub fn applied(&self, entries: &[SpendEntry]) {
        let Ok(mut expected) = self.expected.lock() else {
            return;
        };
        for entry in entries {
            let next = combine(expected.remove(&entry.counter_id), entry);
            expected.insert(entry.counter_id.clone(), next);
        }
    }

    /// Adds to `registry`'s meters what `stored` holds beyond the expected view; returns the
    /// amount added over all meters.
    pub fn absorb(&self, registry: &Registry, stored: Vec<UsageRecord>) -> i64 {
        let Ok(mut expected) = self.expected.lock() else {
            return 0;
        };
        let mut added = 0;
        for record in stored {
            let delta = match expected.get(&record.counter_id) {
                Some(seen) if seen.window_start == record.window_start => record.value - seen.value,
                // The store moved to a window this process has added nothing to: all of it is
                // someone else's.
                Some(seen) if seen.window_start < record.window_start => record.value,
                Some(_) => 0,
                None => record.value,
            };
            match registry.absorb(&record, delta) {
                Absorbed::Added => added += delta,
                // Kept as it was, so the spend is counted once the meter reaches the window.
                Absorbed::Behind => continue,
                Absorbed::Skipped => {}
            }
            expected.insert(record.counter_id.clone(), record);
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asbru_config::usage::SpendKind;
    use asbru_filters::governance::meter::Unit;

    fn record(value: i64, window_start: i64) -> UsageRecord {
        UsageRecord {
            counter_id: "budget:b".into(),
            unit: "usd_micros".into(),
            value,
            window_start,
            window_end: window_start + 3600,
        }
    }

    #[test]
    fn only_what_others_added_is_seen_as_theirs() {
        let reconciler = Reconciler::new(&[record(100, 0)]);
        reconciler.applied(&[SpendEntry {
            counter_id: "budget:b".into(),
            unit: "usd_micros".into(),
            window_start: 0,
            window_end: 3600,
            kind: SpendKind::Add(30),
        }]);
        let expected = reconciler.expected.lock().expect("lock").get("budget:b").cloned();
        assert_eq!(expected.map(|r| r.value), Some(130));
        // The store holds 175: 45 came from another process, and the live meter counts it.
        let registry = Registry::new();
        let window = asbru_filters::governance::window::Window::parse("1h", false).expect("window");
        let meter = registry.meter("budget:b", Unit::UsdMicros, &window, (0, Some(0)), 10);
        meter.settle(0, 130);
        assert_eq!(reconciler.absorb(&registry, vec![record(175, 0)]), 45);
        assert_eq!(meter.settled(), 175);
        // Nothing new in the store: nothing more is added.
        assert_eq!(reconciler.absorb(&registry, vec![record(175, 0)]), 0);
        // The store moved on to the next window while this meter is still in its first: the
        // other process's spend there waits until the meter rolls, then counts whole.
        assert_eq!(reconciler.absorb(&registry, vec![record(20, 3600)]), 0);
        assert_eq!(meter.settled(), 175);
        meter.roll(&window, 3601);
        assert_eq!(meter.settled(), 0);
        assert_eq!(reconciler.absorb(&registry, vec![record(20, 3600)]), 20);
        assert_eq!(meter.settled(), 20);
    }
}
