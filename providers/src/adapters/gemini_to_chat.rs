//! Gemini `generateContent` → OpenAI chat completions, for Gemini clients (the google-genai SDK on
//! `/genai`) whose model is served by another provider; and the chat reply back as a Gemini
//! reply (see the translation table in the README).
//!
//! OpenAI needs an id on every tool call and on the result that answers it; Gemini's calls may
//! carry none, so ids are made here from the function's name and the call's position, and a
//! `functionResponse` without an id answers the oldest unanswered call of its name.

use serde_json::{Value, json};

use super::TranslateError;
use crate::formats::gemini::types::{
    Candidate, Content, GenerateRequest, GenerateResponse, Part, UsageMetadata, schema_to_json_schema,
};
use crate::formats::openai::types::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, FunctionCall, FunctionDef, ImageUrl, MessageContent, Stop,
    Tool, ToolCall,
};
use crate::usage::Usage;

/// Translates a Gemini request into an OpenAI chat request for `upstream_model`.
pub fn request(gemini: GenerateRequest, upstream_model: &str, stream: bool) -> Result<ChatRequest, TranslateError> {
    let mut messages = Vec::new();
    if let Some(system) = &gemini.system_instruction {
        let text: String = system.parts.iter().filter_map(|p| p.text.as_deref()).collect();
        if !text.is_empty() {
            messages.push(ChatMessage {
                role: "system".into(),
                content: Some(MessageContent::Text(text)),
                ..ChatMessage::default()
            });
        }
    }
    // Calls made so far and not yet answered: (id, name).
    let mut open_calls: Vec<(String, String)> = Vec::new();
    let mut made = 0usize;
    for content in gemini.contents {
        match content.role.as_deref() {
            Some("model") => messages.push(model_message(content, &mut open_calls, &mut made)),
            Some("user") | None => user_messages(content, &mut open_calls, &mut messages)?,
            Some(other) => {
                return Err(TranslateError::InvalidRequest(format!(
                    "unknown content role {other:?} (Gemini's roles are user and model)"
                )));
            }
        }
    }
    let config = gemini.generation_config.unwrap_or_default();
    let json_schema = config
        .response_json_schema
        .or_else(|| config.response_schema.map(schema_to_json_schema));
    let response_format = match (config.response_mime_type.as_deref(), json_schema) {
        (Some("application/json"), Some(schema)) => {
            Some(json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}))
        }
        (Some("application/json"), None) => Some(json!({"type": "json_object"})),
        _ => None,
    };
    // As OpenAI's `reasoning_effort` (which OpenAI-wire upstreams take; Anthropic's translation
    // reads it too): a budget of 0 asks for no thinking, so none is asked for.
    let reasoning_effort = config
        .thinking_config
        .as_ref()
        .and_then(|t| t.get("thinkingBudget"))
        .and_then(Value::as_u64)
        .and_then(|budget| match budget {
            0 => None,
            1..=2048 => Some("low"),
            2049..=8192 => Some("medium"),
            _ => Some("high"),
        })
        .map(str::to_string);
    let tools: Vec<Tool> = gemini
        .tools
        .into_iter()
        .flatten()
        .flat_map(|t| t.function_declarations)
        .map(|f| Tool {
            kind: "function".into(),
            function: FunctionDef {
                name: f.name,
                description: f.description,
                parameters: f.parameters.or_else(|| f.schema_parameters.map(schema_to_json_schema)),
                strict: None,
            },
        })
        .collect();
    Ok(ChatRequest {
        model: upstream_model.to_string(),
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| json!({"include_usage": true})),
        max_tokens: config.max_output_tokens,
        temperature: config.temperature,
        top_p: config.top_p,
        stop: config.stop_sequences.map(Stop::Many),
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice: gemini.tool_config.as_ref().and_then(tool_choice),
        reasoning_effort,
        n: config.candidate_count,
        seed: config.seed,
        presence_penalty: config.presence_penalty,
        frequency_penalty: config.frequency_penalty,
        response_format,
        ..ChatRequest::default()
    })
}

/// `toolConfig.functionCallingConfig` as `tool_choice`.
fn tool_choice(config: &Value) -> Option<Value> {
    let calling = config.get("functionCallingConfig")?;
    let allowed = calling.get("allowedFunctionNames").and_then(Value::as_array);
    match calling.get("mode").and_then(Value::as_str)? {
        "AUTO" => Some(json!("auto")),
        "NONE" => Some(json!("none")),
        "ANY" | "VALIDATED" => match allowed.map(Vec::as_slice) {
            Some([only]) => only
                .as_str()
                .map(|name| json!({"type": "function", "function": {"name": name}})),
            _ => Some(json!("required")),
        },
        _ => None,
    }
}

fn model_message(content: Content, open_calls: &mut Vec<(String, String)>, made: &mut usize) -> ChatMessage {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in content.parts {
        if part.thought == Some(true) {
            continue;
        }
        if let Some(t) = part.text {
            text.push_str(&t);
        }
        if let Some(call) = part.function_call {
            let id = call.id.unwrap_or_else(|| format!("call_{}_{made}", call.name));
            *made += 1;
            open_calls.push((id.clone(), call.name.clone()));
            calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall {
                    name: call.name,
                    arguments: if call.args.is_null() {
                        "{}".into()
                    } else {
                        call.args.to_string()
                    },
                },
            });
        }
    }
    ChatMessage {
        role: "assistant".into(),
        content: (!text.is_empty() || calls.is_empty()).then_some(MessageContent::Text(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..ChatMessage::default()
    }
}

/// A user turn: its function results become `tool` messages (first, as OpenAI wants them right
/// after the calls), the rest one user message.
fn user_messages(
    content: Content,
    open_calls: &mut Vec<(String, String)>,
    messages: &mut Vec<ChatMessage>,
) -> Result<(), TranslateError> {
    let mut parts: Vec<ContentPart> = Vec::new();
    for part in content.parts {
        if let Some(result) = part.function_response {
            let at = match &result.id {
                Some(id) => open_calls.iter().position(|(open, _)| open == id),
                None => open_calls.iter().position(|(_, name)| *name == result.name),
            };
            let id = match at {
                Some(at) => open_calls.remove(at).0,
                None => {
                    return Err(TranslateError::InvalidRequest(format!(
                        "functionResponse for {:?} answers no earlier functionCall",
                        result.name
                    )));
                }
            };
            messages.push(ChatMessage {
                role: "tool".into(),
                content: Some(MessageContent::Text(result.response.to_string())),
                tool_call_id: Some(id),
                ..ChatMessage::default()
            });
            continue;
        }
        if let Some(part) = content_part(part)? {
            parts.push(part);
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = match parts.as_slice() {
        [only] if only.kind == "text" => MessageContent::Text(only.text.clone().unwrap_or_default()),
        _ => MessageContent::Parts(parts),
    };
    messages.push(ChatMessage {
        role: "user".into(),
        content: Some(content),
        ..ChatMessage::default()
    });
    Ok(())
}

fn content_part(part: Part) -> Result<Option<ContentPart>, TranslateError> {
    let image = |url: String| ContentPart {
        kind: "image_url".into(),
        image_url: Some(ImageUrl { url, detail: None }),
        ..ContentPart::default()
    };
    if let Some(text) = part.text {
        return Ok(Some(ContentPart {
            kind: "text".into(),
            text: Some(text),
            ..ContentPart::default()
        }));
    }
    if let Some(blob) = part.inline_data {
        return Ok(Some(image(format!("data:{};base64,{}", blob.mime_type, blob.data))));
    }
    if let Some(file) = part.file_data {
        return Ok(Some(image(file.file_uri)));
    }
    if part.function_call.is_some() {
        return Err(TranslateError::InvalidRequest(
            "a functionCall part belongs in a model turn".into(),
        ));
    }
    Ok(None)
}

/// Gemini's `finishReason` for an OpenAI `finish_reason`.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

/// The usage record as Gemini's `usageMetadata` (thoughts apart from the candidates' tokens).
pub fn usage_metadata(usage: &Usage) -> UsageMetadata {
    UsageMetadata {
        prompt_token_count: usage.input_tokens,
        candidates_token_count: usage.output_tokens.saturating_sub(usage.reasoning_tokens),
        thoughts_token_count: usage.reasoning_tokens,
        cached_content_token_count: usage.cache_read_tokens,
        tool_use_prompt_token_count: 0,
        total_token_count: usage.input_tokens + usage.output_tokens,
    }
}

/// The parts of an assistant reply: thoughts, text, then calls.
pub fn reply_parts(reasoning: Option<&str>, text: Option<&str>, calls: &[ToolCall]) -> Vec<Part> {
    let mut parts = Vec::new();
    if let Some(reasoning) = reasoning.filter(|r| !r.is_empty()) {
        parts.push(Part {
            text: Some(reasoning.to_string()),
            thought: Some(true),
            ..Part::default()
        });
    }
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        parts.push(Part {
            text: Some(text.to_string()),
            ..Part::default()
        });
    }
    for call in calls {
        parts.push(Part {
            function_call: Some(crate::formats::gemini::types::FunctionCall {
                id: Some(call.id.clone()),
                name: call.function.name.clone(),
                args: serde_json::from_str(&call.function.arguments).unwrap_or_else(|_| json!({})),
            }),
            ..Part::default()
        });
    }
    parts
}

/// Translates an OpenAI chat completion into a Gemini reply.
pub fn response(chat: ChatResponse) -> GenerateResponse {
    let candidates = chat
        .choices
        .iter()
        .map(|choice| {
            let message = &choice.message;
            let calls = message.tool_calls.as_deref().unwrap_or_default();
            Candidate {
                content: Some(Content {
                    role: Some("model".into()),
                    parts: reply_parts(message.reasoning.as_deref(), message.content.as_deref(), calls),
                }),
                finish_reason: Some(finish_reason(choice.finish_reason.as_deref().unwrap_or("stop")).to_string()),
                index: choice.index,
            }
        })
        .collect();
    let usage = chat.usage.as_ref().map(Usage::from_openai).unwrap_or_default();
    GenerateResponse {
        candidates,
        usage_metadata: Some(usage_metadata(&usage)),
        model_version: Some(chat.model),
        response_id: Some(chat.id),
        prompt_feedback: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemini(value: Value) -> GenerateRequest {
        serde_json::from_value(value).expect("gemini request")
    }

    #[test]
    fn turns_calls_results_and_config() {
        let chat = request(
            gemini(json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}]},
                    {"role": "model", "parts": [{"text": "hmm", "thought": true}, {"functionCall": {"name": "f", "args": {"a": 1}}}, {"functionCall": {"name": "f", "args": {"a": 2}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 1}}}, {"functionResponse": {"name": "f", "response": {"r": 2}}}, {"text": "and?"}]}
                ],
                "generationConfig": {"maxOutputTokens": 50, "responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 1024}},
                "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}
            })),
            "gpt-4o",
            true,
        )
        .expect("translated");
        let v = serde_json::to_value(&chat).expect("json");
        assert_eq!(v["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(
            v["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AA=="
        );
        assert_eq!(v["messages"][2]["content"], Value::Null, "thoughts are not sent back");
        assert_eq!(v["messages"][2]["tool_calls"][1]["id"], "call_f_1");
        assert_eq!(v["messages"][3]["tool_call_id"], "call_f_0");
        assert_eq!(v["messages"][4]["tool_call_id"], "call_f_1");
        assert_eq!(v["messages"][4]["content"], "{\"r\":2}");
        assert_eq!(v["messages"][5], json!({"role": "user", "content": "and?"}));
        assert_eq!(v["max_tokens"], 50);
        assert_eq!(v["response_format"], json!({"type": "json_object"}));
        assert_eq!(v["reasoning_effort"], "low");
        assert_eq!(v["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
        let orphan = request(
            gemini(
                json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}]}]}),
            ),
            "m",
            false,
        );
        assert!(orphan.is_err());
    }

    #[test]
    fn googles_schemas_become_json_schema() {
        let chat = request(
            gemini(json!({
                "contents": [{"role": "user", "parts": [{"text": "x"}]}],
                "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT",
                    "properties": {"city": {"type": "STRING", "nullable": true}, "days": {"type": "ARRAY", "items": {"type": "INTEGER"}}},
                    "propertyOrdering": ["city", "days"], "required": ["city"]}}]}],
                "generationConfig": {"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "properties": {"ok": {"type": "BOOLEAN"}}}}
            })),
            "gpt-4o",
            false,
        )
        .expect("translated");
        let v = serde_json::to_value(&chat).expect("json");
        assert_eq!(
            v["tools"][0]["function"]["parameters"],
            json!({"type": "object", "properties": {"city": {"type": ["string", "null"]},
                   "days": {"type": "array", "items": {"type": "integer"}}}, "required": ["city"]})
        );
        assert_eq!(
            v["response_format"]["json_schema"]["schema"],
            json!({"type": "object", "properties": {"ok": {"type": "boolean"}}})
        );
    }

    #[test]
    fn chat_replies_become_candidates() {
        let chat: ChatResponse = serde_json::from_value(json!({
            "id": "c-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "reasoning": "think",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
                "completion_tokens_details": {"reasoning_tokens": 3}, "prompt_tokens_details": {"cached_tokens": 2}}
        }))
        .expect("chat");
        let v = serde_json::to_value(response(chat)).expect("json");
        let parts = &v["candidates"][0]["content"]["parts"];
        assert_eq!(parts[0], json!({"text": "think", "thought": true}));
        assert_eq!(parts[1], json!({"text": "hi"}));
        assert_eq!(
            parts[2]["functionCall"],
            json!({"id": "call_1", "name": "f", "args": {"a": 1}})
        );
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            v["usageMetadata"],
            json!({"promptTokenCount": 5, "candidatesTokenCount": 4, "thoughtsTokenCount": 3,
                   "cachedContentTokenCount": 2, "toolUsePromptTokenCount": 0, "totalTokenCount": 12})
        );
        assert_eq!(v["modelVersion"], "gpt-4o");
    }
}
