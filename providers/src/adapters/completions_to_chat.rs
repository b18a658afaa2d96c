//! Legacy completions (`POST /v1/completions`, a `prompt` instead of messages) → OpenAI chat,
//! for providers that serve only chat, and the chat reply (whole or streamed) back into
//! `text_completion` objects. The prompt becomes one user message, as Bifrost converts it.
//!
//! Refused, because chat cannot express them: several prompts in one request, token-id prompts,
//! `suffix`, `echo: true` and `logprobs`.

use serde_json::{Map, Value, json};

use super::TranslateError;
use crate::formats::openai::types::{ChatChunk, ChatMessage, ChatRequest, ChatResponse, MessageContent, Stop};
use crate::sse::{self, SseSplitter};
use crate::usage::Usage;

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

/// Translates a completions request body into a chat request for `upstream_model`.
pub fn request(body: &[u8], upstream_model: &str) -> Result<ChatRequest, TranslateError> {
    let req: Map<String, Value> = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    let prompt = match req.get("prompt") {
        Some(Value::String(prompt)) => prompt.clone(),
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            items[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(_)) => {
            return Err(invalid(
                "this model's provider serves chat only: send one text `prompt` per request (several prompts or token ids cannot be converted)",
            ));
        }
        _ => return Err(invalid("`prompt` is required and must be a string")),
    };
    for (field, refused) in [
        ("suffix", req.get("suffix").is_some_and(|v| !v.is_null())),
        ("echo", req.get("echo").and_then(Value::as_bool) == Some(true)),
        ("logprobs", req.get("logprobs").is_some_and(|v| !v.is_null())),
    ] {
        if refused {
            return Err(invalid(format!(
                "`{field}` cannot be converted to chat, which this model's provider serves instead of completions"
            )));
        }
    }
    let stream = req.get("stream").and_then(Value::as_bool).filter(|s| *s);
    let number = |name: &str| req.get(name).and_then(Value::as_f64);
    let stop = match req.get("stop") {
        Some(Value::String(one)) => Some(Stop::One(one.clone())),
        Some(Value::Array(many)) => Some(Stop::Many(
            many.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        )),
        _ => None,
    };
    Ok(ChatRequest {
        model: upstream_model.to_string(),
        messages: vec![ChatMessage {
            role: "user".into(),
            content: Some(MessageContent::Text(prompt)),
            ..ChatMessage::default()
        }],
        stream,
        stream_options: stream.map(|_| json!({"include_usage": true})),
        max_tokens: req
            .get("max_tokens")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        temperature: number("temperature"),
        top_p: number("top_p"),
        stop,
        n: req.get("n").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()),
        seed: req.get("seed").and_then(Value::as_i64),
        presence_penalty: number("presence_penalty"),
        frequency_penalty: number("frequency_penalty"),
        user: req.get("user").and_then(Value::as_str).map(str::to_string),
        ..ChatRequest::default()
    })
}

/// The completion id for a chat completion's id.
fn completion_id(chat_id: &str) -> String {
    format!("cmpl-{}", chat_id.trim_start_matches("chatcmpl-"))
}

/// Translates a chat reply into a `text_completion`.
pub fn response(chat: ChatResponse) -> Value {
    let choices: Vec<Value> = chat
        .choices
        .into_iter()
        .map(|c| {
            json!({
                "text": c.message.content.unwrap_or_default(),
                "index": c.index,
                "logprobs": null,
                "finish_reason": c.finish_reason,
            })
        })
        .collect();
    json!({
        "id": completion_id(&chat.id),
        "object": "text_completion",
        "created": chat.created,
        "model": chat.model,
        "choices": choices,
        "usage": chat.usage,
    })
}

/// Chat chunks → `text_completion` chunks, incrementally. The usage chunk goes to the client
/// only when it asked for it (`stream_options.include_usage`).
pub struct ChatToCompletionStream {
    splitter: SseSplitter,
    client_wants_usage: bool,
    usage: Usage,
    done: bool,
    errored: bool,
}

impl ChatToCompletionStream {
    /// A translator; `client_wants_usage` keeps the final usage chunk.
    pub fn new(client_wants_usage: bool) -> Self {
        ChatToCompletionStream {
            splitter: SseSplitter::new(),
            client_wants_usage,
            usage: Usage::default(),
            done: false,
            errored: false,
        }
    }

    /// Feeds upstream chunks and appends the translated chunks to `out`.
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

    /// Whether `[DONE]` was seen with no error.
    pub fn completed(&self) -> bool {
        self.done && !self.errored
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if data == "[DONE]" {
            self.done = true;
            sse::write_data(out, b"[DONE]");
            return;
        }
        let Ok(chunk) = serde_json::from_str::<ChatChunk>(data) else {
            if data.starts_with("{\"error\"") {
                // The error event goes on as sent (both APIs share OpenAI's error shape) when it
                // is JSON; a garbled one is replaced, so the client can always parse the stream.
                self.errored = true;
                if serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok() {
                    sse::write_data(out, data.as_bytes());
                } else {
                    sse::write_data(
                        out,
                        br#"{"error":{"message":"the provider sent an unreadable error event","type":"api_error"}}"#,
                    );
                }
            }
            return;
        };
        if let Some(usage) = &chunk.usage {
            self.usage.merge_max(Usage::from_openai(usage));
        }
        let choices: Vec<Value> = chunk
            .choices
            .iter()
            .filter(|c| c.delta.content.as_deref().is_some_and(|t| !t.is_empty()) || c.finish_reason.is_some())
            .map(|c| {
                json!({
                    "text": c.delta.content.as_deref().unwrap_or_default(),
                    "index": c.index,
                    "logprobs": null,
                    "finish_reason": c.finish_reason,
                })
            })
            .collect();
        let usage_only = chunk.choices.is_empty() && chunk.usage.is_some();
        if choices.is_empty() && !(usage_only && self.client_wants_usage) {
            return;
        }
        let mut translated = json!({
            "id": completion_id(&chunk.id),
            "object": "text_completion",
            "created": chunk.created,
            "model": chunk.model,
            "choices": choices,
        });
        // Usage rides on whichever chunk carried it (some providers put it on the last content
        // chunk), for a client that asked for it.
        if self.client_wants_usage && chunk.usage.is_some() {
            translated["usage"] = json!(chunk.usage);
        }
        if let Ok(json) = serde_json::to_vec(&translated) {
            sse::write_data(out, &json);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_becomes_one_user_message() {
        let chat = request(
            br#"{"model":"m","prompt":["Say hi"],"max_tokens":5,"stop":"\n","stream":true}"#,
            "up",
        )
        .expect("translates");
        let json = serde_json::to_value(&chat).expect("json");
        assert_eq!(json["messages"], json!([{"role": "user", "content": "Say hi"}]));
        assert_eq!(json["max_tokens"], 5);
        assert_eq!(json["stop"], "\n");
        assert_eq!(json["stream_options"]["include_usage"], true);
        for refused in [
            &br#"{"model":"m","prompt":["a","b"]}"#[..],
            br#"{"model":"m","prompt":[1,2,3]}"#,
            br#"{"model":"m","prompt":"a","echo":true}"#,
            br#"{"model":"m","prompt":"a","suffix":"z"}"#,
            br#"{"model":"m"}"#,
        ] {
            assert!(request(refused, "up").is_err(), "{}", String::from_utf8_lossy(refused));
        }
    }

    #[test]
    fn replies_and_chunks_become_text_completions() {
        let chat: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-4", "object": "chat.completion", "created": 2, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }))
        .expect("chat");
        let reply = response(chat);
        assert_eq!(reply["object"], "text_completion");
        assert_eq!(reply["id"], "cmpl-4");
        assert_eq!(reply["choices"][0]["text"], "hi");
        assert_eq!(reply["usage"]["total_tokens"], 2);

        let chunks = concat!(
            "data: {\"id\":\"chatcmpl-4\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"id\":\"chatcmpl-4\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"chatcmpl-4\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\n",
            "data: [DONE]\n\n",
        );
        for wants_usage in [false, true] {
            let mut stream = ChatToCompletionStream::new(wants_usage);
            let mut out = Vec::new();
            for byte in chunks.as_bytes().chunks(1) {
                stream.feed(byte, &mut out);
            }
            let text = String::from_utf8(out).expect("utf8");
            assert!(stream.completed());
            assert_eq!(stream.usage().output_tokens, 1);
            let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
            assert_eq!(events.len(), if wants_usage { 3 } else { 2 }, "{text}");
            assert!(events[0].contains("\"text\":\"hi\"") && events[0].contains("\"object\":\"text_completion\""));
            assert_eq!(*events.last().expect("events"), "data: [DONE]");
        }
    }

    #[test]
    fn a_garbled_error_event_is_replaced_by_a_parseable_one() {
        let mut t = ChatToCompletionStream::new(false);
        let mut out = Vec::new();
        t.feed(b"data: {\"error\"\xff: broken\n\n", &mut out);
        let text = String::from_utf8_lossy(&out);
        let data = text.trim().strip_prefix("data: ").expect("an event");
        assert!(serde_json::from_str::<Value>(data).is_ok(), "{text}");
        assert!(!t.completed());
    }
}
