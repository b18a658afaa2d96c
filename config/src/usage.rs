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
}
