//! [`LogRecord`]: what the logging filter hands to the request log for one finished request,
//! and [`LogSink`], the queue it is handed to. The record carries raw bodies (shared, not
//! copied); turning them into messages happens on the writer's side, off the request path.

use asbru_config::catalog::Wire;
use bytes::Bytes;

use crate::pricing::TokenUsage;

/// Why a request failed, as the client was told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedError {
    /// Error type (`invalid_request_error`, `rate_limit_exceeded`, ...).
    pub kind: String,
    /// Governance decision, when governance refused it.
    pub decision: Option<String>,
    /// Message.
    pub message: String,
}

/// Who did the work (ids and names as configured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// What the request log keeps of the client's request and the reply.
#[derive(Debug, Clone, Default)]
pub struct RecordedContent {
    /// The client's wire (how to read the bodies).
    pub wire: Option<Wire>,
    /// The request body.
    pub request: Bytes,
    /// A whole reply as the client got it.
    pub reply: Option<Bytes>,
    /// A streamed reply as the client got it (possibly cut).
    pub stream: Vec<u8>,
    /// The streamed reply was cut at the capture limit.
    pub cut: bool,
}

/// One finished request.
#[derive(Debug, Clone, Default)]
pub struct LogRecord {
    /// Request id.
    pub id: String,
    /// `x-bf-parent-request-id`.
    pub parent_request_id: Option<String>,
    /// Arrival, Unix milliseconds.
    pub timestamp_ms: i64,
    /// Request type as Bifrost names it (`chat_completion`, `chat_completion_stream`, ...).
    pub object_type: &'static str,
    /// Provider that answered (or was tried last).
    pub provider: String,
    /// Model sent upstream.
    pub model: String,
    /// The `model` field as sent.
    pub requested_model: String,
    /// Status the client got.
    pub status_code: u16,
    /// The request succeeded.
    pub success: bool,
    /// A streamed reply.
    pub stream: bool,
    /// Whole request, milliseconds.
    pub latency_ms: f64,
    /// First streamed bytes, milliseconds.
    pub ttft_ms: Option<f64>,
    /// Usage reported.
    pub usage: Option<TokenUsage>,
    /// Dollars; `None` when unpriced.
    pub cost: Option<f64>,
    /// Tries after the first.
    pub retries: u32,
    /// 0 for the primary.
    pub fallback_index: usize,
    /// Provider key used.
    pub selected_key: Option<Named>,
    /// Virtual key.
    pub virtual_key: Option<Named>,
    /// Team.
    pub team: Option<Named>,
    /// Customer.
    pub customer: Option<Named>,
    /// Routing rule.
    pub routing_rule: Option<Named>,
    /// The error the client got.
    pub error: Option<RecordedError>,
    /// Content, when content logging applies.
    pub content: Option<RecordedContent>,
    /// Headers named by `client.logging_headers`.
    pub metadata: Vec<(String, String)>,
}

/// Where the logging filter hands records: a bounded queue that never blocks (a full queue
/// drops the record and counts it).
pub trait LogSink: Send + Sync {
    /// Hands over one record.
    fn submit(&self, record: LogRecord);
}
