//! OpenAI chat chunks → Anthropic Messages SSE events, incrementally: `message_start`, then
//! `content_block_start` / `content_block_delta` / `content_block_stop` per text or tool block,
//! then `message_delta` (stop reason, usage) and `message_stop` when the upstream says `[DONE]`.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::stop_reason;
use crate::formats::anthropic::types::AnthropicUsage;
use crate::formats::openai::types::ChatChunk;
use crate::sse::{self, SseSplitter};
use crate::usage::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text(u32),
    Tool(u32),
}

/// The translator's state for one stream.
pub struct ChatToMessagesStream {
    splitter: SseSplitter,
    started: bool,
    finished: bool,
    model: String,
    next_block: u32,
    open: Option<OpenBlock>,
    /// OpenAI tool-call index -> Anthropic block index.
    tool_blocks: HashMap<u32, u32>,
    stop_reason: Option<&'static str>,
    usage: Usage,
    errored: bool,
}

impl ChatToMessagesStream {
    /// A translator; `model` is reported in `message_start`.
    pub fn new(model: &str) -> Self {
        ChatToMessagesStream {
            splitter: SseSplitter::new(),
            started: false,
            finished: false,
            model: model.to_string(),
            next_block: 0,
            open: None,
            tool_blocks: HashMap::new(),
            stop_reason: None,
            usage: Usage::default(),
            errored: false,
        }
    }

    /// Feeds upstream bytes and appends the translated events to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.splitter.feed(bytes);
        while let Some(event) = self.splitter.next_event() {
            if event.data == "[DONE]" {
                // After an error event the message must not end as a success.
                if !self.errored {
                    self.finish(out);
                }
                continue;
            }
            if let Ok(chunk) = serde_json::from_str::<ChatChunk>(&event.data) {
                self.on_chunk(chunk, out);
            } else if let Ok(value) = serde_json::from_str::<Value>(&event.data)
                && let Some(error) = value.get("error")
            {
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream stream error");
                let body = json!({"type": "error", "error": {"type": "api_error", "message": message}});
                write(out, "error", &body);
                self.errored = true;
            }
        }
    }

    /// Whether the upstream ended with `[DONE]` (and the message was closed) with no error.
    pub fn completed(&self) -> bool {
        self.finished && !self.errored
    }

    /// Closes the message (`message_delta`, `message_stop`); the upstream said `[DONE]`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(String::new(), out);
        self.close_block(out);
        self.finished = true;
        let usage: AnthropicUsage = self.usage.to_anthropic();
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
            "usage": usage,
        });
        write(out, "message_delta", &delta);
        write(out, "message_stop", &json!({"type": "message_stop"}));
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether `message_stop` was written.
    pub fn is_done(&self) -> bool {
        self.finished
    }

    fn start(&mut self, id: String, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "type": "message_start",
            "message": {
                "id": id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}
            }
        });
        write(out, "message_start", &message);
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(OpenBlock::Text(index) | OpenBlock::Tool(index)) = self.open.take() {
            write(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn open_block(&mut self, kind: OpenBlock, block: Value, out: &mut Vec<u8>) {
        self.close_block(out);
        let index = match kind {
            OpenBlock::Text(i) | OpenBlock::Tool(i) => i,
        };
        write(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        self.open = Some(kind);
    }

    fn on_chunk(&mut self, chunk: ChatChunk, out: &mut Vec<u8>) {
        self.start(chunk.id.clone(), out);
        if let Some(usage) = &chunk.usage {
            self.usage.merge_max(Usage::from_openai(usage));
        }
        for choice in chunk.choices {
            let delta = choice.delta;
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                if !matches!(self.open, Some(OpenBlock::Text(_))) {
                    let index = self.next_block;
                    self.next_block += 1;
                    self.open_block(OpenBlock::Text(index), json!({"type": "text", "text": ""}), out);
                }
                if let Some(OpenBlock::Text(index)) = self.open {
                    let event = json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}});
                    write(out, "content_block_delta", &event);
                }
            }
            for call in delta.tool_calls.unwrap_or_default() {
                let function = call.function.unwrap_or_default();
                if let Some(id) = call.id {
                    let index = self.next_block;
                    self.next_block += 1;
                    self.tool_blocks.insert(call.index, index);
                    let block = json!({"type": "tool_use", "id": id, "name": function.name.clone().unwrap_or_default(), "input": {}});
                    self.open_block(OpenBlock::Tool(index), block, out);
                }
                let Some(&index) = self.tool_blocks.get(&call.index) else {
                    continue;
                };
                if let Some(arguments) = function.arguments.filter(|a| !a.is_empty()) {
                    let event = json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": arguments}});
                    write(out, "content_block_delta", &event);
                }
            }
            if let Some(finish) = choice.finish_reason {
                self.stop_reason = Some(stop_reason(&finish));
            }
        }
    }
}

fn write(out: &mut Vec<u8>, event: &str, body: &impl Serialize) {
    if let Ok(json) = serde_json::to_vec(body) {
        sse::write_event(out, event, &json);
    }
}
