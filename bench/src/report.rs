//! Load-run results: HDR histograms summarised into percentiles, printed as a table or JSON.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Percentiles of one measured quantity, in microseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Summarises a histogram (microseconds).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }

    /// `self - base` per percentile (saturating at 0 is wrong for noise, so signed).
    pub fn minus(&self, base: &Percentiles) -> SignedPercentiles {
        let d = |a: u64, b: u64| a as i64 - b as i64;
        SignedPercentiles {
            p50: d(self.p50, base.p50),
            p90: d(self.p90, base.p90),
            p99: d(self.p99, base.p99),
            p999: d(self.p999, base.p999),
            max: d(self.max, base.max),
        }
    }
}

/// Differences between two runs' percentiles, in microseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SignedPercentiles {
    /// Median difference.
    pub p50: i64,
    /// 90th.
    pub p90: i64,
    /// 99th.
    pub p99: i64,
    /// 99.9th.
    pub p999: i64,
    /// Max.
    pub max: i64,
}

/// The result of one `asbru bench load` run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// The target URL.
    pub url: String,
    /// Requested rate, requests/s (0 in a closed loop).
    pub rate: f64,
    /// Closed loop: the connections, each sending its next request when the last one ended.
    pub connections: Option<usize>,
    /// Scheduled duration, seconds.
    pub duration_s: f64,
    /// Whether responses were read as SSE streams.
    pub stream: bool,
    /// Requests scheduled.
    pub scheduled: u64,
    /// Requests that got a complete response (any status).
    pub completed: u64,
    /// Completed requests per second of wall time.
    pub achieved_rate: f64,
    /// Response status -> count.
    pub status_counts: BTreeMap<u16, u64>,
    /// Error kind -> count (connect, timeout, read, ...).
    pub errors: BTreeMap<String, u64>,
    /// Intended send time to the end of the response.
    pub latency_us: Percentiles,
    /// Intended send time to the response head.
    pub ttfb_us: Percentiles,
    /// Intended send time to the first content chunk (streams).
    pub first_content_us: Option<Percentiles>,
    /// Gap between consecutive body chunks (streams).
    pub chunk_gap_us: Option<Percentiles>,
}

fn row(name: &str, p: &Percentiles) -> String {
    format!(
        "{name:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        fmt_us(p.p50),
        fmt_us(p.p90),
        fmt_us(p.p99),
        fmt_us(p.p999),
        fmt_us(p.max),
        p.count
    )
}

/// Microseconds, printed with a unit that keeps the number short.
pub fn fmt_us(us: u64) -> String {
    if us >= 10_000_000 {
        format!("{:.1}s", us as f64 / 1e6)
    } else if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

impl LoadReport {
    /// `rate N/s` (open loop) or `closed loop, N connections`.
    pub fn load_shape(&self) -> String {
        match self.connections {
            Some(n) => format!("closed loop, {n} connections"),
            None => format!("rate {}/s", self.rate),
        }
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "target {}  {} for {}s{}\nscheduled {}  completed {}  achieved {:.1}/s\n",
            self.url,
            self.load_shape(),
            self.duration_s,
            if self.stream { "  (stream)" } else { "" },
            self.scheduled,
            self.completed,
            self.achieved_rate
        );
        let statuses: Vec<String> = self.status_counts.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        out.push_str(&format!(
            "status  {}\n",
            if statuses.is_empty() {
                "-".into()
            } else {
                statuses.join("  ")
            }
        ));
        if !self.errors.is_empty() {
            let errors: Vec<String> = self.errors.iter().map(|(e, n)| format!("{e}: {n}")).collect();
            out.push_str(&format!("errors  {}\n", errors.join("  ")));
        }
        out.push_str(&format!(
            "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "", "p50", "p90", "p99", "p99.9", "max", "n"
        ));
        out.push_str(&row("latency", &self.latency_us));
        out.push_str(&row("first byte", &self.ttfb_us));
        if let Some(p) = &self.first_content_us {
            out.push_str(&row("first content", p));
        }
        if let Some(p) = &self.chunk_gap_us {
            out.push_str(&row("chunk gap", p));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_differences() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        for v in 1..=1000u64 {
            h.record(v).expect("record");
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50, 500);
        assert_eq!(p.max, 1000);
        let base = Percentiles { p50: 600, ..p.clone() };
        assert_eq!(p.minus(&base).p50, -100);
        assert_eq!(fmt_us(1500), "1500µs");
        assert_eq!(fmt_us(25_000), "25.0ms");
    }
}
