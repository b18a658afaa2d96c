//! Anthropic Messages SSE → OpenAI `chat.completion.chunk`s, incrementally: bytes go in as they
//! arrive (split anywhere), each translated chunk comes out as soon as its event is complete.

use std::collections::HashMap;

use super::finish_reason;
use crate::errors::{ErrorContext, WireError};
use crate::formats::anthropic::types::{Block, BlockDelta, KnownBlock, StreamEvent};
use crate::formats::openai::types::{ChatChunk, Delta, FunctionDelta, ToolCallDelta};
use crate::sse::{self, SseSplitter};
use crate::usage::Usage;

/// The translator's state for one stream.
pub struct MessagesToChatStream {
    splitter: SseSplitter,
    id: String,
    model: String,
    created: u64,
    /// Anthropic block index -> OpenAI tool-call index (which counts tool calls only).
    tool_index: HashMap<u32, u32>,
    tool_count: u32,
    usage: Usage,
    done: bool,
    errored: bool,
}

impl MessagesToChatStream {
    /// A translator stamping chunks with `created` (Unix seconds).
    pub fn new(created: u64) -> Self {
        MessagesToChatStream {
            splitter: SseSplitter::new(),
            id: String::new(),
            model: String::new(),
            created,
            tool_index: HashMap::new(),
            tool_count: 0,
            usage: Usage::default(),
            done: false,
            errored: false,
        }
    }

    /// Feeds upstream bytes and appends the translated SSE to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.splitter.feed(bytes);
        while let Some(event) = self.splitter.next_event() {
            self.on_event(&event.data, out);
        }
    }

    /// Usage seen so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether `message_stop` was seen (and `[DONE]` written).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the upstream ended with `message_stop` and sent no error event.
    pub fn completed(&self) -> bool {
        self.done && !self.errored
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatChunk {
        ChatChunk::one(&self.id, self.created, &self.model, 0, delta, finish)
    }

    fn emit(out: &mut Vec<u8>, chunk: &ChatChunk) {
        chunk.write_sse(out);
    }

    fn tool_delta(index: u32, id: Option<String>, name: Option<String>, arguments: String) -> Delta {
        Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index,
                kind: id.as_ref().map(|_| "function".to_string()),
                id,
                function: Some(FunctionDelta {
                    name,
                    arguments: Some(arguments),
                }),
            }]),
            ..Delta::default()
        }
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        let Ok(event) = serde_json::from_str::<StreamEvent>(data) else {
            return;
        };
        match event {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.usage.merge_max(Usage::from_anthropic(&message.usage));
                let delta = Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                Self::emit(out, &self.chunk(delta, None));
            }
            StreamEvent::ContentBlockStart { index, content_block } => {
                if let Block::Known(KnownBlock::ToolUse { id, name, .. }) = content_block {
                    let call = self.tool_count;
                    self.tool_count += 1;
                    self.tool_index.insert(index, call);
                    let delta = Self::tool_delta(call, Some(id), Some(name), String::new());
                    Self::emit(out, &self.chunk(delta, None));
                }
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let delta = match delta {
                    BlockDelta::TextDelta { text } => Delta {
                        content: Some(text),
                        ..Delta::default()
                    },
                    BlockDelta::ThinkingDelta { thinking } => Delta {
                        reasoning: Some(thinking),
                        ..Delta::default()
                    },
                    BlockDelta::InputJsonDelta { partial_json } => match self.tool_index.get(&index) {
                        Some(&call) => Self::tool_delta(call, None, None, partial_json),
                        None => return,
                    },
                    BlockDelta::SignatureDelta { .. } | BlockDelta::Unknown => return,
                };
                Self::emit(out, &self.chunk(delta, None));
            }
            StreamEvent::MessageDelta { delta, usage } => {
                let mut update = Usage::from_anthropic(&usage);
                // message_delta carries cumulative output; input may be absent (0) here.
                update.input_tokens = update.input_tokens.max(self.usage.input_tokens);
                self.usage.merge_max(update);
                let finish = delta.stop_reason.as_deref().map(finish_reason).unwrap_or("stop");
                let mut chunk = self.chunk(Delta::default(), Some(finish));
                chunk.usage = Some(self.usage.to_openai());
                Self::emit(out, &chunk);
            }
            StreamEvent::MessageStop => {
                self.done = true;
                // After an error event the stream must not end as a success.
                if !self.errored {
                    sse::write_data(out, b"[DONE]");
                }
            }
            StreamEvent::Error { error } => {
                self.errored = true;
                let err = WireError::gateway(502, "api_error", error.message).with_code("upstream_stream_error");
                out.extend_from_slice(&crate::errors::sse_error_event(&err, &ErrorContext::default()));
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping => {}
        }
    }
}
