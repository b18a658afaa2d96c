//! Anthropic Messages → OpenAI chat completions (for `/anthropic/v1/messages` with an
//! OpenAI-wire upstream), and the reply back into a Messages reply.

use serde_json::{Map, Value, json};

use super::{TranslateError, stop_reason};
use crate::formats::anthropic::types::{Block, Content, KnownBlock, MessagesRequest, MessagesResponse, ToolDef};
use crate::formats::openai::types::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, FunctionCall, FunctionDef, ImageUrl, MessageContent, Stop,
    Tool, ToolCall,
};
use crate::usage::Usage;

/// Translates a Messages request into an OpenAI chat request for `upstream_model`.
pub fn request(req: MessagesRequest, upstream_model: &str) -> Result<ChatRequest, TranslateError> {
    let mut messages = Vec::new();
    if let Some(system) = req.system {
        messages.push(ChatMessage {
            role: "system".into(),
            content: Some(MessageContent::Text(blocks_text(system.into_blocks()))),
            ..ChatMessage::default()
        });
    }
    for message in req.messages {
        match message.role.as_str() {
            "user" => user_turn(message.content, &mut messages)?,
            "assistant" => messages.push(assistant_turn(message.content)),
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "unknown message role {other:?}"
                )));
            }
        }
    }
    let stream = req.stream.filter(|s| *s);
    let tools: Option<Vec<Tool>> = req.tools.map(|tools| {
        tools
            .into_iter()
            // Server tools (web search, ...) have no OpenAI equivalent and no input_schema.
            .filter(|t| t.input_schema.is_some())
            .map(
                |ToolDef {
                     name,
                     description,
                     input_schema,
                     ..
                 }| Tool {
                    kind: "function".into(),
                    function: FunctionDef {
                        name,
                        description,
                        parameters: input_schema,
                        strict: None,
                    },
                },
            )
            .collect()
    });
    let (tool_choice, parallel_tool_calls) = tool_choice(req.tool_choice.as_ref());
    Ok(ChatRequest {
        model: upstream_model.to_string(),
        messages,
        stream,
        stream_options: stream.map(|_| json!({"include_usage": true})),
        max_tokens: Some(req.max_tokens),
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop_sequences.map(Stop::Many),
        tools: tools.filter(|t| !t.is_empty()),
        tool_choice,
        parallel_tool_calls,
        user: req
            .metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
            .map(str::to_string),
        ..ChatRequest::default()
    })
}

fn tool_choice(choice: Option<&Value>) -> (Option<Value>, Option<bool>) {
    let Some(choice) = choice else {
        return (None, None);
    };
    let parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .filter(|d| *d)
        .map(|_| false);
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Some(json!("auto")),
        Some("any") => Some(json!("required")),
        Some("none") => Some(json!("none")),
        Some("tool") => choice
            .get("name")
            .and_then(Value::as_str)
            .map(|name| json!({"type": "function", "function": {"name": name}})),
        _ => None,
    };
    (mapped, parallel)
}

fn blocks_text(blocks: Vec<Block>) -> String {
    blocks
        .into_iter()
        .filter_map(|b| match b {
            Block::Known(KnownBlock::Text { text, .. }) => Some(text),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tool_result_text(content: Option<Value>) -> String {
    match content {
        None => String::new(),
        Some(Value::String(s)) => s,
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
    }
}

/// A user turn becomes its tool results (as `tool` messages, which must follow the assistant's
/// calls) and then the rest of its content as one user message.
fn user_turn(content: Content, out: &mut Vec<ChatMessage>) -> Result<(), TranslateError> {
    let blocks = match content {
        Content::Text(text) => {
            out.push(ChatMessage {
                role: "user".into(),
                content: Some(MessageContent::Text(text)),
                ..ChatMessage::default()
            });
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            Block::Known(KnownBlock::ToolResult {
                tool_use_id, content, ..
            }) => out.push(ChatMessage {
                role: "tool".into(),
                content: Some(MessageContent::Text(tool_result_text(content))),
                tool_call_id: Some(tool_use_id),
                ..ChatMessage::default()
            }),
            Block::Known(KnownBlock::Text { text, .. }) => parts.push(ContentPart {
                kind: "text".into(),
                text: Some(text),
                ..ContentPart::default()
            }),
            Block::Known(KnownBlock::Image { source }) => {
                let url = match (source.kind.as_str(), source.url, source.data) {
                    ("url", Some(url), _) => url,
                    ("base64", _, Some(data)) => {
                        format!(
                            "data:{};base64,{data}",
                            source.media_type.unwrap_or_else(|| "image/png".into())
                        )
                    }
                    _ => {
                        return Err(TranslateError::InvalidRequest("image block without data or url".into()));
                    }
                };
                parts.push(ContentPart {
                    kind: "image_url".into(),
                    image_url: Some(ImageUrl { url, detail: None }),
                    ..ContentPart::default()
                });
            }
            _ => {}
        }
    }
    if !parts.is_empty() {
        let only_text = parts.len() == 1 && parts[0].kind == "text";
        let content = if only_text {
            MessageContent::Text(parts.remove(0).text.unwrap_or_default())
        } else {
            MessageContent::Parts(parts)
        };
        out.push(ChatMessage {
            role: "user".into(),
            content: Some(content),
            ..ChatMessage::default()
        });
    }
    Ok(())
}

fn assistant_turn(content: Content) -> ChatMessage {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in content.into_blocks() {
        match block {
            Block::Known(KnownBlock::Text { text: t, .. }) => text.push_str(&t),
            Block::Known(KnownBlock::ToolUse { id, name, input }) => calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall {
                    name,
                    arguments: input.to_string(),
                },
            }),
            _ => {}
        }
    }
    ChatMessage {
        role: "assistant".into(),
        content: (!text.is_empty() || calls.is_empty()).then_some(MessageContent::Text(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..ChatMessage::default()
    }
}

/// Translates an OpenAI chat completion into a Messages reply.
pub fn response(reply: ChatResponse) -> Result<MessagesResponse, TranslateError> {
    let choice = reply
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| TranslateError::InvalidReply("the reply has no choices".into()))?;
    let mut content = Vec::new();
    let message = choice.message;
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        content.push(Block::Known(KnownBlock::Text {
            text,
            extra: Map::new(),
        }));
    }
    for call in message.tool_calls.unwrap_or_default() {
        let input = serde_json::from_str(&call.function.arguments).unwrap_or_else(|_| json!({}));
        content.push(Block::Known(KnownBlock::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
        }));
    }
    let usage = reply
        .usage
        .as_ref()
        .map(|u| Usage::from_openai(u).to_anthropic())
        .unwrap_or_default();
    Ok(MessagesResponse {
        id: reply.id,
        kind: "message".into(),
        role: "assistant".into(),
        model: reply.model,
        content,
        stop_reason: Some(stop_reason(choice.finish_reason.as_deref().unwrap_or("stop")).to_string()),
        stop_sequence: None,
        usage,
    })
}
