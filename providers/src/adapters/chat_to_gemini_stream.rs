//! OpenAI `chat.completion.chunk`s → Gemini stream events (`streamGenerateContent?alt=sse`),
//! incrementally, for Gemini clients whose model another provider serves.
//!
//! Text and reasoning go out one event per chunk, each held back until the next arrives, so that
//! the last one can carry the `finishReason` (google-genai's chat history drops a turn whose last
//! event has no parts). A tool call's arguments come in pieces but Gemini sends a `functionCall`
//! whole, so calls are held until their choice finishes. The finishing event waits for the usage
//! chunk (or `[DONE]`), so that it carries the usage, as Gemini's last event does.

use std::collections::{BTreeMap, BTreeSet};

use super::gemini_to_chat::{finish_reason, reply_parts, usage_metadata};
use crate::errors::WireError;
use crate::formats::gemini::types::{Candidate, Content, GenerateResponse};
use crate::formats::openai::types::{ChatChunk, FunctionCall, ToolCall};
use crate::sse::{self, SseSplitter};
use crate::usage::Usage;

/// A tool call being assembled.
#[derive(Default)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

/// The translator's state for one stream.
pub struct ChatToGeminiStream {
    splitter: SseSplitter,
    model: String,
    id: String,
    /// Calls being assembled, per (choice, call index).
    calls: BTreeMap<(u32, u32), PendingCall>,
    /// Choices finished, with their Gemini finish reason, waiting for the usage.
    finished: Vec<(u32, &'static str)>,
    /// The latest content event's candidates, not yet written.
    held: Vec<Candidate>,
    /// Choices that produced anything.
    seen: BTreeSet<u32>,
    /// Choices whose finishing event is written.
    closed: BTreeSet<u32>,
    usage: Usage,
    done: bool,
    errored: bool,
}

impl ChatToGeminiStream {
    /// A translator naming `model` in its events.
    pub fn new(model: &str) -> Self {
        ChatToGeminiStream {
            splitter: SseSplitter::new(),
            model: model.to_string(),
            id: String::new(),
            calls: BTreeMap::new(),
            finished: Vec::new(),
            held: Vec::new(),
            seen: BTreeSet::new(),
            closed: BTreeSet::new(),
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

    /// Whether the upstream's `[DONE]` was seen (and the last event written) with no error.
    pub fn completed(&self) -> bool {
        self.done && !self.errored
    }

    fn emit(&self, out: &mut Vec<u8>, candidates: Vec<Candidate>, with_usage: bool) {
        let event = GenerateResponse {
            candidates,
            usage_metadata: with_usage.then(|| usage_metadata(&self.usage)),
            model_version: Some(self.model.clone()),
            response_id: (!self.id.is_empty()).then(|| self.id.clone()),
            prompt_feedback: None,
            error: None,
        };
        if let Ok(json) = serde_json::to_vec(&event) {
            sse::write_data(out, &json);
        }
    }

    /// Writes the held content event.
    fn release_held(&mut self, out: &mut Vec<u8>) {
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.emit(out, held, false);
        }
    }

    /// Writes the finished choices: their held text, their calls and their finish reasons, with
    /// the usage.
    fn flush_finished(&mut self, out: &mut Vec<u8>) {
        if self.finished.is_empty() {
            return;
        }
        let finished = std::mem::take(&mut self.finished);
        self.closed.extend(finished.iter().map(|(index, _)| *index));
        let mut held = std::mem::take(&mut self.held);
        let (ending, other): (Vec<Candidate>, Vec<Candidate>) = held
            .drain(..)
            .partition(|c| finished.iter().any(|(index, _)| *index == c.index));
        self.held = other;
        self.release_held(out);
        let candidates = finished
            .into_iter()
            .map(|(index, reason)| {
                let mut parts: Vec<_> = ending
                    .iter()
                    .filter(|c| c.index == index)
                    .flat_map(|c| c.content.iter().flat_map(|content| content.parts.clone()))
                    .collect();
                let calls: Vec<ToolCall> = self
                    .calls
                    .range((index, 0)..=(index, u32::MAX))
                    .map(|(_, call)| ToolCall {
                        id: call.id.clone(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: call.name.clone(),
                            arguments: call.arguments.clone(),
                        },
                    })
                    .collect();
                parts.extend(reply_parts(None, None, &calls));
                Candidate {
                    content: Some(Content {
                        role: Some("model".into()),
                        parts,
                    }),
                    finish_reason: Some(reason.to_string()),
                    index,
                }
            })
            .collect();
        self.emit(out, candidates, true);
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if data == "[DONE]" {
            // A choice that produced something and never said why it stopped stopped.
            let unfinished: Vec<u32> = self
                .seen
                .iter()
                .copied()
                .filter(|i| !self.closed.contains(i) && !self.finished.iter().any(|(f, _)| f == i))
                .collect();
            self.finished.extend(unfinished.into_iter().map(|i| (i, "STOP")));
            self.flush_finished(out);
            self.release_held(out);
            self.done = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<ChatChunk>(data) else {
            if data.starts_with("{\"error\"") {
                self.errored = true;
                let message = serde_json::from_str::<serde_json::Value>(data)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "the provider's stream failed".to_string());
                let err = WireError::gateway(502, "api_error", message);
                out.extend_from_slice(&crate::errors::google_sse_error_event(&err));
            }
            return;
        };
        if self.id.is_empty() {
            self.id = chunk.id.clone();
        }
        if let Some(usage) = &chunk.usage {
            self.usage.merge_max(Usage::from_openai(usage));
        }
        let mut candidates = Vec::new();
        for choice in chunk.choices {
            let delta = choice.delta;
            for call in delta.tool_calls.into_iter().flatten() {
                let pending = self.calls.entry((choice.index, call.index)).or_default();
                if let Some(id) = call.id {
                    pending.id = id;
                }
                if let Some(function) = call.function {
                    if let Some(name) = function.name {
                        pending.name.push_str(&name);
                    }
                    if let Some(arguments) = function.arguments {
                        pending.arguments.push_str(&arguments);
                    }
                }
            }
            let parts = reply_parts(delta.reasoning.as_deref(), delta.content.as_deref(), &[]);
            if !parts.is_empty() || choice.finish_reason.is_some() {
                self.seen.insert(choice.index);
            }
            if !parts.is_empty() {
                candidates.push(Candidate {
                    content: Some(Content {
                        role: Some("model".into()),
                        parts,
                    }),
                    finish_reason: None,
                    index: choice.index,
                });
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.finished.push((choice.index, finish_reason(reason)));
            }
        }
        if !candidates.is_empty() {
            self.release_held(out);
            self.held = candidates;
        }
        // The usage chunk (no choices) closes the finished choices; without one, `[DONE]` does.
        if chunk.usage.is_some() {
            self.flush_finished(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKS: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hé\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":6,\"total_tokens\":10}}\n\n",
        "data: [DONE]\n\n",
    );

    fn translate(pieces: &[&[u8]]) -> (String, ChatToGeminiStream) {
        let mut stream = ChatToGeminiStream::new("gpt-4o");
        let mut out = Vec::new();
        for piece in pieces {
            stream.feed(piece, &mut out);
        }
        (String::from_utf8(out).expect("utf8"), stream)
    }

    #[test]
    fn chunks_become_gemini_events_at_any_split() {
        let (whole, stream) = translate(&[CHUNKS.as_bytes()]);
        assert!(stream.completed());
        let events: Vec<serde_json::Value> = whole
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        assert_eq!(events.len(), 1, "the text is held for the finishing event: {whole}");
        assert_eq!(events[0]["candidates"][0]["content"]["parts"][0]["text"], "Hé");
        let last = &events[0];
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            last["candidates"][0]["content"]["parts"][1]["functionCall"],
            serde_json::json!({"id": "call_9", "name": "f", "args": {"a": 1}})
        );
        assert_eq!(last["usageMetadata"]["promptTokenCount"], 4);
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 6);
        let bytes: Vec<&[u8]> = CHUNKS.as_bytes().chunks(1).collect();
        assert_eq!(translate(&bytes).0, whole);
    }

    #[test]
    fn no_event_has_empty_parts_and_done_closes_open_choices() {
        let chunks = concat!(
            "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":null}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (out, stream) = translate(&[chunks.as_bytes()]);
        assert!(stream.completed());
        let events: Vec<serde_json::Value> = out
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        assert_eq!(events.len(), 2, "{out}");
        assert!(events.iter().all(|e| {
            e["candidates"][0]["content"]["parts"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
        }));
        assert_eq!(events[1]["candidates"][0]["content"]["parts"][0]["text"], "b");
        assert_eq!(events[1]["candidates"][0]["finishReason"], "STOP");
    }

    #[test]
    fn cut_and_failed_streams_are_not_complete() {
        let cut = &CHUNKS[..CHUNKS.find("data: [DONE]").expect("done")];
        let (out, stream) = translate(&[cut.as_bytes()]);
        assert!(!stream.completed());
        assert!(out.contains("finishReason"), "the usage chunk closed the choice: {out}");
        let (out, stream) = translate(&[b"data: {\"error\":{\"message\":\"boom\"}}\n\n"]);
        assert!(!stream.completed());
        assert!(
            out.contains("\"status\":\"UNAVAILABLE\"") && out.contains("boom"),
            "{out}"
        );
    }
}
