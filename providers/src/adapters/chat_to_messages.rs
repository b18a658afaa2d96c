//! OpenAI chat completions → Anthropic Messages (see the translation table in ARCHITECTURE.md), and the reply back.

use serde_json::{Map, Value, json};

use super::{TranslateError, finish_reason, thinking_budget};
use crate::formats::anthropic::types::{
    Block, Content, ImageSource, KnownBlock, Message, MessagesRequest, MessagesResponse, ToolDef,
};
use crate::formats::openai::types::{
    ChatMessage, ChatRequest, ChatResponse, Choice, ContentPart, FunctionCall, MessageContent, ResponseMessage,
    ToolCall,
};
use crate::usage::Usage;

/// `max_tokens` sent when the client gave none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Translates an OpenAI chat request into an Anthropic Messages request for `upstream_model`.
pub fn request(chat: ChatRequest, upstream_model: &str) -> Result<MessagesRequest, TranslateError> {
    let budget = reasoning_budget(&chat);
    let mut system_blocks: Vec<String> = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    for message in chat.messages {
        match message.role.as_str() {
            "system" | "developer" => {
                if let Some(content) = message.content {
                    system_blocks.push(content.text());
                }
            }
            "user" => messages.push(Message {
                role: "user".into(),
                content: user_content(message.content)?,
            }),
            "assistant" => messages.push(assistant_message(message)),
            "tool" => {
                let result = tool_result(message)?;
                // Consecutive tool results go back to Claude in one user turn.
                match messages.last_mut() {
                    Some(Message {
                        role,
                        content: Content::Blocks(blocks),
                    }) if role == "user" && blocks.iter().all(is_tool_result) => blocks.push(result),
                    _ => messages.push(Message {
                        role: "user".into(),
                        content: Content::Blocks(vec![result]),
                    }),
                }
            }
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "unknown message role {other:?}"
                )));
            }
        }
    }
    let system = match system_blocks.len() {
        0 => None,
        1 => system_blocks.pop().map(Content::Text),
        _ => Some(Content::Blocks(
            system_blocks
                .into_iter()
                .map(|text| {
                    Block::Known(KnownBlock::Text {
                        text,
                        extra: Map::new(),
                    })
                })
                .collect(),
        )),
    };
    let mut max_tokens = chat
        .max_completion_tokens
        .or(chat.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let thinking = budget.map(|budget| {
        // Anthropic needs budget_tokens < max_tokens.
        if max_tokens <= budget {
            max_tokens = budget + DEFAULT_MAX_TOKENS;
        }
        json!({"type": "enabled", "budget_tokens": budget})
    });
    let tools = chat.tools.map(|tools| {
        tools
            .into_iter()
            .map(|t| ToolDef {
                name: t.function.name,
                description: t.function.description,
                input_schema: Some(
                    t.function
                        .parameters
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                ),
            })
            .collect()
    });
    let tool_choice = tool_choice(chat.tool_choice.as_ref(), chat.parallel_tool_calls);
    Ok(MessagesRequest {
        model: upstream_model.to_string(),
        messages,
        system,
        max_tokens,
        stop_sequences: chat.stop.map(|s| s.into_vec()),
        stream: chat.stream.filter(|s| *s),
        temperature: chat.temperature,
        top_p: chat.top_p,
        top_k: None,
        tools,
        tool_choice,
        thinking,
        metadata: chat.user.map(|user| json!({"user_id": user})),
    })
}

fn is_tool_result(block: &Block) -> bool {
    matches!(block, Block::Known(KnownBlock::ToolResult { .. }))
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

fn tool_choice(choice: Option<&Value>, parallel: Option<bool>) -> Option<Value> {
    let mut mapped = match choice {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            _ => None,
        },
        Some(Value::Object(obj)) => obj
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| json!({"type": "tool", "name": name})),
        Some(_) => None,
    };
    if parallel == Some(false) {
        let mut choice = mapped.take().unwrap_or_else(|| json!({"type": "auto"}));
        if let Some(obj) = choice.as_object_mut()
            && obj.get("type").and_then(Value::as_str) != Some("none")
        {
            obj.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
        mapped = Some(choice);
    }
    mapped
}

fn user_content(content: Option<MessageContent>) -> Result<Content, TranslateError> {
    match content {
        None => Ok(Content::Text(String::new())),
        Some(MessageContent::Text(text)) => Ok(Content::Text(text)),
        Some(MessageContent::Parts(parts)) => Ok(Content::Blocks(
            parts.into_iter().map(part_to_block).collect::<Result<Vec<_>, _>>()?,
        )),
    }
}

fn part_to_block(part: ContentPart) -> Result<Block, TranslateError> {
    match part.kind.as_str() {
        "text" => Ok(Block::Known(KnownBlock::Text {
            text: part.text.unwrap_or_default(),
            extra: Map::new(),
        })),
        "image_url" => {
            let url = part
                .image_url
                .map(|i| i.url)
                .ok_or_else(|| TranslateError::InvalidRequest("image_url part without a url".into()))?;
            Ok(Block::Known(KnownBlock::Image {
                source: image_source(&url)?,
            }))
        }
        other => Err(TranslateError::InvalidRequest(format!(
            "content part type {other:?} cannot be sent to an Anthropic model"
        ))),
    }
}

fn image_source(url: &str) -> Result<ImageSource, TranslateError> {
    if let Some((media_type, data)) = super::data_url(url)? {
        return Ok(ImageSource {
            kind: "base64".into(),
            media_type: Some(media_type.to_string()),
            data: Some(data.to_string()),
            url: None,
        });
    }
    Ok(ImageSource {
        kind: "url".into(),
        media_type: None,
        data: None,
        url: Some(url.to_string()),
    })
}

fn assistant_message(message: ChatMessage) -> Message {
    let mut blocks = Vec::new();
    let text = message.content.map(|c| c.text()).unwrap_or_default();
    let calls = message.tool_calls.unwrap_or_default();
    if calls.is_empty() {
        return Message {
            role: "assistant".into(),
            content: Content::Text(text),
        };
    }
    if !text.is_empty() {
        blocks.push(Block::Known(KnownBlock::Text {
            text,
            extra: Map::new(),
        }));
    }
    for call in calls {
        let input = serde_json::from_str(&call.function.arguments).unwrap_or_else(|_| json!({}));
        blocks.push(Block::Known(KnownBlock::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
        }));
    }
    Message {
        role: "assistant".into(),
        content: Content::Blocks(blocks),
    }
}

fn tool_result(message: ChatMessage) -> Result<Block, TranslateError> {
    let id = message
        .tool_call_id
        .ok_or_else(|| TranslateError::InvalidRequest("tool message without tool_call_id".into()))?;
    Ok(Block::Known(KnownBlock::ToolResult {
        tool_use_id: id,
        content: Some(Value::String(message.content.map(|c| c.text()).unwrap_or_default())),
        is_error: None,
    }))
}

/// Translates an Anthropic reply into an OpenAI chat completion. `created` is the Unix time to
/// stamp it with.
pub fn response(reply: MessagesResponse, created: u64) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in reply.content {
        match block {
            Block::Known(KnownBlock::Text { text: t, .. }) => text.push_str(&t),
            Block::Known(KnownBlock::Thinking { thinking, .. }) => reasoning.push_str(&thinking),
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
    let finish = reply.stop_reason.as_deref().map(finish_reason).unwrap_or("stop");
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(text)
    };
    ChatResponse {
        id: reply.id,
        object: "chat.completion".into(),
        created,
        model: reply.model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content,
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning: (!reasoning.is_empty()).then_some(reasoning),
                refusal: None,
            },
            finish_reason: Some(finish.to_string()),
        }],
        usage: Some(Usage::from_anthropic(&reply.usage).to_openai()),
    }
}
