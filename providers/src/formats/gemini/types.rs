//! Serde types for Gemini `generateContent` / `streamGenerateContent` requests and replies, and
//! `batchEmbedContents`, as documented in Google's Gemini API reference. Field names are
//! camelCase on the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1beta/models/{model}:generateContent` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateRequest {
    /// The conversation: `user` and `model` turns.
    pub contents: Vec<Content>,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Sampling and output settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    /// Function declarations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolDecl>>,
    /// How the model may call functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<Value>,
}

/// One turn: a role and its parts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Content {
    /// `user` or `model` (absent in `systemInstruction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The parts.
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// One part of a turn. Exactly one data field is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The text is the model's reasoning (a thought summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// Bytes sent inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob>,
    /// A file by URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileData>,
    /// A call the model makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// A call's result, sent back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse>,
    /// The model's signature of its reasoning before this part; thinking models need it back,
    /// unchanged, on the part in the next request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

/// Inline bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// Media type.
    pub mime_type: String,
    /// Base64.
    pub data: String,
}

/// A file referenced by URI.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The URI.
    pub file_uri: String,
}

/// A function call.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    /// Call id (newer models send one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Function name.
    pub name: String,
    /// Arguments, a JSON object.
    #[serde(default)]
    pub args: Value,
}

/// A function's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FunctionResponse {
    /// The call answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Function name.
    pub name: String,
    /// The result, a JSON object.
    pub response: Value,
}

/// `generationConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Output token cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Number of candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// `application/json` for JSON output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    /// A JSON Schema the output follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<Value>,
    /// The same in Google's OpenAPI-subset `Schema` (`type: OBJECT`, `nullable`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    /// `{thinkingBudget, includeThoughts}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<Value>,
}

/// A `tools` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolDecl {
    /// The functions.
    pub function_declarations: Vec<FunctionDecl>,
}

/// A function declaration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FunctionDecl {
    /// Name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, rename = "parametersJsonSchema", skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// The arguments in Google's OpenAPI-subset `Schema` (what Google's function-calling guide
    /// and the SDKs' typed schemas send).
    #[serde(default, rename = "parameters", skip_serializing_if = "Option::is_none")]
    pub schema_parameters: Option<Value>,
}

/// Google's OpenAPI-subset `Schema` as JSON Schema: type names in lower case, `nullable` as a
/// `null` type, Google-only keywords (`propertyOrdering`) dropped; nested schemas alike.
pub fn schema_to_json_schema(schema: Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            let nullable = map.get("nullable").and_then(Value::as_bool) == Some(true);
            for (key, value) in map {
                match key.as_str() {
                    "nullable" | "propertyOrdering" => {}
                    "type" => {
                        let name = value.as_str().map(str::to_ascii_lowercase);
                        let kind = name.map_or(value, Value::String);
                        out.insert(
                            key,
                            if nullable {
                                serde_json::json!([kind, "null"])
                            } else {
                                kind
                            },
                        );
                    }
                    "properties" => {
                        let props = match value {
                            Value::Object(props) => Value::Object(
                                props
                                    .into_iter()
                                    .map(|(name, s)| (name, schema_to_json_schema(s)))
                                    .collect(),
                            ),
                            other => other,
                        };
                        out.insert(key, props);
                    }
                    "items" => {
                        out.insert(key, schema_to_json_schema(value));
                    }
                    "anyOf" => {
                        let any = match value {
                            Value::Array(items) => Value::Array(items.into_iter().map(schema_to_json_schema).collect()),
                            other => other,
                        };
                        out.insert(key, any);
                    }
                    _ => {
                        out.insert(key, value);
                    }
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// A reply, whole or one stream event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    /// Candidates.
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Token counts (cumulative in a stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    /// The model version that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Reply id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// Why a prompt was blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<Value>,
    /// An error, in place of a reply (a stream's failure event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// One candidate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The content.
    #[serde(default)]
    pub content: Option<Content>,
    /// `STOP`, `MAX_TOKENS`, `SAFETY`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Index.
    #[serde(default)]
    pub index: u32,
}

/// `usageMetadata`. `promptTokenCount` includes cached tokens; `candidatesTokenCount` excludes
/// thoughts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_token_count: u64,
    /// Output tokens, thoughts excluded.
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Thinking tokens.
    #[serde(default)]
    pub thoughts_token_count: u64,
    /// Prompt tokens read from a cache.
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Tokens of tool-use prompts.
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
    /// Sum.
    #[serde(default)]
    pub total_token_count: u64,
}

/// `POST /v1beta/models/{model}:batchEmbedContents` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BatchEmbedRequest {
    /// One request per input.
    pub requests: Vec<EmbedRequest>,
}

/// One embedding request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmbedRequest {
    /// `models/{model}`.
    pub model: String,
    /// The text.
    pub content: Content,
    /// Output dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dimensionality: Option<u32>,
}

/// `batchEmbedContents` reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BatchEmbedResponse {
    /// One embedding per request, in order.
    #[serde(default)]
    pub embeddings: Vec<Embedding>,
}

/// One embedding.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Embedding {
    /// The vector.
    #[serde(default)]
    pub values: Vec<f64>,
}
