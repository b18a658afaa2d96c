//! Reset windows (Bifrost's budget and rate-limit reset durations). Rolling windows step on a lattice anchored at the first window's
//! start, so resets never drift; `1M` and `1Y` roll as 30 and 365 days. Calendar-aligned windows
//! of a day or longer start on UTC boundaries: midnight, Monday, the 1st of the month, January 1.

use asbru_config::governance::{Period, parse_period};
use chrono::{Datelike, TimeZone, Utc};

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
/// 1970-01-05, the first Monday after the epoch.
const FIRST_MONDAY: i64 = 4 * DAY;

/// A reset window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    period: Period,
    aligned: bool,
}

impl Window {
    /// Parses a reset duration (`30s`, `5m`, `1h`, `1d`, `1w`, `1M`, `1Y`).
    pub fn parse(duration: &str, calendar_aligned: bool) -> Option<Window> {
        Some(Window {
            period: parse_period(duration)?,
            aligned: calendar_aligned,
        })
    }

    /// The rolling length in seconds.
    fn rolling_len(&self) -> i64 {
        let len = match self.period {
            Period::Seconds(n) => n,
            Period::Months(n) => u64::from(n) * 30 * DAY as u64,
            Period::Years(n) => u64::from(n) * 365 * DAY as u64,
        };
        i64::try_from(len).unwrap_or(i64::MAX).max(1)
    }

    fn calendar(&self) -> bool {
        self.aligned && !matches!(self.period, Period::Seconds(n) if n < DAY as u64)
    }

    /// The first window for a meter created at `now`.
    pub fn first(&self, now: i64) -> (i64, i64) {
        if self.calendar() {
            self.calendar_window(now)
        } else {
            (now, now.saturating_add(self.rolling_len()))
        }
    }

    /// The end of the window that starts at `start`.
    pub fn end(&self, start: i64) -> i64 {
        if self.calendar() {
            self.calendar_window(start).1
        } else {
            start.saturating_add(self.rolling_len())
        }
    }

    /// The window holding `now`, given the start of an earlier window (the lattice anchor).
    pub fn containing(&self, now: i64, anchor: i64) -> (i64, i64) {
        if self.calendar() {
            return self.calendar_window(now);
        }
        let len = self.rolling_len();
        let steps = (now - anchor).div_euclid(len);
        let start = anchor.saturating_add(steps.saturating_mul(len));
        (start, start.saturating_add(len))
    }

    fn calendar_window(&self, now: i64) -> (i64, i64) {
        match self.period {
            Period::Seconds(n) => {
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                if n % WEEK == 0 {
                    let start = FIRST_MONDAY + (now - FIRST_MONDAY).div_euclid(n) * n;
                    (start, start + n)
                } else {
                    let start = now.div_euclid(n) * n;
                    (start, start + n)
                }
            }
            Period::Months(n) => {
                let n = i64::from(n.max(1));
                let date = Utc.timestamp_opt(now, 0).single().unwrap_or_default();
                let index = i64::from(date.year()) * 12 + i64::from(date.month0());
                let first = index - index.rem_euclid(n);
                (month_start(first), month_start(first + n))
            }
            Period::Years(n) => {
                let n = i64::from(n.max(1));
                let year = i64::from(Utc.timestamp_opt(now, 0).single().unwrap_or_default().year());
                let first = year - year.rem_euclid(n);
                (month_start(first * 12), month_start((first + n) * 12))
            }
        }
    }
}

/// Midnight UTC on the 1st of the month `index` months after year 0.
fn month_start(index: i64) -> i64 {
    let year = i32::try_from(index.div_euclid(12)).unwrap_or(i32::MAX);
    let month = u32::try_from(index.rem_euclid(12) + 1).unwrap_or(1);
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .map(|t| t.timestamp())
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(y: i32, m: u32, d: u32, h: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("date")
            .timestamp()
    }

    #[test]
    fn rolling_windows_step_on_a_lattice() {
        let w = Window::parse("1h", false).expect("window");
        let (start, end) = w.first(1000);
        assert_eq!((start, end), (1000, 4600));
        assert_eq!(w.containing(4600, start), (4600, 8200));
        assert_eq!(
            w.containing(4600 + 3 * 3600 + 5, start),
            (4600 + 3 * 3600, 4600 + 4 * 3600)
        );
        let month = Window::parse("1M", false).expect("window");
        assert_eq!(month.end(0), 30 * DAY);
        let minutes = Window::parse("5m", true).expect("window");
        assert_eq!(minutes.first(1234), (1234, 1534), "sub-day windows are not aligned");
    }

    #[test]
    fn calendar_aligned_windows() {
        let now = ts(2026, 11, 22, 6); // a Sunday
        let day = Window::parse("1d", true).expect("d");
        assert_eq!(day.first(now), (ts(2026, 11, 22, 0), ts(2026, 11, 23, 0)));
        let week = Window::parse("1w", true).expect("w");
        assert_eq!(week.first(now), (ts(2026, 11, 16, 0), ts(2026, 11, 23, 0)));
        let month = Window::parse("1M", true).expect("M");
        assert_eq!(month.first(now), (ts(2026, 11, 1, 0), ts(2026, 12, 1, 0)));
        assert_eq!(
            month.containing(ts(2026, 12, 31, 23), 0),
            (ts(2026, 12, 1, 0), ts(2027, 1, 1, 0))
        );
        let year = Window::parse("1Y", true).expect("Y");
        assert_eq!(year.first(now), (ts(2026, 1, 1, 0), ts(2027, 1, 1, 0)));
        let quarter = Window::parse("3M", true).expect("3M");
        assert_eq!(quarter.first(now), (ts(2026, 10, 1, 0), ts(2027, 1, 1, 0)));
    }
}
