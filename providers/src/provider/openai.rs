//! OpenAI: chat completions, embeddings, models, the Responses API, legacy completions, audio,
//! images, moderations, files and batches under `/v1`, Bearer auth. The chat wire is
//! the hub every other family translates to and from.

use asbru_config::catalog::RequestType;

/// OpenAI's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com";
/// The prefix before every resource.
pub const API_PREFIX: &str = "/v1";

/// The resource path after the prefix; `None` where OpenAI has no equivalent.
pub fn resource(request_type: RequestType) -> Option<&'static str> {
    match request_type {
        RequestType::ChatCompletion => Some("/chat/completions"),
        RequestType::Embedding => Some("/embeddings"),
        RequestType::ListModels => Some("/models"),
        RequestType::Responses => Some("/responses"),
        RequestType::TextCompletion => Some("/completions"),
        RequestType::Speech => Some("/audio/speech"),
        RequestType::Transcription => Some("/audio/transcriptions"),
        RequestType::Translation => Some("/audio/translations"),
        RequestType::ImageGeneration => Some("/images/generations"),
        RequestType::Moderation => Some("/moderations"),
        RequestType::Files => Some("/files"),
        RequestType::Batches => Some("/batches"),
        RequestType::CountTokens => None,
    }
}

/// `Authorization: Bearer <key>`.
pub fn auth_header(secret: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {secret}"))
}
