//! OpenAI Responses API → OpenAI chat completions (for `/v1/responses` with a provider that does
//! not serve the Responses API itself), and the chat reply back into a Responses object.
//!
//! What is translated (see <https://platform.openai.com/docs/api-reference/responses>):
//! `instructions` and `system`/`developer` items become system messages; `message` items keep
//! their text and images; `function_call` items become the assistant's tool calls, and
//! `function_call_output` items tool messages; `reasoning` items are dropped (the hub carries no
//! encrypted reasoning). Function tools, `tool_choice`, `text.format`, `reasoning.effort`,
//! `max_output_tokens`, sampling parameters and `user` map to their chat fields.
//!
//! Refused with a clear error, because chat providers keep no state and have no such tools:
//! `store: true`, `previous_response_id`, `background`, `item_reference` items, input files and
//! file ids, and built-in tools (web search, file search, ...).

use serde_json::{Map, Value, json};

use super::TranslateError;
use crate::formats::openai::types::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, FunctionCall, FunctionDef, ImageUrl, MessageContent,
    OpenAiUsage, Tool, ToolCall,
};

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

/// Translates a Responses request body into an OpenAI chat request for `upstream_model`.
pub fn request(body: &[u8], upstream_model: &str) -> Result<ChatRequest, TranslateError> {
    let mut req: Map<String, Value> = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    refuse_state(&req)?;
    let mut messages = Vec::new();
    if let Some(Value::String(instructions)) = req.remove("instructions") {
        messages.push(system(instructions));
    }
    // The input is taken apart, its strings moved into the chat messages rather than copied.
    match req.remove("input") {
        Some(Value::String(text)) => messages.push(ChatMessage {
            role: "user".into(),
            content: Some(MessageContent::Text(text)),
            ..ChatMessage::default()
        }),
        Some(Value::Array(items)) => {
            messages.reserve(items.len());
            for item in items {
                input_item(item, &mut messages)?;
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err(invalid("`input` must be a string or an array of input items")),
    }
    if messages.is_empty() {
        return Err(invalid("`input` is required"));
    }
    let stream = req.get("stream").and_then(Value::as_bool).filter(|s| *s);
    let number = |name: &str| req.get(name).and_then(Value::as_f64);
    Ok(ChatRequest {
        model: upstream_model.to_string(),
        messages,
        stream,
        stream_options: stream.map(|_| json!({"include_usage": true})),
        max_tokens: req
            .get("max_output_tokens")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        temperature: number("temperature"),
        top_p: number("top_p"),
        tools: tools(req.get("tools"))?,
        tool_choice: req.get("tool_choice").map(tool_choice).transpose()?,
        parallel_tool_calls: req.get("parallel_tool_calls").and_then(Value::as_bool),
        reasoning_effort: req
            .get("reasoning")
            .and_then(|r| r.get("effort"))
            .and_then(Value::as_str)
            .map(str::to_string),
        user: req.get("user").and_then(Value::as_str).map(str::to_string),
        response_format: req
            .get("text")
            .and_then(|t| t.get("format"))
            .map(response_format)
            .transpose()?
            .flatten(),
        ..ChatRequest::default()
    })
}

/// State the provider would have to keep: refused on translated paths, rather than emulated.
fn refuse_state(req: &Map<String, Value>) -> Result<(), TranslateError> {
    let stateful = if req.get("store").and_then(Value::as_bool) == Some(true) {
        Some("`store: true`")
    } else if req.get("previous_response_id").is_some_and(|v| !v.is_null()) {
        Some("`previous_response_id`")
    } else if req.get("background").and_then(Value::as_bool) == Some(true) {
        Some("`background: true`")
    } else if req.get("conversation").is_some_and(|v| !v.is_null()) {
        Some("`conversation`")
    } else {
        None
    };
    match stateful {
        Some(what) => Err(invalid(format!(
            "{what} needs a provider that keeps responses (OpenAI or Azure); this model's provider is reached through chat completions and keeps no state: send the whole conversation in `input` with `store: false`"
        ))),
        None => Ok(()),
    }
}

fn system(text: String) -> ChatMessage {
    ChatMessage {
        role: "system".into(),
        content: Some(MessageContent::Text(text)),
        ..ChatMessage::default()
    }
}

/// A string member taken out of `object` (empty when absent or not a string).
fn take_string(object: &mut Map<String, Value>, name: &str) -> String {
    match object.remove(name) {
        Some(Value::String(text)) => text,
        _ => String::new(),
    }
}

/// One input item appended to the chat conversation.
fn input_item(item: Value, messages: &mut Vec<ChatMessage>) -> Result<(), TranslateError> {
    let Value::Object(mut item) = item else {
        return Err(invalid("each `input` item must be an object"));
    };
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        None | Some("message") => message_item(item, messages),
        Some("function_call") => {
            let call = ToolCall {
                id: take_string(&mut item, "call_id"),
                kind: "function".into(),
                function: FunctionCall {
                    name: take_string(&mut item, "name"),
                    arguments: take_string(&mut item, "arguments"),
                },
            };
            // Calls of one turn follow the turn's text: they join the assistant message before them.
            match messages.last_mut() {
                Some(last) if last.role == "assistant" => last.tool_calls.get_or_insert_with(Vec::new).push(call),
                _ => messages.push(ChatMessage {
                    role: "assistant".into(),
                    tool_calls: Some(vec![call]),
                    ..ChatMessage::default()
                }),
            }
            Ok(())
        }
        Some("function_call_output") => {
            let output = match item.remove("output") {
                Some(Value::String(text)) => text,
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            messages.push(ChatMessage {
                role: "tool".into(),
                content: Some(MessageContent::Text(output)),
                tool_call_id: Some(take_string(&mut item, "call_id")).filter(|id| !id.is_empty()),
                ..ChatMessage::default()
            });
            Ok(())
        }
        // Encrypted or summarised reasoning from an earlier turn: chat providers take none.
        Some("reasoning") => Ok(()),
        Some("item_reference") => Err(invalid(
            "`item_reference` input items need a provider that keeps responses (OpenAI or Azure)",
        )),
        Some(other) => Err(invalid(format!(
            "input items of type {other:?} are served by OpenAI only; this model's provider is reached through chat completions"
        ))),
    }
}

fn message_item(mut item: Map<String, Value>, messages: &mut Vec<ChatMessage>) -> Result<(), TranslateError> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => "system",
        Some("user") => "user",
        Some("assistant") => "assistant",
        Some(other) => return Err(invalid(format!("unknown message role {other:?}"))),
        None => return Err(invalid("an input message needs a `role`")),
    };
    let content = match item.remove("content") {
        Some(Value::String(text)) => MessageContent::Text(text),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                out.push(content_part(part)?);
            }
            // Text only: a plain string, which every provider takes (assistant turns included).
            if out.iter().all(|p| p.kind == "text") {
                MessageContent::Text(out.into_iter().filter_map(|p| p.text).collect::<Vec<_>>().join(""))
            } else {
                MessageContent::Parts(out)
            }
        }
        _ => {
            return Err(invalid(
                "an input message's `content` must be a string or an array of parts",
            ));
        }
    };
    if role == "system" {
        messages.push(system(content.text()));
        return Ok(());
    }
    messages.push(ChatMessage {
        role: role.into(),
        content: Some(content),
        ..ChatMessage::default()
    });
    Ok(())
}

fn content_part(part: Value) -> Result<ContentPart, TranslateError> {
    let Value::Object(mut part) = part else {
        return Err(invalid("each content part must be an object"));
    };
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text" | "summary_text") => Ok(ContentPart {
            kind: "text".into(),
            text: Some(take_string(&mut part, "text")),
            ..ContentPart::default()
        }),
        Some("refusal") => Ok(ContentPart {
            kind: "text".into(),
            text: Some(take_string(&mut part, "refusal")),
            ..ContentPart::default()
        }),
        Some("input_image") => {
            let url = take_string(&mut part, "image_url");
            if url.is_empty() {
                return Err(invalid(
                    "`input_image` parts need an `image_url` (file ids are served by OpenAI only)",
                ));
            }
            Ok(ContentPart {
                kind: "image_url".into(),
                image_url: Some(ImageUrl {
                    url,
                    detail: part.get("detail").and_then(Value::as_str).map(str::to_string),
                }),
                ..ContentPart::default()
            })
        }
        Some(other) => Err(invalid(format!(
            "content parts of type {other:?} are served by OpenAI only; this model's provider is reached through chat completions"
        ))),
        None => Err(invalid("a content part needs a `type`")),
    }
}

fn tools(tools: Option<&Value>) -> Result<Option<Vec<Tool>>, TranslateError> {
    let Some(Value::Array(tools)) = tools else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(tools.len());
    for tool in tools {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => out.push(Tool {
                kind: "function".into(),
                function: FunctionDef {
                    name: tool
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid("a function tool needs a `name`"))?
                        .to_string(),
                    description: tool.get("description").and_then(Value::as_str).map(str::to_string),
                    parameters: tool.get("parameters").cloned(),
                    strict: tool.get("strict").and_then(Value::as_bool),
                },
            }),
            other => {
                return Err(invalid(format!(
                    "the built-in tool {:?} is served by OpenAI only; this model's provider takes function tools",
                    other.unwrap_or("?")
                )));
            }
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

fn tool_choice(choice: &Value) -> Result<Value, TranslateError> {
    match choice {
        Value::String(_) => Ok(choice.clone()),
        Value::Object(object) if object.get("type").and_then(Value::as_str) == Some("function") => {
            let name = object
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`tool_choice` of type function needs a `name`"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid(
            "`tool_choice` must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"name\": ...}",
        )),
    }
}

/// `text.format` as chat's `response_format`; plain text needs none.
fn response_format(format: &Value) -> Result<Option<Value>, TranslateError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for field in ["name", "schema", "strict", "description"] {
                if let Some(value) = format.get(field) {
                    schema.insert(field.to_string(), value.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(invalid(format!("unknown `text.format` type {other:?}"))),
    }
}

/// The Responses id for a chat completion's id.
pub fn response_id(chat_id: &str) -> String {
    format!("resp_{}", chat_id.trim_start_matches("chatcmpl-"))
}

/// Responses `usage` from chat usage.
pub fn usage(u: &OpenAiUsage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": u.prompt_tokens_details.as_ref().map_or(0, |d| d.cached_tokens),
        },
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {
            "reasoning_tokens": u.completion_tokens_details.as_ref().map_or(0, |d| d.reasoning_tokens),
        },
        "total_tokens": u.total_tokens,
    })
}

/// The output items of one assistant turn: reasoning, then text, then function calls. The
/// message is `incomplete` when the turn was cut at the output limit, as OpenAI marks it.
fn output_items(
    id: &str,
    reasoning: Option<&str>,
    text: Option<&str>,
    calls: &[ToolCall],
    message_status: &str,
) -> Vec<Value> {
    let mut output = Vec::new();
    if let Some(reasoning) = reasoning.filter(|r| !r.is_empty()) {
        output.push(reasoning_item(id, reasoning));
    }
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        output.push(message_item_out(id, text, message_status));
    }
    output.extend(calls.iter().map(|call| function_call_item(call, "completed")));
    output
}

/// A reasoning output item with its summary.
pub fn reasoning_item(id: &str, summary: &str) -> Value {
    json!({
        "type": "reasoning",
        "id": format!("rs_{id}"),
        "summary": [{"type": "summary_text", "text": summary}],
    })
}

/// An assistant message output item.
pub fn message_item_out(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message",
        "id": format!("msg_{id}"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// A function call output item.
pub fn function_call_item(call: &ToolCall, status: &str) -> Value {
    json!({
        "type": "function_call",
        "id": format!("fc_{}", call.id),
        "call_id": call.id,
        "name": call.function.name,
        "arguments": call.function.arguments,
        "status": status,
    })
}

/// Status and `incomplete_details` for a chat finish reason.
pub fn status(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A Responses object around `output`.
pub fn response_object(
    id: &str,
    created: u64,
    model: &str,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    })
}

/// Translates a chat reply into a Responses object (the first choice: Responses has no `n`).
pub fn response(chat: ChatResponse) -> Value {
    let id = response_id(&chat.id);
    let item_id = chat.id.trim_start_matches("chatcmpl-").to_string();
    let choice = chat.choices.into_iter().next();
    let (status, incomplete) = status(choice.as_ref().and_then(|c| c.finish_reason.as_deref()));
    let output = choice
        .map(|c| {
            let message = c.message;
            let mut items = output_items(
                &item_id,
                message.reasoning.as_deref(),
                message.content.as_deref(),
                message.tool_calls.as_deref().unwrap_or_default(),
                status,
            );
            // A refusal is its own content part, which the SDK keeps out of `output_text`.
            if let Some(refusal) = message.refusal.as_deref().filter(|r| !r.is_empty()) {
                items.push(json!({
                    "type": "message",
                    "id": format!("msg_{item_id}_refusal"),
                    "status": status,
                    "role": "assistant",
                    "content": [{"type": "refusal", "refusal": refusal}],
                }));
            }
            items
        })
        .unwrap_or_default();
    let usage = chat.usage.as_ref().map_or(Value::Null, usage);
    response_object(&id, chat.created, &chat.model, status, incomplete, output, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_items_become_a_conversation() {
        let body = br#"{"model":"m","instructions":"be brief","input":[
            {"role":"developer","content":"rules"},
            {"role":"user","content":[{"type":"input_text","text":"hi "},{"type":"input_text","text":"there"}]},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"calling"}]},
            {"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
            {"type":"function_call_output","call_id":"c1","output":"42"},
            {"type":"reasoning","id":"rs_1","summary":[]}
        ],"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],
        "tool_choice":{"type":"function","name":"f"},"max_output_tokens":50,
        "text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true}},
        "reasoning":{"effort":"low"},"stream":true}"#;
        let chat = request(body, "up").expect("translates");
        let json = serde_json::to_value(&chat).expect("json");
        assert_eq!(json["messages"][0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(json["messages"][1], json!({"role": "system", "content": "rules"}));
        assert_eq!(json["messages"][2], json!({"role": "user", "content": "hi there"}));
        assert_eq!(json["messages"][3]["content"], "calling");
        assert_eq!(json["messages"][3]["tool_calls"][0]["id"], "c1");
        assert_eq!(
            json["messages"][4],
            json!({"role": "tool", "content": "42", "tool_call_id": "c1"})
        );
        assert_eq!(json["messages"].as_array().map(Vec::len), Some(5));
        assert_eq!(
            json["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(json["max_tokens"], 50);
        assert_eq!(json["reasoning_effort"], "low");
        assert_eq!(json["response_format"]["json_schema"]["name"], "out");
        assert_eq!(json["stream_options"], json!({"include_usage": true}));
        assert_eq!(json["model"], "up");
    }

    #[test]
    fn state_and_builtin_tools_are_refused() {
        for body in [
            &br#"{"model":"m","input":"x","store":true}"#[..],
            br#"{"model":"m","input":"x","previous_response_id":"resp_1"}"#,
            br#"{"model":"m","input":"x","background":true}"#,
            br#"{"model":"m","input":"x","tools":[{"type":"web_search"}]}"#,
            br#"{"model":"m","input":[{"type":"item_reference","id":"x"}]}"#,
            br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}"#,
            br#"{"model":"m"}"#,
        ] {
            assert!(request(body, "up").is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert!(request(br#"{"model":"m","input":"x","store":false}"#, "up").is_ok());
    }

    #[test]
    fn a_chat_reply_becomes_a_response() {
        let chat: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Hi",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }))
        .expect("chat");
        let response = response(chat);
        assert_eq!(response["id"], "resp_9");
        assert_eq!(response["status"], "incomplete");
        assert_eq!(response["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(response["output"][0]["content"][0]["text"], "Hi");
        assert_eq!(response["output"][1]["call_id"], "call_1");
        assert_eq!(response["usage"]["input_tokens"], 3);
        assert_eq!(response["usage"]["total_tokens"], 5);
    }

    #[test]
    fn a_refusal_is_a_refusal_part() {
        let chat: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "No."},
                "finish_reason": "stop"}]}))
        .expect("chat reply");
        let json = response(chat);
        assert_eq!(json["output"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            json["output"][0]["content"][0],
            json!({"type": "refusal", "refusal": "No."})
        );
    }
}
