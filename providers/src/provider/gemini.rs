//! Google Gemini (the Gemini API): `generateContent` under `/v1beta/models/{model}:…`, with the
//! model in the path and `x-goog-api-key` auth. Bodies are translated through the OpenAI chat hub
//! ([`crate::adapters::chat_to_gemini`]).

use asbru_config::catalog::RequestType;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What stays unescaped in a model name put in the path: the characters model names use.
const MODEL_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// Google's Gemini API host.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The API version in every path.
pub const API_PREFIX: &str = "/v1beta";

/// Whether Gemini serves `request_type` through asbru (`countTokens` only for Gemini clients,
/// whose body passes through).
pub fn serves(request_type: RequestType) -> bool {
    matches!(
        request_type,
        RequestType::ChatCompletion | RequestType::Embedding | RequestType::CountTokens
    )
}

/// `{base_path}/v1beta/models/{model}:{method}`: `generateContent`, or
/// `streamGenerateContent?alt=sse` when streaming; `batchEmbedContents` for embeddings. A model
/// written `models/…` is taken as is; any other character than letters, digits, `-`, `.` and `_`
/// is percent-encoded, so a client's model name cannot change the method or the path. A base
/// URL that already ends in the version (`…/v1beta`, as Bifrost writes Gemini's) gets no second
/// one.
pub fn path(base_path: &str, model: &str, request_type: RequestType, stream: bool) -> Option<String> {
    let method = match (request_type, stream) {
        (RequestType::ChatCompletion, false) => "generateContent",
        (RequestType::ChatCompletion, true) => "streamGenerateContent?alt=sse",
        (RequestType::Embedding, _) => "batchEmbedContents",
        _ => return None,
    };
    Some(method_path(base_path, model, method))
}

/// `{base_path}/v1beta/models/{model}:{method}` for a method the client named (a Gemini client's
/// own call, passed through): `generateContent`, `embedContent`, `countTokens`, ...
pub fn method_path(base_path: &str, model: &str, method: &str) -> String {
    let model = utf8_percent_encode(model.trim_start_matches("models/"), MODEL_SEGMENT);
    format!("{}/{model}:{method}", models_path(base_path))
}

/// `{base_path}/v1beta/models`, the model collection (and its listing); no second version
/// when the base URL already ends in one.
pub fn models_path(base_path: &str) -> String {
    let prefix = if base_path.ends_with(API_PREFIX) || base_path.ends_with("/v1") {
        ""
    } else {
        API_PREFIX
    };
    format!("{base_path}{prefix}/models")
}

/// Whether an error reply says the key itself was refused: Google answers an invalid or expired
/// API key with 400 `INVALID_ARGUMENT` and the reason `API_KEY_INVALID`, where other providers
/// answer 401.
pub fn key_refused(status: u16, body: &[u8]) -> bool {
    status == 400 && memchr::memmem::find(body, b"API_KEY_INVALID").is_some()
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
        assert_eq!(
            path("/v1beta", "gemini-2.0-flash", RequestType::ChatCompletion, false).as_deref(),
            Some("/v1beta/models/gemini-2.0-flash:generateContent"),
            "Bifrost's base URL ends in the version"
        );
        assert_eq!(
            path(
                "",
                "x:streamGenerateContent?alt=sse/../y",
                RequestType::ChatCompletion,
                false
            )
            .as_deref(),
            Some("/v1beta/models/x%3AstreamGenerateContent%3Falt%3Dsse%2F..%2Fy:generateContent")
        );
        assert!(key_refused(
            400,
            br#"{"error":{"details":[{"reason":"API_KEY_INVALID"}]}}"#
        ));
        assert!(!key_refused(400, br#"{"error":{"message":"bad"}}"#) && !key_refused(500, b"API_KEY_INVALID"));
        assert_eq!(auth_header("k"), ("x-goog-api-key", "k".to_string()));
    }
}
