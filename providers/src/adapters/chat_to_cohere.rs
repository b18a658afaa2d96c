//! OpenAI chat completions → Cohere v2 chat, and the reply back; OpenAI embeddings → Cohere
//! v2 embed, and back.
//!
//! Cohere's v2 messages are close to OpenAI's: `system`, `user`, `assistant` (with `tool_calls`)
//! and `tool` (with `tool_call_id`) turns, content as a string or `[{type: text, text}]` parts,
//! and function tools in OpenAI's shape. What differs: `top_p` is `p`, `stop` is
//! `stop_sequences`, `tool_choice` is `REQUIRED` or `NONE`, and the reply's `finish_reason`
//! (`COMPLETE` → `stop`, `MAX_TOKENS` → `length`, `TOOL_CALL` → `tool_calls`, ...) and `usage`
//! (`usage.tokens.input_tokens` / `output_tokens`, `billed_units` beside them).
//!
//! See <https://docs.cohere.com/reference/chat> and <https://docs.cohere.com/reference/embed>.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::TranslateError;
use crate::formats::openai::types::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, FunctionCall, MessageContent, OpenAiUsage, ToolCall,
};

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

/// Cohere's limit on texts per embed call.
const MAX_EMBED_TEXTS: usize = 96;

/// Translates an OpenAI chat request into a Cohere v2 chat request for `upstream_model`.
pub fn request(chat: ChatRequest, upstream_model: &str) -> Result<Value, TranslateError> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(invalid("Cohere returns one generation: n must be 1"));
    }
    let messages = chat.messages.into_iter().map(message).collect::<Result<Vec<_>, _>>()?;
    let mut body = Map::new();
    body.insert("model".into(), upstream_model.into());
    body.insert("messages".into(), Value::Array(messages));
    if chat.stream == Some(true) {
        body.insert("stream".into(), true.into());
    }
    let mut set = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(name.into(), value);
        }
    };
    set(
        "max_tokens",
        chat.max_completion_tokens.or(chat.max_tokens).map(Value::from),
    );
    set("temperature", chat.temperature.map(Value::from));
    set("p", chat.top_p.map(Value::from));
    set("stop_sequences", chat.stop.map(|s| json!(s.into_vec())));
    set("seed", chat.seed.map(Value::from));
    set("frequency_penalty", chat.frequency_penalty.map(Value::from));
    set("presence_penalty", chat.presence_penalty.map(Value::from));
    set("response_format", chat.response_format.map(response_format));
    set(
        "tools",
        chat.tools
            .filter(|t| !t.is_empty())
            .map(|tools| serde_json::to_value(tools).unwrap_or_default()),
    );
    set("tool_choice", chat.tool_choice.as_ref().and_then(tool_choice));
    Ok(Value::Object(body))
}

/// OpenAI's `response_format` as Cohere's (`json_schema` carries its schema as `json_schema`).
fn response_format(format: Value) -> Value {
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = format.get("json_schema").and_then(|s| s.get("schema")).cloned();
            match schema {
                Some(schema) => json!({"type": "json_object", "json_schema": schema}),
                None => json!({"type": "json_object"}),
            }
        }
        Some("json_object") => json!({"type": "json_object"}),
        _ => json!({"type": "text"}),
    }
}

/// `required` and `none` have Cohere forms; `auto` is its default, and a named function has
/// none (the call is left to the model).
fn tool_choice(choice: &Value) -> Option<Value> {
    match choice.as_str()? {
        "required" => Some(json!("REQUIRED")),
        "none" => Some(json!("NONE")),
        _ => None,
    }
}

fn message(message: ChatMessage) -> Result<Value, TranslateError> {
    let role = match message.role.as_str() {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        "tool" => "tool",
        other => return Err(invalid(format!("unknown message role {other:?}"))),
    };
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    if let Some(content) = message.content {
        out.insert("content".into(), content_value(content, role)?);
    }
    if let Some(calls) = message.tool_calls.filter(|c| !c.is_empty()) {
        out.insert("tool_calls".into(), serde_json::to_value(calls).unwrap_or_default());
    }
    if let Some(id) = message.tool_call_id {
        out.insert("tool_call_id".into(), id.into());
    }
    Ok(Value::Object(out))
}

fn content_value(content: MessageContent, role: &str) -> Result<Value, TranslateError> {
    match content {
        MessageContent::Text(text) => Ok(Value::String(text)),
        MessageContent::Parts(parts) => parts
            .into_iter()
            .map(|part| part_value(part, role))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
    }
}

fn part_value(part: ContentPart, role: &str) -> Result<Value, TranslateError> {
    match part.kind.as_str() {
        "text" => Ok(json!({"type": "text", "text": part.text.unwrap_or_default()})),
        "image_url" if role == "user" => {
            let url = part.image_url.map(|i| i.url).unwrap_or_default();
            Ok(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        other => Err(invalid(format!(
            "content part type {other:?} cannot be sent to Cohere in a {role} message"
        ))),
    }
}

/// OpenAI `finish_reason` for a Cohere `finish_reason`.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        "ERROR" | "TIMEOUT" => "stop",
        _ => "stop",
    }
}

/// Cohere's usage as OpenAI's: `billed_units` (what Cohere charges), else `tokens`.
pub fn usage(usage: &Value) -> Option<OpenAiUsage> {
    let tokens = usage.get("billed_units").or_else(|| usage.get("tokens"))?;
    let count = |name: &str| {
        tokens
            .get(name)
            .and_then(Value::as_f64)
            .map_or(0, |n| n.max(0.0) as u64)
    };
    let (input, output) = (count("input_tokens"), count("output_tokens"));
    Some(OpenAiUsage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: input + output,
        prompt_tokens_details: None,
        completion_tokens_details: None,
    })
}

/// The text of a Cohere message's `content` (a string, or text parts).
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Tool calls in a Cohere message (OpenAI's shape, arguments as a JSON string).
pub fn tool_calls(calls: Option<&Value>) -> Vec<ToolCall> {
    calls
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|call| ToolCall {
                    id: call["id"].as_str().unwrap_or_default().to_string(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: call["function"]["name"].as_str().unwrap_or_default().to_string(),
                        arguments: match &call["function"]["arguments"] {
                            Value::String(s) => s.clone(),
                            Value::Null => "{}".into(),
                            other => other.to_string(),
                        },
                    },
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Translates a Cohere v2 chat reply into an OpenAI chat completion.
pub fn response(reply: &Value, model: &str, created: u64) -> ChatResponse {
    let message = &reply["message"];
    let text = content_text(message.get("content"));
    let calls = tool_calls(message.get("tool_calls"));
    let plan = message["tool_plan"].as_str().filter(|p| !p.is_empty());
    ChatResponse::single(
        reply["id"].as_str().unwrap_or("cohere").to_string(),
        created,
        model,
        text,
        calls,
        plan.map(str::to_string),
        finish_reason(reply["finish_reason"].as_str().unwrap_or("COMPLETE")),
        reply.get("usage").and_then(usage),
    )
}

/// An OpenAI embeddings request as a Cohere v2 embed request.
pub fn embeddings_request(body: &Value, model: &str) -> Result<Value, TranslateError> {
    let texts: Vec<&str> = match body.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().ok_or_else(|| invalid("Cohere embeds text inputs only")))
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid("`input` must be a string or a list of strings")),
    };
    if texts.is_empty() || texts.len() > MAX_EMBED_TEXTS {
        return Err(invalid(format!(
            "Cohere embeds 1 to {MAX_EMBED_TEXTS} inputs per request"
        )));
    }
    let mut request =
        json!({"model": model, "texts": texts, "input_type": "search_document", "embedding_types": ["float"]});
    if let Some(dimensions) = body.get("dimensions").and_then(Value::as_u64) {
        request["output_dimension"] = dimensions.into();
    }
    Ok(request)
}

/// A Cohere v2 embed reply as an OpenAI embeddings list, and its input tokens.
pub fn embeddings_response(reply: &Value, model: &str, base64: bool) -> Result<(Value, u64), TranslateError> {
    let vectors = reply["embeddings"]
        .get("float")
        .or(reply.get("embeddings"))
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::InvalidReply("no embeddings in the reply".into()))?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let floats: Vec<f64> = vector
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            let embedding = if base64 {
                let bytes: Vec<u8> = floats.iter().flat_map(|f| (*f as f32).to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(floats)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = reply["meta"]["billed_units"]["input_tokens"]
        .as_f64()
        .map_or(0, |n| n.max(0.0) as u64);
    Ok((
        json!({"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
        tokens,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_openai_turns_and_rename_options() {
        let chat: ChatRequest = serde_json::from_value(json!({
            "model": "cohere/command-r-plus", "top_p": 0.5, "stop": "END", "max_tokens": 9, "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "developer", "content": "terse"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "done"}
            ]
        }))
        .expect("chat");
        let body = request(chat, "command-r-plus").expect("translated");
        assert_eq!(body["model"], "command-r-plus");
        assert_eq!(body["p"], 0.5);
        assert_eq!(body["stop_sequences"], json!(["END"]));
        assert_eq!(body["tool_choice"], "REQUIRED");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][2]["tool_calls"][0]["id"], "c1");
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert!(body.get("top_p").is_none() && body.get("stop").is_none());
    }

    #[test]
    fn replies_map_finish_reasons_and_usage() {
        let reply = json!({"id": "r1", "finish_reason": "TOOL_CALL", "message": {"role": "assistant", "tool_plan": "look it up",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}}]},
            "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 2}, "tokens": {"input_tokens": 70, "output_tokens": 2}}});
        let chat = response(&reply, "command-r", 1);
        assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(chat.choices[0].message.reasoning.as_deref(), Some("look it up"));
        assert_eq!(chat.usage.map(|u| u.prompt_tokens), Some(5));
        assert_eq!(finish_reason("MAX_TOKENS"), "length");
        let (list, tokens) = embeddings_response(
            &json!({"embeddings": {"float": [[1.0, 2.0]]}, "meta": {"billed_units": {"input_tokens": 3}}}),
            "embed-v4.0",
            false,
        )
        .expect("list");
        assert_eq!(list["data"][0]["embedding"], json!([1.0, 2.0]));
        assert_eq!(tokens, 3);
        assert!(embeddings_request(&json!({"input": [1]}), "m").is_err());
    }
}
