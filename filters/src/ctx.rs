//! [`RequestCtx`]: everything one inference request carries through its hooks. It lives in
//! Pingora's per-request `CTX`, is created once the body's head is parsed, and is handed to
//! `on_complete` from Pingora's `logging` phase.
//!
//! Three kinds of content:
//! - what the client sent ([`GatewayRequest`]);
//! - the facts filters publish for each other ([`Facts`], the plan, the attempt, the outcome),
//!   so no filter imports another;
//! - each filter's private state, in typed [`Slots`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::snapshot::{ProviderKey, ProviderRuntime};
use asbru_config::catalog::{RequestType, Wire};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};

pub use crate::policy::runtime::EntityRef;
use crate::policy::runtime::VirtualKeyRuntime;
use crate::pricing::TokenUsage;
use crate::slots::Slots;

/// Credentials a client presented (values trimmed, empty ones dropped).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `x-bf-vk`.
    pub virtual_key: Option<String>,
    /// The token of `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
    /// `x-api-key` (Anthropic SDK).
    pub x_api_key: Option<String>,
    /// `x-goog-api-key` (Gemini SDK).
    pub x_goog_api_key: Option<String>,
    /// `api-key` (Azure SDK).
    pub api_key: Option<String>,
    /// The request brings its own provider key (`x-bf-direct-key: true` with the key as the
    /// `Authorization` bearer, allowed by `client.allow_direct_keys`): no configured key is
    /// chosen, and the bearer is sent upstream instead.
    pub direct_key: bool,
}

/// What a request may use, for budget reservations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Estimate {
    /// Upper bound on prompt tokens (the body's byte length: a token is at least a byte).
    pub input_tokens: u64,
    /// The request's `max_tokens`, when it sets one.
    pub max_output_tokens: Option<u64>,
    /// How many choices the request asks for (`n`): each may use up to the output bound.
    pub choices: u64,
    /// For a request billed per unit (images, characters of speech, seconds of audio): the
    /// unit and at most how many the request can be billed.
    pub units: Option<(crate::pricing::Unit, u64)>,
}

/// What the ingress decoded from the client's request.
#[derive(Debug, Clone)]
pub struct GatewayRequest {
    /// The wire the client speaks on its route (OpenAI-compatible or Anthropic).
    pub ingress: Wire,
    /// Chat, embeddings, ...
    pub request_type: RequestType,
    /// The client asked for a stream.
    pub stream: bool,
    /// The `model` field exactly as sent.
    pub model_requested: String,
    /// Provider implied by the route (`/openai/...` means openai) when the model has no prefix.
    pub default_provider: Option<&'static str>,
    /// Bifrost `fallbacks`, as sent.
    pub fallbacks: Vec<String>,
    /// Credentials that may carry a virtual key.
    pub credentials: Credentials,
    /// A virtual key is required (admin auth is on for inference and the request presented no
    /// admin credentials).
    pub require_vk: bool,
    /// What the request may use, for budget reservations.
    pub estimate: Estimate,
    /// Unix seconds when the request arrived.
    pub now: i64,
    /// Unix milliseconds when the request arrived.
    pub arrived_ms: i64,
    /// The body as received (shared, not copied).
    pub body: Bytes,
    /// The request headers filters read besides credentials: `x-bf-*` (virtual keys and
    /// provider-key pins excluded), `traceparent`, `tracestate`, and the configured
    /// `client.logging_headers`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The request URI's query string, when it has one (routing rules read it as `params`).
    pub query: Option<Box<str>>,
    /// The provider (and key) that must serve this request: the one holding a stored response
    /// it reads or continues (`previous_response_id`, `GET /v1/responses/{id}`).
    pub pin: Option<Pin>,
}

/// A provider account a request must reach: no routing rule, weight or fallback moves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The provider's name.
    pub provider: Arc<str>,
    /// The key's id, when known.
    pub key_id: Option<Arc<str>>,
    /// The request only reads or changes the stored response: nothing is generated, so
    /// nothing is reserved or billed (access is still checked).
    pub stored_only: bool,
    /// The request creates a batch, which the provider bills when it completes, out of the
    /// gateway's sight: it cannot be metered, so a budget refuses it.
    pub unmetered_work: bool,
}

impl GatewayRequest {
    /// A header kept in [`GatewayRequest::headers`], as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    /// The request type as Bifrost names it, streamed or not (`chat_completion_stream`).
    pub fn object_type(&self) -> &'static str {
        if self.stream {
            self.request_type.stream_name()
        } else {
            self.request_type.as_str()
        }
    }
}

/// What the relay keeps of the reply for the request log, when a filter asks for it.
#[derive(Debug, Default)]
pub struct Capture {
    /// Keep the reply's content (set by the logging filter in `on_request`).
    pub content: bool,
    /// Most bytes of a streamed reply kept.
    pub limit: usize,
    /// A whole reply as the client got it (shared, not copied).
    pub reply: Option<Bytes>,
    /// A streamed reply as the client got it, up to `limit` bytes.
    pub stream: Vec<u8>,
    /// The streamed reply was longer than `limit`.
    pub cut: bool,
}

impl Capture {
    /// Keeps streamed bytes, up to the limit.
    pub fn stream_bytes(&mut self, bytes: &[u8]) {
        if !self.content {
            return;
        }
        let room = self.limit.saturating_sub(self.stream.len());
        if bytes.len() > room {
            self.cut = true;
        }
        self.stream.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// One target to try.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The provider.
    pub provider: Arc<ProviderRuntime>,
    /// The model name at that provider (before key aliases); shared, so an attempt clones
    /// without allocating.
    pub model: Arc<str>,
    /// 0 for the primary, n for the n-th fallback.
    pub fallback_index: usize,
    /// Provider keys this attempt may use, by id or name (a virtual key's `key_ids`); `None`
    /// means any.
    pub key_ids: Option<Arc<[String]>>,
}

/// The try being made: which target of the plan, which try of it, and the key chosen for it.
#[derive(Debug, Clone, Default)]
pub struct AttemptState {
    /// Index into [`RequestCtx::plan`].
    pub index: usize,
    /// 0 for the first try of this target, then one per retry.
    pub try_number: u32,
    /// Keys of this provider that failed this request (401, 403, 429), by index.
    pub avoid: Vec<usize>,
    /// The key chosen for this try, by index into the provider's keys; `None` for keyless
    /// providers.
    pub key: Option<usize>,
    /// Ask the upstream to report usage in a stream (a budget or token limit counts it).
    pub want_usage: bool,
    /// The upstream answered this try with a success head: the provider did the work, so a
    /// target that fails after this point is billed, not given back.
    pub answered: bool,
    /// Headers filters add to this try's upstream request (a tracing filter's `traceparent`).
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// An output limit to send upstream when the request sets none: governance reserved this
    /// many output tokens, so the provider must not bill more.
    pub output_cap: Option<u64>,
}

/// Facts filters publish for each other.
#[derive(Debug, Default)]
pub struct Facts {
    /// The caller's virtual key (its team and customer are on it).
    pub vk: Option<Arc<VirtualKeyRuntime>>,
    /// The routing rule that chose the plan, when one did.
    pub routing_rule: Option<RuleRef>,
    /// Where a routing rule sent the request: the routing filter plans from this instead of
    /// the request's own model and fallbacks.
    pub route: Option<RouteOverride>,
    /// The fullest budget's use after admission, in percent (0 to 100).
    pub budget_used: Option<f64>,
    /// The fullest request rate limit's use after admission, in percent.
    pub rate_limit_used: Option<f64>,
}

/// A routing rule, by id and name (shared: the rule's own strings, not copies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// The rule's id.
    pub id: Arc<str>,
    /// The rule's name.
    pub name: Arc<str>,
}

/// A routing rule's rewrite of the request's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOverride {
    /// The provider to use.
    pub provider: String,
    /// The model at that provider.
    pub model: String,
    /// The rule's fallbacks (`provider/model` or `provider/`, which keeps the model); `None`
    /// keeps the request's own.
    pub fallbacks: Option<Vec<String>>,
    /// A provider key the rule pins, by id or name.
    pub key_id: Option<String>,
}

/// What a settled request was charged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charge {
    /// Micro-dollars charged to every budget.
    pub cost_micros: i64,
    /// Tokens counted on every token limit.
    pub tokens: u64,
    /// The model had no price: the cost is 0.
    pub unpriced: bool,
    /// No usage was reported: the reservation was charged.
    pub estimated: bool,
    /// A budget counted this charge (so a missing price matters).
    pub budgeted: bool,
}

/// How a request ended. Filled as the request goes; final when `on_complete` runs.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The status the client received (0 when nothing was written).
    pub status: u16,
    /// The plan index of the target that answered, when one did.
    pub served: Option<usize>,
    /// Tries after the first, over every target.
    pub retries: u32,
    /// The usage the provider reported.
    pub usage: Option<TokenUsage>,
    /// What governance charged.
    pub charge: Option<Charge>,
    /// The error type written to the client, when the request failed.
    pub error_type: Option<&'static str>,
    /// The governance decision that refused it.
    pub decision: Option<&'static str>,
    /// The refusal or error message, when the request failed in the gateway.
    pub message: Option<String>,
    /// When the upstream head of the served attempt arrived, since the request started.
    pub upstream_head_after: Option<Duration>,
    /// When the first streamed bytes went to the client, since the request started.
    pub first_chunk_after: Option<Duration>,
    /// When the last streamed bytes went to the client, since the request started.
    pub last_chunk_after: Option<Duration>,
    /// Streamed chunks written to the client.
    pub stream_chunks: u32,
    /// Time spent waiting on upstreams (every try), for the gateway's own overhead.
    pub upstream_time: Duration,
    /// The whole request, until `on_complete`.
    pub total: Option<Duration>,
}

/// One inference request's context.
#[derive(Debug)]
pub struct RequestCtx {
    /// The client's `x-request-id`, or a generated one.
    pub request_id: String,
    /// When the gateway started on the request.
    pub started: Instant,
    /// What the client asked for.
    pub request: GatewayRequest,
    /// Facts for other filters.
    pub facts: Facts,
    /// Targets in order: the primary, then each fallback.
    pub plan: Vec<Attempt>,
    /// The try in progress (or the last one made).
    pub attempt: Option<AttemptState>,
    /// How it ended.
    pub outcome: Outcome,
    /// Headers added to every response the client gets for this request.
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// The reply content kept for the request log.
    pub capture: Capture,
    /// Filters' private per-request state.
    pub slots: Slots,
    /// The client's address as the gateway resolved it (its connection's peer, or the address
    /// a trusted proxy named), for the filters that record it.
    pub client_ip: Option<std::net::IpAddr>,
    /// Set by a refusal that work in progress may clear (a cluster lease fetch, the
    /// tokenizer's tables being built).
    pub recheck: Option<Recheck>,
}

/// A governance refusal that work in progress may clear: a cluster lease fetch round, or the
/// tokenizer's tables an exact prompt count needs. The gateway awaits `wait` (which bounds
/// itself), a few times per request at most, then runs `on_request` again from the filter that
/// refused. No thread is held while it waits.
pub struct Recheck {
    /// Completes when the work ends, or when its bound passes. In a mutex only so that the
    /// context stays `Sync`; it is taken out whole, never locked while awaited.
    wait: std::sync::Mutex<WaitFuture>,
}

/// What a [`Recheck`] awaits.
pub type WaitFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

impl Recheck {
    /// A recheck after `wait`.
    pub fn new(wait: WaitFuture) -> Recheck {
        Recheck {
            wait: std::sync::Mutex::new(wait),
        }
    }

    /// The future to await.
    pub fn into_wait(self) -> WaitFuture {
        match self.wait.into_inner() {
            Ok(wait) => wait,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl std::fmt::Debug for Recheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recheck")
    }
}

impl RequestCtx {
    /// A context for `request`, with no facts yet.
    pub fn new(request_id: String, started: Instant, request: GatewayRequest) -> RequestCtx {
        RequestCtx {
            request_id,
            started,
            request,
            facts: Facts::default(),
            plan: Vec::new(),
            attempt: None,
            outcome: Outcome::default(),
            response_headers: Vec::new(),
            capture: Capture::default(),
            slots: Slots::default(),
            client_ip: None,
            recheck: None,
        }
    }

    /// The target of the try in progress.
    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.plan.get(self.attempt.as_ref()?.index)
    }

    /// The key chosen for the try in progress.
    pub fn current_key(&self) -> Option<&ProviderKey> {
        let key = self.attempt.as_ref()?.key?;
        self.current_attempt()?.provider.keys.get(key)
    }

    /// The target that answered the client, when one did.
    pub fn served_attempt(&self) -> Option<&Attempt> {
        self.plan.get(self.outcome.served?)
    }

    /// The request's cost in micro-dollars: what governance charged, or else the price of the
    /// usage reported; `None` when the model has no price or nothing was used.
    pub fn cost_micros(&self, prices: &crate::pricing::PricingTable) -> Option<i64> {
        if let Some(charge) = self.outcome.charge {
            return (!charge.unpriced).then_some(charge.cost_micros);
        }
        let attempt = self.served_attempt()?;
        let price = prices.lookup(&attempt.provider.name, &attempt.model)?;
        // A request billed per unit costs its units at the unit's price: the units counted at
        // admission (images, characters), or the seconds the reply reported.
        if let Some((unit, count)) = self.request.estimate.units
            && let Some(per_unit) = price.for_unit(unit)
        {
            let reported = self.outcome.usage.map_or(0, |u| u.units);
            let units = if unit == crate::pricing::Unit::Second && reported > 0 {
                reported
            } else {
                count
            };
            return Some(crate::pricing::to_micros(units as f64 * per_unit.per_unit));
        }
        let usage = self.outcome.usage?;
        Some(price.cost_micros(&usage))
    }

    /// Records a failure written to the client.
    pub fn record_error(&mut self, error_type: &'static str, decision: Option<&'static str>, message: &str) {
        self.outcome.error_type = Some(error_type);
        self.outcome.decision = decision;
        self.outcome.message = Some(message.to_string());
    }
}
