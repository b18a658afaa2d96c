//! The forwarder: runs the plan of attempts (primary, its retries, then each fallback) against
//! upstreams through Pingora's pooled [`Connector`](pingora::connectors::http::Connector), and
//! relays the chosen response to the client: non-stream bodies pass through, SSE streams are
//! relayed chunk by chunk as they arrive.
//!
//! Nothing is written downstream until an attempt has succeeded or every attempt has failed, so
//! retries and fallbacks never follow a byte sent to the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use asbru_filters::routing::Attempt;
use asbru_filters::routing::keys::{self, KeyError};
use asbru_providers::errors::{self, ErrorContext, WireError};
use asbru_providers::formats::openai::RequestHead;
use asbru_store::catalog::RequestType;
use asbru_store::snapshot::{NetworkSettings, ProviderKey, ProviderRuntime};
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use rand::Rng;
use tokio::time::{Instant, timeout_at};

use crate::headers::is_hop_by_hop;
use crate::respond;
use crate::state::Gateway;

/// Largest upstream error body kept in memory to return to the client.
const MAX_ERROR_BODY: usize = 256 * 1024;
/// Longest time spent establishing one upstream connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries on a pooled connection the upstream had already closed.
const STALE_CONNECTION_RETRIES: usize = 2;

/// One client request, as the forwarder needs it.
pub struct Exchange<'a> {
    /// Request id.
    pub request_id: &'a str,
    /// Chat, embeddings, ...
    pub request_type: RequestType,
    /// The client asked for a stream.
    pub stream: bool,
    /// Parsed head of the body.
    pub head: &'a RequestHead,
    /// The body as the client sent it.
    pub body: &'a [u8],
    /// The `model` field as sent.
    pub model_requested: &'a str,
    /// `x-bf-eh-*` headers to pass upstream.
    pub forwarded_headers: Vec<(String, Vec<u8>)>,
    /// The client's `Accept`.
    pub accept: Option<Vec<u8>>,
}

/// Why an attempt failed.
enum Failure {
    /// The upstream answered with a non-success status; kept to return verbatim.
    Reply(UpstreamReply),
    /// The gateway could not get an answer (connect error, timeout, no key).
    Gateway(WireError),
}

struct UpstreamReply {
    head: ResponseHeader,
    body: Bytes,
}

/// Why one try at an upstream failed.
pub struct AttemptError {
    /// The error to report if this is the last try.
    pub error: WireError,
    /// Whether another try may succeed.
    pub retryable: bool,
}

/// Runs `plan` and answers the client. Returns an error only when the client connection failed
/// or a response had to be cut short.
pub async fn run(
    state: &Arc<Gateway>,
    session: &mut Session,
    ex: &Exchange<'_>,
    plan: &[Attempt],
) -> pingora::Result<()> {
    let mut primary_failure = None;
    for attempt in plan {
        match try_target(state, session, ex, attempt).await? {
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
            let err = WireError::gateway(
                500,
                "api_error",
                "no provider could be tried for this request",
            );
            respond::error(session, &err, &error_context(ex, None)).await
        }
    }
}

/// Tries one target with its retries. `None` means a response was delivered to the client.
async fn try_target(
    state: &Arc<Gateway>,
    session: &mut Session,
    ex: &Exchange<'_>,
    attempt: &Attempt,
) -> pingora::Result<Option<Failure>> {
    let provider = &attempt.provider;
    let net = &provider.network;
    let mut avoid: Vec<usize> = Vec::new();
    let mut last_failure = None;
    for try_number in 0..=net.max_retries {
        if try_number > 0 {
            tokio::time::sleep(backoff(net, try_number - 1)).await;
        }
        let choice = match keys::select(provider, &attempt.model, &avoid, &mut rand::rng()) {
            Ok(choice) => choice,
            Err(e) => return Ok(Some(Failure::Gateway(key_error(&e)))),
        };
        let key = choice.map(|(_, k)| k);
        let upstream_model = key
            .map(|k| k.upstream_model(&attempt.model))
            .unwrap_or(&attempt.model);
        let body = Bytes::from(ex.head.upstream_body(ex.body, upstream_model));
        let path = provider.path(ex.request_type);
        let request = UpstreamRequest {
            method: "POST",
            path,
            body: Some(body),
            accept: ex.accept.as_deref(),
            forwarded: &ex.forwarded_headers,
        };
        let deadline = Instant::now() + net.request_timeout;
        match exchange(state, provider, key, &request, deadline).await {
            Ok((upstream, peer)) => {
                let status = upstream
                    .response_header()
                    .map(|h| h.status.as_u16())
                    .unwrap_or(502);
                if (200..300).contains(&status) {
                    deliver(
                        state,
                        session,
                        ex,
                        attempt,
                        upstream_model,
                        upstream,
                        peer,
                        deadline,
                    )
                    .await?;
                    return Ok(None);
                }
                let reply = read_error_reply(state, upstream, &peer, deadline).await;
                let rotate_key = matches!(status, 401 | 403 | 429);
                if rotate_key && let Some((index, _)) = choice {
                    avoid.push(index);
                }
                let retryable = status == 429
                    || status >= 500
                    || (matches!(status, 401 | 403)
                        && has_unused_key(provider, &attempt.model, &avoid));
                last_failure = Some(match reply {
                    Some(reply) => Failure::Reply(reply),
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
    let base = net
        .backoff_initial
        .saturating_mul(factor)
        .min(net.backoff_max);
    base.mul_f64(rand::rng().random_range(0.8..=1.2))
}

/// What to send upstream.
pub struct UpstreamRequest<'a> {
    /// HTTP method.
    pub method: &'static str,
    /// Path (and query).
    pub path: &'a str,
    /// Body; `None` for GET.
    pub body: Option<Bytes>,
    /// The client's `Accept`, passed on.
    pub accept: Option<&'a [u8]>,
    /// `x-bf-eh-*` headers.
    pub forwarded: &'a [(String, Vec<u8>)],
}

fn build_request_head(
    provider: &ProviderRuntime,
    key: Option<&ProviderKey>,
    request: &UpstreamRequest<'_>,
) -> pingora::Result<RequestHeader> {
    let mut head = RequestHeader::build(request.method, request.path.as_bytes(), Some(8))?;
    head.insert_header("host", provider.upstream.authority.as_str())?;
    head.insert_header("user-agent", concat!("asbru/", env!("CARGO_PKG_VERSION")))?;
    if let Some(body) = &request.body {
        head.insert_header("content-type", "application/json")?;
        head.insert_header("content-length", body.len().to_string())?;
    }
    head.insert_header("accept", request.accept.unwrap_or(b"application/json"))?;
    for (name, value) in request.forwarded {
        head.insert_header(name.clone(), value.as_slice())?;
    }
    for (name, value) in &provider.network.extra_headers {
        head.insert_header(name.clone(), value.as_str())?;
    }
    if let Some(key) = key {
        head.insert_header("authorization", format!("Bearer {}", key.secret))?;
    }
    Ok(head)
}

fn make_peer(provider: &ProviderRuntime, addr: SocketAddr) -> HttpPeer {
    let upstream = &provider.upstream;
    let net = &provider.network;
    let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
    peer.options.connection_timeout = Some(CONNECT_TIMEOUT.min(net.request_timeout));
    peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT.min(net.request_timeout));
    if net.insecure_skip_verify {
        peer.options.verify_cert = false;
        peer.options.verify_hostname = false;
    }
    if net.enforce_http2 {
        peer.options.set_http_version(2, 2);
    }
    peer
}

/// Sends one request and reads the response head. The returned session is ready for body reads.
pub async fn exchange(
    state: &Gateway,
    provider: &ProviderRuntime,
    key: Option<&ProviderKey>,
    request: &UpstreamRequest<'_>,
    deadline: Instant,
) -> Result<(HttpSession, HttpPeer), AttemptError> {
    let name = &provider.name;
    let addrs = provider.upstream.addrs.load();
    let addr = match addrs.len() {
        0 => {
            return Err(AttemptError {
                error: WireError::gateway(
                    502,
                    "api_error",
                    format!("provider {name} is unreachable: its host name did not resolve"),
                ),
                retryable: true,
            });
        }
        1 => addrs[0],
        n => addrs[rand::rng().random_range(0..n)],
    };
    let peer = make_peer(provider, addr);
    let head = build_request_head(provider, key, request).map_err(|_| AttemptError {
        error: WireError::gateway(500, "api_error", format!("provider {name}: the request headers (key or extra_headers) contain invalid characters")),
        retryable: false,
    })?;
    let timeout_error = || AttemptError {
        error: WireError::gateway(
            504,
            "api_error",
            format!(
                "provider {name} did not answer within {}s",
                provider.network.request_timeout.as_secs()
            ),
        )
        .with_code("upstream_timeout"),
        retryable: true,
    };
    let mut stale_retries = 0;
    loop {
        let (mut upstream, reused) =
            match timeout_at(deadline, state.connector.get_http_session(&peer)).await {
                Err(_) => return Err(timeout_error()),
                Ok(Err(e)) => {
                    let timed_out = matches!(
                        e.etype(),
                        pingora::ErrorType::ConnectTimedout
                            | pingora::ErrorType::TLSHandshakeTimedout
                    );
                    if timed_out {
                        return Err(timeout_error());
                    }
                    return Err(AttemptError {
                        error: WireError::gateway(
                            502,
                            "api_error",
                            format!("could not connect to provider {name}"),
                        )
                        .with_code("upstream_unreachable"),
                        retryable: true,
                    });
                }
                Ok(Ok(pair)) => pair,
            };
        let sent = timeout_at(
            deadline,
            send_and_read_head(&mut upstream, head.clone(), request.body.clone()),
        )
        .await;
        match sent {
            Err(_) => return Err(timeout_error()),
            Ok(Ok(())) => return Ok((upstream, peer)),
            Ok(Err(_)) if reused && stale_retries < STALE_CONNECTION_RETRIES => {
                // A pooled connection the upstream had closed; nothing was processed. Try a new one.
                stale_retries += 1;
            }
            Ok(Err(_)) => {
                return Err(AttemptError {
                    error: WireError::gateway(
                        502,
                        "api_error",
                        format!("the connection to provider {name} failed before it answered"),
                    )
                    .with_code("upstream_connection_failed"),
                    retryable: true,
                });
            }
        }
    }
}

async fn send_and_read_head(
    upstream: &mut HttpSession,
    head: RequestHeader,
    body: Option<Bytes>,
) -> pingora::Result<()> {
    upstream.write_request_header(Box::new(head)).await?;
    if let Some(body) = body {
        upstream.write_request_body(body, true).await?;
    }
    upstream.finish_request_body().await?;
    upstream.read_response_header().await?;
    Ok(())
}

/// Reads a non-success reply (bounded) and returns the connection to the pool when it is clean.
async fn read_error_reply(
    state: &Gateway,
    mut upstream: HttpSession,
    peer: &HttpPeer,
    deadline: Instant,
) -> Option<UpstreamReply> {
    let head = upstream.response_header()?.clone();
    let mut body = BytesMut::new();
    loop {
        match timeout_at(deadline, upstream.read_response_body()).await {
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > MAX_ERROR_BODY {
                    return None;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Ok(None)) => break,
            _ => return None,
        }
    }
    state
        .connector
        .release_http_session(upstream, peer, None)
        .await;
    Some(UpstreamReply {
        head,
        body: body.freeze(),
    })
}

fn is_event_stream(head: &ResponseHeader) -> bool {
    head.headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// Copies an upstream head for the client, minus hop-by-hop headers, plus asbru's own headers.
fn client_head(
    upstream: &ResponseHeader,
    provider: &str,
    resolved_model: &str,
    fallback_index: usize,
    request_id: &str,
    keep_length: bool,
) -> pingora::Result<ResponseHeader> {
    let mut head = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + 5))?;
    for (name, value) in upstream.headers.iter() {
        if !is_hop_by_hop(name) || (keep_length && name == http::header::CONTENT_LENGTH) {
            head.append_header(name.clone(), value.clone())?;
        }
    }
    if !keep_length {
        head.insert_header("transfer-encoding", "chunked")?;
    }
    head.insert_header("x-bifrost-provider", provider)?;
    head.insert_header("x-bifrost-resolved-model", resolved_model)?;
    if fallback_index > 0 {
        head.insert_header("x-bifrost-fallback-index", fallback_index.to_string())?;
    }
    head.insert_header("x-request-id", request_id)?;
    Ok(head)
}

/// Relays a successful upstream response to the client.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    state: &Gateway,
    session: &mut Session,
    ex: &Exchange<'_>,
    attempt: &Attempt,
    upstream_model: &str,
    mut upstream: HttpSession,
    peer: HttpPeer,
    deadline: Instant,
) -> pingora::Result<()> {
    let Some(upstream_head) = upstream.response_header() else {
        return Err(pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "upstream head missing",
        ));
    };
    let streaming = is_event_stream(upstream_head);
    let has_length = upstream_head
        .headers
        .contains_key(http::header::CONTENT_LENGTH);
    let keep_length = has_length && !streaming;
    let mut head = client_head(
        upstream_head,
        &attempt.provider.name,
        upstream_model,
        attempt.fallback_index,
        ex.request_id,
        keep_length,
    )?;
    if streaming {
        head.insert_header("cache-control", "no-cache")?;
    }
    session.write_response_header(Box::new(head), false).await?;
    let idle = attempt.provider.network.stream_idle_timeout;
    loop {
        // Streams are bounded by silence between chunks; plain bodies by the request deadline.
        let read = if streaming {
            tokio::time::timeout(idle, upstream.read_response_body())
                .await
                .map_err(|_| ())
        } else {
            timeout_at(deadline, upstream.read_response_body())
                .await
                .map_err(|_| ())
        };
        match read {
            Ok(Ok(Some(chunk))) => session.write_response_body(Some(chunk), false).await?,
            Ok(Ok(None)) => {
                session.write_response_body(None, true).await?;
                state
                    .connector
                    .release_http_session(upstream, &peer, None)
                    .await;
                return Ok(());
            }
            Ok(Err(_)) | Err(()) => {
                let what = if read.is_err() {
                    "went silent"
                } else {
                    "broke off"
                };
                tracing::warn!(
                    request_id = ex.request_id,
                    provider = %attempt.provider.name,
                    "upstream response {what} mid-body"
                );
                if !streaming {
                    // A truncated plain body must not look complete: drop the connection.
                    return Err(pingora::Error::explain(
                        pingora::ErrorType::ReadError,
                        "upstream response was cut short",
                    ));
                }
                let err = WireError::gateway(
                    502,
                    "api_error",
                    format!(
                        "provider {} stream {what} before it finished",
                        attempt.provider.name
                    ),
                );
                let event =
                    errors::sse_error_event(&err, &error_context(ex, Some(&attempt.provider.name)));
                session
                    .write_response_body(Some(Bytes::from(event)), true)
                    .await?;
                return Ok(());
            }
        }
    }
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
    match failure {
        Failure::Gateway(err) => {
            respond::error(
                session,
                &err,
                &error_context(ex, Some(&attempt.provider.name)),
            )
            .await
        }
        Failure::Reply(reply) => {
            let mut head = client_head(
                &reply.head,
                &attempt.provider.name,
                &attempt.model,
                attempt.fallback_index,
                ex.request_id,
                false,
            )?;
            head.remove_header("transfer-encoding");
            head.insert_header("content-length", reply.body.len().to_string())?;
            session.write_response_header(Box::new(head), false).await?;
            session.write_response_body(Some(reply.body), true).await
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
