//! Bedrock `invoke-with-response-stream` for Claude → Anthropic Messages SSE, for Anthropic
//! clients (Claude Code) whose Claude model Bedrock serves.
//!
//! Bedrock wraps each of Claude's stream events in an event-stream frame: a `chunk` event whose
//! JSON payload is `{"bytes": "<base64 of the event's JSON>"}`. The events themselves are
//! Anthropic's (`message_start` … `message_stop`, thinking and signatures included), so they are
//! unwrapped and written as SSE, unchanged. An exception frame, a corrupt frame or an
//! undecodable chunk ends the client's stream with an Anthropic error event.
//!
//! See <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModelWithResponseStream.html>.

use base64::Engine;

use crate::errors::WireError;
use crate::eventstream::EventStreamDecoder;
use crate::usage::{StreamUsage, Usage};
use asbru_config::catalog::Wire;

/// The translator's state for one stream.
pub struct InvokeToMessagesStream {
    decoder: EventStreamDecoder,
    /// Watches the unwrapped events: usage, and whether `message_stop` arrived.
    events: StreamUsage,
    errored: bool,
}

impl Default for InvokeToMessagesStream {
    fn default() -> Self {
        Self::new()
    }
}

impl InvokeToMessagesStream {
    /// A translator at the start of a stream.
    pub fn new() -> Self {
        InvokeToMessagesStream {
            decoder: EventStreamDecoder::new(),
            events: StreamUsage::new(Wire::Anthropic),
            errored: false,
        }
    }

    /// Feeds event-stream bytes and appends the unwrapped Anthropic SSE events to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.errored {
            return;
        }
        self.decoder.feed(bytes);
        while let Some(frame) = self.decoder.next_frame() {
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => return self.fail(&e.to_string(), out),
            };
            if frame.is_failure() {
                return self.fail(&frame.failure_message(), out);
            }
            if frame.kind != "chunk" {
                continue;
            }
            let Some(mut event) = unwrap_chunk(&frame.payload) else {
                return self.fail("the provider sent a stream chunk that could not be decoded", out);
            };
            // An SSE data line cannot hold a line break: JSON spread over lines is compacted.
            if event.iter().any(|b| matches!(b, b'\n' | b'\r')) {
                match serde_json::from_slice::<serde_json::Value>(&event) {
                    Ok(value) => event = value.to_string().into_bytes(),
                    Err(_) => return self.fail("the provider sent a stream chunk that is not JSON", out),
                }
            }
            let kind = serde_json::from_slice::<serde_json::Value>(&event)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
                .unwrap_or_else(|| "message".into());
            let start = out.len();
            crate::sse::write_event(out, &kind, &event);
            self.events.observe(&out[start..]);
        }
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.events.usage()
    }

    /// Whether `message_stop` arrived with no error.
    pub fn completed(&self) -> bool {
        !self.errored && self.events.completed()
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        self.errored = true;
        let err = WireError::gateway(502, "api_error", message.to_string());
        out.extend_from_slice(&crate::errors::anthropic_sse_error_event(&err));
    }
}

/// A `chunk` payload's event JSON (`{"bytes": "<base64>"}`).
fn unwrap_chunk(payload: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Chunk {
        bytes: String,
    }
    let chunk: Chunk = serde_json::from_slice(payload).ok()?;
    base64::engine::general_purpose::STANDARD.decode(chunk.bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstream::{write_event, write_exception};

    fn chunk(event: &str, out: &mut Vec<u8>) {
        let payload = serde_json::json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(event) });
        write_event("chunk", payload.to_string().as_bytes(), out);
    }

    fn stream() -> Vec<u8> {
        let mut out = Vec::new();
        chunk(
            r#"{"type":"message_start","message":{"id":"m1","type":"message","role":"assistant","model":"claude","content":[],"usage":{"input_tokens":9,"output_tokens":1}}}"#,
            &mut out,
        );
        chunk(
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            &mut out,
        );
        chunk(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig=="}}"#,
            &mut out,
        );
        chunk(r#"{"type":"content_block_stop","index":0}"#, &mut out);
        chunk(
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#,
            &mut out,
        );
        chunk(
            r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":9,"outputTokenCount":7}}"#,
            &mut out,
        );
        out
    }

    #[test]
    fn chunks_become_the_same_events_at_every_split() {
        let bytes = stream();
        let mut reference = InvokeToMessagesStream::new();
        let mut whole = Vec::new();
        reference.feed(&bytes, &mut whole);
        assert!(reference.completed());
        assert_eq!(
            (reference.usage().input_tokens, reference.usage().output_tokens),
            (9, 7)
        );
        let text = String::from_utf8(whole.clone()).expect("utf8");
        assert!(text.starts_with("event: message_start\ndata: {\"type\":\"message_start\""));
        assert!(text.contains("\"signature\":\"sig==\""));
        assert!(text.contains("event: message_stop\n"));
        for cut in 0..bytes.len() {
            let mut stream = InvokeToMessagesStream::new();
            let mut out = Vec::new();
            stream.feed(&bytes[..cut], &mut out);
            stream.feed(&bytes[cut..], &mut out);
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn exceptions_and_bad_chunks_end_with_an_error_event() {
        let mut bytes = Vec::new();
        chunk(
            r#"{"type":"message_start","message":{"usage":{"input_tokens":1}}}"#,
            &mut bytes,
        );
        write_exception("throttlingException", "Too many tokens", &mut bytes);
        let mut stream = InvokeToMessagesStream::new();
        let mut out = Vec::new();
        stream.feed(&bytes, &mut out);
        assert!(!stream.completed());
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("event: error") && text.contains("Too many tokens"));

        let mut bytes = Vec::new();
        write_event("chunk", br#"{"bytes":"%%% not base64"}"#, &mut bytes);
        let mut stream = InvokeToMessagesStream::new();
        let mut out = Vec::new();
        stream.feed(&bytes, &mut out);
        assert!(!stream.completed());
        assert!(String::from_utf8(out).expect("utf8").contains("event: error"));
    }
}
