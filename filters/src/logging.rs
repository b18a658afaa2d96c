//! Logging as one filter: on completion, one line per request through `tracing` (the served
//! line at debug level, governance refusals at info), and a warning whenever money was counted on
//! a guess: a budgeted request for a model without a price, or a reply without usage. The
//! request log store hooks in here as well.

use crate::ctx::RequestCtx;
use crate::filter::Filter;
use crate::live::Live;

/// The logging filter.
pub struct LoggingFilter;

impl Filter for LoggingFilter {
    fn name(&self) -> &'static str {
        "logging"
    }

    fn on_complete(&self, _live: &Live, ctx: &mut RequestCtx) {
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
            if charge.unpriced && charge.budgeted {
                tracing::warn!(
                    request_id,
                    provider,
                    model,
                    "model has no price: its cost is counted as 0 (add a governance.pricing_overrides entry)"
                );
            }
            if charge.estimated && charge.budgeted {
                tracing::warn!(
                    request_id,
                    provider,
                    model,
                    cost_micros = charge.cost_micros,
                    "provider reported no usage: the reservation was charged"
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
