//! Serde views of each provider's native API.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;
