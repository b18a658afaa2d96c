//! The forwarder: runs the plan of attempts (primary, its retries, then each fallback). Each try
//! picks a key, prepares the body for the provider's wire, and sends it ([`crate::upstream`]);
//! a success is relayed ([`crate::relay`]), a failure kept to return if nothing succeeds.
//!
//! Nothing is written downstream until an attempt has succeeded or every attempt has failed, so
//! retries and fallbacks never follow a byte sent to the client.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use asbru_filters::Live;
use asbru_filters::governance::{self, Charge, Estimate, Ticket, VirtualKeyRuntime};
use asbru_filters::pricing::TokenUsage;
use asbru_filters::routing::Attempt;
use asbru_filters::routing::keys::{self, KeyError};
use asbru_providers::adapters::exchange::{self, Wire as TranslateWire};
use asbru_providers::errors::{self, ErrorContext, WireError};
use asbru_providers::formats::openai::RequestHead;
use asbru_providers::usage::Usage;
use asbru_store::catalog::{RequestType, Wire};
use asbru_store::snapshot::{self, NetworkSettings, ProviderKey, ProviderRuntime, Upstream};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use rand::Rng;
use tokio::time::Instant;

use crate::relay::{self, Served};
use crate::respond;
use crate::routes::Ingress;
use crate::state::Gateway;
use crate::upstream::{self, UpstreamRequest};

/// Largest upstream error body kept in memory to return to the client.
const MAX_ERROR_BODY: usize = 256 * 1024;

/// One client request, as the forwarder needs it.
pub struct Exchange<'a> {
    /// Request id.
    pub request_id: &'a str,
    /// Chat, embeddings, ...
    pub request_type: RequestType,
    /// The client's wire.
    pub ingress: Ingress,
    /// The client asked for a stream.
    pub stream: bool,
    /// Parsed head of the body.
    pub head: &'a RequestHead,
    /// The body as the client sent it.
    pub body: &'a [u8],
    /// The model as the client named it.
    pub model_requested: &'a str,
    /// `x-bf-eh-*` headers to pass upstream.
    pub forwarded_headers: Vec<(String, Vec<u8>)>,
    /// The client's `Accept`.
    pub accept: Option<Vec<u8>>,
    /// The client's `anthropic-version`.
    pub anthropic_version: Option<Vec<u8>>,
    /// The client's `anthropic-beta`.
    pub anthropic_beta: Option<Vec<u8>>,
}

/// Why an attempt failed.
enum Failure {
    /// The upstream answered with a non-success status.
    Reply {
        head: ResponseHeader,
        body: Bytes,
        wire: TranslateWire,
    },
    /// The gateway could not get an answer (connect error, timeout, no key, bad translation).
    Gateway(WireError),
}

fn translate_wire(wire: Wire) -> TranslateWire {
    match wire {
        Wire::Anthropic => TranslateWire::Anthropic,
        _ => TranslateWire::OpenAi,
    }
}

fn ingress_wire(ingress: Ingress) -> TranslateWire {
    match ingress {
        Ingress::OpenAi => TranslateWire::OpenAi,
        Ingress::Anthropic => TranslateWire::Anthropic,
    }
}

/// Governance for one request: the primary attempt's ticket, and what is needed to admit a
/// fallback (each attempt is checked and reserved on its own provider's and model's caps).
pub struct Governed<'a> {
    /// The live config the request was admitted on.
    pub live: &'a Live,
    /// The caller's virtual key.
    pub vk: Option<Arc<VirtualKeyRuntime>>,
    /// The primary attempt's ticket (`None` when no governance applies).
    pub ticket: Option<Ticket>,
    /// What the request may use.
    pub estimate: Estimate,
    /// When the request arrived.
    pub now: i64,
    /// Whether the provider bills this request type (token counting is free).
    pub billable: bool,
}

impl Governed<'_> {
    /// The ticket for a fallback: `Ok(None)` when no governance applies, `Err` when the
    /// fallback is refused (it is skipped).
    fn admit(&self, attempt: &Attempt) -> Result<Option<Ticket>, asbru_filters::Rejection> {
        governance::admit_attempt(
            &self.live.governance,
            self.vk.as_deref(),
            attempt,
            self.billable,
            &self.estimate,
            self.now,
        )
    }
}

/// Runs `plan` and answers the client. Returns an error only when the client connection failed
/// or a response had to be cut short.
pub async fn run(
    state: &Arc<Gateway>,
    session: &mut Session,
    ex: &Exchange<'_>,
    plan: &[Attempt],
    governed: &mut Governed<'_>,
) -> pingora::Result<()> {
    let mut primary_failure = None;
    for (index, attempt) in plan.iter().enumerate() {
        let mut ticket = if index == 0 {
            governed.ticket.take()
        } else {
            match governed.admit(attempt) {
                Ok(ticket) => ticket,
                Err(rejection) => {
                    tracing::debug!(
                        request_id = ex.request_id,
                        provider = %attempt.provider.name,
                        "fallback skipped: {}",
                        rejection.message
                    );
                    continue;
                }
            }
        };
        match try_target(state, session, ex, attempt, ticket.as_mut()).await? {
            None => return Ok(()),
            Some(failure) => {
                tracing::debug!(
                    request_id = ex.request_id,
                    provider = %attempt.provider.name,
                    fallback_index = attempt.fallback_index,
                    "attempt failed"
                );
                primary_failure.get_or_insert((failure, attempt));
            }
        }
    }
    match primary_failure {
        Some((failure, attempt)) => write_failure(session, ex, attempt, failure).await,
        None => {
            let err = WireError::gateway(500, "api_error", "no provider could be tried for this request");
            respond::error(session, ex.ingress, &err, &error_context(ex, None)).await
        }
    }
}

/// The upstream and path one key reaches for this request.
fn target_of<'a>(
    provider: &'a ProviderRuntime,
    key: Option<&'a ProviderKey>,
    request_type: RequestType,
    upstream_model: &str,
) -> Option<(&'a Upstream, String)> {
    if provider.wire == Wire::Azure {
        let azure = key.and_then(|k| k.azure.as_deref());
        let upstream = azure.map(|a| a.upstream.as_ref()).unwrap_or(&provider.upstream);
        let version = azure
            .map(|a| a.api_version.as_str())
            .unwrap_or(snapshot::DEFAULT_AZURE_API_VERSION);
        let path = snapshot::azure_path(&upstream.base_path, upstream_model, request_type, version)?;
        return Some((upstream, path));
    }
    Some((&provider.upstream, provider.path(request_type)?.to_string()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Tries one target with its retries. `None` means a response was delivered to the client.
async fn try_target(
    state: &Arc<Gateway>,
    session: &mut Session,
    ex: &Exchange<'_>,
    attempt: &Attempt,
    mut ticket: Option<&mut Ticket>,
) -> pingora::Result<Option<Failure>> {
    let failure = try_target_inner(state, session, ex, attempt, ticket.as_deref_mut()).await;
    if let (Ok(Some(_)), Some(ticket)) = (&failure, ticket) {
        // Every try failed before a reply was relayed: nothing was spent.
        ticket.release();
    }
    failure
}

async fn try_target_inner(
    state: &Arc<Gateway>,
    session: &mut Session,
    ex: &Exchange<'_>,
    attempt: &Attempt,
    mut ticket: Option<&mut Ticket>,
) -> pingora::Result<Option<Failure>> {
    let provider = &attempt.provider;
    let want_usage = ticket.as_ref().is_some_and(|t| t.needs_usage());
    let net = &provider.network;
    let upstream_wire = translate_wire(provider.wire);
    let mut avoid: Vec<usize> = Vec::new();
    let mut last_failure = None;
    for try_number in 0..=net.max_retries {
        if try_number > 0 {
            tokio::time::sleep(backoff(net, try_number - 1)).await;
        }
        let allowed = attempt.key_ids.as_deref();
        let choice = match keys::select_within(provider, &attempt.model, &avoid, allowed, &mut rand::rng()) {
            Ok(choice) => choice,
            Err(e) => return Ok(Some(Failure::Gateway(key_error(&e)))),
        };
        let key = choice.map(|(_, k)| k);
        let upstream_model = key.map(|k| k.upstream_model(&attempt.model)).unwrap_or(&attempt.model);
        let prepared = match exchange::prepare(
            ingress_wire(ex.ingress),
            upstream_wire,
            ex.head,
            ex.body,
            upstream_model,
            unix_now(),
            want_usage,
        ) {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Some(Failure::Gateway(WireError::bad_request(e.to_string())))),
        };
        let Some((upstream, path)) = target_of(provider, key, ex.request_type, upstream_model) else {
            let err = WireError::bad_request(format!(
                "provider {} does not support {} requests",
                provider.name,
                ex.request_type.as_str()
            ));
            return Ok(Some(Failure::Gateway(err)));
        };
        let request = UpstreamRequest {
            method: "POST",
            path: &path,
            body: Some(Bytes::from(prepared.body)),
            accept: ex.accept.as_deref(),
            forwarded: &ex.forwarded_headers,
            anthropic_version: ex.anthropic_version.as_deref(),
            anthropic_beta: ex.anthropic_beta.as_deref(),
        };
        let deadline = Instant::now() + net.request_timeout;
        if let Some(ticket) = ticket.as_deref_mut() {
            ticket.mark_sent();
        }
        match upstream::send(state, provider, upstream, key, &request, deadline).await {
            Ok((upstream_session, peer)) => {
                let status = upstream_session
                    .response_header()
                    .map(|h| h.status.as_u16())
                    .unwrap_or(502);
                if (200..300).contains(&status) {
                    let served = Served {
                        provider: &provider.name,
                        resolved_model: upstream_model,
                        fallback_index: attempt.fallback_index,
                        request_id: ex.request_id,
                        ingress: ex.ingress,
                    };
                    let mut reported = None;
                    let mut charge = None;
                    let mut settle = |usage: Option<Usage>| {
                        if charge.is_none()
                            && let Some(t) = ticket.as_deref_mut()
                        {
                            charge = Some(t.charge(usage.map(token_usage)));
                        }
                    };
                    let delivered = relay::deliver(
                        state,
                        session,
                        &served,
                        prepared.reply,
                        upstream_session,
                        peer,
                        deadline,
                        net.stream_idle_timeout,
                        &mut reported,
                        &mut settle,
                    )
                    .await;
                    // The client went away before the end: charge what the provider reported so far.
                    settle(reported);
                    record_charge(state, ex, &provider.name, &attempt.model, charge);
                    let usage = reported.unwrap_or_default();
                    tracing::debug!(
                        request_id = ex.request_id,
                        provider = %provider.name,
                        input_tokens = usage.input_tokens,
                        output_tokens = usage.output_tokens,
                        cache_read_tokens = usage.cache_read_tokens,
                        cache_write_tokens = usage.cache_write_tokens,
                        reasoning_tokens = usage.reasoning_tokens,
                        cost_micros = charge.map(|c| c.cost_micros),
                        unpriced = charge.is_some_and(|c| c.unpriced),
                        "request served"
                    );
                    delivered?;
                    return Ok(None);
                }
                let head = upstream_session.response_header().cloned();
                let body = upstream::read_whole_body(state, upstream_session, &peer, MAX_ERROR_BODY, deadline).await;
                if matches!(status, 401 | 403 | 429)
                    && let Some((index, _)) = choice
                {
                    avoid.push(index);
                }
                let retryable = status == 429
                    || status >= 500
                    || (matches!(status, 401 | 403) && has_unused_key(provider, &attempt.model, &avoid));
                last_failure = Some(match (head, body) {
                    (Some(head), Some(body)) => Failure::Reply {
                        head,
                        body,
                        wire: upstream_wire,
                    },
                    _ => Failure::Gateway(WireError::gateway(
                        502,
                        "api_error",
                        format!(
                            "provider {} answered {status} and its error body could not be read",
                            provider.name
                        ),
                    )),
                });
                if !retryable {
                    break;
                }
            }
            Err(e) => {
                let retryable = e.retryable;
                last_failure = Some(Failure::Gateway(e.error));
                if !retryable {
                    break;
                }
            }
        }
    }
    Ok(last_failure)
}

fn token_usage(u: Usage) -> TokenUsage {
    TokenUsage {
        input: u.input_tokens,
        output: u.output_tokens,
        cache_read: u.cache_read_tokens,
        cache_write: u.cache_write_tokens,
    }
}

/// Metrics and logs for what a request was charged. An unpriced model is never silent.
fn record_charge(state: &Gateway, ex: &Exchange<'_>, provider: &str, model: &str, charge: Option<Charge>) {
    let Some(charge) = charge else {
        return;
    };
    let metrics = &state.metrics;
    if charge.unpriced {
        metrics.unpriced_requests.with_label_values(&[provider, model]).inc();
    }
    if charge.unpriced && charge.budgeted {
        tracing::warn!(
            request_id = ex.request_id,
            provider,
            model,
            "model has no price: its cost is counted as 0 (add a governance.pricing_overrides entry)"
        );
    }
    if charge.estimated && charge.budgeted {
        metrics.estimated_charges.inc();
        tracing::warn!(
            request_id = ex.request_id,
            provider,
            model,
            cost_micros = charge.cost_micros,
            "provider reported no usage: the reservation was charged"
        );
    }
    if charge.cost_micros > 0 {
        metrics
            .cost_micros
            .with_label_values(&[provider, model])
            .inc_by(u64::try_from(charge.cost_micros).unwrap_or(0));
    }
}

fn has_unused_key(provider: &ProviderRuntime, model: &str, avoid: &[usize]) -> bool {
    provider
        .keys
        .iter()
        .enumerate()
        .any(|(i, k)| !avoid.contains(&i) && k.serves(model))
}

fn key_error(e: &KeyError) -> WireError {
    match e {
        KeyError::NoneForModel { .. } => WireError::bad_request(e.to_string()),
        KeyError::NoneConfigured { .. } => WireError::gateway(500, "api_error", e.to_string()),
    }
}

/// `min(initial * 2^n, max)`, times a jitter in [0.8, 1.2] (spec §7.3).
pub fn backoff(net: &NetworkSettings, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.min(20));
    let base = net.backoff_initial.saturating_mul(factor).min(net.backoff_max);
    base.mul_f64(rand::rng().random_range(0.8..=1.2))
}

fn error_context<'a>(ex: &'a Exchange<'a>, provider: Option<&'a str>) -> ErrorContext<'a> {
    ErrorContext {
        request_id: Some(ex.request_id),
        provider,
        model_requested: Some(ex.model_requested),
        request_type: Some(if ex.stream {
            ex.request_type.stream_name()
        } else {
            ex.request_type.as_str()
        }),
    }
}

async fn write_failure(
    session: &mut Session,
    ex: &Exchange<'_>,
    attempt: &Attempt,
    failure: Failure,
) -> pingora::Result<()> {
    let ctx = error_context(ex, Some(&attempt.provider.name));
    match failure {
        Failure::Gateway(err) => respond::error(session, ex.ingress, &err, &ctx).await,
        Failure::Reply { head, body, wire } if wire == ingress_wire(ex.ingress) => {
            // Same wire: the upstream's own error, status and body unchanged.
            let served = Served {
                provider: &attempt.provider.name,
                resolved_model: &attempt.model,
                fallback_index: attempt.fallback_index,
                request_id: ex.request_id,
                ingress: ex.ingress,
            };
            let mut head = relay::client_head(&head, &served, false)?;
            head.insert_header("content-length", body.len().to_string())?;
            session.write_response_header(Box::new(head), false).await?;
            session.write_response_body(Some(body), true).await
        }
        Failure::Reply { head, body, .. } => {
            // Another wire's error: keep its status, type and message, in the client's format.
            let err = errors::from_upstream(head.status.as_u16(), &body);
            respond::error(session, ex.ingress, &err, &ctx).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let net = NetworkSettings {
            request_timeout: Duration::from_secs(1),
            stream_idle_timeout: Duration::from_secs(1),
            max_retries: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            extra_headers: Vec::new(),
            insecure_skip_verify: false,
            enforce_http2: false,
        };
        for _ in 0..100 {
            let first = backoff(&net, 0);
            assert!(
                first >= Duration::from_millis(80) && first <= Duration::from_millis(120),
                "{first:?}"
            );
            let third = backoff(&net, 2);
            assert!(
                third >= Duration::from_millis(320) && third <= Duration::from_millis(480),
                "{third:?}"
            );
            let capped = backoff(&net, 30);
            assert!(capped <= Duration::from_millis(1200), "{capped:?}");
        }
    }
}
