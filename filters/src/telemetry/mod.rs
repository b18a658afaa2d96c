//! Telemetry as one filter: on completion, the request's outcome is counted in the Prometheus
//! metrics ([`metrics`]). Every labelled series a request can touch is resolved per config in
//! `on_config` ([`ModelSeries`]), under the label rule of [`crate::labels`], so recording takes
//! no lock.

pub mod bifrost;
pub mod metrics;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use prometheus::IntCounter;

pub use metrics::Metrics;

use crate::ctx::RequestCtx;
use crate::filter::{Filter, Flow};
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

    /// The label of `model` at `provider` (the model itself when known, else `other`).
    pub fn model_label<'a>(&'a self, provider: &str, model: &'a str) -> &'a str {
        self.known.label(provider, model)
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

    fn on_config(&self, live: &Live, _config: &asbru_config::Config, slots: &mut Slots) {
        slots.insert(SeriesTable::build(live));
    }

    fn on_request(&self, _live: &Live, ctx: &mut RequestCtx) -> Flow {
        let gauge = self.metrics.bifrost.active(ctx.request.object_type());
        gauge.inc();
        ctx.slots.insert(InFlight(gauge));
        Flow::Continue
    }

    fn on_complete(&self, live: &Live, ctx: &mut RequestCtx) {
        if let Some(InFlight(gauge)) = ctx.slots.remove::<InFlight>() {
            gauge.dec();
        }
        self.record_bifrost(live, ctx);
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

/// The in-flight gauge a request incremented (so only those that did decrement it).
struct InFlight(prometheus::IntGauge);

/// `fallback_index` label values without formatting.
const INDEXES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

impl TelemetryFilter {
    /// Bifrost's LLM metrics for a finished request.
    fn record_bifrost(&self, live: &Live, ctx: &RequestCtx) {
        let bifrost = &self.metrics.bifrost;
        let Some(table) = live.slot::<SeriesTable>() else {
            return;
        };
        let outcome = &ctx.outcome;
        let attempt = ctx
            .served_attempt()
            .or_else(|| ctx.attempt.as_ref().and_then(|a| ctx.plan.get(a.index)));
        // Provider and model labels: the target tried, or what was asked for; a provider the
        // config does not know is `other`, like an unknown model.
        let (provider, model, fallback) = match attempt {
            Some(a) => (a.provider.name.as_str(), &*a.model, a.fallback_index),
            None => {
                let requested = ctx.request.model_requested.as_str();
                let (p, m) = requested
                    .split_once('/')
                    .unwrap_or((ctx.request.default_provider.unwrap_or_default(), requested));
                (p, m, 0)
            }
        };
        let provider = if live.snapshot.has_provider(provider) {
            provider
        } else {
            OTHER
        };
        let model = table.model_label(provider, model);
        let fallback_text;
        let fallback_index = match INDEXES.get(fallback) {
            Some(text) => *text,
            None => {
                fallback_text = fallback.to_string();
                &fallback_text
            }
        };
        let vk = ctx.facts.vk.as_deref();
        let key = ctx.current_key();
        let team = vk.and_then(|v| v.team_ref.as_deref());
        let customer = vk.and_then(|v| v.customer_ref.as_deref());
        let rule = ctx.facts.routing_rule.as_ref();
        let (rule_id, rule_name) = rule.map_or(("", ""), |r| (&*r.id, &*r.name));
        let base: [&str; 14] = [
            provider,
            model,
            ctx.request.object_type(),
            vk.map_or("", |v| v.id.as_str()),
            vk.map_or("", |v| v.name.as_str()),
            rule_id,
            rule_name,
            key.map_or("", |k| k.id.as_str()),
            key.map_or("", |k| k.name.as_str()),
            fallback_index,
            team.map_or("", |t| t.id.as_str()),
            team.map_or("", |t| t.name.as_str()),
            customer.map_or("", |c| c.id.as_str()),
            customer.map_or("", |c| c.name.as_str()),
        ];
        let series = match bifrost.custom_labels() {
            [] => bifrost.llm(&base),
            custom => {
                let mut values = base.to_vec();
                for (i, label) in custom.iter().enumerate() {
                    let value = custom_header(ctx, label).unwrap_or_default();
                    values.push(bifrost.custom_value(i, value));
                }
                bifrost.llm(&values)
            }
        };
        let tried = ctx.attempt.is_some();
        if tried {
            series.upstream_requests.inc_by(u64::from(outcome.retries) + 1);
        }
        let seconds = outcome.total.map_or(0.0, |d| d.as_secs_f64());
        let success = (200..400).contains(&outcome.status) && outcome.error_type.is_none();
        if success {
            series.success.inc();
            series.latency_ok.observe(seconds);
            series.retries.observe(f64::from(outcome.retries));
            if let Some(usage) = outcome.usage {
                series.input_tokens.inc_by(usage.input);
                series.output_tokens.inc_by(usage.output);
                if usage.cache_read > 0 {
                    series.cache_read_tokens.inc_by(usage.cache_read);
                }
            }
            if let Some(cost) = ctx.cost_micros(&live.governance.pricing).filter(|c| *c > 0) {
                series.cost.inc_by(crate::pricing::to_dollars(cost));
            }
            if let Some(first) = outcome.first_chunk_after {
                series.first_token.observe(first.as_secs_f64());
                if let Some(last) = outcome.last_chunk_after
                    && outcome.stream_chunks > 1
                {
                    series
                        .inter_token
                        .observe(last.saturating_sub(first).as_secs_f64() / f64::from(outcome.stream_chunks - 1));
                }
            }
        } else {
            if tried {
                series.latency_failed.observe(seconds);
            }
            let kind = bifrost::error_type(
                outcome.status,
                outcome.decision,
                outcome.message.as_deref(),
                ctx.request.request_type.is_billable(),
            );
            series.error(outcome.status, kind);
        }
    }
}

/// A custom label's value from `x-bf-dim-<label>` or `x-bf-prom-<label>` (either spelling of
/// `_` and `-`).
fn custom_header<'a>(ctx: &'a RequestCtx, label: &str) -> Option<&'a str> {
    let dashed = label.replace('_', "-");
    ["x-bf-dim-", "x-bf-prom-"].iter().find_map(|prefix| {
        ctx.request
            .header(&format!("{prefix}{label}"))
            .or_else(|| ctx.request.header(&format!("{prefix}{dashed}")))
    })
}
