//! OpenAI chat completions → Gemini `generateContent` (see the translation table in
//! ARCHITECTURE.md), and the reply back; OpenAI embeddings → `batchEmbedContents` and back.
//!
//! Gemini names a function in its result but OpenAI's `tool` message carries only the call id, so
//! the name is recovered from the assistant turn that made the call. Gemini's calls carry no id
//! on older models, so the reply's calls get ids made here. Thinking models sign a call
//! (`thoughtSignature`) and need the signature back with it on the next turn; OpenAI clients
//! echo only the call's id, so the signature travels in the id, after [`SIGNATURE_MARK`].

use serde_json::{Value, json};

use super::{TranslateError, thinking_budget};
use crate::formats::gemini::types::{
    BatchEmbedRequest, BatchEmbedResponse, Blob, Candidate, Content, EmbedRequest, FileData, FunctionCall,
    FunctionDecl, FunctionResponse, GenerateRequest, GenerateResponse, GenerationConfig, Part, ToolDecl,
};
use crate::formats::openai::types::{
    ChatMessage, ChatRequest, ChatResponse, Choice, ContentPart, FunctionCall as OpenAiCall, MessageContent,
    ResponseMessage, ToolCall,
};
use crate::usage::Usage;

/// Separates a call id from the thought signature carried in it.
pub const SIGNATURE_MARK: &str = "__thought__";

/// Translates an OpenAI chat request into a Gemini `generateContent` request. The model goes in
/// the URL, not the body.
pub fn request(chat: ChatRequest) -> Result<GenerateRequest, TranslateError> {
    let generation_config = generation_config(&chat)?;
    let tool_config = tool_config(chat.tool_choice.as_ref());
    let tools = chat.tools.filter(|t| !t.is_empty()).map(|tools| {
        vec![ToolDecl {
            function_declarations: tools
                .into_iter()
                .map(|t| FunctionDecl {
                    name: t.function.name,
                    description: t.function.description,
                    parameters: t.function.parameters,
                    schema_parameters: None,
                })
                .collect(),
        }]
    });
    let mut system: Vec<Part> = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    for (at, message) in chat.messages.iter().enumerate() {
        match message.role.as_str() {
            "system" | "developer" => {
                if let Some(content) = &message.content {
                    system.push(text_part(content.text()));
                }
            }
            "user" => {
                let parts = user_parts(message.content.as_ref())?;
                // Turns alternate: a user message after a user turn (tool results, say) joins it.
                match contents.last_mut() {
                    Some(last) if last.role.as_deref() == Some("user") => last.parts.extend(parts),
                    _ => contents.push(Content {
                        role: Some("user".into()),
                        parts,
                    }),
                }
            }
            "assistant" => {
                let parts = model_parts(message);
                // Gemini wants turns to alternate: consecutive assistant messages are one turn.
                match contents.last_mut() {
                    Some(last) if last.role.as_deref() == Some("model") => last.parts.extend(parts),
                    _ => contents.push(Content {
                        role: Some("model".into()),
                        parts,
                    }),
                }
            }
            "tool" => {
                let part = function_response(message, &chat.messages[..at])?;
                // Consecutive results go back in one user turn, as Gemini's own clients send them.
                match contents.last_mut() {
                    Some(last)
                        if last.role.as_deref() == Some("user")
                            && !last.parts.is_empty()
                            && last.parts.iter().all(|p| p.function_response.is_some()) =>
                    {
                        last.parts.push(part)
                    }
                    _ => contents.push(Content {
                        role: Some("user".into()),
                        parts: vec![part],
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
    Ok(GenerateRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        generation_config,
        tools,
        tool_config,
    })
}

fn text_part(text: String) -> Part {
    Part {
        text: Some(text),
        ..Part::default()
    }
}

fn generation_config(chat: &ChatRequest) -> Result<Option<GenerationConfig>, TranslateError> {
    let (response_mime_type, response_json_schema) = match &chat.response_format {
        None => (None, None),
        Some(format) => match format.get("type").and_then(Value::as_str) {
            Some("text") | None => (None, None),
            Some("json_object") => (Some("application/json".to_string()), None),
            Some("json_schema") => {
                let schema = format
                    .get("json_schema")
                    .and_then(|s| s.get("schema"))
                    .cloned()
                    .ok_or_else(|| {
                        TranslateError::InvalidRequest("response_format.json_schema.schema is required".into())
                    })?;
                (Some("application/json".to_string()), Some(schema))
            }
            Some(other) => {
                return Err(TranslateError::InvalidRequest(format!(
                    "response_format type {other:?} is not supported"
                )));
            }
        },
    };
    let config = GenerationConfig {
        temperature: chat.temperature,
        top_p: chat.top_p,
        max_output_tokens: chat.max_completion_tokens.or(chat.max_tokens),
        stop_sequences: chat.stop.clone().map(|s| s.into_vec()),
        candidate_count: chat.n,
        presence_penalty: chat.presence_penalty,
        frequency_penalty: chat.frequency_penalty,
        seed: chat.seed,
        response_mime_type,
        response_json_schema,
        response_schema: None,
        thinking_config: thinking_config(chat),
    };
    Ok((config != GenerationConfig::default()).then_some(config))
}

/// `reasoning` (`{max_tokens}` or `{effort}`) or `reasoning_effort` as a thinking budget, with
/// the thoughts returned; effort `none` turns thinking off.
fn thinking_config(chat: &ChatRequest) -> Option<Value> {
    let effort = chat
        .reasoning
        .as_ref()
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str)
        .or(chat.reasoning_effort.as_deref());
    let budget = chat
        .reasoning
        .as_ref()
        .and_then(|r| r.get("max_tokens"))
        .and_then(Value::as_u64);
    match (budget, effort) {
        (Some(budget), _) => Some(json!({"thinkingBudget": budget, "includeThoughts": true})),
        (None, Some("none")) => Some(json!({"thinkingBudget": 0})),
        (None, Some(effort)) => {
            thinking_budget(effort).map(|budget| json!({"thinkingBudget": budget, "includeThoughts": true}))
        }
        (None, None) => None,
    }
}

fn tool_config(choice: Option<&Value>) -> Option<Value> {
    let mode = |mode: &str| Some(json!({"functionCallingConfig": {"mode": mode}}));
    match choice? {
        Value::String(s) => match s.as_str() {
            "auto" => mode("AUTO"),
            "required" => mode("ANY"),
            "none" => mode("NONE"),
            _ => None,
        },
        Value::Object(obj) => obj
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}})),
        _ => None,
    }
}

fn user_parts(content: Option<&MessageContent>) -> Result<Vec<Part>, TranslateError> {
    match content {
        None => Ok(vec![text_part(String::new())]),
        Some(MessageContent::Text(text)) => Ok(vec![text_part(text.clone())]),
        Some(MessageContent::Parts(parts)) => parts.iter().map(content_part).collect(),
    }
}

fn content_part(part: &ContentPart) -> Result<Part, TranslateError> {
    match part.kind.as_str() {
        "text" => Ok(text_part(part.text.clone().unwrap_or_default())),
        "image_url" => {
            let url = part
                .image_url
                .as_ref()
                .map(|i| i.url.as_str())
                .ok_or_else(|| TranslateError::InvalidRequest("image_url part without a url".into()))?;
            image_part(url)
        }
        other => Err(TranslateError::InvalidRequest(format!(
            "content part type {other:?} cannot be sent to a Gemini model"
        ))),
    }
}

/// A `data:` URL inline; any other URL as a file reference, its media type guessed from the
/// extension.
fn image_part(url: &str) -> Result<Part, TranslateError> {
    if let Some((mime_type, data)) = super::data_url(url)? {
        return Ok(Part {
            inline_data: Some(Blob {
                mime_type: mime_type.to_string(),
                data: data.to_string(),
            }),
            ..Part::default()
        });
    }
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    let mime_type = [
        (".png", "image/png"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
        (".heic", "image/heic"),
        (".pdf", "application/pdf"),
    ]
    .iter()
    .find(|(ext, _)| path.ends_with(ext))
    .map_or("image/jpeg", |(_, mime)| mime);
    Ok(Part {
        file_data: Some(FileData {
            mime_type: Some(mime_type.to_string()),
            file_uri: url.to_string(),
        }),
        ..Part::default()
    })
}

fn model_parts(message: &ChatMessage) -> Vec<Part> {
    let mut parts = Vec::new();
    let text = message.content.as_ref().map(MessageContent::text).unwrap_or_default();
    if !text.is_empty() {
        parts.push(text_part(text));
    }
    for call in message.tool_calls.iter().flatten() {
        let args = serde_json::from_str(&call.function.arguments).unwrap_or_else(|_| json!({}));
        let signature = call
            .id
            .split_once(SIGNATURE_MARK)
            .map(|(_, signature)| signature.to_string())
            .filter(|s| !s.is_empty());
        parts.push(Part {
            function_call: Some(FunctionCall {
                id: None,
                name: call.function.name.clone(),
                args,
            }),
            thought_signature: signature,
            ..Part::default()
        });
    }
    if parts.is_empty() {
        parts.push(text_part(String::new()));
    }
    parts
}

/// A `tool` message as a `functionResponse`, named after the call it answers (found in the
/// assistant turns before it, newest first). The result must be an object: JSON object text is
/// sent as is, anything else as `{"content": text}`.
fn function_response(message: &ChatMessage, earlier: &[ChatMessage]) -> Result<Part, TranslateError> {
    let id = message
        .tool_call_id
        .as_deref()
        .ok_or_else(|| TranslateError::InvalidRequest("tool message without tool_call_id".into()))?;
    let name = earlier
        .iter()
        .rev()
        .filter(|m| m.role == "assistant")
        .flat_map(|m| m.tool_calls.iter().flatten())
        .find(|call| call.id == id)
        .map(|call| call.function.name.clone())
        .or_else(|| message.name.clone())
        .ok_or_else(|| {
            TranslateError::InvalidRequest(format!(
                "tool message answers call {id:?}, which no earlier assistant message made"
            ))
        })?;
    let text = message.content.as_ref().map(MessageContent::text).unwrap_or_default();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => json!({"content": text}),
    };
    Ok(Part {
        function_response: Some(FunctionResponse {
            id: None,
            name,
            response,
        }),
        ..Part::default()
    })
}

/// OpenAI `finish_reason` for a Gemini `finishReason`.
pub fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// An id for the `n`th call of a reply, for models that send none.
pub fn call_id(reply_id: &str, n: usize) -> String {
    let tail: String = reply_id.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    format!("call_{tail}_{n}")
}

/// What one candidate's parts say: text, reasoning and calls.
pub struct CandidateParts {
    /// Answer text.
    pub text: String,
    /// Thought text.
    pub reasoning: String,
    /// Function calls, with ids.
    pub calls: Vec<ToolCall>,
}

/// Splits a candidate's parts; calls without an id get `call_id(reply_id, first_call + n)`.
pub fn candidate_parts(candidate: &Candidate, reply_id: &str, first_call: usize) -> CandidateParts {
    let mut out = CandidateParts {
        text: String::new(),
        reasoning: String::new(),
        calls: Vec::new(),
    };
    for part in candidate.content.iter().flat_map(|c| &c.parts) {
        if let Some(text) = &part.text {
            if part.thought == Some(true) {
                out.reasoning.push_str(text);
            } else {
                out.text.push_str(text);
            }
        }
        if let Some(call) = &part.function_call {
            let n = first_call + out.calls.len();
            let mut id = call.id.clone().unwrap_or_else(|| call_id(reply_id, n));
            if let Some(signature) = &part.thought_signature {
                id.push_str(SIGNATURE_MARK);
                id.push_str(signature);
            }
            out.calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: OpenAiCall {
                    name: call.name.clone(),
                    arguments: if call.args.is_null() {
                        "{}".to_string()
                    } else {
                        call.args.to_string()
                    },
                },
            });
        }
    }
    out
}

/// Translates a Gemini reply into an OpenAI chat completion for `model`, stamped `created`.
pub fn response(reply: GenerateResponse, model: &str, created: u64) -> ChatResponse {
    let id = reply.response_id.clone().unwrap_or_else(|| format!("gemini-{created}"));
    let mut choices: Vec<Choice> = reply
        .candidates
        .iter()
        .map(|candidate| {
            let parts = candidate_parts(candidate, &id, 0);
            let called = !parts.calls.is_empty();
            let finish = candidate
                .finish_reason
                .as_deref()
                .map_or(if called { "tool_calls" } else { "stop" }, |r| finish_reason(r, called));
            Choice {
                index: candidate.index,
                message: ResponseMessage {
                    role: "assistant".into(),
                    content: (!(parts.text.is_empty() && called)).then_some(parts.text),
                    tool_calls: called.then_some(parts.calls),
                    reasoning: (!parts.reasoning.is_empty()).then_some(parts.reasoning),
                    refusal: None,
                },
                finish_reason: Some(finish.to_string()),
            }
        })
        .collect();
    if choices.is_empty() {
        // A blocked prompt: no candidate, only `promptFeedback`.
        choices.push(Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content: Some(String::new()),
                ..ResponseMessage::default()
            },
            finish_reason: Some("content_filter".into()),
        });
    }
    ChatResponse {
        id,
        object: "chat.completion".into(),
        created,
        model: reply.model_version.unwrap_or_else(|| model.to_string()),
        choices,
        usage: Some(Usage::from_gemini(&reply.usage_metadata.unwrap_or_default()).to_openai()),
    }
}

/// Most inputs `batchEmbedContents` takes in one request.
pub const MAX_EMBED_INPUTS: usize = 100;

/// Translates an OpenAI embeddings request (`input` a string or a list of strings, at most
/// [`MAX_EMBED_INPUTS`]) into a `batchEmbedContents` request for `model`.
pub fn embeddings_request(body: &Value, model: &str) -> Result<BatchEmbedRequest, TranslateError> {
    let invalid = |what: &str| TranslateError::InvalidRequest(what.to_string());
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("a Gemini embedding model takes text input: a string or a list of strings"))?,
        _ => return Err(invalid("input is required: a string or a list of strings")),
    };
    if inputs.is_empty() {
        return Err(invalid("input must not be empty"));
    }
    if inputs.len() > MAX_EMBED_INPUTS {
        return Err(TranslateError::InvalidRequest(format!(
            "a Gemini embedding request takes at most {MAX_EMBED_INPUTS} inputs, this one has {}",
            inputs.len()
        )));
    }
    let dimensions = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok());
    let model = format!("models/{}", model.trim_start_matches("models/"));
    Ok(BatchEmbedRequest {
        requests: inputs
            .into_iter()
            .map(|text| EmbedRequest {
                model: model.clone(),
                content: Content {
                    role: None,
                    parts: vec![text_part(text)],
                },
                output_dimensionality: dimensions,
            })
            .collect(),
    })
}

/// Translates a `batchEmbedContents` reply into OpenAI's embeddings list for `model`: float
/// lists, or with `base64` (what the OpenAI Node SDK asks for by default) each vector's
/// little-endian `f32` bytes in base64. Gemini reports no token counts for embeddings, so the
/// usage is zero.
pub fn embeddings_response(reply: BatchEmbedResponse, model: &str, base64: bool) -> Value {
    use base64::Engine as _;
    let data: Vec<Value> = reply
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = e.values.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(e.values)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(value: Value) -> ChatRequest {
        serde_json::from_value(value).expect("chat request")
    }

    #[test]
    fn roles_results_and_choices() {
        let request = request(chat(json!({
            "model": "m",
            "messages": [
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "calling", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                    {"id": "b", "type": "function", "function": {"name": "g", "arguments": "not json"}}
                ]},
                {"role": "tool", "tool_call_id": "a", "content": "[1,2]"},
                {"role": "tool", "tool_call_id": "b", "content": "{\"ok\":true}"}
            ],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
            "reasoning": {"effort": "none"},
            "n": 2
        })))
        .expect("translated");
        let v = serde_json::to_value(&request).expect("json");
        assert_eq!(v["systemInstruction"]["parts"][0]["text"], "rules");
        assert_eq!(v["contents"][1]["parts"][0]["text"], "calling");
        assert_eq!(v["contents"][1]["parts"][2]["functionCall"]["args"], json!({}));
        assert_eq!(
            v["contents"].as_array().map(Vec::len),
            Some(3),
            "both results in one turn"
        );
        assert_eq!(
            v["contents"][2]["parts"],
            json!([
                {"functionResponse": {"name": "f", "response": {"content": "[1,2]"}}},
                {"functionResponse": {"name": "g", "response": {"ok": true}}}
            ])
        );
        assert_eq!(
            v["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}})
        );
        assert_eq!(
            v["generationConfig"],
            json!({"candidateCount": 2, "thinkingConfig": {"thinkingBudget": 0}})
        );
        let plain = serde_json::to_value(request_of("hi")).expect("json");
        assert!(plain.get("generationConfig").is_none() && plain.get("tools").is_none());
    }

    fn request_of(text: &str) -> GenerateRequest {
        request(chat(
            json!({"model": "m", "messages": [{"role": "user", "content": text}]}),
        ))
        .expect("ok")
    }

    #[test]
    fn replies_blocked_truncated_and_several() {
        let blocked: GenerateResponse =
            serde_json::from_value(json!({"promptFeedback": {"blockReason": "SAFETY"}})).expect("reply");
        let chat = response(blocked, "gemini-x", 1);
        assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("content_filter"));
        assert_eq!(chat.model, "gemini-x");
        let two: GenerateResponse = serde_json::from_value(json!({"candidates": [
            {"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS", "index": 0},
            {"content": {"parts": [{"text": "b"}]}, "finishReason": "SAFETY", "index": 1}
        ], "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 4, "totalTokenCount": 6}}))
        .expect("reply");
        let chat = response(two, "m", 1);
        let finishes: Vec<_> = chat.choices.iter().map(|c| c.finish_reason.as_deref()).collect();
        assert_eq!(finishes, [Some("length"), Some("content_filter")]);
        assert_eq!(chat.choices[1].message.content.as_deref(), Some("b"));
        assert_eq!(chat.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((2, 4)));
    }

    #[test]
    fn thought_signatures_travel_in_the_call_id_and_come_back() {
        let reply: GenerateResponse = serde_json::from_value(json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "c2lnbmVk"}
        ]}, "finishReason": "STOP", "index": 0}], "responseId": "r-9"}))
        .expect("reply");
        let chat = response(reply, "gemini-3-pro", 1);
        let calls = chat.choices[0].message.tool_calls.clone().expect("calls");
        assert_eq!(calls[0].id, format!("call_r9_0{SIGNATURE_MARK}c2lnbmVk"));
        let next = request(chat_of(json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "first"},
            {"role": "assistant", "content": null, "tool_calls": calls},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "ok"}
        ])))
        .expect("translated");
        let v = serde_json::to_value(&next).expect("json");
        assert_eq!(
            v["contents"].as_array().map(Vec::len),
            Some(3),
            "the assistant turns are one"
        );
        assert_eq!(v["contents"][1]["parts"][0]["text"], "first");
        assert_eq!(v["contents"][1]["parts"][1]["thoughtSignature"], "c2lnbmVk");
        assert_eq!(v["contents"][1]["parts"][1]["functionCall"]["name"], "f");
        assert_eq!(v["contents"][2]["parts"][0]["functionResponse"]["name"], "f");
    }

    fn chat_of(messages: Value) -> ChatRequest {
        chat(json!({"model": "m", "messages": messages}))
    }

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        let err = request(chat(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {}}]}]})))
        .expect_err("audio");
        assert!(err.to_string().contains("input_audio"));
        let err = request(chat(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "n"}}}),
        ))
        .expect_err("no schema");
        assert!(err.to_string().contains("schema"));
        assert!(embeddings_request(&json!({"input": []}), "m").is_err());
        assert!(embeddings_request(&json!({"input": 5}), "m").is_err());
    }
}
