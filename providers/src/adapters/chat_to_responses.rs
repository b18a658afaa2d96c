//! OpenAI chat completions → the OpenAI Responses API, for a provider configured to serve only
//! the Responses API (`allowed_requests` with `responses` and without `chat_completion`), and the
//! Responses object back into a chat reply. The chat route and the Anthropic ingress (through
//! chat) reach such a provider this way.
//!
//! What is translated (see <https://platform.openai.com/docs/api-reference/responses>):
//! `system`/`developer` messages become `instructions` (joined by a blank line); user and
//! assistant messages become `message` items with `input_text`/`output_text` and `input_image`
//! parts; the assistant's `tool_calls` become `function_call` items and `tool` messages
//! `function_call_output` items. Function tools, `tool_choice`, `response_format` (as
//! `text.format`), `reasoning_effort`, the output cap, sampling parameters, `user` and
//! `parallel_tool_calls` map to their Responses fields. Every request is sent with
//! `store: false`: the chat client holds the conversation.
//!
//! Refused with a clear error, because the Responses API has no such parameters: `n` above 1,
//! `stop`, `seed`, `presence_penalty`, `frequency_penalty`.

use serde::Serialize;
use serde_json::{Value, json};

use super::TranslateError;
use crate::formats::openai::types::{
    ChatMessage, ChatRequest, ChatResponse, Choice, CompletionTokensDetails, ContentPart, FunctionCall, MessageContent,
    OpenAiUsage, PromptTokensDetails, ResponseMessage, ToolCall,
};

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

/// The smallest `max_output_tokens` OpenAI's Responses API accepts: smaller chat caps (a
/// `max_tokens: 1` probe) are raised to it rather than refused.
pub const MIN_OUTPUT_TOKENS: u64 = 16;

/// A Responses API request body, as built from a chat request (strings moved, not copied).
#[derive(Debug, Serialize)]
pub struct ResponsesRequest {
    /// The upstream model.
    pub model: String,
    /// System and developer messages, joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The conversation as input items.
    pub input: Vec<InputItem>,
    /// Always `false`: the chat client holds the conversation.
    pub store: bool,
    /// Stream the reply as Responses events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// The output cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// End-user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Allow several calls in one turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// `{effort}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Value>,
    /// `{format}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    /// Function tools, flat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<FlatTool>>,
    /// `auto`, `none`, `required` or `{type: function, name}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
}

/// One input item.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputItem {
    /// A user or assistant message.
    Message {
        /// `user` or `assistant`.
        role: &'static str,
        /// Its parts.
        content: Vec<InputPart>,
    },
    /// A call the assistant made.
    FunctionCall {
        /// The call id.
        call_id: String,
        /// The function.
        name: String,
        /// Its arguments (a JSON string).
        arguments: String,
    },
    /// A call's result.
    FunctionCallOutput {
        /// The call answered.
        call_id: String,
        /// The result.
        output: String,
    },
}

/// One part of an input message.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputPart {
    /// User text.
    InputText {
        /// The text.
        text: String,
    },
    /// Earlier assistant text.
    OutputText {
        /// The text.
        text: String,
    },
    /// An image, by URL or data URL.
    InputImage {
        /// The URL.
        image_url: String,
        /// `low`, `high` or `auto`.
        detail: String,
    },
}

/// A function tool in the Responses API's flat shape.
#[derive(Debug, Serialize)]
pub struct FlatTool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The function's name.
    pub name: String,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its JSON schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Strict schema adherence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Translates a chat request into a Responses request for `upstream_model`.
pub fn request(chat: ChatRequest, upstream_model: &str) -> Result<ResponsesRequest, TranslateError> {
    refuse_unsupported(&chat)?;
    let mut instructions: Vec<String> = Vec::new();
    let mut input = Vec::with_capacity(chat.messages.len());
    for message in chat.messages {
        push_message(message, &mut instructions, &mut input)?;
    }
    let effort = chat.reasoning_effort.or_else(|| {
        chat.reasoning
            .as_ref()
            .and_then(|r| r["effort"].as_str())
            .map(str::to_string)
    });
    Ok(ResponsesRequest {
        model: upstream_model.to_string(),
        instructions: (!instructions.is_empty()).then(|| instructions.join("\n\n")),
        input,
        store: false,
        stream: chat.stream.filter(|s| *s),
        max_output_tokens: chat
            .max_completion_tokens
            .or(chat.max_tokens)
            .map(|cap| u64::from(cap).max(MIN_OUTPUT_TOKENS)),
        temperature: chat.temperature,
        top_p: chat.top_p,
        user: chat.user,
        parallel_tool_calls: chat.parallel_tool_calls,
        reasoning: effort.map(|effort| json!({"effort": effort})),
        text: chat.response_format.as_ref().map(text_format).transpose()?,
        tools: chat.tools.map(|tools| {
            tools
                .into_iter()
                .map(|tool| FlatTool {
                    kind: "function",
                    name: tool.function.name,
                    description: tool.function.description,
                    parameters: tool.function.parameters,
                    // Chat tools are loose unless they say otherwise; the Responses API makes
                    // a tool without `strict` strict, which would turn optional arguments
                    // required.
                    strict: Some(tool.function.strict.unwrap_or(false)),
                })
                .collect()
        }),
        tool_choice: chat.tool_choice.map(tool_choice),
    })
}

fn refuse_unsupported(chat: &ChatRequest) -> Result<(), TranslateError> {
    let unsupported = if chat.n.is_some_and(|n| n > 1) {
        Some("`n` above 1")
    } else if chat.stop.is_some() {
        Some("`stop`")
    } else if chat.seed.is_some() {
        Some("`seed`")
    } else if chat.presence_penalty.is_some() || chat.frequency_penalty.is_some() {
        Some("`presence_penalty` and `frequency_penalty`")
    } else {
        None
    };
    match unsupported {
        Some(what) => Err(invalid(format!(
            "{what} cannot be sent to this model's provider, which serves only the Responses API"
        ))),
        None => Ok(()),
    }
}

/// Appends one chat message as Responses input items (or instructions).
fn push_message(
    message: ChatMessage,
    instructions: &mut Vec<String>,
    input: &mut Vec<InputItem>,
) -> Result<(), TranslateError> {
    match message.role.as_str() {
        "system" | "developer" => {
            if let Some(content) = message.content {
                instructions.push(content.text());
            }
        }
        "tool" => {
            let call_id = message
                .tool_call_id
                .ok_or_else(|| invalid("a `tool` message needs its `tool_call_id`"))?;
            let output = message.content.map(|c| c.text()).unwrap_or_default();
            input.push(InputItem::FunctionCallOutput { call_id, output });
        }
        role @ ("user" | "assistant") => {
            let (role, assistant) = if role == "assistant" {
                ("assistant", true)
            } else {
                ("user", false)
            };
            if let Some(content) = message.content {
                let content = content_parts(content, assistant)?;
                if !content.is_empty() {
                    input.push(InputItem::Message { role, content });
                }
            }
            for call in message.tool_calls.into_iter().flatten() {
                input.push(InputItem::FunctionCall {
                    call_id: call.id,
                    name: call.function.name,
                    arguments: call.function.arguments,
                });
            }
        }
        other => return Err(invalid(format!("unknown message role `{other}`"))),
    }
    Ok(())
}

fn text_part(text: String, assistant: bool) -> InputPart {
    if assistant {
        InputPart::OutputText { text }
    } else {
        InputPart::InputText { text }
    }
}

fn content_parts(content: MessageContent, assistant: bool) -> Result<Vec<InputPart>, TranslateError> {
    match content {
        MessageContent::Text(text) if text.is_empty() => Ok(Vec::new()),
        MessageContent::Text(text) => Ok(vec![text_part(text, assistant)]),
        MessageContent::Parts(parts) => parts.into_iter().map(|part| content_part(part, assistant)).collect(),
    }
}

fn content_part(part: ContentPart, assistant: bool) -> Result<InputPart, TranslateError> {
    match (part.kind.as_str(), part.text, part.image_url) {
        ("text", Some(text), _) => Ok(text_part(text, assistant)),
        ("image_url", _, Some(image)) => Ok(InputPart::InputImage {
            image_url: image.url,
            detail: image.detail.unwrap_or_else(|| "auto".to_string()),
        }),
        (kind, _, _) => Err(invalid(format!(
            "content parts of type `{kind}` cannot be sent to a Responses-only provider"
        ))),
    }
}

fn text_format(format: &Value) -> Result<Value, TranslateError> {
    match format["type"].as_str() {
        Some("text") | None => Ok(json!({"format": {"type": "text"}})),
        Some("json_object") => Ok(json!({"format": {"type": "json_object"}})),
        Some("json_schema") => {
            let schema = &format["json_schema"];
            let mut flat = json!({"type": "json_schema", "name": schema["name"].as_str().unwrap_or("response"),
                "schema": schema["schema"].clone()});
            if let Some(strict) = schema["strict"].as_bool() {
                flat["strict"] = Value::Bool(strict);
            }
            Ok(json!({"format": flat}))
        }
        Some(other) => Err(invalid(format!("`response_format` of type `{other}` is not supported"))),
    }
}

/// Chat's `tool_choice` → the Responses API's (a named function is flat there).
fn tool_choice(choice: Value) -> Value {
    match choice["function"]["name"].as_str() {
        Some(name) => json!({"type": "function", "name": name}),
        None => choice,
    }
}

/// The chat finish reason for a Responses object's status.
pub fn finish_reason(status: Option<&str>, incomplete_reason: Option<&str>, called: bool) -> &'static str {
    match (status, incomplete_reason) {
        (Some("incomplete"), Some("content_filter")) => "content_filter",
        (Some("incomplete"), _) => "length",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// Chat usage from a Responses `usage` object.
pub fn chat_usage(usage: &Value) -> Option<OpenAiUsage> {
    let input = usage["input_tokens"].as_u64()?;
    let output = usage["output_tokens"].as_u64().unwrap_or(0);
    Some(OpenAiUsage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: usage["total_tokens"].as_u64().unwrap_or(input + output),
        prompt_tokens_details: usage["input_tokens_details"]["cached_tokens"]
            .as_u64()
            .map(|cached_tokens| PromptTokensDetails {
                cached_tokens,
                cached_write_tokens: None,
            }),
        completion_tokens_details: usage["output_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .map(|reasoning_tokens| CompletionTokensDetails { reasoning_tokens }),
    })
}

/// The chat completion id for a Responses object id.
pub fn completion_id(response_id: &str) -> String {
    format!("chatcmpl-{}", response_id.trim_start_matches("resp_"))
}

/// Translates a Responses object into a chat reply (one choice).
pub fn response(object: &Value, model: &str, created: u64) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut refusal = None;
    let mut calls = Vec::new();
    for item in object["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    match part["type"].as_str() {
                        Some("output_text") => text.push_str(part["text"].as_str().unwrap_or_default()),
                        Some("refusal") => refusal = part["refusal"].as_str().map(str::to_string),
                        _ => {}
                    }
                }
            }
            Some("reasoning") => {
                for summary in item["summary"].as_array().into_iter().flatten() {
                    reasoning.push_str(summary["text"].as_str().unwrap_or_default());
                }
            }
            Some("function_call") => calls.push(ToolCall {
                id: item["call_id"].as_str().unwrap_or_default().to_string(),
                kind: "function".into(),
                function: FunctionCall {
                    name: item["name"].as_str().unwrap_or_default().to_string(),
                    arguments: item["arguments"].as_str().unwrap_or_default().to_string(),
                },
            }),
            _ => {}
        }
    }
    let finish = finish_reason(
        object["status"].as_str(),
        object["incomplete_details"]["reason"].as_str(),
        !calls.is_empty(),
    );
    ChatResponse {
        id: completion_id(object["id"].as_str().unwrap_or_default()),
        object: "chat.completion".into(),
        created: object["created_at"].as_u64().unwrap_or(created),
        model: object["model"].as_str().unwrap_or(model).to_string(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content: (!text.is_empty() || (calls.is_empty() && refusal.is_none())).then_some(text),
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning: (!reasoning.is_empty()).then_some(reasoning),
                refusal,
            },
            finish_reason: Some(finish.to_string()),
        }],
        usage: chat_usage(&object["usage"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> ChatRequest {
        serde_json::from_str(body).expect("chat request")
    }

    #[test]
    fn a_conversation_becomes_instructions_and_items() {
        let body = serde_json::to_value(request(
            chat(
                r#"{"model":"m","messages":[
                {"role":"system","content":"Be brief."},
                {"role":"developer","content":"Use tools."},
                {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},
                {"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"call_1","content":"done"}],
                "max_completion_tokens":50,"stream":true,"reasoning_effort":"low",
                "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"},"strict":true}},
                "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
                "tool_choice":{"type":"function","function":{"name":"f"}}}"#,
            ),
            "up",
        )
        .expect("translates"))
        .expect("json");
        assert_eq!(body["model"], "up");
        assert_eq!(body["instructions"], "Be brief.\n\nUse tools.");
        assert_eq!(body["store"], false);
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_output_tokens"], 50);
        assert_eq!(body["reasoning"], json!({"effort": "low"}));
        assert_eq!(body["text"]["format"]["type"], "json_schema");
        assert_eq!(body["text"]["format"]["name"], "x");
        assert_eq!(
            body["tools"][0],
            json!({"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": false})
        );
        assert_eq!(body["tool_choice"], json!({"type": "function", "name": "f"}));
        let input = body["input"].as_array().expect("input");
        assert_eq!(input.len(), 4);
        assert_eq!(input[0]["content"][0], json!({"type": "input_text", "text": "hi"}));
        assert_eq!(input[0]["content"][1]["type"], "input_image");
        assert_eq!(
            input[1]["content"][0],
            json!({"type": "output_text", "text": "Checking."})
        );
        assert_eq!(input[2]["type"], "function_call");
        assert_eq!(input[2]["call_id"], "call_1");
        assert_eq!(
            input[3],
            json!({"type": "function_call_output", "call_id": "call_1", "output": "done"})
        );
    }

    #[test]
    fn parameters_without_a_responses_field_are_refused() {
        for body in [
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":"\n"}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"seed":1}"#,
            r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
        ] {
            assert!(request(chat(body), "up").is_err(), "{body}");
        }
    }

    #[test]
    fn a_responses_object_becomes_a_chat_reply() {
        let object = json!({"id": "resp_9", "object": "response", "created_at": 5, "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"}, "model": "o3",
            "output": [
                {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "hmm"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hel"}]}],
            "usage": {"input_tokens": 7, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 4,
                "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 11}});
        let chat = response(&object, "o3", 0);
        assert_eq!(chat.id, "chatcmpl-9");
        assert_eq!(chat.choices[0].message.content.as_deref(), Some("Hel"));
        assert_eq!(chat.choices[0].message.reasoning.as_deref(), Some("hmm"));
        assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("length"));
        let usage = chat.usage.expect("usage");
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
            (7, 4, 11)
        );

        let called = json!({"id": "resp_1", "status": "completed", "output": [
            {"type": "function_call", "call_id": "call_3", "name": "f", "arguments": "{\"a\":1}"}]});
        let chat = response(&called, "m", 0);
        assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(chat.choices[0].message.content, None);
        let calls = chat.choices[0].message.tool_calls.as_ref().expect("calls");
        assert_eq!(calls[0].id, "call_3");
        assert_eq!(calls[0].function.arguments, "{\"a\":1}");
    }
}
