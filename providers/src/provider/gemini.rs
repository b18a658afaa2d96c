//! Google Gemini (the Gemini API): `generateContent` under `/v1beta/models/{model}:…`, with the
//! model in the path and `x-goog-api-key` auth. Bodies are translated through the OpenAI chat hub
//! ([`crate::adapters::chat_to_gemini`]).

use asbru_config::catalog::RequestType;

/// Google's Gemini API host.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The API version in every path.
pub const API_PREFIX: &str = "/v1beta";

/// Whether Gemini serves `request_type` through asbru.
pub fn serves(request_type: RequestType) -> bool {
    match request_type {
        RequestType::ChatCompletion | RequestType::Embedding => true,
        RequestType::ListModels | RequestType::CountTokens => false,
    }
}

/// `{base_path}/v1beta/models/{model}:{method}`: `generateContent`, or
/// `streamGenerateContent?alt=sse` when streaming; `batchEmbedContents` for embeddings. A model
/// written `models/…` is taken as is.
pub fn path(base_path: &str, model: &str, request_type: RequestType, stream: bool) -> Option<String> {
    let method = match (request_type, stream) {
        (RequestType::ChatCompletion, false) => "generateContent",
        (RequestType::ChatCompletion, true) => "streamGenerateContent?alt=sse",
        (RequestType::Embedding, _) => "batchEmbedContents",
        (RequestType::ListModels | RequestType::CountTokens, _) => return None,
    };
    let model = model.trim_start_matches("models/");
    Some(format!("{base_path}{API_PREFIX}/models/{model}:{method}"))
}

/// `x-goog-api-key: <key>`.
pub fn auth_header(secret: &str) -> (&'static str, String) {
    ("x-goog-api-key", secret.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_model_and_the_method() {
        assert_eq!(
            path("", "gemini-2.0-flash", RequestType::ChatCompletion, false).as_deref(),
            Some("/v1beta/models/gemini-2.0-flash:generateContent")
        );
        assert_eq!(
            path("/proxy", "models/gemini-2.0-flash", RequestType::ChatCompletion, true).as_deref(),
            Some("/proxy/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
        );
        assert_eq!(
            path("", "text-embedding-004", RequestType::Embedding, false).as_deref(),
            Some("/v1beta/models/text-embedding-004:batchEmbedContents")
        );
        assert_eq!(path("", "m", RequestType::ListModels, false), None);
        assert_eq!(auth_header("k"), ("x-goog-api-key", "k".to_string()));
    }
}
