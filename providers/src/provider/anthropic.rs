//! Anthropic Messages: `/v1/messages` and `/v1/messages/count_tokens`, `x-api-key` auth, and the
//! `anthropic-version` header (the client's, else a default). Chat requests reach it through
//! [`crate::adapters::chat_to_messages`]; its streams come back through
//! [`crate::adapters::messages_stream`].

use asbru_config::catalog::RequestType;

use super::ClientHeaders;

/// Anthropic's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The prefix before every resource.
pub const API_PREFIX: &str = "/v1";
/// The API version sent when the client names none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The resource path after the prefix; `None` where Anthropic has no equivalent.
pub fn resource(request_type: RequestType) -> Option<&'static str> {
    match request_type {
        RequestType::ChatCompletion => Some("/messages"),
        RequestType::CountTokens => Some("/messages/count_tokens"),
        RequestType::ListModels => Some("/models"),
        _ => None,
    }
}

/// `x-api-key: <key>`.
pub fn auth_header(secret: &str) -> (&'static str, String) {
    ("x-api-key", secret.to_string())
}

/// `anthropic-version` (the client's or the default) and the client's `anthropic-beta`.
pub fn wire_headers<'a>(client: &ClientHeaders<'a>) -> Vec<(&'static str, &'a [u8])> {
    let mut headers = vec![(
        "anthropic-version",
        client.anthropic_version.unwrap_or(DEFAULT_VERSION.as_bytes()),
    )];
    if let Some(beta) = client.anthropic_beta {
        headers.push(("anthropic-beta", beta));
    }
    headers
}
