//! The cluster lease manager's metrics (`asbru_cluster_*`), per node (each node is scraped on
//! its own) and per meter (a label bounded by the configured budgets and rate limits).

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts};

/// Every cluster metric.
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    /// 1 while the config store answers, 0 while it is down.
    pub store_up: IntGauge,
    /// Room left on the lease this node holds, per meter (micro-dollars, tokens or requests).
    pub lease_held: IntGaugeVec,
    /// Usage over every node in the current window, per meter.
    pub global_usage: IntGaugeVec,
    /// Leases of nodes presumed dead (not renewed within the TTL), per meter: counted as spent.
    pub stranded: IntGaugeVec,
    /// Lease fetches by meter and result (`granted`, `empty`, `error`).
    pub fetches: IntCounterVec,
    /// Time one lease fetch took.
    pub fetch_seconds: Histogram,
    /// Time refused requests waited for a lease fetch (made with the request path's signal;
    /// should stay near 0: leases are topped up before they run out).
    pub wait_seconds: Histogram,
}

fn fast_buckets() -> Vec<f64> {
    vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0]
}

impl ClusterMetrics {
    /// Creates them, registered in `metrics`.
    pub fn register(metrics: &asbru_filters::telemetry::Metrics, wait_seconds: Histogram) -> ClusterMetrics {
        let store_up = IntGauge::new(
            "asbru_cluster_store_up",
            "1 while the cluster's PostgreSQL store answers",
        )
        .expect("static metric definition");
        let lease_held = IntGaugeVec::new(
            Opts::new(
                "asbru_cluster_lease_held",
                "Room left on the lease this node holds (micro-dollars, tokens or requests)",
            ),
            &["meter"],
        )
        .expect("static metric definition");
        let global_usage = IntGaugeVec::new(
            Opts::new(
                "asbru_cluster_usage",
                "Usage over every node in the meter's current window, as last read from the store",
            ),
            &["meter"],
        )
        .expect("static metric definition");
        let stranded = IntGaugeVec::new(
            Opts::new(
                "asbru_cluster_lease_stranded",
                "Leases of nodes presumed dead (not renewed within the TTL), counted as spent",
            ),
            &["meter"],
        )
        .expect("static metric definition");
        let fetches = IntCounterVec::new(
            Opts::new(
                "asbru_cluster_lease_fetches_total",
                "Lease fetches, by meter and result",
            ),
            &["meter", "result"],
        )
        .expect("static metric definition");
        let fetch_seconds = Histogram::with_opts(
            HistogramOpts::new("asbru_cluster_lease_fetch_seconds", "Time one lease fetch took")
                .buckets(fast_buckets()),
        )
        .expect("static metric definition");
        for collector in [
            Box::new(store_up.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(lease_held.clone()),
            Box::new(global_usage.clone()),
            Box::new(stranded.clone()),
            Box::new(fetches.clone()),
            Box::new(fetch_seconds.clone()),
            Box::new(wait_seconds.clone()),
        ] {
            if let Err(e) = metrics.register(collector) {
                tracing::warn!("cluster metric not registered: {e}");
            }
        }
        store_up.set(1);
        ClusterMetrics {
            store_up,
            lease_held,
            global_usage,
            stranded,
            fetches,
            fetch_seconds,
            wait_seconds,
        }
    }
}
