//! Writing gateway-made responses (errors, health, listings) to the client.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use asbru_providers::errors::{self, ErrorContext, WireError};
use asbru_providers::provider;

use asbru_config::catalog::Wire;

/// Headers a filter added for every response of a request.
pub type ExtraHeaders<'a> = &'a [(HeaderName, HeaderValue)];

/// Writes a complete JSON response.
pub async fn json(session: &mut Session, status: u16, body: Vec<u8>, request_id: &str) -> pingora::Result<()> {
    json_with(session, status, body, request_id, &[]).await
}

/// [`json`] with the headers filters added.
pub async fn json_with(
    session: &mut Session,
    status: u16,
    body: Vec<u8>,
    request_id: &str,
    extra: ExtraHeaders<'_>,
) -> pingora::Result<()> {
    let mut head = ResponseHeader::build_no_case(status, Some(4 + extra.len()))?;
    head.insert_header("content-type", "application/json")?;
    head.insert_header("content-length", body.len().to_string())?;
    head.insert_header("x-request-id", request_id)?;
    for (name, value) in extra {
        head.insert_header(name.clone(), value.clone())?;
    }
    crate::cors::decorate(&mut head, session);
    session.write_response_header(Box::new(head), false).await?;
    session.write_response_body(Some(Bytes::from(body)), true).await
}

/// Writes `error` with its status, as a Bifrost error body (OpenAI-compatible routes) or in
/// Anthropic's shape (`/anthropic` routes).
pub async fn error(
    session: &mut Session,
    ingress: Wire,
    error: &WireError,
    ctx: &ErrorContext<'_>,
) -> pingora::Result<()> {
    error_with(session, ingress, error, ctx, &[]).await
}

/// [`error`] with the headers filters added.
pub async fn error_with(
    session: &mut Session,
    ingress: Wire,
    error: &WireError,
    ctx: &ErrorContext<'_>,
    extra: ExtraHeaders<'_>,
) -> pingora::Result<()> {
    let body = match provider::error_shape(ingress) {
        provider::ErrorShape::Anthropic => errors::anthropic_body(error),
        provider::ErrorShape::Google => errors::google_body(error),
        provider::ErrorShape::Aws => errors::aws_body(error),
        _ => errors::bifrost_body(error, ctx),
    };
    json_with(session, error.status, body, ctx.request_id.unwrap_or_default(), extra).await
}

/// Writes the Prometheus text exposition.
pub async fn metrics(session: &mut Session, body: Vec<u8>) -> pingora::Result<()> {
    let mut head = ResponseHeader::build(200, Some(2))?;
    head.insert_header("content-type", "text/plain; version=0.0.4; charset=utf-8")?;
    head.insert_header("content-length", body.len().to_string())?;
    crate::cors::decorate(&mut head, session);
    session.write_response_header(Box::new(head), false).await?;
    session.write_response_body(Some(Bytes::from(body)), true).await
}
