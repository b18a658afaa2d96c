//! Cohere v2 chat streams → OpenAI `chat.completion.chunk`s, incrementally.
//!
//! Cohere sends `message-start`, then `content-start` / `content-delta` / `content-end` per text
//! block, `tool-plan-delta`s (the model's plan, relayed as reasoning), `tool-call-start` /
//! `tool-call-delta` / `tool-call-end` per call, and `message-end` with the finish reason and
//! the usage; no terminator follows, so `[DONE]` is written then. A stream that ends before
//! `message-end`, or reports an error, never ends cleanly.
//!
//! See <https://docs.cohere.com/reference/chat-stream>.

use serde_json::Value;

use super::chat_to_cohere::{finish_reason, usage};
use crate::errors::{ErrorContext, WireError};
use crate::formats::openai::types::{ChatChunk, Delta, FunctionDelta, ToolCallDelta};
use crate::sse::{self, SseSplitter};
use crate::usage::Usage;

/// The translator's state for one stream.
pub struct CohereToChatStream {
    splitter: SseSplitter,
    id: String,
    model: String,
    created: u64,
    started: bool,
    /// Tool calls started so far (OpenAI's call index of the latest is this minus one).
    calls: u32,
    usage: Usage,
    done: bool,
    errored: bool,
}

impl CohereToChatStream {
    /// A translator naming `model` and stamping `created`.
    pub fn new(model: &str, created: u64) -> Self {
        CohereToChatStream {
            splitter: SseSplitter::new(),
            id: format!("cohere-{created}"),
            model: model.to_string(),
            created,
            started: false,
            calls: 0,
            usage: Usage::default(),
            done: false,
            errored: false,
        }
    }

    /// Feeds upstream bytes and appends the translated SSE to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.splitter.feed(bytes);
        while let Some(event) = self.splitter.next_event() {
            if self.done || self.errored {
                return;
            }
            self.on_event(&event.data, out);
        }
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether `message-end` arrived (and `[DONE]` was written) with no error.
    pub fn completed(&self) -> bool {
        self.done && !self.errored
    }

    fn emit(&self, out: &mut Vec<u8>, delta: Delta, finish: Option<&str>) {
        ChatChunk::one(&self.id, self.created, &self.model, 0, delta, finish).write_sse(out);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            let delta = Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Delta::default()
            };
            self.emit(out, delta, None);
        }
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let kind = event["type"].as_str().unwrap_or_default();
        let message = &event["delta"]["message"];
        match kind {
            "message-start" => {
                if let Some(id) = event["id"].as_str() {
                    self.id = id.to_string();
                }
                self.start(out);
            }
            "content-delta" => {
                self.start(out);
                if let Some(text) = message["content"]["text"].as_str().filter(|t| !t.is_empty()) {
                    let delta = Delta {
                        content: Some(text.to_string()),
                        ..Delta::default()
                    };
                    self.emit(out, delta, None);
                }
            }
            "tool-plan-delta" => {
                self.start(out);
                if let Some(plan) = message["tool_plan"].as_str().filter(|t| !t.is_empty()) {
                    let delta = Delta {
                        reasoning: Some(plan.to_string()),
                        ..Delta::default()
                    };
                    self.emit(out, delta, None);
                }
            }
            "tool-call-start" => {
                self.start(out);
                let call = &message["tool_calls"];
                let index = self.calls;
                self.calls += 1;
                let delta = Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index,
                        id: call["id"].as_str().map(str::to_string),
                        kind: Some("function".into()),
                        function: Some(FunctionDelta {
                            name: call["function"]["name"].as_str().map(str::to_string),
                            arguments: Some(call["function"]["arguments"].as_str().unwrap_or_default().to_string()),
                        }),
                    }]),
                    ..Delta::default()
                };
                self.emit(out, delta, None);
            }
            "tool-call-delta" => {
                let Some(arguments) = message["tool_calls"]["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                else {
                    return;
                };
                let delta = Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index: self.calls.saturating_sub(1),
                        id: None,
                        kind: None,
                        function: Some(FunctionDelta {
                            name: None,
                            arguments: Some(arguments.to_string()),
                        }),
                    }]),
                    ..Delta::default()
                };
                self.emit(out, delta, None);
            }
            "message-end" => {
                self.start(out);
                let end = &event["delta"];
                if let Some(reported) = end.get("usage").and_then(usage) {
                    self.usage.merge_max(Usage::from_openai(&reported));
                }
                let reason = end["finish_reason"].as_str().unwrap_or("COMPLETE");
                if reason == "ERROR" {
                    return self.fail(end["error"].as_str().unwrap_or("the provider's generation failed"), out);
                }
                let mut chunk = ChatChunk::one(
                    &self.id,
                    self.created,
                    &self.model,
                    0,
                    Delta::default(),
                    Some(finish_reason(reason)),
                );
                chunk.usage = Some(self.usage.to_openai());
                chunk.write_sse(out);
                sse::write_data(out, b"[DONE]");
                self.done = true;
            }
            "error" => {
                let message = event["message"]
                    .as_str()
                    .or_else(|| event["error"]["message"].as_str())
                    .unwrap_or("the provider's stream failed")
                    .to_string();
                self.fail(&message, out);
            }
            // content-start, content-end, tool-call-end, citation events: nothing to say.
            _ => {}
        }
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        self.errored = true;
        let err = WireError::gateway(502, "api_error", message.to_string()).with_code("upstream_stream_error");
        out.extend_from_slice(&crate::errors::sse_error_event(&err, &ErrorContext::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = concat!(
        "event: message-start\ndata: {\"id\":\"c-1\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\",\"content\":[],\"tool_plan\":\"\",\"tool_calls\":[],\"citations\":[]}}}\n\n",
        "event: content-start\ndata: {\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":\"text\",\"text\":\"\"}}}}\n\n",
        "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hé\"}}}}\n\n",
        "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"llo\"}}}}\n\n",
        "event: content-end\ndata: {\"type\":\"content-end\",\"index\":0}\n\n",
        "event: tool-plan-delta\ndata: {\"type\":\"tool-plan-delta\",\"delta\":{\"message\":{\"tool_plan\":\"check\"}}}\n\n",
        "event: tool-call-start\ndata: {\"type\":\"tool-call-start\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"\"}}}}}\n\n",
        "event: tool-call-delta\ndata: {\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}}}}\n\n",
        "event: tool-call-end\ndata: {\"type\":\"tool-call-end\",\"index\":0}\n\n",
        "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"TOOL_CALL\",\"usage\":{\"billed_units\":{\"input_tokens\":3,\"output_tokens\":4},\"tokens\":{\"input_tokens\":50,\"output_tokens\":4}}}}\n\n",
    );

    #[test]
    fn events_become_chunks_at_every_split() {
        let mut reference = CohereToChatStream::new("command-r", 1);
        let mut whole = Vec::new();
        reference.feed(EVENTS.as_bytes(), &mut whole);
        assert!(reference.completed());
        assert_eq!(reference.usage().input_tokens, 3);
        let text = String::from_utf8(whole.clone()).expect("utf8");
        assert!(text.contains("\"content\":\"Hé\""));
        assert!(text.contains("\"reasoning\":\"check\""));
        assert!(text.contains("\"finish_reason\":\"tool_calls\""));
        assert!(text.ends_with("data: [DONE]\n\n"));
        for cut in 0..EVENTS.len() {
            let mut stream = CohereToChatStream::new("command-r", 1);
            let mut out = Vec::new();
            stream.feed(&EVENTS.as_bytes()[..cut], &mut out);
            stream.feed(&EVENTS.as_bytes()[cut..], &mut out);
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn cut_and_failed_streams_are_not_complete() {
        let cut = &EVENTS[..EVENTS.find("event: message-end").unwrap_or(0)];
        let mut stream = CohereToChatStream::new("m", 1);
        let mut out = Vec::new();
        stream.feed(cut.as_bytes(), &mut out);
        assert!(!stream.completed());
        let failed = "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\",\"error\":\"overloaded\"}}\n\n";
        let mut stream = CohereToChatStream::new("m", 1);
        let mut out = Vec::new();
        stream.feed(failed.as_bytes(), &mut out);
        assert!(!stream.completed());
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("overloaded") && !text.contains("[DONE]"));
    }
}
