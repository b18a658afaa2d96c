//! Translations between wires, one module per direction. Each is a pure function (or, for
//! streams, a state machine fed bytes) with golden tests in `providers/tests/`.
//!
//! - [`chat_to_messages`]: an OpenAI chat request sent to an Anthropic upstream, and the reply back.
//! - [`messages_stream`]: Anthropic SSE events turned into OpenAI chunks.
//! - [`messages_to_chat`]: an Anthropic Messages request sent to an OpenAI-wire upstream, and the
//!   reply back.
//! - [`chat_stream`]: OpenAI chunks turned into Anthropic SSE events.
//! - [`chat_to_gemini`]: an OpenAI chat or embeddings request sent to a Gemini upstream, and the
//!   reply back.
//! - [`gemini_stream`]: Gemini SSE events turned into OpenAI chunks.
//! - [`gemini_to_chat`]: a Gemini request (from a Gemini client) sent to an OpenAI-wire
//!   upstream, and the reply back.
//! - [`chat_to_gemini_stream`]: OpenAI chunks turned into Gemini SSE events.
//! - [`responses_to_chat`]: an OpenAI Responses request sent to a chat upstream, and the reply back.
//! - [`chat_to_responses_stream`]: OpenAI chunks turned into Responses stream events.
//! - [`completions_to_chat`]: a legacy completions request sent to a chat upstream, and the reply
//!   (whole or streamed) back.
//! - [`chat_to_responses`]: a chat request sent to a provider that serves only the Responses API,
//!   and the reply back.
//! - [`responses_stream`]: Responses stream events turned into OpenAI chunks.
//! - [`chat_to_converse`]: an OpenAI chat request sent to Bedrock Converse, and the reply back.
//! - [`converse_stream`]: Converse event-stream frames turned into OpenAI chunks.
//! - [`converse_to_chat`]: a Converse request (from a Bedrock client) sent to a chat upstream,
//!   and the reply back.
//! - [`chat_to_converse_stream`]: OpenAI chunks turned into Converse event-stream frames.
//! - [`bedrock_embeddings`]: OpenAI embeddings sent to Bedrock's Titan and Cohere models.
//! - [`invoke_stream`]: Claude's events unwrapped from Bedrock's `invoke-with-response-stream`
//!   frames, for Anthropic clients.
//! - [`chat_to_cohere`]: an OpenAI chat or embeddings request sent to Cohere's v2 API, and the
//!   reply back.
//! - [`cohere_stream`]: Cohere v2 chat stream events turned into OpenAI chunks.

pub mod bedrock_embeddings;
pub mod chat_stream;
pub mod chat_to_cohere;
pub mod chat_to_converse;
pub mod chat_to_converse_stream;
pub mod chat_to_gemini;
pub mod chat_to_gemini_stream;
pub mod chat_to_messages;
pub mod chat_to_responses;
pub mod chat_to_responses_stream;
pub mod cohere_stream;
pub mod completions_to_chat;
pub mod converse_stream;
pub mod converse_to_chat;
pub mod exchange;
pub mod gemini_stream;
pub mod gemini_to_chat;
pub mod invoke_stream;
pub mod messages_stream;
pub mod messages_to_chat;
pub mod responses_stream;
pub mod responses_to_chat;

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

/// A base64 `data:` URL as its media type and data; `None` for any other URL.
pub fn data_url(url: &str) -> Result<Option<(&str, &str)>, TranslateError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(None);
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| TranslateError::InvalidRequest("malformed data URL in image_url".into()))?;
    let media_type = meta
        .strip_suffix(";base64")
        .ok_or_else(|| TranslateError::InvalidRequest("image data URLs must be base64".into()))?;
    Ok(Some((media_type, data)))
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
