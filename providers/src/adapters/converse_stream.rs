//! Bedrock `converse-stream` → OpenAI `chat.completion.chunk`s, incrementally: event-stream bytes
//! go in as they arrive (split anywhere), each frame's CRCs are checked, and each Converse event
//! comes out as OpenAI chunks as soon as its frame is whole.
//!
//! Converse sends `messageStart`, then per content block `contentBlockStart` (tool calls only),
//! `contentBlockDelta`s and `contentBlockStop`, then `messageStop` with the stop reason, and last
//! `metadata` with the usage. The finish chunk is written with the usage, then `[DONE]`. An
//! exception frame, or a corrupt one, becomes an error event and the stream never ends cleanly.

use std::collections::HashMap;

use super::chat_to_converse::finish_reason;
use crate::errors::{ErrorContext, WireError};
use crate::eventstream::{EventStreamDecoder, Frame};
use crate::formats::bedrock::types::StreamEvent;
use crate::formats::openai::types::{ChatChunk, Delta, FunctionDelta, ToolCallDelta};
use crate::sse;
use crate::usage::Usage;

/// The translator's state for one stream.
pub struct ConverseToChatStream {
    decoder: EventStreamDecoder,
    id: String,
    model: String,
    created: u64,
    started: bool,
    /// Content block index -> OpenAI tool call index.
    calls: HashMap<u32, u32>,
    finish: Option<&'static str>,
    usage: Usage,
    done: bool,
    errored: bool,
}

impl ConverseToChatStream {
    /// A translator naming `model` and stamping `created`.
    pub fn new(model: &str, created: u64) -> Self {
        ConverseToChatStream {
            decoder: EventStreamDecoder::new(),
            id: format!("bedrock-{created}"),
            model: model.to_string(),
            created,
            started: false,
            calls: HashMap::new(),
            finish: None,
            usage: Usage::default(),
            done: false,
            errored: false,
        }
    }

    /// Feeds upstream bytes and appends the translated SSE to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.done || self.errored {
            return;
        }
        self.decoder.feed(bytes);
        while let Some(frame) = self.decoder.next_frame() {
            match frame {
                Ok(frame) => self.on_frame(&frame, out),
                Err(e) => self.fail(&e.to_string(), out),
            }
            if self.done || self.errored {
                return;
            }
        }
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether the stream reached its `metadata` event (and `[DONE]` was written) with no
    /// exception.
    pub fn completed(&self) -> bool {
        self.done && !self.errored
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        self.errored = true;
        let err = WireError::gateway(502, "api_error", message.to_string()).with_code("upstream_stream_error");
        out.extend_from_slice(&crate::errors::sse_error_event(&err, &ErrorContext::default()));
    }

    fn emit(&self, out: &mut Vec<u8>, delta: Delta, finish: Option<&str>, usage: Option<Usage>) {
        let mut chunk = ChatChunk::one(&self.id, self.created, &self.model, 0, delta, finish);
        chunk.usage = usage.map(|u| u.to_openai());
        chunk.write_sse(out);
    }

    fn on_frame(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        if frame.is_failure() {
            let message = frame.failure_message();
            self.fail(&message, out);
            return;
        }
        let Ok(event) = serde_json::from_slice::<StreamEvent>(&frame.payload) else {
            return;
        };
        if !self.started {
            self.started = true;
            let delta = Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Delta::default()
            };
            self.emit(out, delta, None, None);
        }
        match frame.kind.as_str() {
            "contentBlockStart" => {
                let block = event.content_block_index.unwrap_or(0);
                if let Some(call) = event.start.and_then(|s| s.tool_use) {
                    let index = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
                    self.calls.insert(block, index);
                    let delta = Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index,
                            id: Some(call.tool_use_id),
                            kind: Some("function".into()),
                            function: Some(FunctionDelta {
                                name: Some(call.name),
                                arguments: Some(String::new()),
                            }),
                        }]),
                        ..Delta::default()
                    };
                    self.emit(out, delta, None, None);
                }
            }
            "contentBlockDelta" => {
                let block = event.content_block_index.unwrap_or(0);
                let Some(delta) = event.delta else { return };
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    let delta = Delta {
                        content: Some(text),
                        ..Delta::default()
                    };
                    self.emit(out, delta, None, None);
                }
                if let Some(text) = delta.reasoning_content.and_then(|r| r.text).filter(|t| !t.is_empty()) {
                    let delta = Delta {
                        reasoning: Some(text),
                        ..Delta::default()
                    };
                    self.emit(out, delta, None, None);
                }
                if let Some(input) = delta.tool_use.map(|t| t.input).filter(|i| !i.is_empty()) {
                    let index = self.calls.get(&block).copied().unwrap_or(0);
                    let delta = Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index,
                            id: None,
                            kind: None,
                            function: Some(FunctionDelta {
                                name: None,
                                arguments: Some(input),
                            }),
                        }]),
                        ..Delta::default()
                    };
                    self.emit(out, delta, None, None);
                }
            }
            "messageStop" => {
                self.finish = Some(finish_reason(event.stop_reason.as_deref().unwrap_or("end_turn")));
            }
            "metadata" => {
                if let Some(usage) = &event.usage {
                    self.usage.merge_max(Usage::from_converse(usage));
                }
                let finish = self.finish.unwrap_or("stop");
                self.emit(out, Delta::default(), Some(finish), Some(self.usage));
                self.done = true;
                sse::write_data(out, b"[DONE]");
            }
            // messageStart (handled above), contentBlockStop: nothing to say.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstream::{write_event, write_exception};

    pub(crate) fn sample_stream() -> Vec<u8> {
        let mut out = Vec::new();
        write_event("messageStart", br#"{"role":"assistant"}"#, &mut out);
        write_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"think"}}}"#,
            &mut out,
        );
        write_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":1,"delta":{"text":"He"}}"#,
            &mut out,
        );
        write_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":1,"delta":{"text":"llo"}}"#,
            &mut out,
        );
        write_event("contentBlockStop", br#"{"contentBlockIndex":1}"#, &mut out);
        write_event(
            "contentBlockStart",
            br#"{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"t1","name":"get"}}}"#,
            &mut out,
        );
        write_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"a\":"}}}"#,
            &mut out,
        );
        write_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"1}"}}}"#,
            &mut out,
        );
        write_event("contentBlockStop", br#"{"contentBlockIndex":2}"#, &mut out);
        write_event("messageStop", br#"{"stopReason":"tool_use"}"#, &mut out);
        write_event(
            "metadata",
            br#"{"usage":{"inputTokens":9,"outputTokens":6,"totalTokens":15},"metrics":{"latencyMs":12}}"#,
            &mut out,
        );
        out
    }

    #[test]
    fn frames_become_chunks_at_every_split() {
        let bytes = sample_stream();
        let mut whole = Vec::new();
        let mut reference = ConverseToChatStream::new("m", 1);
        reference.feed(&bytes, &mut whole);
        assert!(reference.completed());
        let text = String::from_utf8(whole.clone()).expect("utf8");
        assert!(text.contains("\"reasoning\":\"think\""));
        assert!(text.contains("\"content\":\"He\""));
        assert!(text.contains("\"finish_reason\":\"tool_calls\""));
        assert!(text.contains("\"arguments\":\"1}\""));
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(reference.usage().input_tokens, 9);
        for cut in 0..=bytes.len() {
            let mut stream = ConverseToChatStream::new("m", 1);
            let mut out = Vec::new();
            stream.feed(&bytes[..cut], &mut out);
            stream.feed(&bytes[cut..], &mut out);
            assert_eq!(out, whole, "cut at {cut}");
            assert!(stream.completed());
        }
    }

    #[test]
    fn exceptions_and_corruption_end_with_an_error() {
        let mut bytes = Vec::new();
        write_event("messageStart", br#"{"role":"assistant"}"#, &mut bytes);
        write_exception("throttlingException", "Too many requests", &mut bytes);
        let mut stream = ConverseToChatStream::new("m", 1);
        let mut out = Vec::new();
        stream.feed(&bytes, &mut out);
        assert!(!stream.completed());
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("Too many requests"));
        assert!(!text.contains("[DONE]"));

        let mut bytes = sample_stream();
        let at = bytes.len() - 3;
        bytes[at] ^= 0x10;
        let mut stream = ConverseToChatStream::new("m", 1);
        let mut out = Vec::new();
        for byte in &bytes {
            stream.feed(std::slice::from_ref(byte), &mut out);
        }
        assert!(!stream.completed());
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("corrupt"));
        assert!(!text.contains("[DONE]"));
    }
}
