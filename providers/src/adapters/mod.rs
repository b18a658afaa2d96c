//! Translations between wires, one module per direction. Each is a pure function (or, for
//! streams, a state machine fed bytes) with golden tests in `providers/tests/`.
//!
//! - [`chat_to_messages`]: an OpenAI chat request sent to an Anthropic upstream, and the reply back.
//! - [`messages_stream`]: Anthropic SSE events turned into OpenAI chunks.
//! - [`messages_to_chat`]: an Anthropic Messages request sent to an OpenAI-wire upstream, and the
//!   reply back.
//! - [`chat_stream`]: OpenAI chunks turned into Anthropic SSE events.

pub mod chat_stream;
pub mod chat_to_messages;
pub mod exchange;
pub mod messages_stream;
pub mod messages_to_chat;

/// Why a request could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The body does not match the ingress API.
    #[error("invalid request body: {0}")]
    InvalidRequest(String),
    /// The upstream reply could not be read.
    #[error("the provider's reply could not be read: {0}")]
    InvalidReply(String),
}

/// The thinking budget asbru asks Anthropic for, per OpenAI reasoning effort.
pub fn thinking_budget(effort: &str) -> Option<u32> {
    match effort {
        "low" => Some(2048),
        "medium" => Some(8192),
        "high" => Some(16384),
        _ => None,
    }
}

/// OpenAI `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}
