//! The exchange: what asbru does for an inference request instead of Pingora's upstream phases.
//!
//! Pingora chooses the upstream (`upstream_peer`) before it reads the request body, and Pingora
//! 0.9 replays at most 64 KiB of a body read in `request_filter`. Prompts above 64 KiB are
//! routine, and each fallback may need a different body (another model name, another wire), so
//! LLM routes read the body in `request_filter` and run the upstream exchange here, through
//! Pingora's pooled [`pingora::connectors::http::Connector`]. This module re-implements, and is
//! the only place that does:
//!
//! 1. reading the whole body under the size cap, and answering `Expect: 100-continue` ([`body`]);
//! 2. the pooled upstream session: peer choice, request head with the provider's auth, send,
//!    response head, retry on a stale pooled connection, release to the pool ([`upstream`]);
//! 3. hop-by-hop header stripping in both directions, and `x-bf-eh-*` forwarding ([`headers`]);
//! 4. the loop over retries and fallbacks, calling the filters' attempt hooks ([`forward`]);
//! 5. relaying the reply, translated or not, streams included ([`relay`]), with the usage hook
//!    ([`settlement`]).
//!
//! It can be deleted when Pingora ships a way to buffer the whole request body before choosing
//! the upstream and to replay it to another peer on retry (the `set_buffered_body` work in
//! Pingora's PR #816); the hooks would then move onto `upstream_peer`,
//! `upstream_request_filter`, `response_filter` and `response_body_filter`.

pub mod body;
pub mod forward;
pub mod headers;
pub mod multipart;
pub mod peer;
pub mod relay;
pub mod request_head;
pub mod scrub;
pub mod settlement;
pub mod upstream;

use std::sync::Arc;
use std::time::Instant;

use asbru_config::catalog::RequestType;
use asbru_filters::auth::Credentials;
use asbru_filters::governance::Estimate;
use asbru_filters::{Flow, GatewayRequest, Live, Rejection, RequestCtx};
use asbru_providers::errors::{ErrorContext, WireError};
use asbru_providers::formats::openai::{BodyError, RequestHead};
use pingora::proxy::Session;

use crate::respond;
use crate::state::Gateway;
use asbru_config::catalog::Wire;

/// How many times one request waits for a cluster lease fetch before its refusal stands.
const MAX_LEASE_RECHECKS: usize = 3;

/// An inference request in flight: the config it runs on and its context. Kept in Pingora's
/// per-request `CTX`, so the `logging` phase can run the completion hooks.
pub struct InFlight {
    /// The config loaded when the request started.
    pub live: Arc<Live>,
    /// The filters' view of the request.
    pub ctx: RequestCtx,
}

/// Where the model comes from.
#[derive(Debug, Clone)]
pub enum Target {
    /// The body's `model`, with this provider assumed when it has no prefix.
    Model {
        /// Provider implied by the route.
        default_provider: Option<&'static str>,
    },
    /// An Azure SDK path's deployment (`azure/<deployment>`, or `<provider>/<model>` if prefixed).
    AzureDeployment(String),
    /// A Gemini path's model (a bare name means Gemini), and whether the method streams.
    GeminiModel {
        /// The model, decoded.
        model: String,
        /// The client's method (`generateContent`, `streamGenerateContent`, ...).
        method: &'static str,
        /// The method streams.
        stream: bool,
    },
    /// A Bedrock path's model id (a bare id means Bedrock), and whether the action streams.
    BedrockModel {
        /// The model id, decoded.
        model: String,
        /// `converse-stream`.
        stream: bool,
    },
    /// A response the provider stored (read, deleted, cancelled): sent to the provider and key
    /// that created it, when the gateway relayed it; otherwise to `default_provider`, else
    /// OpenAI.
    Stored {
        /// The call.
        call: crate::routes::StoredCall,
        /// Provider implied by the route.
        default_provider: Option<&'static str>,
    },
}

/// One inference route's request.
pub struct Route {
    /// Chat, embeddings, ...
    pub request_type: RequestType,
    /// The client's wire.
    pub ingress: Wire,
    /// Where the model comes from.
    pub target: Target,
}

/// Handles one inference request end to end; `slot` receives the in-flight state.
pub async fn handle(
    state: &Arc<Gateway>,
    session: &mut Session,
    request_id: &str,
    started: Instant,
    route: Route,
    slot: &mut Option<InFlight>,
) -> pingora::Result<()> {
    let Route {
        request_type,
        ingress,
        target,
    } = route;
    let live = state.live.load_full();
    let max_body = live.snapshot.max_request_body_bytes;
    let mut err_ctx = ErrorContext {
        request_id: Some(request_id),
        request_type: Some(request_type.as_str()),
        ..Default::default()
    };
    let server = &state.file.server;
    let limits = body::BodyLimits {
        max: max_body,
        read_timeout: std::time::Duration::from_secs(server.body_read_timeout_seconds.max(1)),
        min_rate: server.min_body_rate_bytes_per_second,
    };
    let body = match body::read_body(session, limits).await? {
        body::BodyRead::Complete(body) => body,
        body::BodyRead::TooLarge => {
            // The rest of the body is unread, so this connection cannot carry another request.
            session.set_keepalive(None);
            let limit_mb = max_body / (1024 * 1024);
            let err = WireError {
                status: 413,
                ..WireError::bad_request(format!(
                    "request body is larger than the {limit_mb} MB limit (server.max_request_body_size_mb)"
                ))
            };
            // The rest of the body is read and dropped before the close, by the logging hook.
            return respond::error(session, ingress, &err, &err_ctx).await;
        }
        body::BodyRead::TooSlow => {
            session.set_keepalive(None);
            let err = WireError {
                status: 408,
                ..WireError::bad_request(format!(
                    "the request body arrived too slowly (no bytes for {} s, or under {} bytes/s): send it at once",
                    server.body_read_timeout_seconds, server.min_body_rate_bytes_per_second
                ))
            };
            return respond::error(session, ingress, &err, &err_ctx).await;
        }
        body::BodyRead::Unreadable => {
            session.set_keepalive(None);
            let err =
                WireError::bad_request("the request body could not be read: its framing is invalid or it was cut off");
            return respond::error(session, ingress, &err, &err_ctx).await;
        }
    };
    // A stored object's call, and a multipart upload, have no JSON body to read.
    let stored = matches!(target, Target::Stored { .. });
    let multipart = matches!(request_type, RequestType::Transcription | RequestType::Translation);
    let mut head = match RequestHead::parse(if stored || multipart { b"{}" } else { &body }) {
        Ok(head) => head,
        Err(BodyError::Malformed(reason)) => {
            let err = WireError::bad_request(format!("invalid JSON in request body: {reason}"));
            return respond::error(session, ingress, &err, &err_ctx).await;
        }
        Err(BodyError::InvalidField(reason)) => {
            return respond::error(session, ingress, &WireError::bad_request(reason), &err_ctx).await;
        }
    };
    // An audio upload names its model in a form field.
    let form = if multipart {
        let content_type = session
            .req_header()
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        match multipart::Form::read(&content_type, &body).await {
            // One model per request: a second `model` part could name another model than the
            // one the key was checked and priced for.
            Ok(form) if form.count("model") > 1 => {
                let err = WireError::bad_request("the form has more than one model field");
                return respond::error(session, ingress, &err, &err_ctx).await;
            }
            Ok(form) if form.text("model").is_some_and(|m| m.chars().any(char::is_control)) => {
                let err = WireError::bad_request("`model` must not contain control characters");
                return respond::error(session, ingress, &err, &err_ctx).await;
            }
            Ok(form) => {
                head.model = form.text("model").map(str::to_string);
                Some(form)
            }
            Err(why) => return respond::error(session, ingress, &WireError::bad_request(why), &err_ctx).await,
        }
    } else {
        None
    };
    // Moderations and image generations may leave the model to OpenAI's default.
    if head.model.is_none() {
        let default_model = match request_type {
            RequestType::Moderation => Some("omni-moderation-latest"),
            RequestType::ImageGeneration => Some("dall-e-2"),
            _ => None,
        };
        // On a route that implies no provider, the default model is OpenAI's.
        head.model = default_model.map(|model| match &target {
            Target::Model { default_provider: None } => format!("openai/{model}"),
            _ => model.to_string(),
        });
    }
    // A Gemini client names streaming in the path, not the body.
    let native_method = match &target {
        Target::GeminiModel { method, stream, .. } => {
            head.stream = *stream;
            head.max_tokens = asbru_providers::formats::gemini::max_output_tokens(&body);
            Some(*method)
        }
        // A Bedrock client too; its output limit is in inferenceConfig.
        Target::BedrockModel { stream, .. } => {
            head.stream = *stream;
            head.max_tokens = asbru_providers::formats::bedrock::max_output_tokens(&body);
            None
        }
        _ => None,
    };
    if head.stream {
        err_ctx.request_type = Some(request_type.stream_name());
    }
    let credentials = credentials(session, state.file.client.allow_direct_keys == Some(true), ingress);
    // Who is asking, for stored objects (responses, files, batches): each belongs to the caller
    // that created it. Only requests on them pay for the hash.
    let owner = if matches!(
        request_type,
        RequestType::Responses | RequestType::Files | RequestType::Batches
    ) {
        let presented = [
            &credentials.virtual_key,
            &credentials.bearer,
            &credentials.x_api_key,
            &credentials.x_goog_api_key,
            &credentials.api_key,
        ]
        .into_iter()
        .find_map(|c| c.as_deref());
        state.responses.owner_of(presented)
    } else {
        0
    };
    // A caller presenting a virtual key is one tenant among others: files and batches it did
    // not create through the gateway (or that the gateway no longer knows) do not exist for it.
    let tenant = matches!(request_type, RequestType::Files | RequestType::Batches)
        && [
            &credentials.virtual_key,
            &credentials.bearer,
            &credentials.x_api_key,
            &credentials.api_key,
        ]
        .into_iter()
        .flatten()
        .any(|value| {
            live.governance
                .key(&asbru_filters::governance::runtime::key_hash(value))
                .is_some()
        });
    let mut pin = None;
    let mut stored_call = None;
    let mut remember_created = false;
    let (model_requested, default_provider) = match target {
        Target::Model { default_provider } => match head.routed_model() {
            Some(model) => {
                if request_type == RequestType::Responses {
                    let fields = asbru_providers::formats::openai::responses::state_fields(&body);
                    remember_created = fields.stored();
                    // A request continuing a stored response goes where that one lives, when
                    // its caller created it and it names that provider (or none).
                    let provider_named = model.split_once('/').map(|(p, _)| p).or(default_provider);
                    if let Some(at) = fields.previous_response_id.and_then(|id| state.responses.find(&id))
                        && at.owner == owner
                        && provider_named.is_none_or(|p| p == &*at.provider)
                    {
                        pin = Some(pin_of(at, false));
                    }
                }
                (model, default_provider)
            }
            None => {
                let err = WireError::bad_request("model is required (format: provider/model)");
                return respond::error(session, ingress, &err, &err_ctx).await;
            }
        },
        Target::AzureDeployment(deployment) => (deployment, Some("azure")),
        Target::GeminiModel { model, .. } => (model, Some("gemini")),
        Target::BedrockModel { model, .. } => (model, Some("bedrock")),
        Target::Stored { call, default_provider } => {
            // A batch runs on the account holding its input file: it must be the caller's.
            let input_file = if request_type == RequestType::Batches && call.creates {
                match batch_input_file(&body) {
                    Ok(file) => Some(file),
                    Err(why) => return respond::error(session, ingress, &WireError::bad_request(why), &err_ctx).await,
                }
            } else {
                None
            };
            let id = input_file.as_deref().unwrap_or(&call.id);
            let known = (!id.is_empty()).then(|| state.responses.find(id)).flatten();
            let (model, at) = match known {
                // Another caller's response does not exist for this one.
                Some(at) if at.owner != owner => {
                    return respond::error(
                        session,
                        ingress,
                        &not_found(request_type, id, input_file.is_some()),
                        &err_ctx,
                    )
                    .await;
                }
                Some(at) => (format!("{}/{}", at.provider, at.model), at),
                // An id this tenant cannot be shown to own.
                None if tenant && !id.is_empty() => {
                    return respond::error(
                        session,
                        ingress,
                        &not_found(request_type, id, input_file.is_some()),
                        &err_ctx,
                    )
                    .await;
                }
                None => {
                    let provider: Arc<str> = default_provider.unwrap_or("openai").into();
                    let model = format!("{provider}/*");
                    let at = crate::response_affinity::StoredAt {
                        provider,
                        key_id: None,
                        owner,
                        model: "*".into(),
                    };
                    (model, at)
                }
            };
            let mut stored_pin = pin_of(at, true);
            stored_pin.unmetered_work = request_type == RequestType::Batches && call.creates;
            pin = Some(stored_pin);
            stored_call = Some(call);
            (model, None)
        }
    };
    let units = match billed_units(request_type, &body, form.as_ref()) {
        Ok(units) => units,
        Err(why) => return respond::error(session, ingress, &WireError::bad_request(why), &err_ctx).await,
    };
    let request = GatewayRequest {
        ingress,
        request_type,
        stream: head.stream,
        model_requested,
        default_provider,
        fallbacks: head.fallbacks.clone(),
        credentials,
        require_vk: inference_needs_vk(state, &live, session),
        estimate: Estimate {
            input_tokens: body.len() as u64,
            max_output_tokens: head.max_tokens,
            // Images count their `n` as units, not choices.
            choices: if units.is_some() { 1 } else { head.choices },
            units,
        },
        now: crate::state::unix_now(),
        arrived_ms: unix_millis(),
        headers: kept_headers(&live, session),
        query: session
            .req_header()
            .uri
            .query()
            .map(without_key_param)
            .filter(|q| !q.is_empty()),
        body: body.clone(),
        pin,
    };
    let InFlight { live, ctx } = slot.insert(InFlight {
        live,
        ctx: RequestCtx::new(request_id.to_string(), started, request),
    });
    ctx.client_ip = crate::edge::client_addr::client_ip(&state.trusted_proxies, session);
    let (mut flow, mut refused_at) = state.chain.on_request_from(0, live, ctx);
    // A cluster lease fetch this refusal woke, or the tokenizer's tables an exact count needs,
    // may clear it: wait for it (each wait bounded), a few times at most (a key's budgets and
    // rate limits may each need a fetch).
    let mut rechecks = 0;
    while matches!(flow, Flow::Reject(_))
        && rechecks < MAX_LEASE_RECHECKS
        && let Some(recheck) = ctx.recheck.take()
    {
        rechecks += 1;
        recheck.into_wait().await;
        (flow, refused_at) = state.chain.on_request_from(refused_at, live, ctx);
    }
    ctx.recheck = None;
    if let Flow::Reject(rejection) = flow {
        ctx.record_error(rejection.kind, rejection.decision, &rejection.message);
        let err_ctx = ErrorContext {
            model_requested: Some(&ctx.request.model_requested),
            ..err_ctx
        };
        let err = rejection_to_wire(rejection);
        return respond::error_with(session, ingress, &err, &err_ctx, &ctx.response_headers).await;
    }
    let req_headers = &session.req_header().headers;
    let header = |name: &str| req_headers.get(name).map(|v| v.as_bytes().to_vec());
    let exchange = forward::Exchange {
        request_id,
        request_type,
        ingress,
        stream: head.stream,
        head: &head,
        body: &body,
        native_method,
        stored: stored_call.as_ref(),
        tenant,
        form: form.as_ref(),
        content_type: header("content-type"),
        owner,
        remember_created,
        forwarded_headers: headers::extra_headers(session.req_header()),
        accept: header("accept"),
        anthropic_version: header("anthropic-version"),
        anthropic_beta: header("anthropic-beta"),
        // As in Bifrost, honoured only when client.allow_per_request_raw_override allows it.
        raw_response: state.file.client.allow_per_request_raw_override == Some(true)
            && req_headers
                .get("x-bf-send-back-raw-response")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true")),
    };
    forward::run(state, session, &exchange, live, ctx).await
}

/// With admin auth on (and not disabled for inference), a request needs admin credentials or a
/// virtual key, as in Bifrost. Only requests presenting Basic credentials or a session pay the
/// check; everything else just needs its virtual key.
fn inference_needs_vk(state: &Gateway, live: &Live, session: &Session) -> bool {
    let Some(admin) = live.slot::<crate::admin::auth::AdminAuth>() else {
        return false;
    };
    if !admin.enabled || admin.disable_auth_on_inference {
        return false;
    }
    let presented = crate::admin::auth::presented(&session.req_header().headers);
    match presented {
        crate::admin::auth::Presented::Nothing => true,
        crate::admin::auth::Presented::Session(ref token) if !state.sessions.valid(token) => true,
        other => state
            .sessions
            .admit(admin, &other, crate::admin::client_ip(state, session))
            .is_err(),
    }
}

/// Milliseconds since the Unix epoch.
fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The request headers filters read (see `GatewayRequest::headers`); most requests carry none,
/// and then nothing is allocated.
fn kept_headers(live: &Live, session: &Session) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let observe = &live.snapshot.observe;
    session
        .req_header()
        .headers
        .iter()
        .filter(|(name, _)| observe.keeps_header(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The headers that may carry a virtual key.
/// The credentials a request presents. With `allow_direct_keys`, `x-bf-direct-key: true` and a
/// bearer that is not a virtual key (`sk-bf-...`) mark the bearer as the request's own provider key.
fn credentials(session: &Session, allow_direct_keys: bool, ingress: Wire) -> Credentials {
    let headers = &session.req_header().headers;
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let bearer = text("authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    });
    let direct_key = allow_direct_keys
        && text("x-bf-direct-key").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && bearer.as_deref().is_some_and(|b| !b.starts_with("sk-bf-"));
    // Google's clients may send their key as `?key=` instead of `x-goog-api-key`.
    let query_key = || {
        let query = session.req_header().uri.query()?;
        form_urlencoded_value(query, "key")
    };
    Credentials {
        direct_key,
        // A Bedrock client signs with SigV4; a virtual key may stand as its access key id.
        virtual_key: text("x-bf-vk").or_else(|| {
            (ingress == Wire::Bedrock)
                .then(|| text("authorization").and_then(|v| sigv4_virtual_key(&v)))
                .flatten()
        }),
        bearer,
        x_api_key: text("x-api-key"),
        x_goog_api_key: text("x-goog-api-key").or_else(|| (ingress == Wire::Gemini).then(query_key).flatten()),
        api_key: text("api-key"),
    }
}

/// At most how many units a request billed per unit can cost: the images asked for (`n`), the
/// characters to speak, or the seconds an uploaded audio file can last (at 8 kbit/s, below any
/// codec the transcription APIs take, so the bound holds).
fn billed_units(
    request_type: RequestType,
    body: &[u8],
    form: Option<&multipart::Form>,
) -> Result<Option<(asbru_filters::pricing::Unit, u64)>, String> {
    use asbru_filters::pricing::Unit;
    // What is counted must be what the provider reads: a member named twice, or of another
    // type, is refused rather than counted one way and read another.
    #[derive(serde::Deserialize)]
    struct Media {
        #[serde(default)]
        n: Option<u64>,
        #[serde(default)]
        input: Option<String>,
    }
    let media = || serde_json::from_slice::<Media>(body).map_err(|e| format!("invalid request body: {e}"));
    Ok(match request_type {
        RequestType::ImageGeneration => Some((Unit::Image, media()?.n.unwrap_or(1).max(1))),
        RequestType::Speech => {
            let characters = media()?.input.map_or(0, |input| input.chars().count() as u64);
            Some((Unit::Character, characters.max(1)))
        }
        RequestType::Transcription | RequestType::Translation => {
            let bytes = form.map_or(body.len() as u64, |f| f.file_bytes() as u64);
            Some((Unit::Second, bytes.div_ceil(1000).max(1)))
        }
        _ => None,
    })
}

/// The `input_file_id` a batch creation names (named once: a second one could name a file the
/// caller does not own).
fn batch_input_file(body: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Batch {
        input_file_id: String,
    }
    serde_json::from_slice::<Batch>(body)
        .map(|b| b.input_file_id)
        .map_err(|e| format!("invalid batch request: {e}"))
}

/// OpenAI's 404 for an object the caller does not have.
fn not_found(request_type: RequestType, id: &str, input_file: bool) -> WireError {
    let what = match request_type {
        RequestType::Files => "File",
        RequestType::Batches if input_file => "File",
        RequestType::Batches => "Batch",
        _ => "Response",
    };
    WireError::gateway(
        404,
        "invalid_request_error",
        format!("{what} with id '{id}' not found."),
    )
}

/// The access key id of a SigV4 `Authorization` header (`AWS4-HMAC-SHA256 Credential=<id>/...`)
/// when it is a virtual key. The signature itself is not checked: the gateway signs upstream
/// with its own credentials.
fn sigv4_virtual_key(authorization: &str) -> Option<String> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256")?;
    let credential = rest
        .split(',')
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let access_key = credential.split('/').next()?;
    access_key.starts_with("sk-bf-").then(|| access_key.to_string())
}

/// The value of `name` in a query string, decoded.
fn form_urlencoded_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        percent_encoding::percent_decode_str(key)
            .decode_utf8_lossy()
            .eq_ignore_ascii_case(name)
            .then(|| {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .filter(|v| !v.is_empty())
    })
}

/// A query string without its `key` parameter (a credential, which rules and logs must not see),
/// however its name is spelled (`Key`, `k%65y`).
fn without_key_param(query: &str) -> Box<str> {
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            !percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .eq_ignore_ascii_case("key")
        })
        .collect::<Vec<_>>()
        .join("&")
        .into_boxed_str()
}

/// The pin of a request that must reach the account holding a stored response; `stored_only`
/// when the request only reads or changes that response (nothing is generated or billed).
fn pin_of(at: crate::response_affinity::StoredAt, stored_only: bool) -> asbru_filters::Pin {
    asbru_filters::Pin {
        provider: at.provider,
        key_id: at.key_id,
        stored_only,
        unmetered_work: false,
    }
}

/// A filter's rejection as a wire error: 5xx are the gateway's own failures.
pub fn rejection_to_wire(rejection: Rejection) -> WireError {
    WireError {
        status: rejection.status,
        is_bifrost_error: rejection.status >= 500,
        error_type: rejection.kind,
        code: None,
        message: rejection.message,
        decision: rejection.decision,
    }
}
