//! Turning the raw bodies a log record carries into the log's content columns: the input
//! messages, the output message, tools, model parameters, the stop reason and the searchable
//! summary. Runs on the log writer's blocking thread, never on the request path.
//!
//! Bodies are in the client's wire: OpenAI chat (and embeddings), or Anthropic Messages. A
//! streamed reply is the SSE the client received, folded back into one message.

use std::borrow::Cow;
use std::collections::BTreeMap;

use asbru_config::catalog::Wire;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// The content columns of one row, each as JSON text.
///
/// Parts of the client's bodies are kept as the client wrote them (borrowed slices of the body,
/// never parsed into a tree and written out again), which is most of what a row costs to build.
#[derive(Debug, Default, PartialEq)]
pub struct Content {
    /// Input messages (a JSON array).
    pub input_history: Option<String>,
    /// The assistant's message (a JSON object).
    pub output_message: Option<String>,
    /// Tools offered (a JSON array).
    pub tools: Option<String>,
    /// Model parameters (a JSON object).
    pub params: Option<String>,
    /// Why generation stopped.
    pub stop_reason: Option<String>,
    /// Prompt and completion text, for search.
    pub summary: String,
}

/// Request fields that are not model parameters.
const NOT_PARAMS: &[&str] = &[
    "messages",
    "tools",
    "model",
    "stream",
    "fallbacks",
    "system",
    "input",
    "prompt",
];

/// A JSON object's members, in key order (as `serde_json::Map` orders them), values borrowed.
type Members<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

/// A message, as far as the summary reads it.
#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// An OpenAI chat reply, as far as the log reads it.
#[derive(Deserialize)]
struct ReplyView<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceView<'a>>>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

/// Reads the content of a request and its reply.
pub fn extract(wire: Wire, request: &[u8], reply: Option<&[u8]>, stream: &[u8]) -> Content {
    let anthropic = matches!(wire, Wire::Anthropic);
    let mut content = Content::default();
    if let Ok(body) = serde_json::from_slice::<Members<'_>>(request) {
        content.input_history = input_messages(&body, anthropic);
        content.tools = member(&body, "tools").map(|t| t.get().to_string());
        let params: Vec<String> = body
            .iter()
            .filter(|(k, _)| !NOT_PARAMS.contains(&k.as_ref()))
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_ref()), v.get()))
            .collect();
        content.params = (!params.is_empty()).then(|| format!("{{{}}}", params.join(",")));
    }
    let (output, stop) = match reply {
        Some(reply) if anthropic => anthropic_reply(reply),
        Some(reply) => openai_reply(reply),
        None if !stream.is_empty() => streamed_reply(stream, anthropic),
        None => (None, None),
    };
    content.output_message = output;
    content.stop_reason = stop;
    let mut summary = String::new();
    if let Some(messages) = &content.input_history
        && let Ok(messages) = serde_json::from_str::<Vec<&RawValue>>(messages)
    {
        // One message that is not an object does not cost the others their text.
        for m in messages {
            if let Ok(m) = serde_json::from_str::<MessageView<'_>>(m.get()) {
                push_text(&mut summary, m.content);
            }
        }
    }
    if let Some(out) = &content.output_message
        && let Ok(out) = serde_json::from_str::<MessageView<'_>>(out)
    {
        push_text(&mut summary, out.content);
    }
    content.summary = summary;
    content
}

/// A member that is present and not `null`.
fn member<'a>(body: &Members<'a>, key: &str) -> Option<&'a RawValue> {
    body.get(key).copied().filter(|v| v.get() != "null")
}

/// The input messages as a JSON array: the client's `messages` (after Anthropic's `system`), or
/// for embeddings and completions the input as one user message.
fn input_messages(body: &Members<'_>, anthropic: bool) -> Option<String> {
    if let Some(messages) = body.get("messages").filter(|m| m.get().starts_with('[')) {
        let system = member(body, "system").filter(|_| anthropic);
        let Some(system) = system else {
            return Some(messages.get().to_string());
        };
        let rest = messages.get()[1..].trim_start();
        let separator = if rest.starts_with(']') { "" } else { "," };
        return Some(format!(
            r#"[{{"role":"system","content":{}}}{separator}{rest}"#,
            system.get()
        ));
    }
    let input = body.get("input").or_else(|| body.get("prompt"))?;
    Some(format!(r#"[{{"role":"user","content":{}}}]"#, input.get()))
}

/// Appends the text of a message's `content`: a string, or the text of its parts.
fn push_text(out: &mut String, content: Option<&RawValue>) {
    let Some(content) = content else {
        return;
    };
    match content.get().as_bytes().first() {
        Some(b'"') => {
            if let Ok(text) = serde_json::from_str::<Cow<'_, str>>(content.get()) {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&text);
            }
        }
        Some(b'[') => {
            for part in serde_json::from_str::<Vec<&RawValue>>(content.get()).unwrap_or_default() {
                if part.get().starts_with('"') {
                    push_text(out, Some(part));
                } else if let Ok(part) = serde_json::from_str::<PartView<'_>>(part.get()) {
                    push_text(out, part.text);
                }
            }
        }
        _ => {}
    }
}

/// A content part, as far as the summary reads it.
#[derive(Deserialize)]
struct PartView<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

/// An OpenAI chat reply: the first choice's message as the client got it, and its finish
/// reason.
fn openai_reply(reply: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(body) = serde_json::from_slice::<ReplyView<'_>>(reply) else {
        return (None, None);
    };
    let Some(choice) = body.choices.as_ref().and_then(|c| c.first()) else {
        return (None, None);
    };
    let stop = choice
        .finish_reason
        .and_then(|r| serde_json::from_str::<String>(r.get()).ok());
    (choice.message.map(|m| m.get().to_string()), stop)
}

/// An Anthropic Messages reply folded into one assistant message, and its stop reason.
fn anthropic_reply(reply: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(body) = serde_json::from_slice::<Value>(reply) else {
        return (None, None);
    };
    let mut message = AssistantMessage::default();
    for block in body.get("content").and_then(Value::as_array).into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => message
                .text
                .push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => message.tool_calls.push(json!({
                "id": block.get("id"),
                "type": "function",
                "function": {
                    "name": block.get("name"),
                    "arguments": block.get("input").map(Value::to_string).unwrap_or_default(),
                }
            })),
            _ => {}
        }
    }
    let stop = body.get("stop_reason").and_then(Value::as_str).map(str::to_string);
    (Some(message.into_value().to_string()), stop)
}

/// An assistant message folded from stream deltas.
#[derive(Debug, Default)]
struct AssistantMessage {
    text: String,
    tool_calls: Vec<Value>,
}

impl AssistantMessage {
    fn into_value(self) -> Value {
        let mut message = json!({"role": "assistant", "content": self.text});
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(self.tool_calls);
        }
        message
    }

    /// Appends to the arguments of tool call `index`, creating it when new.
    fn tool_delta(&mut self, index: usize, id: Option<&Value>, name: Option<&Value>, arguments: &str) {
        while self.tool_calls.len() <= index {
            self.tool_calls
                .push(json!({"id": null, "type": "function", "function": {"name": null, "arguments": ""}}));
        }
        let call = &mut self.tool_calls[index];
        if let Some(id) = id.filter(|v| !v.is_null()) {
            call["id"] = id.clone();
        }
        if let Some(name) = name.filter(|v| !v.is_null()) {
            call["function"]["name"] = name.clone();
        }
        if !arguments.is_empty() {
            let joined = format!(
                "{}{arguments}",
                call["function"]["arguments"].as_str().unwrap_or_default()
            );
            call["function"]["arguments"] = Value::String(joined);
        }
    }
}

/// Folds the `data:` events of an SSE reply into one message.
fn streamed_reply(stream: &[u8], anthropic: bool) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(stream);
    let mut message = AssistantMessage::default();
    let mut stop = None;
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
            continue;
        };
        if anthropic {
            match event.get("type").and_then(Value::as_str) {
                Some("content_block_start") => {
                    let block = &event["content_block"];
                    if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                        message.tool_delta(index, block.get("id"), block.get("name"), "");
                    }
                }
                Some("content_block_delta") => {
                    let delta = &event["delta"];
                    match delta.get("type").and_then(Value::as_str) {
                        Some("text_delta") => message.text.push_str(delta["text"].as_str().unwrap_or("")),
                        Some("input_json_delta") => {
                            let index = event.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                            message.tool_delta(index, None, None, delta["partial_json"].as_str().unwrap_or(""));
                        }
                        _ => {}
                    }
                }
                Some("message_delta") => {
                    if let Some(reason) = event["delta"].get("stop_reason").and_then(Value::as_str) {
                        stop = Some(reason.to_string());
                    }
                }
                _ => {}
            }
            continue;
        }
        let Some(choice) = event.get("choices").and_then(|c| c.get(0)) else {
            continue;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            message.text.push_str(text);
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            let function = &call["function"];
            message.tool_delta(
                index,
                call.get("id"),
                function.get("name"),
                function.get("arguments").and_then(Value::as_str).unwrap_or(""),
            );
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            stop = Some(reason.to_string());
        }
    }
    // Anthropic tool calls are keyed by content block index, text blocks included: drop the
    // placeholders of blocks that were not tool calls.
    message
        .tool_calls
        .retain(|c| !c["id"].is_null() || c["function"]["arguments"] != "");
    (Some(message.into_value().to_string()), stop)
}

/// Cuts JSON `text` to at most `cap` bytes of valid JSON (see [`capped_json`]); text that fits
/// is kept as it is. Returns the text (`None` when it is too long and cannot be read as a tree,
/// e.g. nested deeper than the parser goes) and whether anything was cut.
pub fn capped(text: String, cap: usize) -> (Option<String>, bool) {
    if text.len() <= cap {
        return (Some(text), false);
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(value) => {
            let (text, cut) = capped_json(&value, cap);
            (Some(text), cut)
        }
        Err(_) => (None, true),
    }
}

/// Serialises `value` into at most `cap` bytes of valid JSON: the longest strings are cut
/// (marked `…[truncated]`) until it fits. Returns the text and whether anything was cut.
pub fn capped_json(value: &Value, cap: usize) -> (String, bool) {
    let text = value.to_string();
    if text.len() <= cap {
        return (text, false);
    }
    let mut limit = cap;
    loop {
        limit /= 2;
        let mut cut = value.clone();
        shorten_strings(&mut cut, limit);
        let text = cut.to_string();
        if text.len() <= cap || limit < 16 {
            return (text, true);
        }
    }
}

/// Cuts `text` to at most `cap` bytes on a character boundary; says whether it cut.
pub fn capped_text(text: &str, cap: usize) -> (String, bool) {
    if text.len() <= cap {
        return (text.to_string(), false);
    }
    (text[..floor_char_boundary(text, cap)].to_string(), true)
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn shorten_strings(value: &mut Value, limit: usize) {
    match value {
        Value::String(s) if s.len() > limit => {
            let end = floor_char_boundary(s, limit);
            s.truncate(end);
            s.push_str("…[truncated]");
        }
        Value::Array(items) => items.iter_mut().for_each(|v| shorten_strings(v, limit)),
        Value::Object(map) => map.values_mut().for_each(|v| shorten_strings(v, limit)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &Option<String>) -> Option<Value> {
        text.as_deref().map(|t| serde_json::from_str(t).expect("valid JSON"))
    }

    #[test]
    fn openai_chat_request_and_reply() {
        let request = br#"{"model":"openai/gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi there"}]}],"temperature":0.2,"tools":[{"type":"function","function":{"name":"f"}}],"stream":false}"#;
        let reply =
            br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}]}"#;
        let c = extract(Wire::OpenAi, request, Some(reply), b"");
        assert_eq!(
            parsed(&c.input_history).as_ref().map(|v| v.as_array().map(Vec::len)),
            Some(Some(2))
        );
        assert_eq!(parsed(&c.params), Some(json!({"temperature": 0.2})));
        assert_eq!(
            parsed(&c.tools),
            Some(json!([{"type":"function","function":{"name":"f"}}]))
        );
        assert_eq!(
            parsed(&c.output_message),
            Some(json!({"role":"assistant","content":"hello"}))
        );
        assert_eq!(c.stop_reason.as_deref(), Some("stop"));
        assert_eq!(c.summary, "be brief\nhi there\nhello");
    }

    #[test]
    fn streams_fold_into_one_message() {
        let sse = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        let c = extract(Wire::OpenAi, b"{}", None, sse.as_bytes());
        let out = parsed(&c.output_message).expect("message");
        assert_eq!(out["content"], "Hello");
        assert_eq!(out["tool_calls"][0]["id"], "c1");
        assert_eq!(out["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(c.stop_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn anthropic_bodies_and_streams() {
        let request =
            br#"{"model":"claude","system":"sys","messages":[{"role":"user","content":"q"}],"max_tokens":10}"#;
        let reply = br#"{"content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t1","name":"f","input":{"x":1}}],"stop_reason":"tool_use"}"#;
        let c = extract(Wire::Anthropic, request, Some(reply), b"");
        assert_eq!(
            parsed(&c.input_history).expect("input")[0],
            json!({"role":"system","content":"sys"})
        );
        let out = parsed(&c.output_message).expect("out");
        assert_eq!(out["content"], "a");
        assert_eq!(out["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!(parsed(&c.params), Some(json!({"max_tokens": 10})));
        let sse = concat!(
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n"
        );
        let c = extract(Wire::Anthropic, request, None, sse.as_bytes());
        assert_eq!(parsed(&c.output_message).expect("out")["content"], "Hi");
        assert_eq!(c.stop_reason.as_deref(), Some("end_turn"));
    }

    #[test]
    fn embeddings_input_is_one_user_message() {
        let c = extract(Wire::OpenAi, br#"{"model":"m","input":["a","b"]}"#, None, b"");
        assert_eq!(
            parsed(&c.input_history),
            Some(json!([{"role":"user","content":["a","b"]}]))
        );
        assert_eq!(c.summary, "a\nb");
    }

    #[test]
    fn client_text_is_kept_as_written_and_odd_shapes_are_safe() {
        // Escaped keys and strings, an empty Anthropic history, parts that are strings, and a
        // `choices` that is not a list.
        let request =
            br#"{"messages" : [ ],"system":[{"type":"text","text":"r\u00e8gle"}],"te\u0073t":1,"max_tokens":5}"#;
        let c = extract(Wire::Anthropic, request, None, b"");
        assert_eq!(
            parsed(&c.input_history),
            Some(json!([{"role":"system","content":[{"type":"text","text":"r\u{e8}gle"}]}]))
        );
        assert_eq!(parsed(&c.params), Some(json!({"max_tokens": 5, "test": 1})));
        assert_eq!(c.summary, "r\u{e8}gle");
        let request = br#"{"messages":[{"role":"user","content":["one",{"type":"text","text":"two"},{"type":"image_url"}]}],"tools":null}"#;
        let c = extract(Wire::OpenAi, request, Some(br#"{"choices":{"a":1}}"#), b"");
        assert_eq!(c.summary, "one\ntwo");
        assert_eq!((c.tools, c.output_message, c.params), (None, None, None));
        let c = extract(Wire::OpenAi, b"[1,2]", Some(b"not json"), b"");
        assert_eq!(c, Content::default());
        let c = extract(
            Wire::OpenAi,
            br#"{"messages":[]}"#,
            Some(br#"{"choices":[{"message":{"role":"assistant","content":null},"finish_reason":null}]}"#),
            b"",
        );
        assert_eq!(
            parsed(&c.output_message),
            Some(json!({"role":"assistant","content":null}))
        );
        assert_eq!((c.stop_reason, c.summary.as_str()), (None, ""));
    }

    #[test]
    fn capped_text_that_fits_is_kept_and_long_text_stays_valid() {
        let spaced = "[ {\"a\" : 1} ]".to_string();
        assert_eq!(capped(spaced.clone(), 100), (Some(spaced), false));
        let long = json!([{"content": "y".repeat(5000)}]).to_string();
        let (text, cut) = capped(long, 1000);
        let text = text.expect("cut text");
        assert!(cut && text.len() <= 1000);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            capped(deep, 10),
            (None, true),
            "unreadable text is left out, not stored empty"
        );
        serde_json::from_str::<Value>(&text).expect("valid JSON");
    }

    #[test]
    fn caps_keep_json_valid() {
        let long = "x".repeat(10_000);
        let v = json!([{"role":"user","content": long}, {"role":"user","content":"short"}]);
        let (text, cut) = capped_json(&v, 1000);
        assert!(cut && text.len() <= 1000, "{}", text.len());
        let back: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back[1]["content"], "short");
        assert!(back[0]["content"].as_str().expect("s").ends_with("…[truncated]"));
        assert_eq!(capped_json(&json!({"a":1}), 1000), ("{\"a\":1}".to_string(), false));
        assert_eq!(capped_text("héllo", 2), ("h".to_string(), true));
    }
}
