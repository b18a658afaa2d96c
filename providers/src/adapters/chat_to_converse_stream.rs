//! OpenAI `chat.completion.chunk`s → Bedrock `converse-stream` events in AWS event-stream
//! frames, incrementally, for Bedrock clients whose model another provider serves.
//!
//! The first chunk opens the message (`messageStart`). Text and reasoning go out as
//! `contentBlockDelta`s of their own block; a tool call opens a block with `contentBlockStart`
//! (its id and name) and sends its arguments as `toolUse.input` deltas. `[DONE]` closes the open
//! block, then `messageStop` carries the stop reason and `metadata` the usage. An error event
//! becomes an exception frame, and the stream ends without `messageStop`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::chat_to_converse::stop_reason;
use crate::eventstream::{write_event, write_exception};
use crate::formats::openai::types::ChatChunk;
use crate::sse::SseSplitter;
use crate::usage::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Reasoning(u32),
    Tool(u32),
}

impl Open {
    fn index(self) -> u32 {
        match self {
            Open::Text(i) | Open::Reasoning(i) | Open::Tool(i) => i,
        }
    }
}

/// The translator's state for one stream.
pub struct ChatToConverseStream {
    splitter: SseSplitter,
    started: bool,
    next_block: u32,
    open: Option<Open>,
    /// OpenAI tool-call index -> Converse block index.
    tools: HashMap<u32, u32>,
    stop: Option<&'static str>,
    usage: Usage,
    done: bool,
    errored: bool,
}

impl Default for ChatToConverseStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ChatToConverseStream {
    /// A translator at the start of a stream.
    pub fn new() -> Self {
        ChatToConverseStream {
            splitter: SseSplitter::new(),
            started: false,
            next_block: 0,
            open: None,
            tools: HashMap::new(),
            stop: None,
            usage: Usage::default(),
            done: false,
            errored: false,
        }
    }

    /// Feeds OpenAI SSE bytes and appends event-stream frames to `out`.
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

    /// Whether `[DONE]` was seen (and `messageStop` and `metadata` written) with no error.
    pub fn completed(&self) -> bool {
        self.done && !self.errored
    }

    fn event(out: &mut Vec<u8>, kind: &str, payload: &Value) {
        write_event(kind, payload.to_string().as_bytes(), out);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            Self::event(out, "messageStart", &json!({"role": "assistant"}));
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.open.take() {
            Self::event(out, "contentBlockStop", &json!({"contentBlockIndex": open.index()}));
        }
    }

    /// The open block of the wanted kind, opening a new one (closing the other) if needed.
    fn block(&mut self, want: fn(u32) -> Open, out: &mut Vec<u8>) -> u32 {
        match self.open {
            Some(open) if open == want(open.index()) => open.index(),
            _ => {
                self.close(out);
                let index = self.next_block;
                self.next_block += 1;
                self.open = Some(want(index));
                index
            }
        }
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        if data == "[DONE]" {
            self.start(out);
            self.close(out);
            Self::event(
                out,
                "messageStop",
                &json!({"stopReason": self.stop.unwrap_or("end_turn")}),
            );
            let usage = self.usage.to_converse();
            Self::event(out, "metadata", &json!({"usage": usage, "metrics": {"latencyMs": 0}}));
            self.done = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<ChatChunk>(data) else {
            if data.starts_with("{\"error\"") {
                self.errored = true;
                let message = serde_json::from_str::<Value>(data)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "the provider's stream failed".to_string());
                write_exception("modelStreamErrorException", &message, out);
            }
            return;
        };
        self.start(out);
        if let Some(usage) = &chunk.usage {
            self.usage.merge_max(Usage::from_openai(usage));
        }
        // Converse has one choice: the first.
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return;
        };
        let delta = choice.delta;
        if let Some(reasoning) = delta.reasoning.filter(|r| !r.is_empty()) {
            let index = self.block(Open::Reasoning, out);
            Self::event(
                out,
                "contentBlockDelta",
                &json!({"contentBlockIndex": index, "delta": {"reasoningContent": {"text": reasoning}}}),
            );
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            let index = self.block(Open::Text, out);
            Self::event(
                out,
                "contentBlockDelta",
                &json!({"contentBlockIndex": index, "delta": {"text": text}}),
            );
        }
        for call in delta.tool_calls.into_iter().flatten() {
            let function = call.function.unwrap_or_default();
            let index = match (self.tools.get(&call.index).copied(), call.id) {
                (Some(index), _) => index,
                (None, id) => {
                    self.close(out);
                    let index = self.next_block;
                    self.next_block += 1;
                    self.open = Some(Open::Tool(index));
                    self.tools.insert(call.index, index);
                    Self::event(
                        out,
                        "contentBlockStart",
                        &json!({"contentBlockIndex": index, "start": {"toolUse": {
                            "toolUseId": id.unwrap_or_default(),
                            "name": function.name.clone().unwrap_or_default()
                        }}}),
                    );
                    index
                }
            };
            if let Some(arguments) = function.arguments.filter(|a| !a.is_empty()) {
                if self.open != Some(Open::Tool(index)) {
                    // Arguments for a call whose block was closed: Converse blocks cannot
                    // reopen, so the piece goes to the block anyway (clients join by index).
                    self.close(out);
                }
                Self::event(
                    out,
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": arguments}}}),
                );
            }
        }
        if let Some(finish) = choice.finish_reason.as_deref() {
            self.stop = Some(stop_reason(finish));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstream::EventStreamDecoder;

    const CHUNKS: &str = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    );

    fn frames(bytes: &[u8]) -> Vec<(String, Value)> {
        let mut decoder = EventStreamDecoder::new();
        decoder.feed(bytes);
        let mut out = Vec::new();
        while let Some(frame) = decoder.next_frame() {
            let frame = frame.expect("valid frame");
            out.push((frame.kind, serde_json::from_slice(&frame.payload).expect("json")));
        }
        out
    }

    #[test]
    fn chunks_become_converse_events() {
        let mut stream = ChatToConverseStream::new();
        let mut out = Vec::new();
        for byte in CHUNKS.as_bytes().chunks(7) {
            stream.feed(byte, &mut out);
        }
        assert!(stream.completed());
        let events = frames(&out);
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockStop",
                "contentBlockStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        assert_eq!(events[1].1["delta"]["text"], "Hi");
        assert_eq!(events[3].1["start"]["toolUse"]["toolUseId"], "t1");
        assert_eq!(events[3].1["contentBlockIndex"], 1);
        assert_eq!(events[7].1["stopReason"], "tool_use");
        assert_eq!(events[8].1["usage"]["inputTokens"], 3);
    }

    #[test]
    fn an_error_event_becomes_an_exception() {
        let mut stream = ChatToConverseStream::new();
        let mut out = Vec::new();
        stream.feed(
            b"data: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n",
            &mut out,
        );
        assert!(!stream.completed());
        let mut decoder = EventStreamDecoder::new();
        decoder.feed(&out);
        let frame = decoder.next_frame().expect("frame").expect("valid");
        assert!(frame.is_failure());
        assert_eq!(frame.failure_message(), "boom");
        assert!(decoder.next_frame().is_none());
    }
}
