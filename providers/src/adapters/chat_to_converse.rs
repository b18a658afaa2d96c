//! OpenAI chat completions → Bedrock Converse, and the reply back (see the translation table in
//! ARCHITECTURE.md).
//!
//! - System and developer messages become `system` blocks; the other turns become `messages`,
//!   with consecutive turns of one role merged (Converse wants them alternating) and a tool's
//!   result sent as a `toolResult` block of a user turn.
//! - Images must be base64 `data:` URLs (Converse takes image bytes, never a URL).
//! - `max_completion_tokens` / `max_tokens`, `temperature`, `top_p` and `stop` go in
//!   `inferenceConfig`; tools in `toolConfig`; every request member Converse has no place for
//!   (`top_k`, Claude's `thinking`, ...) goes in `additionalModelRequestFields`, and a reasoning
//!   effort becomes Claude's `thinking` budget.
//! - Replies: text, tool calls and reasoning come back as one choice, with Converse's stop reason
//!   as `finish_reason` and its usage (cache reads included) as OpenAI usage.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{TranslateError, data_url, thinking_budget};
use crate::formats::bedrock::types::{
    ContentBlock, ConverseRequest, ConverseResponse, ImageBlock, ImageSource, InferenceConfig, InputSchema, Message,
    SystemBlock, ToolConfig, ToolEntry, ToolResult, ToolResultContent, ToolSpec, ToolUse,
};
use crate::formats::openai::types::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, FunctionCall, MessageContent, ToolCall,
};
use crate::usage::Usage;

/// Chat request members that have a place in Converse, or none anywhere (OpenAI-only options
/// and Bifrost's own members); every other member is passed in `additionalModelRequestFields`.
const CHAT_MEMBERS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "reasoning",
    "user",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "store",
    "metadata",
    "service_tier",
    "prediction",
    "modalities",
    "audio",
    "web_search_options",
    "prompt_cache_key",
    "safety_identifier",
    "verbosity",
    "fallbacks",
    "provider",
    "functions",
    "function_call",
];

/// The members of a chat body that go in `additionalModelRequestFields`, as an object; `None`
/// when there are none.
pub fn additional_fields(raw: &[u8]) -> Result<Option<Map<String, Value>>, TranslateError> {
    let members: Map<String, Value> = serde_json::from_slice::<std::collections::BTreeMap<&str, &RawValue>>(raw)
        .map_err(|e| TranslateError::InvalidRequest(e.to_string()))?
        .into_iter()
        .filter(|(name, _)| !CHAT_MEMBERS.contains(name))
        .map(|(name, value)| {
            serde_json::from_str(value.get())
                .map(|value| (name.to_string(), value))
                .map_err(|e| TranslateError::InvalidRequest(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    Ok((!members.is_empty()).then_some(members))
}

/// The user turn put before a conversation that opens with the assistant (Converse refuses it).
pub const CONVERSATION_START: &str = ".";

/// Whether `model` is one of Anthropic's Claude models on Bedrock (plain, or behind an
/// inference profile or ARN), which take Anthropic's `thinking` member.
pub fn is_claude(model: &str) -> bool {
    model.contains("anthropic.") || model.contains("claude")
}

/// Translates an OpenAI chat request into a Converse request for `upstream_model` (the model
/// goes in the path). `extra` holds the request members Converse has no place for.
pub fn request(
    chat: ChatRequest,
    upstream_model: &str,
    extra: Option<Map<String, Value>>,
) -> Result<ConverseRequest, TranslateError> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::InvalidRequest(
            "Bedrock Converse returns one choice: n must be 1".into(),
        ));
    }
    if let Some(format) = &chat.response_format
        && format.get("type").and_then(Value::as_str) == Some("json_schema")
    {
        return Err(TranslateError::InvalidRequest(
            "response_format json_schema is not available on Bedrock Converse: describe the output as a tool instead"
                .into(),
        ));
    }
    let budget = reasoning_budget(&chat);
    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    for message in chat.messages {
        let (role, blocks) = match message.role.as_str() {
            "system" | "developer" => {
                let text = message.content.map(|c| c.text()).unwrap_or_default();
                if !text.is_empty() {
                    system.push(SystemBlock {
                        text: Some(text),
                        cache_point: None,
                    });
                }
                continue;
            }
            "user" => ("user", user_blocks(message.content)?),
            "assistant" => ("assistant", assistant_blocks(message)?),
            "tool" => ("user", vec![tool_result(message)]),
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "unknown message role {other:?}"
                )));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(Message {
                role: role.into(),
                content: blocks,
            }),
        }
    }
    // Converse conversations start with a user turn: one that opens with the assistant gets a
    // minimal user turn before it.
    if messages.first().is_some_and(|m| m.role != "user") {
        messages.insert(
            0,
            Message {
                role: "user".into(),
                content: vec![ContentBlock::text(CONVERSATION_START.into())],
            },
        );
    }
    let mut extra = extra.unwrap_or_default();
    let mut max_tokens = chat.max_completion_tokens.or(chat.max_tokens);
    if is_claude(upstream_model)
        && !extra.contains_key("thinking")
        && let Some(budget) = budget
    {
        // Claude needs budget_tokens below max_tokens.
        let max = max_tokens.get_or_insert(budget + super::chat_to_messages::DEFAULT_MAX_TOKENS);
        if *max <= budget {
            *max = budget + super::chat_to_messages::DEFAULT_MAX_TOKENS;
        }
        extra.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": budget}));
    }
    let inference = InferenceConfig {
        max_tokens,
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences: chat.stop.map(|s| s.into_vec()),
    };
    let has_inference = inference.max_tokens.is_some()
        || inference.temperature.is_some()
        || inference.top_p.is_some()
        || inference.stop_sequences.is_some();
    let tool_config = chat.tools.filter(|t| !t.is_empty()).map(|tools| ToolConfig {
        tools: tools
            .into_iter()
            .map(|tool| ToolEntry {
                tool_spec: Some(ToolSpec {
                    name: tool.function.name,
                    description: tool.function.description,
                    input_schema: InputSchema {
                        json: tool
                            .function
                            .parameters
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                    },
                }),
                cache_point: None,
            })
            .collect(),
        tool_choice: tool_choice(chat.tool_choice.as_ref()),
    });
    Ok(ConverseRequest {
        messages,
        system: (!system.is_empty()).then_some(system),
        inference_config: has_inference.then_some(inference),
        tool_config,
        additional_model_request_fields: (!extra.is_empty()).then_some(Value::Object(extra)),
    })
}

fn reasoning_budget(chat: &ChatRequest) -> Option<u32> {
    if let Some(reasoning) = &chat.reasoning {
        if let Some(max) = reasoning.get("max_tokens").and_then(Value::as_u64) {
            return u32::try_from(max.max(1024)).ok();
        }
        if let Some(effort) = reasoning.get("effort").and_then(Value::as_str) {
            return thinking_budget(effort);
        }
    }
    chat.reasoning_effort.as_deref().and_then(thinking_budget)
}

/// OpenAI's `tool_choice` as Converse's; `none` has no Converse form (the tools stay declared,
/// since earlier turns may use them), so it maps to no choice.
fn tool_choice(choice: Option<&Value>) -> Option<Value> {
    match choice? {
        Value::String(s) => match s.as_str() {
            "auto" => Some(json!({"auto": {}})),
            "required" => Some(json!({"any": {}})),
            _ => None,
        },
        Value::Object(obj) => obj
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| json!({"tool": {"name": name}})),
        _ => None,
    }
}

fn user_blocks(content: Option<MessageContent>) -> Result<Vec<ContentBlock>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(text)) => Ok(non_empty_text(text).into_iter().collect()),
        Some(MessageContent::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                if let Some(block) = part_block(part)? {
                    blocks.push(block);
                }
            }
            Ok(blocks)
        }
    }
}

/// Converse refuses blank text blocks: empty text is left out.
fn non_empty_text(text: String) -> Option<ContentBlock> {
    (!text.trim().is_empty()).then(|| ContentBlock::text(text))
}

fn part_block(part: ContentPart) -> Result<Option<ContentBlock>, TranslateError> {
    match part.kind.as_str() {
        "text" => Ok(part.text.and_then(non_empty_text)),
        "image_url" => {
            let url = part.image_url.map(|i| i.url).unwrap_or_default();
            Ok(Some(image_block(&url)?))
        }
        other => Err(TranslateError::InvalidRequest(format!(
            "content part type {other:?} cannot be sent to Bedrock Converse"
        ))),
    }
}

fn image_block(url: &str) -> Result<ContentBlock, TranslateError> {
    let Some((media_type, data)) = data_url(url)? else {
        return Err(TranslateError::InvalidRequest(
            "Bedrock takes images as bytes: send image_url as a base64 data: URL".into(),
        ));
    };
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(TranslateError::InvalidRequest(format!(
                "image type {other:?} is not one Bedrock takes (png, jpeg, gif, webp)"
            )));
        }
    };
    Ok(ContentBlock {
        image: Some(ImageBlock {
            format: format.into(),
            source: ImageSource {
                bytes: Some(data.to_string()),
                s3_location: None,
            },
        }),
        ..ContentBlock::default()
    })
}

fn assistant_blocks(message: ChatMessage) -> Result<Vec<ContentBlock>, TranslateError> {
    let mut blocks: Vec<ContentBlock> = message
        .content
        .map(|c| c.text())
        .and_then(non_empty_text)
        .into_iter()
        .collect();
    for call in message.tool_calls.unwrap_or_default() {
        let input = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|_| {
                TranslateError::InvalidRequest(format!("tool call {:?} has arguments that are not JSON", call.id))
            })?
        };
        blocks.push(ContentBlock {
            tool_use: Some(ToolUse {
                tool_use_id: call.id,
                name: call.function.name,
                input,
            }),
            ..ContentBlock::default()
        });
    }
    Ok(blocks)
}

fn tool_result(message: ChatMessage) -> ContentBlock {
    let text = message.content.map(|c| c.text()).unwrap_or_default();
    ContentBlock {
        tool_result: Some(ToolResult {
            tool_use_id: message.tool_call_id.unwrap_or_default(),
            content: vec![ToolResultContent {
                text: Some(text),
                json: None,
            }],
            status: None,
        }),
        ..ContentBlock::default()
    }
}

/// OpenAI `finish_reason` for a Converse `stopReason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// Converse `stopReason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "content_filtered",
        _ => "end_turn",
    }
}

/// Translates a Converse reply into an OpenAI chat completion.
pub fn response(reply: ConverseResponse, model: &str, created: u64) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in reply.output.message.map(|m| m.content).unwrap_or_default() {
        if let Some(t) = block.text {
            text.push_str(&t);
        }
        if let Some(r) = block.reasoning_content.and_then(|r| r.reasoning_text) {
            reasoning.push_str(&r.text);
        }
        if let Some(call) = block.tool_use {
            calls.push(ToolCall {
                id: call.tool_use_id,
                kind: "function".into(),
                function: FunctionCall {
                    name: call.name,
                    arguments: call.input.to_string(),
                },
            });
        }
    }
    let usage = reply.usage.as_ref().map(|u| Usage::from_converse(u).to_openai());
    ChatResponse::single(
        format!("bedrock-{created}"),
        created,
        model,
        text,
        calls,
        Some(reasoning),
        finish_reason(&reply.stop_reason),
        usage,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).expect("chat request")
    }

    #[test]
    fn turns_merge_and_tools_round_trip() {
        let request = request(
            chat(json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{\"city\":\"Oslo\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "c1", "content": "rain"},
                    {"role": "user", "content": "and tomorrow?"}
                ],
                "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
                "tool_choice": "required",
                "max_tokens": 50,
                "stop": "END"
            })),
            "anthropic.claude-3-haiku",
            None,
        )
        .expect("translated");
        let json = serde_json::to_value(&request).expect("json");
        assert_eq!(json["system"][0]["text"], "be brief");
        assert_eq!(json["messages"].as_array().map(Vec::len), Some(3));
        assert_eq!(json["messages"][1]["content"][0]["toolUse"]["input"]["city"], "Oslo");
        // The tool result and the next user message share one user turn.
        assert_eq!(json["messages"][2]["content"][0]["toolResult"]["toolUseId"], "c1");
        assert_eq!(json["messages"][2]["content"][1]["text"], "and tomorrow?");
        assert_eq!(json["inferenceConfig"]["maxTokens"], 50);
        assert_eq!(json["inferenceConfig"]["stopSequences"][0], "END");
        assert_eq!(json["toolConfig"]["toolChoice"], json!({"any": {}}));
    }

    #[test]
    fn extras_and_thinking_go_to_additional_fields() {
        let raw = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"top_k":5,"reasoning_effort":"low","fallbacks":["x"]}"#;
        let extra = additional_fields(raw).expect("object");
        let request = request(
            serde_json::from_slice(raw).expect("chat"),
            "us.anthropic.claude-sonnet-4",
            extra,
        )
        .expect("translated");
        let fields = request.additional_model_request_fields.expect("fields");
        assert_eq!(fields["top_k"], 5);
        assert_eq!(fields["thinking"]["budget_tokens"], 2048);
        assert!(fields.get("fallbacks").is_none());
        assert!(
            request
                .inference_config
                .and_then(|c| c.max_tokens)
                .is_some_and(|m| m > 2048)
        );
    }

    #[test]
    fn refusals_are_clear() {
        let url = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]});
        assert!(request(chat(url), "m", None).is_err());
        let n = json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]});
        assert!(request(chat(n), "m", None).is_err());
        let data = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}]});
        let ok = request(chat(data), "m", None).expect("data URL");
        assert_eq!(
            ok.messages[0].content[0].image.as_ref().map(|i| i.format.as_str()),
            Some("png")
        );
    }

    #[test]
    fn replies_map_stop_reasons_and_usage() {
        let reply: ConverseResponse = serde_json::from_value(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}},
                {"text": "Hi"},
                {"toolUse": {"toolUseId": "t1", "name": "get", "input": {"a": 1}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 10, "outputTokens": 4, "totalTokens": 19, "cacheReadInputTokens": 5}
        }))
        .expect("reply");
        let chat = response(reply, "m", 7);
        let choice = &chat.choices[0];
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(choice.message.content.as_deref(), Some("Hi"));
        assert_eq!(choice.message.reasoning.as_deref(), Some("hmm"));
        assert_eq!(
            choice
                .message
                .tool_calls
                .as_ref()
                .map(|c| c[0].function.arguments.as_str()),
            Some("{\"a\":1}")
        );
        let usage = chat.usage.expect("usage");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (15, 4));
        assert_eq!(usage.prompt_tokens_details.map(|d| d.cached_tokens), Some(5));
        assert_eq!(finish_reason("guardrail_intervened"), "content_filter");
        assert_eq!(finish_reason("end_turn"), "stop");
    }
}
