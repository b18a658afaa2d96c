//! One usage record for every path, stream and non-stream, whatever the upstream's wire. Input
//! counts every prompt token once, cache reads and cache writes included.

use asbru_config::catalog::Wire;
use serde::{Deserialize, Serialize};

use crate::formats::anthropic::types::AnthropicUsage;
use crate::formats::openai::types::{CompletionTokensDetails, OpenAiUsage, PromptTokensDetails};

/// Token usage of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// All prompt tokens, cached or not.
    pub input_tokens: u64,
    /// Generated tokens, reasoning included.
    pub output_tokens: u64,
    /// Prompt tokens read from a cache (part of `input_tokens`).
    pub cache_read_tokens: u64,
    /// Prompt tokens written to a cache (part of `input_tokens`).
    pub cache_write_tokens: u64,
    /// Reasoning tokens (part of `output_tokens`).
    pub reasoning_tokens: u64,
    /// Billed units besides tokens: the seconds of audio a transcription reports.
    pub units: u64,
}

impl Usage {
    /// From OpenAI's usage object.
    pub fn from_openai(u: &OpenAiUsage) -> Usage {
        let details = u.prompt_tokens_details.as_ref();
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cache_read_tokens: details.map(|d| d.cached_tokens).unwrap_or(0),
            cache_write_tokens: details.and_then(|d| d.cached_write_tokens).unwrap_or(0),
            reasoning_tokens: u
                .completion_tokens_details
                .as_ref()
                .map(|d| d.reasoning_tokens)
                .unwrap_or(0),
            units: 0,
        }
    }

    /// From Anthropic's usage object, where `input_tokens` excludes cached tokens.
    pub fn from_anthropic(u: &AnthropicUsage) -> Usage {
        let read = u.cache_read_input_tokens.unwrap_or(0);
        let write = u.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: u.input_tokens + read + write,
            output_tokens: u.output_tokens,
            cache_read_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
            units: 0,
        }
    }

    /// From Gemini's `usageMetadata`: thoughts count as output (and as reasoning), cached
    /// content is part of the prompt, and so are tool-use prompt tokens.
    pub fn from_gemini(meta: &crate::formats::gemini::types::UsageMetadata) -> Usage {
        Usage {
            input_tokens: meta.prompt_token_count + meta.tool_use_prompt_token_count,
            output_tokens: meta.candidates_token_count + meta.thoughts_token_count,
            cache_read_tokens: meta.cached_content_token_count,
            cache_write_tokens: 0,
            reasoning_tokens: meta.thoughts_token_count,
            units: 0,
        }
    }

    /// From Bedrock Converse's usage, where `inputTokens` excludes cache reads and writes.
    pub fn from_converse(u: &crate::formats::bedrock::types::ConverseUsage) -> Usage {
        let read = u.cache_read_input_tokens.unwrap_or(0);
        let write = u.cache_write_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: u.input_tokens + read + write,
            output_tokens: u.output_tokens,
            cache_read_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
            units: 0,
        }
    }

    /// As Bedrock Converse's usage.
    pub fn to_converse(&self) -> crate::formats::bedrock::types::ConverseUsage {
        let input = self
            .input_tokens
            .saturating_sub(self.cache_read_tokens + self.cache_write_tokens);
        crate::formats::bedrock::types::ConverseUsage {
            input_tokens: input,
            output_tokens: self.output_tokens,
            total_tokens: self.input_tokens + self.output_tokens,
            cache_read_input_tokens: (self.cache_read_tokens > 0).then_some(self.cache_read_tokens),
            cache_write_input_tokens: (self.cache_write_tokens > 0).then_some(self.cache_write_tokens),
        }
    }

    /// As OpenAI's usage object.
    pub fn to_openai(&self) -> OpenAiUsage {
        let cached = self.cache_read_tokens > 0 || self.cache_write_tokens > 0;
        OpenAiUsage {
            prompt_tokens: self.input_tokens,
            completion_tokens: self.output_tokens,
            total_tokens: self.input_tokens + self.output_tokens,
            prompt_tokens_details: cached.then(|| PromptTokensDetails {
                cached_tokens: self.cache_read_tokens,
                cached_write_tokens: (self.cache_write_tokens > 0).then_some(self.cache_write_tokens),
            }),
            completion_tokens_details: (self.reasoning_tokens > 0).then_some(CompletionTokensDetails {
                reasoning_tokens: self.reasoning_tokens,
            }),
        }
    }

    /// As Anthropic's usage object.
    pub fn to_anthropic(&self) -> AnthropicUsage {
        AnthropicUsage {
            input_tokens: self
                .input_tokens
                .saturating_sub(self.cache_read_tokens + self.cache_write_tokens),
            output_tokens: self.output_tokens,
            cache_creation_input_tokens: (self.cache_write_tokens > 0).then_some(self.cache_write_tokens),
            cache_read_input_tokens: (self.cache_read_tokens > 0).then_some(self.cache_read_tokens),
        }
    }

    /// `Some` when the provider reported anything (a usage of all zeros counts as none).
    pub fn reported(self) -> Option<Usage> {
        (self != Usage::default()).then_some(self)
    }

    /// Adds what a later stream event reports (Anthropic sends input first and output last).
    pub fn merge_max(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.max(other.input_tokens);
        self.output_tokens = self.output_tokens.max(other.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.max(other.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.max(other.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.max(other.reasoning_tokens);
        self.units = self.units.max(other.units);
    }
}

#[derive(Deserialize)]
struct WithOpenAiUsage {
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct WithAnthropicUsage {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    message: Option<Box<WithAnthropicUsage>>,
}

/// Usage from an OpenAI response body or chunk, reading nothing else.
pub fn from_openai_json(body: &[u8]) -> Option<Usage> {
    let parsed: WithOpenAiUsage = serde_json::from_slice(body).ok()?;
    parsed.usage.as_ref().map(Usage::from_openai)
}

/// Usage from an Anthropic response body or stream event (`message_start` nests it in `message`).
pub fn from_anthropic_json(body: &[u8]) -> Option<Usage> {
    let parsed: WithAnthropicUsage = serde_json::from_slice(body).ok()?;
    match (parsed.usage, parsed.message.and_then(|m| m.usage)) {
        (Some(u), _) | (None, Some(u)) => Some(Usage::from_anthropic(&u)),
        (None, None) => None,
    }
}

/// Usage from a Gemini reply body or stream event (`usageMetadata`, cumulative in a stream).
pub fn from_gemini_json(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WithGeminiUsage {
        #[serde(default)]
        usage_metadata: Option<crate::formats::gemini::types::UsageMetadata>,
    }
    let parsed: WithGeminiUsage = serde_json::from_slice(body).ok()?;
    parsed.usage_metadata.as_ref().map(Usage::from_gemini)
}

/// Usage from a Responses API object, or from a stream event carrying one (`response.completed`
/// nests it in `response`): `input_tokens` counts cached tokens too, as chat's `prompt_tokens` does.
pub fn from_responses_json(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize, Default)]
    struct Details {
        #[serde(default)]
        cached_tokens: u64,
        #[serde(default)]
        reasoning_tokens: u64,
    }
    #[derive(Deserialize)]
    struct ResponsesUsage {
        #[serde(default)]
        input_tokens: u64,
        #[serde(default)]
        output_tokens: u64,
        #[serde(default)]
        input_tokens_details: Option<Details>,
        #[serde(default)]
        output_tokens_details: Option<Details>,
    }
    #[derive(Deserialize)]
    struct WithUsage {
        #[serde(default)]
        usage: Option<ResponsesUsage>,
        #[serde(default)]
        response: Option<Box<WithUsage>>,
    }
    let parsed: WithUsage = serde_json::from_slice(body).ok()?;
    let usage = match (parsed.usage, parsed.response.and_then(|r| r.usage)) {
        (Some(u), _) | (None, Some(u)) => u,
        (None, None) => return None,
    };
    Some(Usage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_read_tokens: usage.input_tokens_details.map_or(0, |d| d.cached_tokens),
        cache_write_tokens: 0,
        reasoning_tokens: usage.output_tokens_details.map_or(0, |d| d.reasoning_tokens),
        units: 0,
    })
}

/// Usage from OpenAI's audio and images replies: tokens where the model bills them
/// (`gpt-image-1`, `gpt-4o-transcribe`), or the seconds of audio a transcription reports
/// (`usage: {"type": "duration", "seconds"}`, or `duration` in `verbose_json`).
pub fn from_media_json(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Media {
        #[serde(default)]
        usage: Option<serde_json::Value>,
        #[serde(default)]
        duration: Option<f64>,
    }
    let parsed: Media = serde_json::from_slice(body).ok()?;
    // A reported duration is at most a year: a broken upstream cannot bill the impossible.
    let seconds = |value: f64| value.clamp(0.0, 31_536_000.0).ceil() as u64;
    match parsed.usage {
        Some(usage) if usage.get("type").and_then(|t| t.as_str()) == Some("duration") => Some(Usage {
            units: seconds(usage.get("seconds").and_then(serde_json::Value::as_f64).unwrap_or(0.0)),
            ..Usage::default()
        }),
        Some(_) => from_responses_json(body),
        None => parsed.duration.map(|d| Usage {
            units: seconds(d),
            ..Usage::default()
        }),
    }
}

/// Usage from a Bedrock Converse reply body or `metadata` stream event.
pub fn from_converse_json(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct WithUsage {
        #[serde(default)]
        usage: Option<crate::formats::bedrock::types::ConverseUsage>,
    }
    let parsed: WithUsage = serde_json::from_slice(body).ok()?;
    parsed.usage.as_ref().map(Usage::from_converse)
}

/// Usage from a JSON reply body or stream event of `wire`.
pub fn from_wire_json(wire: Wire, data: &[u8]) -> Option<Usage> {
    match wire {
        Wire::Anthropic => from_anthropic_json(data),
        Wire::Gemini | Wire::Vertex => from_gemini_json(data),
        Wire::Bedrock => from_converse_json(data),
        Wire::OpenAi | Wire::Azure | Wire::Cohere => from_openai_json(data),
    }
}

/// What a relayed stream or body speaks: a wire's own API, or OpenAI's Responses API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The wire's chat (or Messages, or `generateContent`) API.
    Wire(Wire),
    /// OpenAI's Responses API (OpenAI and Azure).
    Responses,
    /// A stored Responses object read back, deleted or cancelled: it ends as a Responses
    /// stream does, and its usage (the stored response's) is never read.
    StoredResponses,
    /// OpenAI's audio, images and moderations replies: `usage` with `input_tokens` and
    /// `output_tokens` where the model bills tokens (gpt-image-1, gpt-4o-transcribe).
    Media,
}

impl Dialect {
    /// Usage from a JSON reply body or stream event.
    pub fn usage_json(self, data: &[u8]) -> Option<Usage> {
        match self {
            Dialect::Wire(wire) => from_wire_json(wire, data),
            Dialect::Responses => from_responses_json(data),
            Dialect::StoredResponses => None,
            Dialect::Media => from_media_json(data),
        }
    }
}

/// How a stream of a dialect ends, and how it reports an error.
fn end_marker(dialect: Dialect, event: &crate::sse::Event) -> (bool, bool) {
    let data = event.data.as_str();
    let wire = match dialect {
        // Streamed speech (`stream_format: sse`) and transcriptions end with their `done` event.
        Dialect::Media => {
            return (
                data.contains("\"type\":\"speech.audio.done\"")
                    || data.contains("\"type\":\"transcript.text.done\"")
                    || data.contains("\"type\":\"image_generation.completed\""),
                data.contains("\"type\":\"error\"") || data.starts_with("{\"error\""),
            );
        }
        // The Responses stream has no `[DONE]`: its final event is `response.completed` (or
        // `response.incomplete`); `response.failed` and `error` report failures. OpenAI names
        // each event in its `event:` line; without one, the data's `type` member says it (a
        // quoted `"type":"…"` cannot occur inside a JSON string, whose quotes are escaped).
        Dialect::Responses | Dialect::StoredResponses => {
            let is = |kind: &str| {
                if event.event == "message" {
                    data.contains(&format!("\"type\":\"{kind}\""))
                } else {
                    event.event == kind
                }
            };
            return (
                is("response.completed") || is("response.incomplete"),
                is("response.failed") || is("error"),
            );
        }
        Dialect::Wire(wire) => wire,
    };
    match wire {
        Wire::Anthropic => (
            data.contains("\"message_stop\""),
            data.contains("\"type\":\"error\"") || data.contains("\"type\": \"error\""),
        ),
        // Gemini sends no terminator: the event with a finishReason is the last.
        // (A blocked prompt's only event carries a blockReason instead.)
        Wire::Gemini | Wire::Vertex => (
            data.contains("\"finishReason\"") || data.contains("\"blockReason\""),
            data.starts_with("{\"error\""),
        ),
        // Bedrock streams are event streams, watched frame by frame (see StreamUsage::observe).
        Wire::OpenAi | Wire::Azure | Wire::Bedrock | Wire::Cohere => (data == "[DONE]", data.starts_with("{\"error\"")),
    }
}

/// Reads usage from a stream relayed verbatim, without changing it, and whether the stream
/// reached the end its protocol defines (`[DONE]`, `message_stop`) without an error event.
pub struct StreamUsage {
    dialect: Dialect,
    /// A Responses stream's response id, from its `response.created` event.
    response_id: Option<String>,
    splitter: crate::sse::SseSplitter,
    /// Bedrock's event-stream frames, for a Bedrock stream.
    frames: Option<Box<crate::eventstream::EventStreamDecoder>>,
    usage: Usage,
    ended: bool,
    errored: bool,
}

impl StreamUsage {
    /// Watches a stream of `wire`.
    pub fn new(wire: Wire) -> StreamUsage {
        StreamUsage::of(Dialect::Wire(wire))
    }

    /// Watches a stream of `dialect`.
    pub fn of(dialect: Dialect) -> StreamUsage {
        StreamUsage {
            dialect,
            response_id: None,
            splitter: crate::sse::SseSplitter::new(),
            frames: (dialect == Dialect::Wire(Wire::Bedrock)).then(Default::default),
            usage: Usage::default(),
            ended: false,
            errored: false,
        }
    }

    /// Looks at the next piece of a Bedrock event stream: `metadata` (after `messageStop`)
    /// ends it and carries the usage; an exception or a corrupt frame is an error.
    fn observe_frames(&mut self, bytes: &[u8]) {
        let Some(frames) = self.frames.as_mut() else {
            return;
        };
        frames.feed(bytes);
        while let Some(frame) = frames.next_frame() {
            match frame {
                Ok(frame) if frame.is_failure() => self.errored = true,
                Ok(frame) if frame.kind == "metadata" => {
                    self.ended = true;
                    if let Some(found) = from_converse_json(&frame.payload) {
                        self.usage.merge_max(found);
                    }
                }
                Ok(_) => {}
                Err(_) => self.errored = true,
            }
        }
    }

    /// Whether the stream ended as its protocol says, with no error event.
    pub fn completed(&self) -> bool {
        self.ended && !self.errored
    }

    /// Looks at the next piece of the stream.
    pub fn observe(&mut self, bytes: &[u8]) {
        if self.frames.is_some() {
            return self.observe_frames(bytes);
        }
        self.splitter.feed(bytes);
        while let Some(event) = self.splitter.next_event() {
            let (ended, errored) = end_marker(self.dialect, &event);
            self.ended |= ended;
            self.errored |= errored;
            if matches!(self.dialect, Dialect::Responses | Dialect::StoredResponses) && self.response_id.is_none() {
                self.response_id = crate::formats::openai::responses::id_of(event.data.as_bytes());
            }
            if !event.data.contains("usage") {
                continue;
            }
            let found = self.dialect.usage_json(event.data.as_bytes());
            if let Some(found) = found {
                self.usage.merge_max(found);
            }
        }
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The stream's dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A Responses stream's response id, once its first event passed.
    pub fn response_id(&self) -> Option<&str> {
        self.response_id.as_deref()
    }
}

/// Drops the final usage-only chunk (`"choices":[]` with `usage`) from an OpenAI stream whose
/// usage the gateway asked for on the client's behalf; every other byte passes unchanged. Events
/// are held back only until their blank-line terminator arrives.
#[derive(Debug, Default)]
pub struct UsageChunkFilter {
    pending: Vec<u8>,
}

impl UsageChunkFilter {
    /// A filter with nothing pending.
    pub fn new() -> UsageChunkFilter {
        UsageChunkFilter::default()
    }

    /// Feeds the next piece of the stream; what the client gets is appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(len) = event_len(&self.pending[start..]) {
            let event = &self.pending[start..start + len];
            if !is_usage_only(event) {
                out.extend_from_slice(event);
            }
            start += len;
        }
        self.pending.drain(..start);
        if self.pending.len() > crate::sse::MAX_EVENT_BYTES {
            out.append(&mut self.pending);
        }
    }

    /// The stream ended: whatever is pending goes out as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }
}

/// The length of the first complete event in `buf`, terminator included.
fn event_len(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        match (buf[i], buf[i + 1]) {
            (b'\n', b'\n') | (b'\r', b'\r') => return Some(i + 2),
            (b'\r', b'\n') if buf.get(i + 2..i + 4) == Some(b"\r\n") => return Some(i + 4),
            _ => i += 1,
        }
    }
    None
}

fn is_usage_only(event: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Vec<serde::de::IgnoredAny>,
        #[serde(default)]
        usage: Option<OpenAiUsage>,
    }
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n");
    if !data.contains("\"usage\"") {
        return false;
    }
    serde_json::from_str::<Chunk>(&data).is_ok_and(|c| c.choices.is_empty() && c.usage.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_cache_tokens_are_counted_once() {
        let u = from_anthropic_json(
            br#"{"usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}"#,
        )
        .expect("usage");
        assert_eq!(u.input_tokens, 130);
        assert_eq!(u.cache_read_tokens, 100);
        let openai = u.to_openai();
        assert_eq!(openai.prompt_tokens, 130);
        assert_eq!(openai.total_tokens, 135);
        assert_eq!(openai.prompt_tokens_details.expect("details").cached_tokens, 100);
        assert_eq!(u.to_anthropic().input_tokens, 10);
    }

    #[test]
    fn stream_usage_from_both_wires() {
        let mut s = StreamUsage::new(Wire::Anthropic);
        s.observe(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":9}}\n\n");
        assert_eq!(s.usage().input_tokens, 7);
        assert_eq!(s.usage().output_tokens, 9);
        let mut s = StreamUsage::new(Wire::OpenAi);
        s.observe(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]\n\n");
        assert_eq!(s.usage().output_tokens, 4);
    }

    #[test]
    fn usage_chunk_filter_drops_only_the_usage_chunk_at_any_split() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]\n\n";
        let expected = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\ndata: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut filter = UsageChunkFilter::new();
            let mut out = Vec::new();
            filter.feed(&stream[..split], &mut out);
            filter.feed(&stream[split..], &mut out);
            filter.finish(&mut out);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected),
                "split {split}"
            );
        }
    }
}

#[cfg(test)]
mod gemini_tests {
    use super::*;

    #[test]
    fn gemini_usage_whole_and_streamed() {
        let body = br#"{"candidates":[],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":6,"thoughtsTokenCount":2,"cachedContentTokenCount":3}}"#;
        let usage = from_wire_json(Wire::Gemini, body).expect("usage");
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.reasoning_tokens
            ),
            (12, 8, 3, 2)
        );
        let mut stream = StreamUsage::new(Wire::Gemini);
        stream.observe(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":1}}\r\n\r\n");
        assert!(!stream.completed(), "no finishReason yet");
        stream.observe(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2}}\r\n\r\n");
        assert!(stream.completed());
        assert_eq!((stream.usage().input_tokens, stream.usage().output_tokens), (4, 2));
        let mut failed = StreamUsage::new(Wire::Gemini);
        failed.observe(b"data: {\"error\":{\"code\":500,\"message\":\"x\"}}\n\n");
        assert!(!failed.completed());
    }
}
