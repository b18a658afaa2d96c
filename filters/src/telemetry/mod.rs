//! Telemetry as one filter: on completion, the request's outcome is counted in the Prometheus
//! metrics ([`metrics`]). Every labelled series a request can touch is resolved per config in
//! `on_config` ([`ModelSeries`]), under the label rule of [`crate::labels`], so recording takes
//! no lock.

pub mod metrics;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use prometheus::IntCounter;

pub use metrics::Metrics;

use crate::ctx::RequestCtx;
use crate::filter::Filter;
use crate::labels::{KnownModels, OTHER};
use crate::live::Live;
use crate::slots::Slots;

/// The telemetry filter.
pub struct TelemetryFilter {
    metrics: Arc<Metrics>,
}

impl TelemetryFilter {
    /// A filter recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> TelemetryFilter {
        TelemetryFilter { metrics }
    }
}

/// The series of one `(provider, model)` label pair; each handle is resolved on first use.
#[derive(Debug)]
pub struct ModelSeries {
    provider: String,
    model: String,
    unpriced: OnceLock<IntCounter>,
    cost: OnceLock<IntCounter>,
}

impl ModelSeries {
    fn new(provider: &str, model: &str) -> ModelSeries {
        ModelSeries {
            provider: provider.to_string(),
            model: model.to_string(),
            unpriced: OnceLock::new(),
            cost: OnceLock::new(),
        }
    }

    fn labels(&self) -> [&str; 2] {
        [&self.provider, &self.model]
    }
}

/// Per config: the known models' labels and their series.
#[derive(Debug, Default)]
pub struct SeriesTable {
    known: KnownModels,
    series: HashMap<String, HashMap<String, ModelSeries>>,
    other: HashMap<String, ModelSeries>,
}

impl SeriesTable {
    /// Resolves the table for `live`.
    pub fn build(live: &Live) -> SeriesTable {
        let known = KnownModels::of(live);
        let mut series: HashMap<String, HashMap<String, ModelSeries>> = HashMap::new();
        for (provider, model) in known.pairs() {
            series
                .entry(provider.to_string())
                .or_default()
                .insert(model.to_string(), ModelSeries::new(provider, model));
        }
        let other = live
            .snapshot
            .provider_names
            .iter()
            .map(|p| (p.clone(), ModelSeries::new(p, OTHER)))
            .collect();
        SeriesTable { known, series, other }
    }

    /// The series for `model` at `provider`; `None` for a provider the config does not know.
    pub fn get(&self, provider: &str, model: &str) -> Option<&ModelSeries> {
        let label = self.known.label(provider, model);
        self.series
            .get(provider)
            .and_then(|m| m.get(label))
            .or_else(|| self.other.get(provider))
    }
}

impl Filter for TelemetryFilter {
    fn name(&self) -> &'static str {
        "telemetry"
    }

    fn on_config(&self, live: &Live, slots: &mut Slots) {
        slots.insert(SeriesTable::build(live));
    }

    fn on_complete(&self, live: &Live, ctx: &mut RequestCtx) {
        let metrics = &self.metrics;
        if let Some(decision) = ctx.outcome.decision {
            metrics.count_rejection(decision);
        }
        let (Some(charge), Some(attempt)) = (ctx.outcome.charge, ctx.served_attempt()) else {
            return;
        };
        if charge.estimated && charge.budgeted {
            metrics.estimated_charges.inc();
        }
        let Some(series) = live
            .slot::<SeriesTable>()
            .and_then(|t| t.get(&attempt.provider.name, &attempt.model))
        else {
            return;
        };
        if charge.unpriced {
            series
                .unpriced
                .get_or_init(|| metrics.unpriced_requests.with_label_values(&series.labels()))
                .inc();
        }
        if charge.cost_micros > 0 {
            series
                .cost
                .get_or_init(|| metrics.cost_micros.with_label_values(&series.labels()))
                .inc_by(u64::try_from(charge.cost_micros).unwrap_or(0));
        }
    }
}
