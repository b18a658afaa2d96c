//! What the mock's wires share: its options, the reply it always gives, and the SSE head.

use std::time::Duration;

use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

/// How a cut stream ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Truncation {
    /// The connection is dropped.
    #[default]
    Drop,
    /// The body ends properly, but without the stream's end marker (`[DONE]`, `message_stop`).
    CleanEnd,
    /// Half an SSE line, then the connection is dropped.
    MidLine,
    /// The wire's error event, then the body ends properly.
    ErrorEvent,
}

/// Ends a cut stream as `how` says; `error_event` is the wire's error event. Returns whether
/// the connection may be kept.
pub(crate) async fn cut(session: &mut ServerSession, how: Truncation, error_event: &[u8]) -> MockResult<bool> {
    match how {
        Truncation::Drop => Ok(false),
        Truncation::CleanEnd => {
            session.write_response_body(bytes::Bytes::new(), true).await?;
            Ok(true)
        }
        Truncation::MidLine => {
            session
                .write_response_body(bytes::Bytes::from_static(b"data: {\"trunc"), false)
                .await?;
            Ok(false)
        }
        Truncation::ErrorEvent => {
            session
                .write_response_body(bytes::Bytes::copy_from_slice(error_event), true)
                .await?;
            Ok(true)
        }
    }
}

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Delay before each response's head.
    pub latency: Duration,
    /// Content chunks per streamed chat response.
    pub chunks: u32,
    /// Delay between streamed chunks.
    pub chunk_delay: Duration,
    /// Fraction of inference requests answered with `fail_status`.
    pub fail_rate: f64,
    /// Status for failures.
    pub fail_status: u16,
    /// The first N inference requests fail with `fail_status` (deterministic failures for tests).
    pub fail_first: u64,
    /// Cut streams after this many content chunks (simulates a dying upstream); how, says
    /// `truncation`.
    pub abort_after_chunks: Option<u32>,
    /// How a stream cut by `abort_after_chunks` ends.
    pub truncation: Truncation,
    /// Keep a copy of every request (tests); off for load runs.
    pub record: bool,
    /// Failures echo the request's credentials in their body and an `x-echo-auth` header, as
    /// careless upstreams do (tests of the gateway's scrubbing).
    pub echo_auth_on_failure: bool,
    /// Failures carry `Retry-After: <seconds>`.
    pub retry_after: Option<u64>,
    /// Requests whose credentials contain this key get 401 (a revoked key).
    pub reject_key: Option<String>,
    /// Lifetime of the access tokens the mock's OAuth2 endpoint issues.
    pub token_ttl_secs: u64,
    /// Serve HTTPS with this TLS configuration instead of plain HTTP.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            latency: Duration::ZERO,
            chunks: 5,
            chunk_delay: Duration::ZERO,
            fail_rate: 0.0,
            fail_status: 503,
            fail_first: 0,
            abort_after_chunks: None,
            truncation: Truncation::Drop,
            record: false,
            echo_auth_on_failure: false,
            retry_after: None,
            reject_key: None,
            token_ttl_secs: 3600,
            tls: None,
        }
    }
}

pub(crate) type MockResult<T> = pingora::Result<T>;

pub(crate) const REPLY_WORDS: [&str; 6] = ["Hello", " from", " the", " asbru", " mock", " provider."];

/// The arguments every mock tool call carries.
pub(crate) const TOOL_ARGUMENTS: &str = r#"{"city":"Paris"}"#;

/// Writes the head of an SSE response.
pub(crate) async fn sse_head(session: &mut ServerSession) -> MockResult<()> {
    let mut head = ResponseHeader::build(200, None)?;
    head.insert_header("content-type", "text/event-stream")?;
    head.insert_header("cache-control", "no-cache")?;
    head.insert_header("transfer-encoding", "chunked")?;
    session.write_response_header(Box::new(head)).await
}

/// Writes `value` as a whole JSON reply with `status`.
pub(crate) async fn write_json(session: &mut ServerSession, status: u16, value: &serde_json::Value) -> MockResult<()> {
    let body = bytes::Bytes::from(value.to_string());
    let mut head = ResponseHeader::build(status, None)?;
    head.insert_header("content-type", "application/json")?;
    head.insert_header("content-length", body.len().to_string())?;
    session.write_response_header(Box::new(head)).await?;
    session.write_response_body(body, true).await?;
    Ok(())
}
