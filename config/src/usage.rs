//! The persisted state of governance meters: what the gateway's usage flush writes every second
//! and on shutdown, and reads back at start, so a restart loses no settled usage.

use serde::{Deserialize, Serialize};

/// One meter's state: a budget's settled spend, or a rate limit's token or request count, in
/// its current window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageRecord {
    /// The meter's id (`budget:<id>`, `vk:<id>:budget:0`, `rate_limit:<id>:tokens`, ...).
    pub counter_id: String,
    /// `usd_micros`, `tokens` or `requests`.
    pub unit: String,
    /// Settled amount in the current window.
    pub value: i64,
    /// Start of the current window, Unix seconds (UTC).
    pub window_start: i64,
    /// End of the current window, Unix seconds (0: not recorded, rows written before it was).
    #[serde(skip_serializing_if = "is_zero")]
    pub window_end: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// One change to a persisted meter, as the spend journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendKind {
    /// Settled usage added.
    Add(i64),
    /// The meter's value in its window set outright (a reset, or usage given by the config).
    Set(i64),
}

/// A journal entry: what changed on which meter, in which window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendEntry {
    /// The meter's id.
    pub counter_id: String,
    /// `usd_micros`, `tokens` or `requests`.
    pub unit: String,
    /// Start of the window the change belongs to, Unix seconds.
    pub window_start: i64,
    /// End of that window, Unix seconds.
    pub window_end: i64,
    /// The change.
    pub kind: SpendKind,
}

/// The persisted meter after `entry`. Windows that overlap are one window: processes that
/// started a meter's window at different moments (each at its first use) still add into one
/// value, and the stored window keeps its bounds (so it still ends, and resets, on time). An
/// entry whose window starts when or after the stored one ended starts a new window; an entry
/// whose window ended before the stored one began changes nothing. Any number of processes can
/// apply their entries in any order and the additions add up.
pub fn combine(existing: Option<UsageRecord>, entry: &SpendEntry) -> UsageRecord {
    let fresh = || UsageRecord {
        counter_id: entry.counter_id.clone(),
        unit: entry.unit.clone(),
        value: match entry.kind {
            SpendKind::Add(value) | SpendKind::Set(value) => value,
        },
        window_start: entry.window_start,
        window_end: entry.window_end,
    };
    let Some(record) = existing else {
        return fresh();
    };
    let same_window = if record.window_end == 0 || entry.window_end == 0 {
        record.window_start == entry.window_start
    } else {
        entry.window_start < record.window_end && record.window_start < entry.window_end
    };
    if same_window {
        return UsageRecord {
            value: match entry.kind {
                SpendKind::Add(delta) => record.value.saturating_add(delta),
                SpendKind::Set(value) => value,
            },
            ..record
        };
    }
    if entry.window_start > record.window_start {
        fresh()
    } else {
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(window_start: i64, kind: SpendKind) -> SpendEntry {
        SpendEntry {
            counter_id: "budget:b".into(),
            unit: "usd_micros".into(),
            window_start,
            window_end: window_start + 100,
            kind,
        }
    }

    #[test]
    fn additions_add_windows_advance_and_old_windows_are_ignored() {
        let first = combine(None, &entry(100, SpendKind::Add(5)));
        assert_eq!((first.value, first.window_start), (5, 100));
        let more = combine(Some(first), &entry(100, SpendKind::Add(7)));
        assert_eq!(more.value, 12, "two processes' additions add up");
        let stale = combine(Some(more.clone()), &entry(-100, SpendKind::Add(1000)));
        assert_eq!(stale, more, "an ended window changes nothing");
        let next = combine(Some(more), &entry(200, SpendKind::Add(3)));
        assert_eq!((next.value, next.window_start), (3, 200));
        let reset = combine(Some(next), &entry(200, SpendKind::Set(0)));
        assert_eq!(reset.value, 0);
    }

    #[test]
    fn windows_started_at_different_moments_by_two_processes_are_one() {
        let a = combine(None, &entry(100, SpendKind::Add(5)));
        // Another process started its window 3 s later: the windows overlap.
        let both = combine(Some(a), &entry(103, SpendKind::Add(7)));
        assert_eq!((both.value, both.window_start), (12, 100));
        let late_a = combine(Some(both), &entry(100, SpendKind::Add(1)));
        assert_eq!(late_a.value, 13);
        // A record written before window ends were kept matches by start only.
        let old = UsageRecord {
            counter_id: "budget:b".into(),
            unit: "usd_micros".into(),
            value: 40,
            window_start: 100,
            window_end: 0,
        };
        assert_eq!(combine(Some(old), &entry(100, SpendKind::Add(2))).value, 42);
    }
}
