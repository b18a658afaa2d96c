//! Gemini `streamGenerateContent?alt=sse` → OpenAI `chat.completion.chunk`s, incrementally: bytes
//! go in as they arrive (split anywhere), and each Gemini event comes out as OpenAI chunks as soon
//! as it is complete.
//!
//! Every Gemini event is a whole `GenerateContentResponse` holding the next parts of each
//! candidate; a function call arrives whole in one part. The event with a `finishReason` ends
//! the candidate, and Gemini sends no terminator after it, so `[DONE]` is written then.

use std::collections::HashSet;

use super::chat_to_gemini::{candidate_parts, finish_reason};
use crate::errors::{ErrorContext, WireError};
use crate::formats::gemini::types::GenerateResponse;
use crate::formats::openai::types::{ChatChunk, Delta, FunctionDelta, ToolCallDelta};
use crate::sse::{self, SseSplitter};
use crate::usage::Usage;

/// The translator's state for one stream.
pub struct GeminiToChatStream {
    splitter: SseSplitter,
    id: String,
    model: String,
    created: u64,
    /// Candidates that have had their first (role) chunk.
    started: HashSet<u32>,
    /// Tool calls so far, per candidate (OpenAI counts tool calls from 0 per choice).
    calls: Vec<(u32, u32)>,
    /// Calls made so far in the whole reply (for ids).
    call_total: usize,
    /// Candidates finished.
    finished: HashSet<u32>,
    /// Candidates asked for (`n`).
    expected: usize,
    usage: Usage,
    done: bool,
    errored: bool,
}

impl GeminiToChatStream {
    /// A translator naming `model` (until the reply names its version) and stamping `created`,
    /// for one candidate.
    pub fn new(model: &str, created: u64) -> Self {
        Self::with_candidates(model, created, 1)
    }

    /// A translator for a request that asked for `candidates` (`n`): the stream is complete
    /// when that many have finished.
    pub fn with_candidates(model: &str, created: u64, candidates: u32) -> Self {
        GeminiToChatStream {
            splitter: SseSplitter::new(),
            id: format!("gemini-{created}"),
            model: model.to_string(),
            created,
            started: HashSet::new(),
            calls: Vec::new(),
            call_total: 0,
            finished: HashSet::new(),
            expected: candidates.max(1) as usize,
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

    /// Whether every candidate finished (and `[DONE]` was written) with no error event.
    pub fn completed(&self) -> bool {
        self.done && !self.errored
    }

    fn chunk(&self, index: u32, delta: Delta, finish: Option<&str>) -> ChatChunk {
        ChatChunk::one(&self.id, self.created, &self.model, index, delta, finish)
    }

    fn emit(out: &mut Vec<u8>, chunk: &ChatChunk) {
        chunk.write_sse(out);
    }

    fn next_call_index(&mut self, candidate: u32) -> u32 {
        match self.calls.iter_mut().find(|(c, _)| *c == candidate) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                self.calls.push((candidate, 1));
                0
            }
        }
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Ok(event) = serde_json::from_str::<GenerateResponse>(data) else {
            return;
        };
        if let Some(error) = &event.error {
            self.errored = true;
            let message = error
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("the provider's stream failed");
            let err = WireError::gateway(502, "api_error", message).with_code("upstream_stream_error");
            out.extend_from_slice(&crate::errors::sse_error_event(&err, &ErrorContext::default()));
            return;
        }
        if let Some(id) = &event.response_id {
            self.id.clone_from(id);
        }
        if let Some(version) = &event.model_version {
            self.model.clone_from(version);
        }
        if let Some(meta) = &event.usage_metadata {
            self.usage.merge_max(Usage::from_gemini(meta));
        }
        for candidate in &event.candidates {
            let index = candidate.index;
            if self.started.insert(index) {
                let delta = Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                Self::emit(out, &self.chunk(index, delta, None));
            }
            let parts = candidate_parts(candidate, &self.id, self.call_total);
            self.call_total += parts.calls.len();
            if !parts.reasoning.is_empty() {
                let delta = Delta {
                    reasoning: Some(parts.reasoning),
                    ..Delta::default()
                };
                Self::emit(out, &self.chunk(index, delta, None));
            }
            if !parts.text.is_empty() {
                let delta = Delta {
                    content: Some(parts.text),
                    ..Delta::default()
                };
                Self::emit(out, &self.chunk(index, delta, None));
            }
            for call in parts.calls {
                let call_index = self.next_call_index(index);
                let delta = Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index: call_index,
                        id: Some(call.id),
                        kind: Some("function".into()),
                        function: Some(FunctionDelta {
                            name: Some(call.function.name),
                            arguments: Some(call.function.arguments),
                        }),
                    }]),
                    ..Delta::default()
                };
                Self::emit(out, &self.chunk(index, delta, None));
            }
            if let Some(reason) = &candidate.finish_reason {
                let called = self.calls.iter().any(|(c, _)| *c == index);
                let mut chunk = self.chunk(index, Delta::default(), Some(finish_reason(reason, called)));
                chunk.usage = Some(self.usage.to_openai());
                Self::emit(out, &chunk);
                self.finished.insert(index);
            }
        }
        // A blocked prompt ends the stream with no candidate at all.
        let blocked = event.candidates.is_empty()
            && event
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.get("blockReason").is_some());
        if blocked {
            let mut chunk = self.chunk(0, Delta::default(), Some("content_filter"));
            chunk.usage = Some(self.usage.to_openai());
            Self::emit(out, &chunk);
        }
        let all_finished =
            self.finished.len() >= self.expected && self.started.iter().all(|c| self.finished.contains(c));
        if blocked || all_finished {
            self.done = true;
            sse::write_data(out, b"[DONE]");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = concat!(
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Let me think.\",\"thought\":true}]},\"index\":0}],\"responseId\":\"r-1\",\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hé\"}]},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":4}}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"llo\"},{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}}}]},\"finishReason\":\"STOP\",\"index\":0}],",
        "\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":3,\"thoughtsTokenCount\":5,\"cachedContentTokenCount\":2}}\r\n\r\n",
    );

    fn translate(pieces: &[&[u8]]) -> (String, GeminiToChatStream) {
        let mut stream = GeminiToChatStream::new("gemini-2.5-flash", 7);
        let mut out = Vec::new();
        for piece in pieces {
            stream.feed(piece, &mut out);
        }
        (String::from_utf8(out).expect("utf8"), stream)
    }

    #[test]
    fn events_become_chunks_at_any_split() {
        let (whole, stream) = translate(&[EVENTS.as_bytes()]);
        assert!(stream.completed());
        let usage = stream.usage();
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.reasoning_tokens,
                usage.cache_read_tokens
            ),
            (4, 8, 5, 2)
        );
        let chunks: Vec<serde_json::Value> = whole
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        assert!(whole.ends_with("data: [DONE]\n\n"), "{whole}");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["id"], "r-1");
        assert_eq!(chunks[1]["choices"][0]["delta"]["reasoning"], "Let me think.");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Héllo");
        let call = chunks
            .iter()
            .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
            .expect("a call");
        assert_eq!(call["function"]["arguments"], r#"{"a":1}"#);
        assert_eq!(call["id"], "call_r1_0");
        let last = chunks.last().expect("chunks");
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(last["usage"]["completion_tokens"], 8);
        // Byte by byte (splitting the UTF-8 of "é" too) gives the same bytes.
        let bytes: Vec<&[u8]> = EVENTS.as_bytes().chunks(1).collect();
        assert_eq!(translate(&bytes).0, whole);
    }

    #[test]
    fn cut_blocked_and_failed_streams() {
        let cut = &EVENTS[..EVENTS.find("\"finishReason\"").expect("finish")];
        let (_, stream) = translate(&[cut.as_bytes()]);
        assert!(!stream.completed(), "no finishReason seen");

        let blocked =
            b"data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":3}}\n\n";
        let (out, stream) = translate(&[blocked]);
        assert!(stream.completed());
        assert!(out.contains("\"finish_reason\":\"content_filter\""), "{out}");

        let failed = b"data: {\"error\":{\"code\":500,\"message\":\"boom\",\"status\":\"INTERNAL\"}}\n\n";
        let (out, stream) = translate(&[EVENTS.as_bytes()[..10].as_ref(), b"\n\n", failed]);
        assert!(!stream.completed());
        assert!(out.contains("boom") && !out.contains("[DONE]"), "{out}");
    }

    #[test]
    fn a_stream_asked_for_two_candidates_waits_for_both() {
        let events = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\",\"index\":0}]}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\",\"index\":1}]}\n\n",
        );
        let mut stream = GeminiToChatStream::with_candidates("m", 1, 2);
        let mut out = Vec::new();
        let (first, second) = events.split_at(events.find("\n\n").expect("event") + 2);
        stream.feed(first.as_bytes(), &mut out);
        assert!(!stream.completed(), "one of two candidates finished");
        stream.feed(second.as_bytes(), &mut out);
        assert!(stream.completed());
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("\"index\":1,\"delta\":{\"content\":\"b\"}"), "{text}");
        assert_eq!(text.matches("[DONE]").count(), 1);
    }

    #[test]
    fn several_candidates_finish_separately() {
        let events = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"index\":0},{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"MAX_TOKENS\",\"index\":1}]}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"c\"}]},\"finishReason\":\"STOP\",\"index\":0}]}\n\n",
        );
        let (out, stream) = translate(&[events.as_bytes()]);
        assert!(stream.completed());
        assert_eq!(out.matches("[DONE]").count(), 1);
        assert!(
            out.contains("\"index\":1,\"delta\":{},\"finish_reason\":\"length\""),
            "{out}"
        );
    }
}
