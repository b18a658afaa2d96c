//! Serde types of Bedrock's Converse API. Converse's unions (`ContentBlock`, `SystemContentBlock`,
//! `ToolResultContentBlock`, ...) are objects with exactly one member set; they are structs of
//! optional members here, each skipped when unset.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A `Converse` / `ConverseStream` request body (the model is in the path).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    /// The conversation.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// System prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Vec<SystemBlock>>,
    /// Output limit, sampling and stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// Model-specific request fields (`top_k`, Claude's `thinking`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
}

/// One turn.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: String,
    /// Its blocks.
    #[serde(default)]
    pub content: Vec<ContentBlock>,
}

/// A system prompt block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemBlock {
    /// Prompt text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A prompt-cache checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_point: Option<Value>,
}

/// One content block of a turn.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlock {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An image (bytes, base64 in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageBlock>,
    /// A tool call the assistant made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUse>,
    /// A tool's result, in a user turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<ToolResult>,
    /// The model's reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<ReasoningContent>,
    /// A document (kept when relayed, refused when translated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
    /// A prompt-cache checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_point: Option<Value>,
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: String) -> ContentBlock {
        ContentBlock {
            text: Some(text),
            ..ContentBlock::default()
        }
    }
}

/// An image block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageBlock {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: String,
    /// Where the image is.
    pub source: ImageSource,
}

/// An image's source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSource {
    /// The image bytes, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
    /// An S3 location (not translated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_location: Option<Value>,
}

/// A tool call.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse {
    /// The call's id.
    pub tool_use_id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, as a JSON document.
    #[serde(default)]
    pub input: Value,
}

/// A tool's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    /// The call it answers.
    pub tool_use_id: String,
    /// The result's blocks.
    #[serde(default)]
    pub content: Vec<ToolResultContent>,
    /// `success` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One block of a tool's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolResultContent {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A JSON document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

/// Reasoning, as text with its signature, or redacted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningContent {
    /// The reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_text: Option<ReasoningText>,
    /// Encrypted reasoning (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_content: Option<String>,
}

/// Reasoning text and the signature that lets it be sent back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReasoningText {
    /// The text.
    pub text: String,
    /// Its signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// `inferenceConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    /// Output token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
}

/// `toolConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// The tools.
    #[serde(default)]
    pub tools: Vec<ToolEntry>,
    /// `{"auto":{}}`, `{"any":{}}` or `{"tool":{"name"}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
}

/// One entry of `toolConfig.tools`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolEntry {
    /// A tool's specification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_spec: Option<ToolSpec>,
    /// A prompt-cache checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_point: Option<Value>,
}

/// A tool's name, description and input schema.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `{"json": <JSON Schema>}`.
    pub input_schema: InputSchema,
}

/// A tool's input schema.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InputSchema {
    /// The JSON Schema.
    pub json: Value,
}

/// A `Converse` reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    /// The output.
    #[serde(default)]
    pub output: Output,
    /// Why generation stopped.
    #[serde(default)]
    pub stop_reason: String,
    /// Tokens used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ConverseUsage>,
    /// `{"latencyMs"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
}

/// A reply's output.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Output {
    /// The assistant's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

/// Converse's token usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseUsage {
    /// Prompt tokens (not counting cache reads or writes).
    #[serde(default)]
    pub input_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// Prompt tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Prompt tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
}

/// The payload of any `ConverseStream` event; which members are set depends on its
/// `:event-type` (`messageStart`, `contentBlockStart`, `contentBlockDelta`, `contentBlockStop`,
/// `messageStop`, `metadata`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEvent {
    /// `messageStart`: the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The block an event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_block_index: Option<u32>,
    /// `contentBlockStart`: a tool call's id and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<BlockStart>,
    /// `contentBlockDelta`: the next piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<BlockDelta>,
    /// `messageStop`: why generation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// `metadata`: tokens used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ConverseUsage>,
    /// `metadata`: `{"latencyMs"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
}

/// `contentBlockStart.start`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart {
    /// A tool call starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseStart>,
}

/// A tool call's id and name, at its start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    /// The call's id.
    pub tool_use_id: String,
    /// The tool.
    pub name: String,
}

/// `contentBlockDelta.delta`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta {
    /// More text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// More of a tool call's arguments (`{"input": "<partial JSON>"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseDelta>,
    /// More reasoning (`text`, `signature` or `redactedContent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<ReasoningDelta>,
}

/// A piece of a tool call's arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolUseDelta {
    /// Partial JSON text.
    #[serde(default)]
    pub input: String,
}

/// A piece of reasoning.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningDelta {
    /// Reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The reasoning's signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Redacted reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_content: Option<String>,
}
