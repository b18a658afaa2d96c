//! The forwarder: runs the plan of attempts (primary, its retries, then each fallback). Before
//! each try the filters' `on_attempt` hooks choose the key and admit the target; the body is
//! prepared for the provider's wire and sent ([`super::upstream`]); a success passes
//! `on_upstream_head` and is relayed ([`super::relay`]), a failure is kept to return if nothing
//! succeeds, and a target whose tries all failed, or that a filter skipped, gets
//! `on_attempt_failed`.
//!
//! Nothing is written downstream until an attempt has succeeded or every attempt has failed, so
//! retries and fallbacks never follow a byte sent to the client.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use asbru_config::catalog::{RequestType, Wire};
use asbru_filters::concurrency::{ConcurrencyGate, GateRefusal};
use asbru_filters::snapshot::{NetworkSettings, ProviderKey, ProviderRuntime, Upstream};
use asbru_filters::{AttemptFlow, AttemptState, Flow, Live, RequestCtx, UpstreamHead};
use asbru_providers::adapters::exchange;
use asbru_providers::errors::{self, ErrorContext, WireError};
use asbru_providers::formats::openai::{OutputCap, RequestHead};
use asbru_providers::provider;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use rand::Rng;
use tokio::time::Instant;

use super::rejection_to_wire;
use super::relay::{self, Served};
use super::settlement::Settlement;
use super::upstream::{self, UpstreamRequest};
use crate::respond;
use crate::state::Gateway;

/// Largest upstream error body kept in memory to return to the client.
const MAX_ERROR_BODY: usize = 256 * 1024;

/// One client request, as the forwarder needs it.
pub struct Exchange<'a> {
    /// Request id.
    pub request_id: &'a str,
    /// Chat, embeddings, ...
    pub request_type: RequestType,
    /// The client's wire.
    pub ingress: Wire,
    /// The client asked for a stream.
    pub stream: bool,
    /// Parsed head of the body.
    pub head: &'a RequestHead,
    /// The body as the client sent it.
    pub body: &'a [u8],
    /// A Gemini client's method (`generateContent`, `embedContent`, ...), passed on when the
    /// upstream speaks Gemini too.
    pub native_method: Option<&'static str>,
    /// A call on a stored object (a response, a file, a batch) instead of a generation.
    pub stored: Option<&'a crate::routes::StoredCall>,
    /// The caller presents a virtual key: lists of files and batches show only its own.
    pub tenant: bool,
    /// An audio upload's form, whose `model` field is rewritten for the upstream.
    pub form: Option<&'a super::multipart::Form>,
    /// The client's `Content-Type` (a multipart boundary, for uploads passed on as sent).
    pub content_type: Option<Vec<u8>>,
    /// The caller, as the response affinity map identifies it.
    pub owner: u64,
    /// The provider keeps the response this request creates (`store` not `false`): remember
    /// where it lives.
    pub remember_created: bool,
    /// `x-bf-eh-*` headers to pass upstream.
    pub forwarded_headers: Vec<(String, Vec<u8>)>,
    /// The client's `Accept`.
    pub accept: Option<Vec<u8>>,
    /// The client's `anthropic-version`.
    pub anthropic_version: Option<Vec<u8>>,
    /// The client's `anthropic-beta`.
    pub anthropic_beta: Option<Vec<u8>>,
    /// `x-bf-send-back-raw-response: true`: the provider's own reply in `extra_fields`.
    pub raw_response: bool,
}

/// Why an attempt failed.
enum Failure {
    /// The upstream answered with a non-success status.
    Reply {
        head: ResponseHeader,
        body: Bytes,
        wire: Wire,
    },
    /// The gateway could not get an answer (connect error, timeout, no key, bad translation).
    Gateway(WireError),
}

/// What became of one target.
enum TargetEnd {
    /// A reply went to the client.
    Delivered,
    /// A filter refused to try it.
    Skipped,
    /// Every try failed.
    Failed(Box<Failure>),
}

/// Runs the plan in `ctx` and answers the client. Returns an error only when the client
/// connection failed or a response had to be cut short.
pub async fn run(
    state: &Arc<Gateway>,
    session: &mut Session,
    ex: &Exchange<'_>,
    live: &Live,
    ctx: &mut RequestCtx,
) -> pingora::Result<()> {
    let mut first_failure = None;
    for index in 0..ctx.plan.len() {
        match try_target(state, session, ex, live, ctx, index).await? {
            TargetEnd::Delivered => return Ok(()),
            TargetEnd::Skipped => state.chain.on_attempt_failed(live, ctx),
            TargetEnd::Failed(failure) => {
                tracing::debug!(request_id = ex.request_id, index, "attempt failed");
                state.chain.on_attempt_failed(live, ctx);
                first_failure.get_or_insert((failure, index));
            }
        }
    }
    match first_failure {
        Some((failure, index)) => write_failure(session, ex, ctx, index, *failure).await,
        None => {
            let err = WireError::gateway(500, "api_error", "no provider could be tried for this request");
            ctx.record_error(err.error_type, None, &err.message);
            let err_ctx = error_context(ex, ctx, None);
            respond::error_with(session, ex.ingress, &err, &err_ctx, &ctx.response_headers).await
        }
    }
}

/// The upstream and path one key reaches for this request.
fn target_of<'a>(
    provider: &'a ProviderRuntime,
    key: Option<&'a ProviderKey>,
    request_type: RequestType,
    upstream_model: &str,
    stream: bool,
    native_method: Option<&str>,
    messages_body: bool,
) -> Option<(&'a Upstream, Cow<'a, str>)> {
    match provider.wire {
        Wire::Azure => {
            let azure = key.and_then(|k| k.azure.as_deref());
            let upstream = azure.map(|a| a.upstream.as_ref()).unwrap_or(&provider.upstream);
            let version = azure
                .map(|a| a.api_version.as_str())
                .unwrap_or(provider::azure::DEFAULT_API_VERSION);
            let path = provider::azure::path(&upstream.base_path, upstream_model, request_type, version)?;
            Some((upstream, Cow::Owned(path)))
        }
        // A custom provider's path override wins; a Gemini client's own method is passed on;
        // otherwise the model and the method are in the path.
        Wire::Gemini => match (provider.path(request_type), native_method) {
            (Some(path), _) => Some((&provider.upstream, Cow::Borrowed(path))),
            (None, Some(method)) => Some((
                &provider.upstream,
                Cow::Owned(provider::gemini::method_path(
                    &provider.upstream.base_path,
                    upstream_model,
                    method,
                )),
            )),
            (None, None) => Some((
                &provider.upstream,
                Cow::Owned(provider::gemini::path(
                    &provider.upstream.base_path,
                    upstream_model,
                    request_type,
                    stream,
                )?),
            )),
        },
        // The key's region (or the provider's base URL), project and publisher name the path.
        Wire::Vertex => {
            let vertex = key.and_then(|k| k.vertex.as_deref());
            let upstream = vertex.map(|v| v.upstream.as_ref()).unwrap_or(&provider.upstream);
            let location = vertex.and_then(|v| {
                Some(provider::vertex::Location {
                    project: v.project_id.as_deref()?,
                    region: &v.region,
                })
            });
            let path = provider::vertex::path(&upstream.base_path, location, upstream_model, request_type, stream)?;
            Some((upstream, Cow::Owned(path)))
        }
        // The key's region (or the provider's base URL) names the host; the model id, with the
        // key's inference-profile ARN when set, is one path segment.
        Wire::Bedrock => {
            let bedrock = key.and_then(|k| k.bedrock.as_deref());
            let upstream = bedrock.map(|b| b.upstream.as_ref()).unwrap_or(&provider.upstream);
            let model_id = provider::bedrock::model_id(bedrock.and_then(|b| b.arn.as_deref()), upstream_model);
            let path = if messages_body && request_type == RequestType::ChatCompletion {
                // Claude's Messages body goes to `invoke`.
                provider::bedrock::invoke_path(&upstream.base_path, &model_id, stream)
            } else {
                provider::bedrock::path(&upstream.base_path, &model_id, request_type, stream)?
            };
            Some((upstream, Cow::Owned(path)))
        }
        // The path built once per config: borrowed, not copied per try.
        Wire::OpenAi | Wire::Anthropic | Wire::Cohere => {
            Some((&provider.upstream, Cow::Borrowed(provider.path(request_type)?)))
        }
    }
}

/// Tries one target of the plan with its retries.
async fn try_target(
    state: &Arc<Gateway>,
    session: &mut Session,
    ex: &Exchange<'_>,
    live: &Live,
    ctx: &mut RequestCtx,
    index: usize,
) -> pingora::Result<TargetEnd> {
    // Shared handles (reference counts), so the hooks can take the context mutably.
    let Some(attempt) = ctx.plan.get(index).cloned() else {
        return Ok(TargetEnd::Skipped);
    };
    let provider = &attempt.provider;
    let health = live.health.get(&provider.name).cloned();
    let record_health = |ok: bool| {
        if let Some(window) = &health {
            window.record(crate::state::unix_now(), ok);
        }
    };
    let net = &provider.network;
    let upstream_wire = provider.wire;
    ctx.attempt = Some(AttemptState {
        index,
        ..AttemptState::default()
    });
    // Concurrency control (concurrency_and_buffer_size): a slot held for every try of this
    // target, relay included; a refusal fails the target, so a fallback can still serve.
    let _slot = match &provider.gate {
        None => None,
        Some(gate) => match gate.enter((Instant::now() + net.request_timeout).into_std()).await {
            Ok(slot) => Some(slot),
            Err(refusal) => {
                return Ok(TargetEnd::Failed(Box::new(Failure::Gateway(gate_refusal(
                    &provider.name,
                    gate,
                    refusal,
                )))));
            }
        },
    };
    let mut last_failure = None;
    // A delay the upstream asked for (Retry-After on 429/503), used instead of the backoff.
    let mut asked_delay: Option<Duration> = None;
    for try_number in 0..=net.max_retries {
        if try_number > 0 {
            // The provider's retry budget: retries are at most a fifth of its recent tries.
            if health.as_ref().is_some_and(|h| !h.take_retry(crate::state::unix_now())) {
                tracing::debug!(request_id = ex.request_id, provider = %provider.name, "retry budget spent: moving on");
                break;
            }
            let delay = asked_delay.take().unwrap_or_else(|| backoff(net, try_number - 1));
            tokio::time::sleep(delay).await;
            ctx.outcome.retries += 1;
        }
        if let Some(state) = ctx.attempt.as_mut() {
            state.try_number = try_number;
        }
        match state.chain.on_attempt(live, ctx) {
            AttemptFlow::Continue => {}
            AttemptFlow::Skip(rejection) => {
                tracing::debug!(
                    request_id = ex.request_id,
                    provider = %provider.name,
                    "fallback skipped: {}",
                    rejection.message
                );
                return Ok(TargetEnd::Skipped);
            }
            AttemptFlow::Fail(rejection) => {
                return Ok(TargetEnd::Failed(Box::new(Failure::Gateway(rejection_to_wire(
                    rejection,
                )))));
            }
        }
        let (key_index, want_usage, output_cap) = ctx
            .attempt
            .as_ref()
            .map(|a| (a.key, a.want_usage, a.output_cap))
            .unwrap_or_default();
        // OpenAI's reasoning models take only `max_completion_tokens`; compatible servers know
        // `max_tokens`.
        let output_cap = output_cap.map(|tokens| OutputCap {
            field: if matches!(provider.name.as_str(), "openai" | "azure") {
                "max_completion_tokens"
            } else {
                "max_tokens"
            },
            tokens,
        });
        // A direct key (the request's own, see Credentials::direct_key) stands in for a
        // configured one; it is never logged (its name is "direct").
        let direct = ctx
            .request
            .credentials
            .direct_key
            .then(|| ctx.request.credentials.bearer.as_deref().map(direct_key))
            .flatten();
        let key = direct.as_ref().or_else(|| key_index.and_then(|i| provider.keys.get(i)));
        let upstream_model = key.map(|k| k.upstream_model(&attempt.model)).unwrap_or(&attempt.model);
        // Vertex carries other publishers' bodies: Gemini's for Gemini models, Anthropic's for
        // Claude; translation, usage and errors follow that body's wire.
        // Bedrock serves Claude to Anthropic clients (Claude Code) through `invoke` with the
        // Messages body, so thinking blocks, signatures and cache points go as the client sent
        // them; other clients and models go through Converse.
        let upstream_wire = match upstream_wire {
            Wire::Vertex => provider::vertex::body_wire(upstream_model),
            Wire::Bedrock
                if ex.ingress == Wire::Anthropic
                    && ex.request_type == RequestType::ChatCompletion
                    && provider::bedrock::invokes_messages(upstream_model) =>
            {
                Wire::Anthropic
            }
            wire => wire,
        };
        // Audio, images, moderations, files and batches are OpenAI's own APIs: served by the
        // OpenAI-wire providers that have them, refused by the others before anything is sent.
        let media = is_media(ex.request_type);
        if media && !matches!(provider.wire, Wire::OpenAi | Wire::Azure) {
            return Ok(TargetEnd::Failed(Box::new(Failure::Gateway(unsupported(
                provider,
                ex.request_type,
            )))));
        }
        // The content type of a body that is not JSON: an upload passed on, or a form rewritten.
        let mut body_type: Option<Vec<u8>> = None;
        let prepared = match (ex.stored, ex.form) {
            // A stored object's call passes through: no usage to read. A create sends the
            // client's body (a file upload, a batch) as it came.
            (Some(call), _) => {
                if call.creates {
                    body_type.clone_from(&ex.content_type);
                }
                Ok(exchange::Prepared {
                    body: if call.creates { ex.body.to_vec() } else { Vec::new() },
                    reply: exchange::ReplyTranslator::stored(upstream_wire),
                })
            }
            // An audio upload: the form as sent, or with only its model field rewritten.
            (None, Some(form)) => {
                let body = if form.text("model") == Some(upstream_model) {
                    body_type.clone_from(&ex.content_type);
                    ex.body.to_vec()
                } else {
                    let (body, content_type) = form.with_text("model", upstream_model);
                    body_type = Some(content_type.into_bytes());
                    body
                };
                Ok(exchange::Prepared {
                    body,
                    reply: exchange::ReplyTranslator::media(upstream_wire),
                })
            }
            // Speech, images, moderations: the JSON body with the model rewritten.
            (None, None) if media => Ok(exchange::Prepared {
                body: ex.head.upstream_body(ex.body, upstream_model),
                reply: exchange::ReplyTranslator::media(upstream_wire),
            }),
            (None, None) => exchange::prepare(
                ex.ingress,
                upstream_wire,
                ex.head,
                ex.body,
                upstream_model,
                u64::try_from(crate::state::unix_now()).unwrap_or(0),
                exchange::UpstreamOptions {
                    want_usage,
                    output_cap,
                    embeddings: ex.request_type == RequestType::Embedding,
                    count_tokens: ex.request_type == RequestType::CountTokens,
                    api: match ex.request_type {
                        RequestType::Responses => exchange::OpenAiApi::Responses,
                        RequestType::TextCompletion => exchange::OpenAiApi::Completions,
                        _ => exchange::OpenAiApi::Chat,
                    },
                    native: provider.native(ex.request_type, ex.stream),
                    upstream_responses: ex.request_type == RequestType::ChatCompletion
                        && provider.chat_as_responses(ex.stream),
                },
            ),
        };
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                return Ok(TargetEnd::Failed(Box::new(Failure::Gateway(WireError::bad_request(
                    e.to_string(),
                )))));
            }
        };
        let mut prepared = prepared;
        if provider.wire == Wire::Vertex && upstream_wire == Wire::Anthropic && !prepared.body.is_empty() {
            match provider::vertex::anthropic_body(&prepared.body) {
                Some(body) => prepared.body = body,
                None => {
                    let err = WireError::bad_request("the request body is not a JSON object");
                    return Ok(TargetEnd::Failed(Box::new(Failure::Gateway(err))));
                }
            }
        }
        if provider.wire == Wire::Bedrock && upstream_wire == Wire::Anthropic && !prepared.body.is_empty() {
            match provider::bedrock::anthropic_body(&prepared.body) {
                Some(body) => {
                    prepared.body = body;
                    prepared.reply = exchange::ReplyTranslator::bedrock_invoke(ex.head.stream);
                }
                None => {
                    let err = WireError::bad_request("the request body is not a JSON object");
                    return Ok(TargetEnd::Failed(Box::new(Failure::Gateway(err))));
                }
            }
        }
        // A Vertex service account's access token (cached; fetched when none is usable).
        let service_account = (provider.wire == Wire::Vertex)
            .then(|| key.and_then(|k| k.vertex.as_ref()?.service_account.as_ref()))
            .flatten();
        let bearer = match service_account {
            None => None,
            Some(account) => match state
                .vertex_tokens
                .bearer(
                    &(Arc::clone(state) as Arc<dyn crate::vertex_auth::FormPoster>),
                    account,
                    net,
                )
                .await
            {
                Ok(token) => Some(token),
                Err(err) => {
                    record_health(false);
                    last_failure = Some(Failure::Gateway(err));
                    continue;
                }
            },
        };
        // Responses and legacy completions reach a provider without them as chat (and chat a
        // provider configured for the Responses API alone as Responses).
        let upstream_request_type = provider.upstream_request_type(ex.request_type, ex.stream);
        let target = target_of(
            provider,
            key,
            upstream_request_type,
            upstream_model,
            ex.head.stream,
            ex.native_method.filter(|_| ex.ingress == upstream_wire),
            provider.wire == Wire::Bedrock && upstream_wire == Wire::Anthropic,
        );
        // A stored response's call: `{responses path}/{id}{suffix}`, with the client's query.
        let target = match (ex.stored, target) {
            (Some(call), Some((upstream, path))) if provider.native(ex.request_type, false) => Some((
                upstream,
                Cow::Owned(stored_path(&path, call, ctx.request.query.as_deref())),
            )),
            (Some(_), _) => None,
            (None, target) => target,
        };
        let Some((upstream, path)) = target else {
            let err = WireError::bad_request(format!(
                "provider {} does not support {} requests",
                provider.name,
                ex.request_type.as_str()
            ));
            return Ok(TargetEnd::Failed(Box::new(Failure::Gateway(err))));
        };
        let attempt_headers = ctx
            .attempt
            .as_ref()
            .map(|a| a.upstream_headers.clone())
            .unwrap_or_default();
        let request = UpstreamRequest {
            method: ex.stored.map_or("POST", |call| call.method),
            path: &path,
            // Reads and deletes have no body; every POST has one, if empty.
            body: (ex.stored.is_none_or(|call| call.method == "POST")).then(|| Bytes::from(prepared.body)),
            accept: ex.accept.as_deref(),
            forwarded: &ex.forwarded_headers,
            attempt_headers: &attempt_headers,
            anthropic_version: ex.anthropic_version.as_deref(),
            anthropic_beta: ex.anthropic_beta.as_deref(),
            bearer: bearer.as_deref(),
            content_type: body_type.as_deref(),
        };
        let deadline = Instant::now() + net.request_timeout;
        match upstream::send(state, provider, upstream, key, &request, deadline).await {
            Ok((upstream_session, peer)) => {
                let Some(upstream_head) = upstream_session.response_header() else {
                    record_health(false);
                    last_failure = Some(Failure::Gateway(WireError::gateway(
                        502,
                        "api_error",
                        format!("provider {} sent no response head", provider.name),
                    )));
                    continue;
                };
                let status = upstream_head.status.as_u16();
                record_health(status < 500 && status != 429);
                if (200..300).contains(&status) {
                    if let Some(state) = ctx.attempt.as_mut() {
                        state.answered = true;
                    }
                    let head = UpstreamHead {
                        status,
                        headers: &upstream_head.headers,
                    };
                    if let Flow::Reject(rejection) = state.chain.on_upstream_head(live, ctx, &head) {
                        return Ok(TargetEnd::Failed(Box::new(Failure::Gateway(rejection_to_wire(
                            rejection,
                        )))));
                    }
                    ctx.outcome.served = Some(index);
                    ctx.outcome.upstream_head_after = Some(ctx.started.elapsed());
                    // A response the provider stored is remembered with the account holding
                    // it; a deleted one is forgotten.
                    let remember = |id: &str| match ex.stored {
                        Some(call) if call.method == "DELETE" => state.responses.forget(&call.id),
                        Some(call) if call.creates => state.responses.remember(
                            id,
                            crate::response_affinity::StoredAt {
                                provider: provider.name.as_str().into(),
                                key_id: key.filter(|k| k.id != "direct").map(|k| k.id.as_str().into()),
                                owner: ex.owner,
                                model: "*".into(),
                            },
                        ),
                        Some(_) => {}
                        None if ex.remember_created => state.responses.remember(
                            id,
                            crate::response_affinity::StoredAt {
                                provider: provider.name.as_str().into(),
                                key_id: key.filter(|k| k.id != "direct").map(|k| k.id.as_str().into()),
                                owner: ex.owner,
                                model: attempt.model.as_ref().into(),
                            },
                        ),
                        None => {}
                    };
                    // Files a batch produced belong to the batch's caller; a tenant's list shows
                    // only what it owns.
                    let holder = crate::response_affinity::StoredAt {
                        provider: provider.name.as_str().into(),
                        key_id: key.filter(|k| k.id != "direct").map(|k| k.id.as_str().into()),
                        owner: ex.owner,
                        model: "*".into(),
                    };
                    let inspect = |body: &[u8]| -> Option<Vec<u8>> {
                        if ex.request_type == RequestType::Batches {
                            for file in crate::response_affinity::batch_files(body) {
                                if state.responses.find(&file).is_none() {
                                    state.responses.remember(&file, holder.clone());
                                }
                            }
                        }
                        let listing = ex.stored.is_some_and(|c| c.id.is_empty() && c.method == "GET");
                        (listing && ex.tenant)
                            .then(|| state.responses.owned_list(body, ex.owner))
                            .flatten()
                    };
                    let served = Served {
                        provider: &provider.name,
                        resolved_model: upstream_model,
                        fallback_index: attempt.fallback_index,
                        request_id: ex.request_id,
                        ingress: ex.ingress,
                        request_type: ex.request_type,
                        raw_response: provider.send_back_raw_response || ex.raw_response,
                        on_stored: Some(&remember),
                        inspect: matches!(ex.request_type, RequestType::Files | RequestType::Batches)
                            .then_some(&inspect),
                    };
                    let mut settlement = Settlement::new(&state.chain, live, ctx);
                    let delivered = relay::deliver(
                        state,
                        session,
                        &served,
                        prepared.reply,
                        upstream_session,
                        peer,
                        deadline,
                        net.stream_idle_timeout,
                        &mut settlement,
                    )
                    .await;
                    // The client went away before the end: charge what the provider reported so far.
                    settlement.settle();
                    delivered?;
                    return Ok(TargetEnd::Delivered);
                }
                let mut head = upstream_head.clone();
                let body = upstream::read_whole_body(state, upstream_session, &peer, MAX_ERROR_BODY, deadline)
                    .await
                    // An upstream may echo the key it was sent: never hand it on.
                    .map(|body| {
                        super::scrub::scrub_reply(
                            &mut head,
                            body,
                            provider.keys.iter().flat_map(|k| {
                                std::iter::once(k.secret.as_str()).chain(
                                    k.bedrock
                                        .iter()
                                        .flat_map(|b| b.credentials.iter().flat_map(|c| c.secrets())),
                                )
                            }),
                        )
                    });
                // A key refused with another status than 401 (Gemini's 400) is a refused key.
                let status = match &body {
                    Some(body) if provider::key_refused(upstream_wire, status, body) => {
                        head.set_status(401)?;
                        401
                    }
                    _ => status,
                };
                if matches!(status, 401 | 403 | 429)
                    && let (Some(index), Some(attempt_state)) = (key_index, ctx.attempt.as_mut())
                {
                    attempt_state.avoid.push(index);
                    cool_down(state, live, provider, index, status);
                }
                if matches!(status, 429 | 503) {
                    asked_delay = retry_after(&head, deadline);
                }
                let avoid = ctx.attempt.as_ref().map(|a| a.avoid.as_slice()).unwrap_or_default();
                let retryable = status == 429
                    || status >= 500
                    // A refused direct key is the caller's own: no configured key stands in for it.
                    || (matches!(status, 401 | 403)
                        && direct.is_none()
                        && has_unused_key(provider, &attempt.model, avoid));
                last_failure = Some(match body {
                    Some(body) => Failure::Reply {
                        head,
                        body,
                        // Bedrock's errors are AWS's, whatever body the request carried.
                        wire: if provider.wire == Wire::Bedrock {
                            Wire::Bedrock
                        } else {
                            upstream_wire
                        },
                    },
                    None => Failure::Gateway(WireError::gateway(
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
                record_health(false);
                let retryable = e.retryable;
                last_failure = Some(Failure::Gateway(e.error));
                if !retryable {
                    break;
                }
            }
        }
    }
    Ok(match last_failure {
        Some(failure) => TargetEnd::Failed(Box::new(failure)),
        None => TargetEnd::Skipped,
    })
}

/// The upstream path of a stored-response call: the provider's Responses path (its query, such
/// as Azure's `api-version`, kept after) with `/{id}{suffix}`, and the client's query.
fn stored_path(responses_path: &str, call: &crate::routes::StoredCall, client_query: Option<&str>) -> String {
    let (base, query) = responses_path.split_once('?').unwrap_or((responses_path, ""));
    // A call on the collection (a create, a list) names no id.
    let mut path = if call.id.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{}{}", call.id, call.suffix)
    };
    let queries: Vec<&str> = [query, client_query.unwrap_or_default()]
        .into_iter()
        .filter(|q| !q.is_empty())
        .collect();
    if !queries.is_empty() {
        path.push('?');
        path.push_str(&queries.join("&"));
    }
    path
}

/// Whether `request_type` is one of OpenAI's own APIs besides chat: audio, images,
/// moderations, files, batches.
fn is_media(request_type: RequestType) -> bool {
    matches!(
        request_type,
        RequestType::Speech
            | RequestType::Transcription
            | RequestType::Translation
            | RequestType::ImageGeneration
            | RequestType::Moderation
            | RequestType::Files
            | RequestType::Batches
    )
}

/// Bifrost's "unsupported operation": the provider has no such API.
fn unsupported(provider: &ProviderRuntime, request_type: RequestType) -> WireError {
    WireError::bad_request(format!(
        "unsupported operation: provider {} does not support {} requests",
        provider.name,
        request_type.as_str()
    ))
    .with_code("unsupported_operation")
}

/// A request's own provider key as a key to send.
fn direct_key(secret: &str) -> ProviderKey {
    ProviderKey {
        id: "direct".to_string(),
        name: "direct".to_string(),
        secret: secret.to_string(),
        models: asbru_filters::snapshot::ModelFilter::All,
        blacklisted: Vec::new(),
        weight: 1.0,
        aliases: Default::default(),
        azure: None,
        vertex: None,
        bedrock: None,
        // Built per request from the wire (a direct key is per request anyway).
        auth: None,
    }
}

/// The error for a request the provider's concurrency gate turned away.
fn gate_refusal(provider: &str, gate: &ConcurrencyGate, refusal: GateRefusal) -> WireError {
    match refusal {
        GateRefusal::QueueFull => WireError::gateway(
            429,
            "rate_limit_error",
            format!(
                "provider {provider} is at its concurrency limit ({} in flight, {} queued): request dropped",
                gate.concurrency, gate.buffer_size
            ),
        )
        .with_code("queue_full"),
        GateRefusal::TimedOut => WireError::gateway(
            504,
            "timeout_error",
            format!(
                "provider {provider} had no free slot (concurrency {}) before the request timed out",
                gate.concurrency
            ),
        ),
    }
}

/// The longest `Retry-After` honoured; a longer one is cut to this.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);

/// The delay a 429/503 asks for (`Retry-After` in seconds), capped, and within the deadline.
fn retry_after(head: &ResponseHeader, deadline: Instant) -> Option<Duration> {
    let seconds: u64 = head.headers.get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    let left = deadline.saturating_duration_since(Instant::now());
    Some(Duration::from_secs(seconds).min(RETRY_AFTER_CAP).min(left))
}

/// Records a key's refusal; a key that starts a cooldown is logged and counted.
fn cool_down(state: &Gateway, live: &Live, provider: &ProviderRuntime, index: usize, status: u16) {
    let Some(cooldown) = live.cooldowns.get(&provider.name).and_then(|keys| keys.get(index)) else {
        return;
    };
    let seconds = provider.network.key_cooldown_seconds;
    if seconds > 0 && cooldown.refused(status, crate::state::unix_now(), seconds) {
        let key = provider.keys.get(index).map(|k| k.name.as_str()).unwrap_or_default();
        tracing::warn!(
            provider = %provider.name,
            key,
            status,
            "provider key skipped for {seconds}s after it answered {status}"
        );
        state.metrics.key_cooldowns.with_label_values(&[&provider.name]).inc();
    }
}

fn has_unused_key(provider: &ProviderRuntime, model: &str, avoid: &[usize]) -> bool {
    provider
        .keys
        .iter()
        .enumerate()
        .any(|(i, k)| !avoid.contains(&i) && k.serves(model))
}

/// `min(initial * 2^n, max)`, times a jitter in [0.8, 1.2], as Bifrost's retry backoff.
pub fn backoff(net: &NetworkSettings, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.min(20));
    let base = net.backoff_initial.saturating_mul(factor).min(net.backoff_max);
    base.mul_f64(rand::rng().random_range(0.8..=1.2))
}

fn error_context<'a>(ex: &'a Exchange<'a>, ctx: &'a RequestCtx, provider: Option<&'a str>) -> ErrorContext<'a> {
    ErrorContext {
        request_id: Some(ex.request_id),
        provider,
        model_requested: Some(&ctx.request.model_requested),
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
    ctx: &mut RequestCtx,
    index: usize,
    failure: Failure,
) -> pingora::Result<()> {
    let Some(attempt) = ctx.plan.get(index).cloned() else {
        let err = WireError::gateway(500, "api_error", "no provider could be tried for this request");
        return respond::error_with(
            session,
            ex.ingress,
            &err,
            &error_context(ex, ctx, None),
            &ctx.response_headers,
        )
        .await;
    };
    match &failure {
        Failure::Gateway(err) => ctx.record_error(err.error_type, None, &err.message),
        Failure::Reply { head, .. } => {
            ctx.outcome.error_type = Some(if head.status.as_u16() >= 500 {
                "upstream_error"
            } else {
                "upstream_rejected"
            })
        }
    }
    let err_ctx = error_context(ex, ctx, Some(&attempt.provider.name));
    let extra = &ctx.response_headers;
    match failure {
        Failure::Gateway(err) => respond::error_with(session, ex.ingress, &err, &err_ctx, extra).await,
        Failure::Reply { head, body, wire } if provider::error_shape(wire) == provider::error_shape(ex.ingress) => {
            // Same wire: the upstream's own error, status and body unchanged.
            let served = Served {
                provider: &attempt.provider.name,
                resolved_model: &attempt.model,
                fallback_index: attempt.fallback_index,
                request_id: ex.request_id,
                ingress: ex.ingress,
                request_type: ex.request_type,
                raw_response: false,
                on_stored: None,
                inspect: None,
            };
            let mut head = relay::client_head(&head, &served, false, extra)?;
            head.insert_header("content-length", body.len().to_string())?;
            crate::cors::decorate(&mut head, session);
            session.write_response_header(Box::new(head), false).await?;
            session.write_response_body(Some(body), true).await
        }
        Failure::Reply { head, body, .. } => {
            // Another wire's error: keep its status, type and message, in the client's format.
            let err = errors::from_upstream(head.status.as_u16(), &body);
            respond::error_with(session, ex.ingress, &err, &err_ctx, extra).await
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
            trusted_ca: None,
            trust_group: 0,
            enforce_http2: false,
            key_cooldown_seconds: 30,
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
