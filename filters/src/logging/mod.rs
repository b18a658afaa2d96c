//! Logging as one filter:
//! - on request, whether the reply's content is kept for the request log (`client`
//!   settings, the virtual key's `disable_content_logging`, `x-bf-disable-content-logging`);
//! - on completion, one [`LogRecord`] handed to the request log's queue ([`LogSink`]), one
//!   line per request through `tracing` (the served line at debug level, governance refusals
//!   at info), and a warning whenever money was counted on a guess: a budgeted request for a
//!   model without a price, or a reply without usage.

pub mod record;
pub mod throttle;

use std::sync::Arc;

pub use record::{LogRecord, LogSink, Named, RecordedContent, RecordedError};

use crate::ctx::RequestCtx;
use crate::filter::{Filter, Flow};
use crate::live::Live;

/// Most bytes of a streamed reply kept for the log, as a multiple of the per-field cap (the
/// stream's framing is larger than the text it carries).
const STREAM_CAPTURE_FACTOR: usize = 4;

/// How often each money warning below may be logged: it can repeat on every request, and
/// `asbru_unpriced_requests_total` and `asbru_estimated_charges_total` count every one.
const WARNING_INTERVAL_SECS: u64 = 60;
static UNPRICED: throttle::Throttle = throttle::Throttle::new(WARNING_INTERVAL_SECS);
static ESTIMATED: throttle::Throttle = throttle::Throttle::new(WARNING_INTERVAL_SECS);

/// The logging filter.
#[derive(Default)]
pub struct LoggingFilter {
    sink: Option<Arc<dyn LogSink>>,
}

impl LoggingFilter {
    /// A filter handing records to `sink` (`None`: no request log, lines only).
    pub fn new(sink: Option<Arc<dyn LogSink>>) -> LoggingFilter {
        LoggingFilter { sink }
    }
}

/// Whether this request's prompt and completion go into its log row.
fn keeps_content(live: &Live, ctx: &RequestCtx) -> bool {
    let settings = &live.snapshot.observe;
    if !settings.logging || !settings.content {
        return false;
    }
    if ctx.facts.vk.as_ref().is_some_and(|vk| vk.disable_content_logging) {
        return false;
    }
    let opted_out = settings.per_request_override
        && ctx
            .request
            .header("x-bf-disable-content-logging")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !opted_out
}

fn named(id: &str, name: &str) -> Named {
    Named {
        id: id.to_string(),
        name: name.to_string(),
    }
}

/// The record of a finished request.
fn record(live: &Live, ctx: &mut RequestCtx) -> LogRecord {
    let outcome = &ctx.outcome;
    let attempt = ctx.served_attempt().or_else(|| {
        // A failed request: the last target tried.
        ctx.attempt.as_ref().and_then(|a| ctx.plan.get(a.index))
    });
    let (provider, model, fallback_index) = match attempt {
        Some(a) => (a.provider.name.clone(), a.model.to_string(), a.fallback_index),
        // Refused before a target was chosen: what the client asked for.
        None => {
            let requested = ctx.request.model_requested.as_str();
            match requested.split_once('/') {
                Some((provider, model)) => (provider.to_string(), model.to_string(), 0),
                None => (
                    ctx.request.default_provider.unwrap_or_default().to_string(),
                    requested.to_string(),
                    0,
                ),
            }
        }
    };
    let selected_key = ctx.current_key().map(|k| named(&k.id, &k.name));
    let vk = ctx.facts.vk.as_deref();
    let success = (200..400).contains(&outcome.status) && outcome.error_type.is_none();
    let millis = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let error = (!success).then(|| RecordedError {
        kind: outcome.error_type.unwrap_or("api_error").to_string(),
        decision: outcome.decision.map(str::to_string),
        message: outcome.message.clone().unwrap_or_default(),
    });
    let cost = ctx
        .cost_micros(&live.governance.pricing)
        .map(crate::pricing::to_dollars);
    let keep = keeps_content(live, ctx);
    let content = keep.then(|| RecordedContent {
        wire: Some(ctx.request.ingress),
        request: ctx.request.body.clone(),
        reply: ctx.capture.reply.take(),
        stream: std::mem::take(&mut ctx.capture.stream),
        cut: ctx.capture.cut,
    });
    let metadata = live
        .snapshot
        .observe
        .logging_headers
        .iter()
        .filter_map(|name| {
            let value = ctx.request.header(name.as_str())?;
            Some((name.as_str().to_string(), value.to_string()))
        })
        .chain(
            ctx.client_ip
                .map(|client| ("client_ip".to_string(), client.to_string())),
        )
        .collect();
    LogRecord {
        id: ctx.request_id.clone(),
        parent_request_id: ctx.request.header("x-bf-parent-request-id").map(str::to_string),
        timestamp_ms: ctx.request.arrived_ms,
        object_type: ctx.request.object_type(),
        provider,
        model,
        requested_model: ctx.request.model_requested.clone(),
        status_code: outcome.status,
        success,
        stream: ctx.request.stream,
        latency_ms: outcome.total.map_or(0.0, millis),
        ttft_ms: outcome.first_chunk_after.map(millis),
        usage: outcome.usage,
        cost,
        retries: outcome.retries,
        fallback_index,
        selected_key,
        virtual_key: vk.map(|vk| named(&vk.id, &vk.name)),
        team: vk.and_then(|vk| vk.team_ref.as_deref()).map(|t| named(&t.id, &t.name)),
        customer: vk
            .and_then(|vk| vk.customer_ref.as_deref())
            .map(|c| named(&c.id, &c.name)),
        routing_rule: ctx.facts.routing_rule.as_ref().map(|r| named(&r.id, &r.name)),
        error,
        content,
        metadata,
    }
}

impl Filter for LoggingFilter {
    fn name(&self) -> &'static str {
        "logging"
    }

    fn on_request(&self, live: &Live, ctx: &mut RequestCtx) -> Flow {
        if self.sink.is_some() && keeps_content(live, ctx) {
            ctx.capture.content = true;
            ctx.capture.limit = live.snapshot.observe.max_content_bytes * STREAM_CAPTURE_FACTOR;
        }
        Flow::Continue
    }

    fn on_complete(&self, live: &Live, ctx: &mut RequestCtx) {
        if let Some(sink) = &self.sink
            && live.snapshot.observe.logging
        {
            sink.submit(record(live, ctx));
        }
        self.trace(ctx);
    }
}

impl LoggingFilter {
    fn trace(&self, ctx: &RequestCtx) {
        let request_id = ctx.request_id.as_str();
        let outcome = &ctx.outcome;
        if let Some(decision) = outcome.decision {
            tracing::info!(
                request_id,
                decision,
                "request refused: {}",
                outcome.message.as_deref().unwrap_or_default()
            );
            return;
        }
        let Some(attempt) = ctx.served_attempt() else {
            tracing::debug!(
                request_id,
                status = outcome.status,
                error_type = outcome.error_type,
                retries = outcome.retries,
                "request failed"
            );
            return;
        };
        let provider = attempt.provider.name.as_str();
        let model = &*attempt.model;
        let charge = outcome.charge;
        if let Some(charge) = charge {
            let now = u64::try_from(ctx.request.now).unwrap_or(0);
            if charge.unpriced
                && charge.budgeted
                && let Some(held_back) = UNPRICED.allow(now)
            {
                tracing::warn!(
                    request_id,
                    provider,
                    model,
                    held_back,
                    "model has no price: its cost is counted as 0 (add a governance.pricing_overrides entry; logged at most once a minute, asbru_unpriced_requests_total counts every request)"
                );
            }
            if charge.estimated
                && charge.budgeted
                && let Some(held_back) = ESTIMATED.allow(now)
            {
                tracing::warn!(
                    request_id,
                    provider,
                    model,
                    cost_micros = charge.cost_micros,
                    held_back,
                    "provider reported no usage: the reservation was charged (logged at most once a minute, asbru_estimated_charges_total counts every request)"
                );
            }
        }
        let usage = outcome.usage.unwrap_or_default();
        tracing::debug!(
            request_id,
            provider,
            status = outcome.status,
            fallback_index = attempt.fallback_index,
            retries = outcome.retries,
            input_tokens = usage.input,
            output_tokens = usage.output,
            cache_read_tokens = usage.cache_read,
            cache_write_tokens = usage.cache_write,
            reasoning_tokens = usage.reasoning,
            cost_micros = charge.map(|c| c.cost_micros),
            unpriced = charge.is_some_and(|c| c.unpriced),
            total_ms = outcome.total.map(|d| d.as_secs_f64() * 1000.0),
            "request served"
        );
    }
}
