//! The gateway's Prometheus metrics, served at `GET /metrics`. Labelled series are resolved to
//! counter handles ahead of the request (per config, or once for fixed label sets), because the
//! `prometheus` crate's `with_label_values` takes a read lock; incrementing a resolved handle is
//! one atomic add. Rendering happens only when scraped.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::filter::decision;

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests whose model has no price: their cost was counted as 0.
    pub unpriced_requests: IntCounterVec,
    /// Requests refused by governance, by decision.
    pub governance_rejections: IntCounterVec,
    /// Micro-dollars charged to budgets.
    pub cost_micros: IntCounterVec,
    /// Requests charged their reservation because no usage was reported.
    pub estimated_charges: IntCounter,
    /// Provider keys put in cooldown, by provider (a label bounded by the config).
    pub key_cooldowns: IntCounterVec,
    /// Request log records lost (queue full, or the log database refused them).
    pub logs_dropped: IntCounter,
    /// Request log rows written.
    pub logs_written: IntCounter,
    /// Request log records waiting to be written.
    pub log_queue_depth: IntGauge,
    /// Bifrost's `http_*` and `bifrost_*` metrics.
    pub bifrost: crate::telemetry::bifrost::BifrostMetrics,
    /// `governance_rejections` resolved for every decision, in [`decision::ALL`]'s order.
    rejections_by_decision: Vec<IntCounter>,
}

impl Metrics {
    /// Registers every metric, with no custom labels.
    pub fn new() -> Metrics {
        Metrics::with_custom_labels(&[])
    }

    /// Registers every metric; Bifrost's metrics carry the `custom` labels
    /// (`client.prometheus_labels`) after their own.
    pub fn with_custom_labels(custom: &[String]) -> Metrics {
        let registry = Registry::new();
        let bifrost = crate::telemetry::bifrost::BifrostMetrics::register(&registry, custom);
        let unpriced_requests = IntCounterVec::new(
            Opts::new(
                "asbru_unpriced_requests_total",
                "Requests for a model without a price; their cost was counted as 0",
            ),
            &["provider", "model"],
        )
        .expect("static metric definition");
        let governance_rejections = IntCounterVec::new(
            Opts::new(
                "asbru_governance_rejections_total",
                "Requests refused by governance, by decision",
            ),
            &["decision"],
        )
        .expect("static metric definition");
        let cost_micros = IntCounterVec::new(
            Opts::new(
                "asbru_cost_micro_dollars_total",
                "Cost charged to budgets, in micro-dollars",
            ),
            &["provider", "model"],
        )
        .expect("static metric definition");
        let estimated_charges = IntCounter::new(
            "asbru_estimated_charges_total",
            "Requests charged their whole reservation because the provider reported no usage",
        )
        .expect("static metric definition");
        for collector in [
            Box::new(unpriced_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(governance_rejections.clone()),
            Box::new(cost_micros.clone()),
            Box::new(estimated_charges.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        let key_cooldowns = IntCounterVec::new(
            Opts::new(
                "asbru_key_cooldowns_total",
                "Provider keys skipped for a while after a 401/403 or repeated 429s",
            ),
            &["provider"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(key_cooldowns.clone()))
            .expect("metric names are unique");
        let logs_dropped = IntCounter::new(
            "asbru_log_records_dropped_total",
            "Request log records lost because the queue was full or the log database refused them",
        )
        .expect("static metric definition");
        let logs_written = IntCounter::new("asbru_log_records_written_total", "Request log rows written")
            .expect("static metric definition");
        let log_queue_depth = IntGauge::new("asbru_log_queue_depth", "Request log records waiting to be written")
            .expect("static metric definition");
        for collector in [
            Box::new(logs_dropped.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(logs_written.clone()),
            Box::new(log_queue_depth.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        let rejections_by_decision = decision::ALL
            .iter()
            .map(|d| governance_rejections.with_label_values(&[*d]))
            .collect();
        Metrics {
            bifrost,
            logs_dropped,
            logs_written,
            log_queue_depth,
            key_cooldowns,
            rejections_by_decision,
            registry,
            unpriced_requests,
            governance_rejections,
            cost_micros,
            estimated_charges,
        }
    }

    /// Registers a collector another part of the gateway owns (the cluster lease manager's).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// Counts a governance refusal (lock-free: the handles were resolved at start).
    pub fn count_rejection(&self, decision: &str) {
        if let Some(i) = decision::ALL.iter().position(|d| *d == decision) {
            self.rejections_by_decision[i].inc();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("metrics could not be rendered: {e}");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
