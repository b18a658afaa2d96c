//! The `otel` filter (Bifrost's `otel` plugin): one span per request following OpenTelemetry's
//! GenAI semantic conventions (`gen_ai.operation.name`, `gen_ai.provider.name`,
//! `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.*`, ...), with a child span
//! per upstream try. A client's W3C `traceparent` is continued, and each try sends its own
//! `traceparent` upstream.
//!
//! The filter only builds spans; the tracer it is given exports them in batches off the
//! request path (the gateway wires an OTLP/HTTP exporter).

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};

use crate::ctx::RequestCtx;
use crate::filter::{AttemptFlow, Filter, Flow};
use crate::live::Live;

/// The trace of one request: its ids, and each try's span id and start.
struct Trace {
    trace_id: TraceId,
    root: SpanId,
    parent: Option<SpanContext>,
    started: SystemTime,
    tries: Vec<Try>,
}

struct Try {
    span: SpanId,
    started: SystemTime,
    target: usize,
    number: u32,
}

impl Trace {
    /// The trace of `ctx`: the client's trace continued, or a new one.
    fn begin(ctx: &RequestCtx) -> Trace {
        let parent = ctx.request.header("traceparent").and_then(parse_traceparent);
        let trace_id = parent.as_ref().map_or_else(random_trace_id, |p| p.trace_id());
        Trace {
            trace_id,
            root: random_span_id(),
            parent,
            started: SystemTime::now() - ctx.started.elapsed(),
            tries: Vec::new(),
        }
    }
}

/// The filter, over any tracer.
pub struct OtelFilter<T> {
    tracer: T,
}

impl<T> OtelFilter<T> {
    /// A filter starting its spans on `tracer`.
    pub fn new(tracer: T) -> OtelFilter<T> {
        OtelFilter { tracer }
    }
}

/// Parses a W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`).
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || version == "ff" || trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(parent).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

fn random_trace_id() -> TraceId {
    TraceId::from_bytes(rand::random::<u128>().max(1).to_be_bytes())
}

fn random_span_id() -> SpanId {
    SpanId::from_bytes(rand::random::<u64>().max(1).to_be_bytes())
}

/// The GenAI operation name of a request type.
fn operation(ctx: &RequestCtx) -> &'static str {
    match ctx.request.request_type {
        asbru_config::catalog::RequestType::ChatCompletion | asbru_config::catalog::RequestType::Responses => "chat",
        asbru_config::catalog::RequestType::TextCompletion => "text_completion",
        asbru_config::catalog::RequestType::Embedding => "embeddings",
        asbru_config::catalog::RequestType::ListModels => "list_models",
        asbru_config::catalog::RequestType::CountTokens => "count_tokens",
        asbru_config::catalog::RequestType::Speech => "speech",
        asbru_config::catalog::RequestType::Transcription | asbru_config::catalog::RequestType::Translation => {
            "transcription"
        }
        asbru_config::catalog::RequestType::ImageGeneration => "image_generation",
        asbru_config::catalog::RequestType::Moderation => "moderation",
        asbru_config::catalog::RequestType::Files => "files",
        asbru_config::catalog::RequestType::Batches => "batches",
    }
}

impl<T> Filter for OtelFilter<T>
where
    T: Tracer + Send + Sync + 'static,
    T::Span: Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        "otel"
    }

    fn on_request(&self, _live: &Live, ctx: &mut RequestCtx) -> Flow {
        let trace = Trace::begin(ctx);
        ctx.slots.insert(trace);
        Flow::Continue
    }

    fn on_attempt(&self, _live: &Live, ctx: &mut RequestCtx) -> AttemptFlow {
        let (index, number) = ctx.attempt.as_ref().map_or((0, 0), |a| (a.index, a.try_number));
        let Some(trace) = ctx.slots.get_mut::<Trace>() else {
            return AttemptFlow::Continue;
        };
        let span = random_span_id();
        let sampled = trace.parent.as_ref().is_none_or(|p| p.is_sampled());
        trace.tries.push(Try {
            span,
            started: SystemTime::now(),
            target: index,
            number,
        });
        let traceparent = format!("00-{}-{}-{}", trace.trace_id, span, if sampled { "01" } else { "00" });
        if let (Some(attempt), Ok(value)) = (ctx.attempt.as_mut(), http::HeaderValue::from_str(&traceparent)) {
            attempt.upstream_headers.retain(|(name, _)| name != "traceparent");
            attempt
                .upstream_headers
                .push((http::HeaderName::from_static("traceparent"), value));
        }
        AttemptFlow::Continue
    }

    fn on_complete(&self, _live: &Live, ctx: &mut RequestCtx) {
        // A request refused before this filter's `on_request` is traced too.
        let trace = ctx.slots.remove::<Trace>().unwrap_or_else(|| Trace::begin(ctx));
        let outcome = &ctx.outcome;
        let ended = trace.started + outcome.total.unwrap_or_else(|| ctx.started.elapsed());
        let op = operation(ctx);
        let requested = ctx.request.model_requested.as_str();
        let requested_model = requested.split_once('/').map_or(requested, |(_, m)| m);
        let served = ctx.served_attempt();
        let success = (200..400).contains(&outcome.status) && outcome.error_type.is_none();
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", op),
            KeyValue::new("gen_ai.request.model", requested_model.to_string()),
            KeyValue::new("gen_ai.request.stream", ctx.request.stream),
            KeyValue::new("http.response.status_code", i64::from(outcome.status)),
            KeyValue::new("gen_ai.number_of_retries", i64::from(outcome.retries)),
            KeyValue::new("asbru.request_id", ctx.request_id.clone()),
        ];
        if let Some(client) = ctx.client_ip {
            attributes.push(KeyValue::new("client.address", client.to_string()));
        }
        if let Some(max) = ctx.request.estimate.max_output_tokens {
            attributes.push(KeyValue::new(
                "gen_ai.request.max_tokens",
                i64::try_from(max).unwrap_or(i64::MAX),
            ));
        }
        let tried = served.or_else(|| ctx.attempt.as_ref().and_then(|a| ctx.plan.get(a.index)));
        if let Some(target) = tried {
            attributes.push(KeyValue::new("gen_ai.provider.name", target.provider.name.clone()));
            attributes.push(KeyValue::new("gen_ai.fallback_index", target.fallback_index as i64));
        }
        if let Some(target) = served {
            attributes.push(KeyValue::new("gen_ai.response.model", target.model.to_string()));
        }
        if let Some(usage) = outcome.usage {
            let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            attributes.push(KeyValue::new("gen_ai.usage.input_tokens", clamp(usage.input)));
            attributes.push(KeyValue::new("gen_ai.usage.output_tokens", clamp(usage.output)));
        }
        if let Some(vk) = ctx.facts.vk.as_deref() {
            attributes.push(KeyValue::new("gen_ai.virtual_key_id", vk.id.clone()));
            attributes.push(KeyValue::new("gen_ai.virtual_key_name", vk.name.clone()));
        }
        if let Some(key) = ctx.current_key() {
            attributes.push(KeyValue::new("gen_ai.selected_key_id", key.id.clone()));
            attributes.push(KeyValue::new("gen_ai.selected_key_name", key.name.clone()));
        }
        if !success {
            attributes.push(KeyValue::new("error.type", outcome.error_type.unwrap_or("api_error")));
        }
        let parent_cx = match &trace.parent {
            Some(parent) => Context::new().with_remote_span_context(parent.clone()),
            None => Context::new(),
        };
        let mut root = self
            .tracer
            .span_builder(format!("{op} {requested_model}"))
            .with_kind(SpanKind::Server)
            .with_trace_id(trace.trace_id)
            .with_span_id(trace.root)
            .with_start_time(trace.started)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent_cx);
        if !success {
            use opentelemetry::trace::Span;
            root.set_status(Status::error(outcome.message.clone().unwrap_or_default()));
        }
        let root_cx = Context::new().with_remote_span_context(SpanContext::new(
            trace.trace_id,
            trace.root,
            trace.parent.as_ref().map_or(TraceFlags::SAMPLED, |p| p.trace_flags()),
            false,
            TraceState::default(),
        ));
        let tries = trace.tries.len();
        for (i, attempt) in trace.tries.iter().enumerate() {
            let end = trace.tries.get(i + 1).map_or(ended, |next| next.started);
            let Some(target) = ctx.plan.get(attempt.target) else {
                continue;
            };
            let answered = i + 1 == tries && outcome.served == Some(attempt.target);
            let mut span = self
                .tracer
                .span_builder(format!("{op} {}", target.model))
                .with_kind(SpanKind::Client)
                .with_span_id(attempt.span)
                .with_start_time(attempt.started)
                .with_attributes([
                    KeyValue::new("gen_ai.operation.name", op),
                    KeyValue::new("gen_ai.provider.name", target.provider.name.clone()),
                    KeyValue::new("gen_ai.request.model", target.model.to_string()),
                    KeyValue::new("gen_ai.fallback_index", target.fallback_index as i64),
                    KeyValue::new("asbru.try_number", i64::from(attempt.number)),
                ])
                .start_with_context(&self.tracer, &root_cx);
            use opentelemetry::trace::Span;
            if !answered {
                span.set_status(Status::error("upstream try failed"));
            }
            span.end_with_timestamp(end.max(attempt.started + Duration::from_nanos(1)));
        }
        {
            use opentelemetry::trace::Span;
            root.end_with_timestamp(ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing() {
        let sc = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-xyz-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
