//! Bedrock Converse (from a Bedrock client, on `/bedrock/model/{provider/model}/converse`) →
//! OpenAI chat, for a model another provider serves, and the chat reply back as a Converse reply.
//!
//! `system` blocks become one system message; a user turn's `toolResult` blocks become `tool`
//! messages (before the turn's other content); images become base64 `data:` URLs; an assistant
//! turn's `toolUse` blocks become tool calls. `inferenceConfig` maps to `max_tokens`,
//! `temperature`, `top_p` and `stop`, and `toolConfig` to `tools` and `tool_choice`.

use serde_json::{Value, json};

use super::TranslateError;
use super::chat_to_converse::stop_reason;
use crate::formats::bedrock::types::{
    ContentBlock, ConverseRequest, ConverseResponse, Message, Output, ReasoningContent, ReasoningText, ToolUse,
};
use crate::formats::openai::types::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, FunctionCall, FunctionDef, ImageUrl, MessageContent, Stop,
    Tool, ToolCall,
};
use crate::usage::Usage;

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

/// Translates a Converse request body into an OpenAI chat request for `upstream_model`;
/// `stream` is the route's (`converse-stream`), and a streamed request asks for the usage chunk.
pub fn request(raw: &[u8], upstream_model: &str, stream: bool) -> Result<ChatRequest, TranslateError> {
    let converse: ConverseRequest = serde_json::from_slice(raw).map_err(|e| invalid(e.to_string()))?;
    let mut messages = Vec::with_capacity(converse.messages.len() + 1);
    let system: String = converse
        .system
        .unwrap_or_default()
        .into_iter()
        .filter_map(|block| block.text)
        .collect::<Vec<_>>()
        .join("\n");
    if !system.is_empty() {
        messages.push(ChatMessage {
            role: "system".into(),
            content: Some(MessageContent::Text(system)),
            ..ChatMessage::default()
        });
    }
    for message in converse.messages {
        match message.role.as_str() {
            "user" => user_turn(message.content, &mut messages)?,
            "assistant" => messages.push(assistant_turn(message.content)?),
            other => return Err(invalid(format!("unknown message role {other:?}"))),
        }
    }
    let inference = converse.inference_config.unwrap_or_default();
    let tool_config = converse.tool_config;
    let tool_choice = tool_config
        .as_ref()
        .and_then(|c| c.tool_choice.as_ref())
        .and_then(tool_choice);
    let tools = tool_config.map(|config| {
        config
            .tools
            .into_iter()
            .filter_map(|entry| entry.tool_spec)
            .map(|spec| Tool {
                kind: "function".into(),
                function: FunctionDef {
                    name: spec.name,
                    description: spec.description,
                    parameters: Some(spec.input_schema.json),
                    strict: None,
                },
            })
            .collect::<Vec<_>>()
    });
    Ok(ChatRequest {
        model: upstream_model.to_string(),
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then(|| json!({"include_usage": true})),
        max_tokens: inference.max_tokens,
        temperature: inference.temperature,
        top_p: inference.top_p,
        stop: inference.stop_sequences.map(Stop::Many),
        tools: tools.filter(|t| !t.is_empty()),
        tool_choice,
        ..ChatRequest::default()
    })
}

fn tool_choice(choice: &Value) -> Option<Value> {
    if choice.get("auto").is_some() {
        Some(json!("auto"))
    } else if choice.get("any").is_some() {
        Some(json!("required"))
    } else {
        let name = choice.get("tool")?.get("name")?.as_str()?;
        Some(json!({"type": "function", "function": {"name": name}}))
    }
}

fn user_turn(blocks: Vec<ContentBlock>, out: &mut Vec<ChatMessage>) -> Result<(), TranslateError> {
    let mut parts = Vec::new();
    for block in blocks {
        if let Some(result) = block.tool_result {
            let text = result
                .content
                .into_iter()
                .filter_map(|c| c.text.or_else(|| c.json.map(|j| j.to_string())))
                .collect::<Vec<_>>()
                .join("\n");
            out.push(ChatMessage {
                role: "tool".into(),
                content: Some(MessageContent::Text(text)),
                tool_call_id: Some(result.tool_use_id),
                ..ChatMessage::default()
            });
        } else if let Some(text) = block.text {
            parts.push(ContentPart {
                kind: "text".into(),
                text: Some(text),
                image_url: None,
            });
        } else if let Some(image) = block.image {
            let bytes = image
                .source
                .bytes
                .ok_or_else(|| invalid("only images given as bytes can be sent to this model"))?;
            parts.push(ContentPart {
                kind: "image_url".into(),
                text: None,
                image_url: Some(ImageUrl {
                    url: format!("data:image/{};base64,{bytes}", image.format),
                    detail: None,
                }),
            });
        } else if block.document.is_some() {
            return Err(invalid("document blocks can be sent to Bedrock models only"));
        }
    }
    if !parts.is_empty() {
        let content = match parts.as_slice() {
            [
                ContentPart {
                    kind, text: Some(_), ..
                },
            ] if kind == "text" => MessageContent::Text(parts.pop().and_then(|p| p.text).unwrap_or_default()),
            _ => MessageContent::Parts(parts),
        };
        out.push(ChatMessage {
            role: "user".into(),
            content: Some(content),
            ..ChatMessage::default()
        });
    }
    Ok(())
}

fn assistant_turn(blocks: Vec<ContentBlock>) -> Result<ChatMessage, TranslateError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        if let Some(t) = block.text {
            text.push_str(&t);
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
    Ok(ChatMessage {
        role: "assistant".into(),
        content: (!text.is_empty()).then_some(MessageContent::Text(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..ChatMessage::default()
    })
}

/// Translates an OpenAI chat reply into a Converse reply (the first choice).
pub fn response(chat: ChatResponse) -> ConverseResponse {
    let usage = chat.usage.as_ref().map(|u| Usage::from_openai(u).to_converse());
    let choice = chat.choices.into_iter().next();
    let finish = choice
        .as_ref()
        .and_then(|c| c.finish_reason.clone())
        .unwrap_or_default();
    let mut content = Vec::new();
    if let Some(choice) = choice {
        let message = choice.message;
        if let Some(reasoning) = message.reasoning.filter(|r| !r.is_empty()) {
            content.push(ContentBlock {
                reasoning_content: Some(ReasoningContent {
                    reasoning_text: Some(ReasoningText {
                        text: reasoning,
                        signature: None,
                    }),
                    redacted_content: None,
                }),
                ..ContentBlock::default()
            });
        }
        if let Some(text) = message.content.filter(|t| !t.is_empty()) {
            content.push(ContentBlock::text(text));
        }
        for call in message.tool_calls.unwrap_or_default() {
            content.push(ContentBlock {
                tool_use: Some(ToolUse {
                    tool_use_id: call.id,
                    name: call.function.name,
                    input: serde_json::from_str(&call.function.arguments).unwrap_or_else(|_| json!({})),
                }),
                ..ContentBlock::default()
            });
        }
    }
    ConverseResponse {
        output: Output {
            message: Some(Message {
                role: "assistant".into(),
                content,
            }),
        },
        stop_reason: stop_reason(&finish).to_string(),
        usage,
        metrics: Some(json!({"latencyMs": 0})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converse_requests_become_chat() {
        let raw = serde_json::to_vec(&json!({
            "system": [{"text": "be brief"}],
            "messages": [
                {"role": "user", "content": [{"text": "weather?"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get", "input": {"city": "Oslo"}}}]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"rain": true}}]}},
                    {"text": "so?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBO"}}}
                ]}
            ],
            "inferenceConfig": {"maxTokens": 20, "stopSequences": ["X"]},
            "toolConfig": {"tools": [{"toolSpec": {"name": "get", "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"any": {}}}
        }))
        .expect("json");
        let chat = request(&raw, "gpt-4o", true).expect("translated");
        let json = serde_json::to_value(&chat).expect("json");
        assert_eq!(json["messages"][0]["role"], "system");
        assert_eq!(
            json["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Oslo\"}"
        );
        assert_eq!(json["messages"][3]["role"], "tool");
        assert_eq!(json["messages"][3]["content"], "{\"rain\":true}");
        assert_eq!(
            json["messages"][4]["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBO"
        );
        assert_eq!(json["max_tokens"], 20);
        assert_eq!(json["tool_choice"], "required");
        assert_eq!(json["stream_options"]["include_usage"], true);
        assert!(request(b"{\"messages\":[{\"role\":\"system\",\"content\":[]}]}", "m", false).is_err());
        assert!(request(b"not json", "m", false).is_err());
    }

    #[test]
    fn chat_replies_become_converse() {
        let chat: ChatResponse = serde_json::from_value(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "ok",
                "tool_calls": [{"id": "t2", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        }))
        .expect("chat");
        let reply = serde_json::to_value(response(chat)).expect("json");
        assert_eq!(reply["stopReason"], "tool_use");
        assert_eq!(reply["output"]["message"]["content"][0]["text"], "ok");
        assert_eq!(reply["output"]["message"]["content"][1]["toolUse"]["input"]["a"], 1);
        assert_eq!(reply["usage"]["inputTokens"], 5);
        assert_eq!(reply["usage"]["totalTokens"], 7);
    }
}
