//! Cohere's v2 API: chat on `POST /v2/chat` (SSE when streaming) and embeddings on
//! `POST /v2/embed`, with `Authorization: Bearer`.
//!
//! See <https://docs.cohere.com/reference/chat> and <https://docs.cohere.com/reference/embed>.

use super::RequestType;

/// Cohere's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";

/// The path prefix of the v2 API.
pub const API_PREFIX: &str = "/v2";

/// The resource path after the prefix; `None` where Cohere's v2 API has no such endpoint.
pub fn resource(request_type: RequestType) -> Option<&'static str> {
    match request_type {
        RequestType::ChatCompletion => Some("/chat"),
        RequestType::Embedding => Some("/embed"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_and_embed_only() {
        assert_eq!(resource(RequestType::ChatCompletion), Some("/chat"));
        assert_eq!(resource(RequestType::Embedding), Some("/embed"));
        assert_eq!(resource(RequestType::Responses), None);
        assert_eq!(resource(RequestType::CountTokens), None);
    }
}
