//! Relaying a successful upstream reply to the client: whole bodies are read (bounded),
//! translated when the wires differ, and written at once; SSE streams are relayed or translated
//! chunk by chunk as they arrive.

use super::peer::UpstreamPeer;
use asbru_providers::adapters::exchange::ReplyTranslator;
use asbru_providers::errors::{self, ErrorContext, WireError};
use asbru_providers::provider;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;
use tokio::time::Instant;

use super::headers::is_hop_by_hop;
use super::settlement::Settlement;
use super::upstream;
use crate::respond::ExtraHeaders;
use crate::state::Gateway;
use asbru_config::catalog::{RequestType, Wire};

/// Largest non-stream reply read into memory.
pub const MAX_REPLY_BODY: usize = 64 * 1024 * 1024;

/// Sees a whole reply body; returns the body to send instead, if it changes it.
pub type BodyInspector<'a> = dyn Fn(&[u8]) -> Option<Vec<u8>> + Sync + 'a;

/// Who answered, for the response headers.
pub struct Served<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Model sent upstream.
    pub resolved_model: &'a str,
    /// 0 for the primary.
    pub fallback_index: usize,
    /// Request id.
    pub request_id: &'a str,
    /// The client's wire.
    pub ingress: Wire,
    /// What the client called (a Responses stream reports errors its own way).
    pub request_type: RequestType,
    /// Add the provider's own body to the reply as `extra_fields.raw_response`.
    pub raw_response: bool,
    /// Told the id of a response the provider stored, once it is known.
    pub on_stored: Option<&'a (dyn Fn(&str) + Sync)>,
    /// Sees a whole reply body (files and batches): may remember ids in it, and may return the
    /// body to send instead (a list narrowed to the caller's objects).
    pub inspect: Option<&'a BodyInspector<'a>>,
}

/// Copies an upstream head for the client, minus hop-by-hop and framing headers, plus asbru's own
/// and the ones filters added. Built without Pingora's map of name spellings, which only cost
/// its upkeep: Pingora then writes common names title-cased (`Content-Type`) and the rest
/// lowercase, as it writes any `HeaderName` (header names are case-insensitive).
pub fn client_head(
    upstream: &ResponseHeader,
    served: &Served<'_>,
    translated: bool,
    extra: ExtraHeaders<'_>,
) -> pingora::Result<ResponseHeader> {
    let mut head = ResponseHeader::build_no_case(upstream.status, Some(upstream.headers.len() + 5 + extra.len()))?;
    for (name, value) in upstream.headers.iter() {
        // A translated body has its own type and encoding.
        let body_specific =
            translated && (name == http::header::CONTENT_TYPE || name == http::header::CONTENT_ENCODING);
        if !is_hop_by_hop(name) && !body_specific {
            head.append_header(name.clone(), value.clone())?;
        }
    }
    head.insert_header("x-bifrost-provider", served.provider)?;
    head.insert_header("x-bifrost-resolved-model", served.resolved_model)?;
    if served.fallback_index > 0 {
        head.insert_header("x-bifrost-fallback-index", served.fallback_index.to_string())?;
    }
    head.insert_header("x-request-id", served.request_id)?;
    for (name, value) in extra {
        head.insert_header(name.clone(), value.clone())?;
    }
    Ok(head)
}

fn is_event_stream(head: &ResponseHeader) -> bool {
    head.headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::trim_start)
        .is_some_and(|v| {
            v.starts_with("text/event-stream") || v.starts_with(asbru_providers::eventstream::CONTENT_TYPE)
        })
}

/// Framing for a body of unknown length: chunked, or, for HTTP/1.0 (which has no chunked
/// encoding), a body that ends when the connection closes.
fn unsized_framing(head: &mut ResponseHeader, session: &mut Session) -> pingora::Result<()> {
    if session.req_header().version == http::Version::HTTP_10 {
        head.insert_header("connection", "close")?;
        session.set_keepalive(None);
    } else {
        head.insert_header("transfer-encoding", "chunked")?;
    }
    Ok(())
}

/// Audio, images and other binary bodies (speech, a file's content): relayed as they arrive.
fn is_binary(head: &ResponseHeader) -> bool {
    head.headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::trim_start)
        .is_some_and(|v| {
            ["audio/", "video/", "image/", "application/octet-stream"]
                .iter()
                .any(|prefix| v.starts_with(prefix))
        })
}

/// Relays a binary reply chunk by chunk, never holding it whole (speech can be long). Nothing in
/// it reports usage: the reservation is what the request is charged.
#[allow(clippy::too_many_arguments)]
async fn relay_binary(
    state: &Gateway,
    session: &mut Session,
    served: &Served<'_>,
    mut upstream_session: HttpSession,
    peer: UpstreamPeer,
    upstream_head: &ResponseHeader,
    idle: std::time::Duration,
    settlement: &mut Settlement<'_>,
) -> pingora::Result<()> {
    let mut head = client_head(upstream_head, served, false, settlement.response_headers())?;
    let sized = upstream_head.headers.get("content-length").is_some();
    if sized {
        if let Some(length) = upstream_head.headers.get("content-length") {
            head.insert_header("content-length", length.clone())?;
        }
    } else {
        unsized_framing(&mut head, session)?;
    }
    crate::cors::decorate(&mut head, session);
    session.write_response_header(Box::new(head), false).await?;
    loop {
        match tokio::time::timeout(idle, upstream_session.read_response_body()).await {
            Ok(Ok(Some(chunk))) => {
                settlement.streamed(&chunk);
                session.write_response_body(Some(chunk), false).await?;
            }
            Ok(Ok(None)) => {
                settlement.settle();
                session.write_response_body(None, true).await?;
                state
                    .connector
                    .release_http_session(upstream_session, &peer, None)
                    .await;
                return Ok(());
            }
            Ok(Err(_)) | Err(_) => {
                // Bytes are already on their way: the client sees the body cut short.
                settlement.settle();
                settlement.fail("api_error", "the provider's reply broke off");
                tracing::warn!(
                    request_id = served.request_id,
                    provider = served.provider,
                    "upstream binary reply broke off"
                );
                session.set_keepalive(None);
                return Err(pingora::Error::explain(
                    pingora::ErrorType::ReadError,
                    "the provider's reply broke off",
                ));
            }
        }
    }
}

/// Relays a successful reply. The usage the provider reported is handed to `settlement` as it
/// passes, so it is known even when the client goes away mid-reply, and settled before the
/// reply's last bytes are written, so a client's next request sees this one's spend.
#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    state: &Gateway,
    session: &mut Session,
    served: &Served<'_>,
    reply: ReplyTranslator,
    upstream_session: HttpSession,
    peer: UpstreamPeer,
    deadline: Instant,
    idle: std::time::Duration,
    settlement: &mut Settlement<'_>,
) -> pingora::Result<()> {
    let Some(head) = upstream_session.response_header() else {
        return Err(pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "upstream head missing",
        ));
    };
    let (event_stream, binary) = (is_event_stream(head), reply.relays_verbatim() && is_binary(head));
    if event_stream || binary {
        // The session moves into the relay, so the head it reads from is copied first.
        let upstream_head = head.clone();
        return relay_unbuffered(
            state,
            session,
            served,
            reply,
            (upstream_session, peer),
            &upstream_head,
            event_stream,
            idle,
            settlement,
        )
        .await;
    }
    deliver_whole(
        state,
        session,
        served,
        reply,
        upstream_session,
        peer,
        deadline,
        settlement,
    )
    .await
}

/// A streamed or binary reply: relayed as it arrives.
#[allow(clippy::too_many_arguments)]
async fn relay_unbuffered(
    state: &Gateway,
    session: &mut Session,
    served: &Served<'_>,
    reply: ReplyTranslator,
    (upstream_session, peer): (HttpSession, UpstreamPeer),
    upstream_head: &ResponseHeader,
    event_stream: bool,
    idle: std::time::Duration,
    settlement: &mut Settlement<'_>,
) -> pingora::Result<()> {
    if event_stream {
        return relay_stream(
            state,
            session,
            served,
            reply,
            upstream_session,
            peer,
            upstream_head,
            idle,
            settlement,
        )
        .await;
    }
    relay_binary(
        state,
        session,
        served,
        upstream_session,
        peer,
        upstream_head,
        idle,
        settlement,
    )
    .await
}

/// A whole reply: read, translated when the wires differ, settled, then written in one go. The
/// upstream session is pooled again once its head has served the client's.
#[allow(clippy::too_many_arguments)]
async fn deliver_whole(
    state: &Gateway,
    session: &mut Session,
    served: &Served<'_>,
    reply: ReplyTranslator,
    mut upstream_session: HttpSession,
    peer: UpstreamPeer,
    deadline: Instant,
    settlement: &mut Settlement<'_>,
) -> pingora::Result<()> {
    let translated = !reply.is_passthrough();
    let Some(body) = upstream::read_body(&mut upstream_session, MAX_REPLY_BODY, deadline).await else {
        let err = WireError::gateway(
            502,
            "api_error",
            format!("provider {} sent an incomplete reply", served.provider),
        );
        settlement.settle();
        return write_error(session, served, &err, settlement.response_headers()).await;
    };
    let raw = served.raw_response.then(|| body.clone());
    if let (Some(remember), Some(id)) = (served.on_stored, reply.stored_response_id(Some(&body))) {
        remember(&id);
    }
    let body = match served.inspect.and_then(|inspect| inspect(&body)) {
        Some(narrowed) => Bytes::from(narrowed),
        None => body,
    };
    let body = match reply.body(&body) {
        Ok((translated, usage)) => {
            settlement.seen(usage.reported());
            translated.map(Bytes::from).unwrap_or(body)
        }
        Err(e) => {
            let err = WireError::gateway(502, "api_error", format!("provider {}: {e}", served.provider));
            settlement.settle();
            return write_error(session, served, &err, settlement.response_headers()).await;
        }
    };
    settlement.settle();
    settlement.reply(&body);
    let (body, rewritten) = match raw {
        Some(raw) => with_raw_response(body, &raw),
        None => (body, false),
    };
    let mut head = match upstream_session.response_header() {
        Some(upstream_head) => client_head(
            upstream_head,
            served,
            translated || rewritten,
            settlement.response_headers(),
        )?,
        None => {
            return Err(pingora::Error::explain(
                pingora::ErrorType::InternalError,
                "upstream head missing",
            ));
        }
    };
    state
        .connector
        .release_http_session(upstream_session, &peer, None)
        .await;
    if translated || rewritten {
        head.insert_header("content-type", "application/json")?;
    }
    head.insert_header("content-length", body.len().to_string())?;
    crate::cors::decorate(&mut head, session);
    session.write_response_header(Box::new(head), false).await?;
    session.write_response_body(Some(body), true).await
}

/// `body` with `extra_fields.raw_response` set to the provider's own reply `raw` (as JSON, or
/// as a string when it is not JSON), as Bifrost's `send_back_raw_response` does. A body that is
/// not a JSON object is returned unchanged; the flag says whether it changed.
fn with_raw_response(body: Bytes, raw: &[u8]) -> (Bytes, bool) {
    let Ok(mut reply) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body) else {
        return (body, false);
    };
    let raw_value = serde_json::from_slice::<serde_json::Value>(raw)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(raw).into_owned()));
    let extra = reply
        .entry("extra_fields")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let Some(extra) = extra.as_object_mut() {
        extra.insert("raw_response".to_string(), raw_value);
    }
    match serde_json::to_vec(&reply) {
        Ok(rewritten) => (Bytes::from(rewritten), true),
        Err(_) => (body, false),
    }
}

#[allow(clippy::too_many_arguments)]
async fn relay_stream(
    state: &Gateway,
    session: &mut Session,
    served: &Served<'_>,
    mut reply: ReplyTranslator,
    mut upstream_session: HttpSession,
    peer: UpstreamPeer,
    upstream_head: &ResponseHeader,
    idle: std::time::Duration,
    settlement: &mut Settlement<'_>,
) -> pingora::Result<()> {
    let passthrough = reply.is_passthrough();
    let verbatim = reply.relays_verbatim();
    let mut head = client_head(upstream_head, served, !passthrough, settlement.response_headers())?;
    // Bedrock clients read AWS event-stream frames; every other client reads SSE.
    let frames = served.ingress == Wire::Bedrock;
    if !passthrough {
        let content_type = if frames {
            asbru_providers::eventstream::CONTENT_TYPE
        } else {
            "text/event-stream"
        };
        head.insert_header("content-type", content_type)?;
    }
    head.insert_header("cache-control", "no-cache")?;
    unsized_framing(&mut head, session)?;
    crate::cors::decorate(&mut head, session);
    session.write_response_header(Box::new(head), false).await?;
    let mut out = Vec::new();
    // The last two bytes the client got: an error event must start on a fresh line.
    let mut tail = EventBoundary::default();
    let mut stored_known = served.on_stored.is_none();
    loop {
        let read = tokio::time::timeout(idle, upstream_session.read_response_body()).await;
        let what = match read {
            Ok(Ok(Some(chunk))) => {
                reply.stream(&chunk, &mut out);
                settlement.seen(reply.reported_usage());
                if !stored_known && let Some(id) = reply.stored_response_id(None) {
                    stored_known = true;
                    if let Some(remember) = served.on_stored {
                        remember(&id);
                    }
                }
                if verbatim {
                    tail.saw(&chunk);
                    settlement.streamed(&chunk);
                    session.write_response_body(Some(chunk), false).await?;
                } else if !out.is_empty() {
                    tail.saw(&out);
                    settlement.streamed(&out);
                    session
                        .write_response_body(Some(Bytes::from(std::mem::take(&mut out))), false)
                        .await?;
                }
                continue;
            }
            Ok(Ok(None)) if reply.completed() => {
                reply.stream_end(&mut out);
                settlement.seen(reply.reported_usage());
                settlement.settle();
                settlement.streamed(&out);
                let rest = (!out.is_empty()).then(|| Bytes::from(std::mem::take(&mut out)));
                session.write_response_body(rest, true).await?;
                state
                    .connector
                    .release_http_session(upstream_session, &peer, None)
                    .await;
                return Ok(());
            }
            Ok(Ok(None)) => "ended before its end (or after an error event)",
            Ok(Err(_)) => "broke off",
            Err(_) => "went silent",
        };
        // A stream that did not end as its protocol says: charge what was reported (or the
        // reservation), and end with an error event in the client's format, on a fresh line,
        // never with a success terminator.
        settlement.settle();
        tracing::warn!(
            request_id = served.request_id,
            provider = served.provider,
            "upstream stream {what}"
        );
        let err = WireError::gateway(502, "api_error", format!("provider {} stream {what}", served.provider))
            .with_code("upstream_stream_incomplete");
        settlement.fail("api_error", &err.message);
        let mut event = if tail.at_boundary() || frames {
            Vec::new()
        } else {
            b"\n\n".to_vec()
        };
        event.extend_from_slice(&match provider::error_shape(served.ingress) {
            provider::ErrorShape::Anthropic => errors::anthropic_sse_error_event(&err),
            provider::ErrorShape::Google => errors::google_sse_error_event(&err),
            provider::ErrorShape::Aws => errors::aws_stream_exception(&err),
            _ if served.request_type == RequestType::Responses => errors::responses_sse_error_event(&err),
            _ => errors::sse_error_event(
                &err,
                &ErrorContext {
                    request_id: Some(served.request_id),
                    provider: Some(served.provider),
                    ..Default::default()
                },
            ),
        });
        return session.write_response_body(Some(Bytes::from(event)), true).await;
    }
}

/// Whether the bytes sent so far end an SSE event (`\n\n`), tracked across chunks.
#[derive(Debug, Clone, Copy)]
struct EventBoundary {
    last: [u8; 2],
}

impl Default for EventBoundary {
    fn default() -> Self {
        // Nothing sent yet: a new event can start right away.
        EventBoundary { last: *b"\n\n" }
    }
}

impl EventBoundary {
    fn saw(&mut self, bytes: &[u8]) {
        match bytes {
            [] => {}
            [one] => self.last = [self.last[1], *one],
            [.., a, b] => self.last = [*a, *b],
        }
    }

    fn at_boundary(&self) -> bool {
        self.last == *b"\n\n"
    }
}

async fn write_error(
    session: &mut Session,
    served: &Served<'_>,
    err: &WireError,
    extra: ExtraHeaders<'_>,
) -> pingora::Result<()> {
    let ctx = ErrorContext {
        request_id: Some(served.request_id),
        provider: Some(served.provider),
        ..Default::default()
    };
    crate::respond::error_with(session, served.ingress, err, &ctx, extra).await
}
