//! OpenAI `chat.completion.chunk`s → the Responses API's stream events, incrementally, for
//! Responses clients whose model is reached through chat.
//!
//! The sequence follows OpenAI's: `response.created` and `response.in_progress`; per output item
//! `response.output_item.added`, its deltas (`response.output_text.delta`,
//! `response.reasoning_summary_text.delta`, `response.function_call_arguments.delta`) and their
//! `.done` events, then `response.output_item.done`; and at the end `response.completed`, or
//! `response.incomplete` when the model hit its output limit. An upstream error becomes
//! `response.failed`. Only the first choice is followed (Responses has no `n`).

use serde_json::{Value, json};

use super::responses_to_chat::{self as responses, function_call_item, message_item_out, reasoning_item};
use crate::formats::openai::types::{ChatChunk, FunctionCall, OpenAiUsage, ToolCall};
use crate::sse::{self, SseSplitter};
use crate::usage::Usage;

/// The output item being streamed.
enum Open {
    None,
    Reasoning { index: usize, text: String },
    Message { index: usize, text: String },
}

/// A function call being streamed.
struct Call {
    chat_index: u32,
    output_index: usize,
    call: ToolCall,
    open: bool,
}

/// The translator's state for one stream.
pub struct ChatToResponsesStream {
    splitter: SseSplitter,
    model: String,
    created: u64,
    /// The response id (`resp_…`), and the suffix of its items' ids.
    id: String,
    item_id: String,
    sequence: u64,
    started: bool,
    open: Open,
    calls: Vec<Call>,
    /// Finished output items, by output index.
    output: Vec<(usize, Value)>,
    next_index: usize,
    finish_reason: Option<String>,
    chat_usage: Option<OpenAiUsage>,
    usage: Usage,
    done: bool,
    errored: bool,
}

impl ChatToResponsesStream {
    /// A translator naming `model` in its events.
    pub fn new(model: &str, created: u64) -> Self {
        ChatToResponsesStream {
            splitter: SseSplitter::new(),
            model: model.to_string(),
            created,
            id: String::new(),
            item_id: String::new(),
            sequence: 0,
            started: false,
            open: Open::None,
            calls: Vec::new(),
            output: Vec::new(),
            next_index: 0,
            finish_reason: None,
            chat_usage: None,
            usage: Usage::default(),
            done: false,
            errored: false,
        }
    }

    /// Feeds upstream chunks and appends the translated events to `out`.
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

    /// Whether the upstream's `[DONE]` was seen (and the final event written) with no error.
    pub fn completed(&self) -> bool {
        self.done && !self.errored
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        if let Some(object) = data.as_object_mut() {
            object.insert("type".into(), Value::String(kind.to_string()));
            object.insert("sequence_number".into(), Value::from(self.sequence));
        }
        self.sequence += 1;
        if let Ok(json) = serde_json::to_vec(&data) {
            sse::write_event(out, kind, &json);
        }
    }

    fn object(&self, status: &str, incomplete: Value, output: Vec<Value>, usage: Value) -> Value {
        responses::response_object(&self.id, self.created, &self.model, status, incomplete, output, usage)
    }

    fn start(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        self.started = true;
        let chat_id = if chunk.id.is_empty() {
            "stream"
        } else {
            chunk.id.as_str()
        };
        self.id = responses::response_id(chat_id);
        self.item_id = chat_id.trim_start_matches("chatcmpl-").to_string();
        let response = self.object("in_progress", Value::Null, Vec::new(), Value::Null);
        self.emit(out, "response.created", json!({ "response": response }));
        let response = self.object("in_progress", Value::Null, Vec::new(), Value::Null);
        self.emit(out, "response.in_progress", json!({ "response": response }));
    }

    /// The id stem of the output item at `index`: the chat id, and the index after the first,
    /// so that a turn with several text or reasoning items gives each its own id.
    fn base(&self, index: usize) -> String {
        if index == 0 {
            self.item_id.clone()
        } else {
            format!("{}_{index}", self.item_id)
        }
    }

    /// Closes the open text or reasoning item.
    fn close_open(&mut self, out: &mut Vec<u8>) {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Reasoning { index, text } => {
                let item_id = format!("rs_{}", self.base(index));
                let part = json!({"type": "summary_text", "text": text});
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0, "part": part}),
                );
                let item = reasoning_item(&self.base(index), &text);
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": index, "item": item.clone()}),
                );
                self.output.push((index, item));
            }
            Open::Message { index, text } => {
                let item_id = format!("msg_{}", self.base(index));
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": part}),
                );
                // Cut at the output limit: the message is `incomplete`, as OpenAI marks it.
                let (status, _) = responses::status(self.finish_reason.as_deref());
                let item = message_item_out(&self.base(index), &text, status);
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": index, "item": item.clone()}),
                );
                self.output.push((index, item));
            }
        }
    }

    fn close_call(&mut self, position: usize, out: &mut Vec<u8>) {
        let Some(call) = self.calls.get_mut(position).filter(|c| c.open) else {
            return;
        };
        call.open = false;
        let (index, item_id, arguments) = (
            call.output_index,
            format!("fc_{}", call.call.id),
            call.call.function.arguments.clone(),
        );
        let item = function_call_item(&call.call, "completed");
        self.emit(
            out,
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": index, "arguments": arguments}),
        );
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item.clone()}),
        );
        self.output.push((index, item));
    }

    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for position in 0..self.calls.len() {
            self.close_call(position, out);
        }
    }

    fn reasoning_delta(&mut self, delta: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Open::Reasoning { .. }) {
            self.close_open(out);
            self.close_calls(out);
            let index = self.next_index;
            self.next_index += 1;
            self.open = Open::Reasoning {
                index,
                text: String::new(),
            };
            let item_id = format!("rs_{}", self.base(index));
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": {"type": "reasoning", "id": item_id, "summary": []}}),
            );
            self.emit(
                out,
                "response.reasoning_summary_part.added",
                json!({"item_id": item_id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
            );
        }
        if let Open::Reasoning { index, text } = &mut self.open {
            text.push_str(delta);
            let index = *index;
            let item_id = format!("rs_{}", self.base(index));
            self.emit(
                out,
                "response.reasoning_summary_text.delta",
                json!({"item_id": item_id, "output_index": index, "summary_index": 0, "delta": delta}),
            );
        }
    }

    fn text_delta(&mut self, delta: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Open::Message { .. }) {
            self.close_open(out);
            self.close_calls(out);
            let index = self.next_index;
            self.next_index += 1;
            self.open = Open::Message {
                index,
                text: String::new(),
            };
            let item_id = format!("msg_{}", self.base(index));
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}}),
            );
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
        }
        if let Open::Message { index, text } = &mut self.open {
            text.push_str(delta);
            let index = *index;
            let item_id = format!("msg_{}", self.base(index));
            self.emit(
                out,
                "response.output_text.delta",
                json!({"item_id": item_id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": []}),
            );
        }
    }

    fn call_delta(
        &mut self,
        chat_index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: Option<String>,
        out: &mut Vec<u8>,
    ) {
        let position = match self.calls.iter().position(|c| c.chat_index == chat_index) {
            Some(position) => position,
            None => {
                self.close_open(out);
                self.close_calls(out);
                let output_index = self.next_index;
                self.next_index += 1;
                let call = ToolCall {
                    id: id
                        .clone()
                        .unwrap_or_else(|| format!("call_{}_{chat_index}", self.item_id)),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: name.clone().unwrap_or_default(),
                        arguments: String::new(),
                    },
                };
                let item = function_call_item(&call, "in_progress");
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": item}),
                );
                self.calls.push(Call {
                    chat_index,
                    output_index,
                    call,
                    open: true,
                });
                self.calls.len() - 1
            }
        };
        let Some(arguments) = arguments.filter(|a| !a.is_empty()) else {
            return;
        };
        let Some(call) = self.calls.get_mut(position).filter(|c| c.open) else {
            return;
        };
        call.call.function.arguments.push_str(&arguments);
        let (index, item_id) = (call.output_index, format!("fc_{}", call.call.id));
        self.emit(
            out,
            "response.function_call_arguments.delta",
            json!({"item_id": item_id, "output_index": index, "delta": arguments}),
        );
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        self.close_calls(out);
        let mut output = std::mem::take(&mut self.output);
        output.sort_by_key(|(index, _)| *index);
        let output: Vec<Value> = output.into_iter().map(|(_, item)| item).collect();
        let (status, incomplete) = responses::status(self.finish_reason.as_deref());
        let usage = self.chat_usage.as_ref().map_or(Value::Null, responses::usage);
        let response = self.object(status, incomplete, output, usage);
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(out, kind, json!({ "response": response }));
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.done || self.errored {
            return;
        }
        if data == "[DONE]" {
            if !self.started {
                self.start(&ChatChunk::default(), out);
            }
            self.finish(out);
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
                if !self.started {
                    self.start(&ChatChunk::default(), out);
                }
                let mut response = self.object("failed", Value::Null, Vec::new(), Value::Null);
                response["error"] = json!({"code": "server_error", "message": message});
                self.emit(out, "response.failed", json!({ "response": response }));
            }
            return;
        };
        if !self.started {
            self.start(&chunk, out);
        }
        if let Some(usage) = &chunk.usage {
            self.usage.merge_max(Usage::from_openai(usage));
            self.chat_usage = Some(usage.clone());
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let delta = choice.delta;
            if let Some(reasoning) = delta.reasoning.as_deref().filter(|r| !r.is_empty()) {
                self.reasoning_delta(reasoning, out);
            }
            if let Some(content) = delta.content.as_deref().filter(|c| !c.is_empty()) {
                self.text_delta(content, out);
            }
            for call in delta.tool_calls.into_iter().flatten() {
                let (name, arguments) = call.function.map(|f| (f.name, f.arguments)).unwrap_or_default();
                self.call_delta(call.index, call.id, name, arguments, out);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKS: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"think\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hé\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":6,\"total_tokens\":10}}\n\n",
        "data: [DONE]\n\n",
    );

    fn translate(pieces: &[&[u8]]) -> (Vec<(String, Value)>, ChatToResponsesStream, String) {
        let mut stream = ChatToResponsesStream::new("m", 5);
        let mut out = Vec::new();
        for piece in pieces {
            stream.feed(piece, &mut out);
        }
        let text = String::from_utf8(out).expect("utf8");
        let mut splitter = SseSplitter::new();
        splitter.feed(text.as_bytes());
        let events = std::iter::from_fn(|| splitter.next_event())
            .map(|e| (e.event, serde_json::from_str(&e.data).expect("json")))
            .collect();
        (events, stream, text)
    }

    #[test]
    fn chunks_become_the_responses_event_sequence_at_any_split() {
        let (events, stream, whole) = translate(&[CHUNKS.as_bytes()]);
        assert!(stream.completed());
        let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (number, (kind, data)) in events.iter().enumerate() {
            assert_eq!(data["type"], kind.as_str());
            assert_eq!(data["sequence_number"], number);
        }
        let completed = &events.last().expect("events").1["response"];
        assert_eq!(completed["id"], "resp_1");
        assert_eq!(completed["status"], "completed");
        assert_eq!(completed["output"][1]["content"][0]["text"], "Héllo");
        assert_eq!(completed["output"][2]["arguments"], "{\"a\":1}");
        assert_eq!(completed["output"][2]["call_id"], "call_9");
        assert_eq!(completed["usage"]["output_tokens"], 6);
        assert_eq!(stream.usage().input_tokens, 4);
        let bytes: Vec<&[u8]> = CHUNKS.as_bytes().chunks(1).collect();
        assert_eq!(translate(&bytes).2, whole);
    }

    #[test]
    fn length_is_incomplete_and_errors_fail() {
        let chunks = concat!(
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"length\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (events, stream, _) = translate(&[chunks.as_bytes()]);
        assert!(stream.completed());
        let (kind, last) = events.last().expect("events");
        assert_eq!(kind, "response.incomplete");
        assert_eq!(last["response"]["incomplete_details"]["reason"], "max_output_tokens");
        let (events, stream, _) = translate(&[b"data: {\"error\":{\"message\":\"boom\"}}\n\n"]);
        assert!(!stream.completed());
        let (kind, last) = events.last().expect("events");
        assert_eq!(kind, "response.failed");
        assert_eq!(last["response"]["error"]["message"], "boom");
        let cut = &CHUNKS[..CHUNKS.find("data: [DONE]").expect("done")];
        let (events, stream, _) = translate(&[cut.as_bytes()]);
        assert!(!stream.completed());
        assert!(events.iter().all(|(kind, _)| kind != "response.completed"));
    }
}
