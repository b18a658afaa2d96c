//! The Responses API's stream events → OpenAI `chat.completion.chunk`s, incrementally, for chat
//! (and, through chat, Anthropic) clients of a provider that serves only the Responses API.
//!
//! `response.created` opens the reply with the assistant role; text, reasoning-summary and
//! function-call-argument deltas become chunk deltas (each function call gets the next tool-call
//! index when its item is added); `response.completed` or `response.incomplete` becomes the
//! finishing chunk, the usage chunk (when the client asked for it) and `[DONE]`.
//! `response.failed` and `error` become an OpenAI error event.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::chat_to_responses::{chat_usage, completion_id, finish_reason};
use crate::formats::openai::types::{ChatChunk, Delta, FunctionDelta, ToolCallDelta};
use crate::sse::{self, SseSplitter};
use crate::usage::Usage;

/// Translator state for one stream.
pub struct ResponsesToChatStream {
    splitter: SseSplitter,
    model: String,
    created: u64,
    include_usage: bool,
    id: String,
    /// Function-call item id → its tool-call index, and whether argument deltas were seen.
    calls: HashMap<String, (u32, bool)>,
    usage: Usage,
    done: bool,
    errored: bool,
}

impl ResponsesToChatStream {
    /// A translator; `include_usage` sends the usage chunk before `[DONE]`.
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        ResponsesToChatStream {
            splitter: SseSplitter::new(),
            model: model.to_string(),
            created,
            include_usage,
            id: String::new(),
            calls: HashMap::new(),
            usage: Usage::default(),
            done: false,
            errored: false,
        }
    }

    /// Feeds upstream bytes and appends the translated chunks to `out`.
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

    /// Whether the final event was seen (and `[DONE]` written) with no error.
    pub fn completed(&self) -> bool {
        self.done && !self.errored
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>, out: &mut Vec<u8>) {
        ChatChunk::one(&self.id, self.created, &self.model, 0, delta, finish).write_sse(out);
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match event["type"].as_str().unwrap_or_default() {
            "response.created" => {
                self.id = completion_id(event["response"]["id"].as_str().unwrap_or_default());
                let delta = Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                self.chunk(delta, None, out);
            }
            "response.output_text.delta" => {
                let delta = Delta {
                    content: event["delta"].as_str().map(str::to_string),
                    ..Delta::default()
                };
                self.chunk(delta, None, out);
            }
            "response.refusal.delta" => {
                let delta = Delta {
                    refusal: event["delta"].as_str().map(str::to_string),
                    ..Delta::default()
                };
                self.chunk(delta, None, out);
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let delta = Delta {
                    reasoning: event["delta"].as_str().map(str::to_string),
                    ..Delta::default()
                };
                self.chunk(delta, None, out);
            }
            "response.output_item.added" if event["item"]["type"] == "function_call" => {
                let item = &event["item"];
                let index = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
                let arguments = item["arguments"].as_str().unwrap_or_default();
                self.calls.insert(
                    item["id"].as_str().unwrap_or_default().to_string(),
                    (index, !arguments.is_empty()),
                );
                let call = ToolCallDelta {
                    index,
                    id: item["call_id"].as_str().map(str::to_string),
                    kind: Some("function".into()),
                    function: Some(FunctionDelta {
                        name: item["name"].as_str().map(str::to_string),
                        arguments: Some(item["arguments"].as_str().unwrap_or_default().to_string()),
                    }),
                };
                self.chunk(
                    Delta {
                        tool_calls: Some(vec![call]),
                        ..Delta::default()
                    },
                    None,
                    out,
                );
            }
            "response.function_call_arguments.delta" => {
                let item_id = event["item_id"].as_str().unwrap_or_default();
                let Some((index, streamed)) = self.calls.get_mut(item_id) else {
                    return;
                };
                *streamed = true;
                let index = *index;
                self.arguments(index, event["delta"].as_str().unwrap_or_default(), out);
            }
            // A host that sends a call's arguments only whole, with the finished item.
            "response.output_item.done" if event["item"]["type"] == "function_call" => {
                let item = &event["item"];
                let Some((index, streamed)) = self.calls.get_mut(item["id"].as_str().unwrap_or_default()) else {
                    return;
                };
                let arguments = item["arguments"].as_str().unwrap_or_default();
                if *streamed || arguments.is_empty() {
                    return;
                }
                *streamed = true;
                let index = *index;
                self.arguments(index, arguments, out);
            }
            "response.completed" | "response.incomplete" => self.finish(&event["response"], out),
            "response.failed" => {
                // What the provider reports having used is charged, failure or not.
                if let Some(usage) = chat_usage(&event["response"]["usage"]) {
                    self.usage = Usage::from_openai(&usage);
                }
                let error = &event["response"]["error"];
                self.fail(error["message"].as_str(), error["code"].as_str(), out);
            }
            "error" => self.fail(event["message"].as_str(), event["code"].as_str(), out),
            _ => {}
        }
    }

    /// A chunk carrying a piece of tool call `index`'s arguments.
    fn arguments(&self, index: u32, arguments: &str, out: &mut Vec<u8>) {
        let call = ToolCallDelta {
            index,
            function: Some(FunctionDelta {
                name: None,
                arguments: Some(arguments.to_string()),
            }),
            ..ToolCallDelta::default()
        };
        let delta = Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        };
        self.chunk(delta, None, out);
    }

    fn finish(&mut self, response: &Value, out: &mut Vec<u8>) {
        let finish = finish_reason(
            response["status"].as_str(),
            response["incomplete_details"]["reason"].as_str(),
            !self.calls.is_empty(),
        );
        self.chunk(Delta::default(), Some(finish), out);
        let usage = chat_usage(&response["usage"]);
        if let Some(usage) = &usage {
            self.usage = Usage::from_openai(usage);
            if self.include_usage {
                let mut chunk = ChatChunk::one(&self.id, self.created, &self.model, 0, Delta::default(), None);
                chunk.choices.clear();
                chunk.usage = Some(usage.clone());
                chunk.write_sse(out);
            }
        }
        sse::write_data(out, b"[DONE]");
        self.done = true;
    }

    fn fail(&mut self, message: Option<&str>, code: Option<&str>, out: &mut Vec<u8>) {
        self.errored = true;
        self.done = true;
        let error = json!({"error": {"message": message.unwrap_or("the provider failed the response"),
            "type": "server_error", "param": null, "code": code}});
        if let Ok(json) = serde_json::to_vec(&error) {
            sse::write_data(out, &json);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_7\",\"status\":\"in_progress\",\"output\":[]}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hé\"}\n\n",
        "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":1,\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"f\",\"arguments\":\"\"}}\n\n",
        "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":3,\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"{\\\"a\\\":1}\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{\"id\":\"resp_7\",\"status\":\"completed\",\"usage\":{\"input_tokens\":5,\"output_tokens\":3,\"total_tokens\":8}}}\n\n",
    );

    fn chunks(out: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(out)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
            .collect()
    }

    #[test]
    fn events_become_chunks_at_any_split() {
        let mut whole = Vec::new();
        let mut t = ResponsesToChatStream::new("m", 1, true);
        t.feed(STREAM.as_bytes(), &mut whole);
        assert!(t.completed());
        assert_eq!(t.usage().output_tokens, 3);
        let data = chunks(&whole);
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let json: Vec<Value> = data.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
        assert_eq!(json[0]["id"], "chatcmpl-7");
        assert_eq!(json[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(json[1]["choices"][0]["delta"]["content"], "Hé");
        assert_eq!(json[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "call_1");
        assert_eq!(
            json[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(json[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(json[5]["usage"]["total_tokens"], 8);
        for cut in 0..STREAM.len() {
            let mut t = ResponsesToChatStream::new("m", 1, true);
            let mut out = Vec::new();
            t.feed(&STREAM.as_bytes()[..cut], &mut out);
            t.feed(&STREAM.as_bytes()[cut..], &mut out);
            assert_eq!(out, whole, "split at {cut}");
        }
    }

    #[test]
    fn arguments_sent_only_with_the_finished_item_are_kept() {
        let stream = concat!(
            "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_2\"}}\n\n",
            "data: {\"type\":\"response.output_item.added\",\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"f\",\"arguments\":\"\"}}\n\n",
            "data: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"f\",\"arguments\":\"{}\"}}\n\n",
            "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_2\",\"status\":\"completed\"}}\n\n",
        );
        let mut t = ResponsesToChatStream::new("m", 1, false);
        let mut out = Vec::new();
        t.feed(stream.as_bytes(), &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("\"arguments\":\"{}\""), "{text}");
        assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
        assert!(t.completed());
    }

    #[test]
    fn refusals_stream_as_refusal_deltas() {
        let stream = concat!(
            "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_3\"}}\n\n",
            "data: {\"type\":\"response.refusal.delta\",\"item_id\":\"msg_1\",\"delta\":\"No.\"}\n\n",
        );
        let mut out = Vec::new();
        ResponsesToChatStream::new("m", 1, false).feed(stream.as_bytes(), &mut out);
        assert!(String::from_utf8_lossy(&out).contains("\"delta\":{\"refusal\":\"No.\"}"));
    }

    #[test]
    fn failures_and_cuts_are_not_complete() {
        let failed = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}}\n\n";
        let mut t = ResponsesToChatStream::new("m", 1, false);
        let mut out = Vec::new();
        t.feed(failed.as_bytes(), &mut out);
        assert!(!t.completed());
        assert!(String::from_utf8_lossy(&out).contains("\"message\":\"boom\""));

        let mut t = ResponsesToChatStream::new("m", 1, false);
        t.feed(&STREAM.as_bytes()[..200], &mut Vec::new());
        assert!(!t.completed());
    }
}
