//! One module per provider family, each owning what is particular to it: default base URL and
//! endpoint paths, the auth header, wire-specific request headers, and (through [`crate::adapters`],
//! with OpenAI chat as the hub) how bodies are translated to and from it.
//!
//! - [`openai`]: OpenAI itself, and the resource paths every OpenAI-wire provider shares.
//! - [`openai_compat`]: the OpenAI-compatible family (Groq, Mistral, Together, Ollama, vLLM, ...):
//!   default hosts and path prefixes by provider name.
//! - [`anthropic`]: Anthropic Messages.
//! - [`azure`]: Azure OpenAI deployments.
//! - [`bedrock`]: AWS Bedrock (Converse, `invoke`, SigV4 signing).
//! - [`cohere`]: Cohere's v2 chat and embed.
//! - [`gemini`]: Google's Gemini API.
//! - [`vertex`]: Google Vertex AI (Gemini models, and Claude through `rawPredict`).
//!
//! Every function here matches [`Wire`] exhaustively: adding a provider family is one module,
//! one `Wire` variant, and the arms the compiler then asks for.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod cohere;
pub mod gemini;
pub mod openai;
pub mod openai_compat;
pub mod vertex;

pub use asbru_config::catalog::{RequestType, Wire};

/// Characters a name keeps as they are in one path segment: RFC 3986's unreserved set and `@`
/// (Vertex's `model@version`).
const NAME_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// A name a client chose (a model, an Azure deployment) as exactly one path segment: `/`, `?`,
/// `#`, `%`, `:` and the rest percent-encoded, and `.` or `..` (which a path would resolve)
/// encoded too, so the name cannot reach another path or method of the upstream.
pub fn name_segment(name: &str) -> std::borrow::Cow<'_, str> {
    segment_keeping(name, NAME_SEGMENT)
}

/// `name` as one path segment, keeping the characters `kept` does not encode; `.` and `..`
/// (which a path would resolve) are encoded whatever `kept` says.
pub(crate) fn segment_keeping<'a>(
    name: &'a str,
    kept: &'static percent_encoding::AsciiSet,
) -> std::borrow::Cow<'a, str> {
    if name == "." || name == ".." {
        return name.replace('.', "%2E").into();
    }
    percent_encoding::utf8_percent_encode(name, kept).into()
}

/// The default base URL of built-in provider `name`; `None` when it must be configured.
pub fn default_base_url(name: &str, wire: Wire) -> Option<&'static str> {
    match wire {
        Wire::OpenAi => openai_compat::host(name).map(|h| h.base_url),
        Wire::Anthropic => Some(anthropic::DEFAULT_BASE_URL),
        Wire::Azure => None,
        // Keys name their region; a key without one (a Bedrock API key) uses the default.
        Wire::Bedrock => Some("https://bedrock-runtime.us-east-1.amazonaws.com"),
        Wire::Gemini => Some(gemini::DEFAULT_BASE_URL),
        Wire::Vertex => None,
        Wire::Cohere => Some(cohere::DEFAULT_BASE_URL),
    }
}

/// The path prefix between a base URL and a resource (`/v1`; empty for Perplexity).
pub fn api_prefix(name: &str, wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => openai_compat::host(name).map_or(openai::API_PREFIX, |h| h.api_prefix),
        Wire::Anthropic => anthropic::API_PREFIX,
        Wire::Gemini => gemini::API_PREFIX,
        Wire::Cohere => cohere::API_PREFIX,
        Wire::Azure | Wire::Bedrock | Wire::Vertex => openai::API_PREFIX,
    }
}

/// The resource path after the prefix; `None` where the wire has no such endpoint, or where
/// the path is built per request (Azure names the deployment, Gemini the model).
pub fn resource(wire: Wire, request_type: RequestType) -> Option<&'static str> {
    match wire {
        Wire::OpenAi => openai::resource(request_type),
        Wire::Anthropic => anthropic::resource(request_type),
        Wire::Azure | Wire::Gemini | Wire::Vertex | Wire::Bedrock => None,
        Wire::Cohere => cohere::resource(request_type),
    }
}

/// Whether a provider of `wire` can serve `request_type` at all (before custom restrictions).
pub fn serves(wire: Wire, request_type: RequestType) -> bool {
    match wire {
        Wire::Azure => azure::serves(request_type),
        Wire::Gemini => gemini::serves(request_type),
        Wire::Vertex => vertex::serves(request_type),
        Wire::Bedrock => bedrock::serves(request_type),
        Wire::OpenAi | Wire::Anthropic | Wire::Cohere => resource(wire, request_type).is_some(),
    }
}

/// The header carrying a provider key's secret.
pub fn auth_header(wire: Wire, secret: &str) -> (&'static str, String) {
    match wire {
        Wire::OpenAi => openai::auth_header(secret),
        Wire::Anthropic => anthropic::auth_header(secret),
        Wire::Azure => azure::auth_header(secret),
        Wire::Gemini => gemini::auth_header(secret),
        // A Vertex key's API key (express mode); service accounts send an access token instead.
        Wire::Vertex => vertex::auth_header(None, secret),
        // A Bedrock API key; keys with AWS credentials are signed instead (SigV4).
        Wire::Bedrock => openai::auth_header(secret),
        Wire::Cohere => openai::auth_header(secret),
    }
}

/// The client headers a wire needs passed on, with their defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientHeaders<'a> {
    /// The client's `anthropic-version`.
    pub anthropic_version: Option<&'a [u8]>,
    /// The client's `anthropic-beta`.
    pub anthropic_beta: Option<&'a [u8]>,
}

/// Wire-specific request headers, given what the client sent.
pub fn wire_headers<'a>(wire: Wire, client: &ClientHeaders<'a>) -> Vec<(&'static str, &'a [u8])> {
    match wire {
        Wire::Anthropic => anthropic::wire_headers(client),
        Wire::OpenAi | Wire::Azure | Wire::Bedrock | Wire::Gemini | Wire::Vertex | Wire::Cohere => Vec::new(),
    }
}

/// The shape of a wire's error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error": {"message", "type", ...}}` (OpenAI, and Bifrost's own errors).
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
    /// Google's `{"error": {"code", "message", "status"}}`.
    Google,
    /// AWS's `{"message"}` with the type in a header.
    Aws,
    /// Cohere's `{"message"}`.
    Cohere,
}

/// The shape of `wire`'s error bodies: an upstream error reaches a client unchanged only when
/// both wires share it.
pub fn error_shape(wire: Wire) -> ErrorShape {
    match wire {
        Wire::OpenAi | Wire::Azure => ErrorShape::OpenAi,
        Wire::Anthropic => ErrorShape::Anthropic,
        Wire::Gemini | Wire::Vertex => ErrorShape::Google,
        Wire::Bedrock => ErrorShape::Aws,
        Wire::Cohere => ErrorShape::Cohere,
    }
}

/// Whether an error reply means the key was refused (treated as a 401: the key cools down and
/// another is tried), for wires that say so with another status.
pub fn key_refused(wire: Wire, status: u16, body: &[u8]) -> bool {
    match wire {
        Wire::Gemini | Wire::Vertex => gemini::key_refused(status, body),
        Wire::OpenAi | Wire::Anthropic | Wire::Azure | Wire::Bedrock | Wire::Cohere => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_stays_one_path_segment() {
        assert_eq!(name_segment("claude-3-5-sonnet@20240620"), "claude-3-5-sonnet@20240620");
        assert_eq!(name_segment("gpt-4o.mini_x~1"), "gpt-4o.mini_x~1");
        assert_eq!(name_segment("a/../b?x#y:z%"), "a%2F..%2Fb%3Fx%23y%3Az%25");
        assert_eq!(name_segment(".."), "%2E%2E");
    }

    #[test]
    fn paths_and_auth_per_family() {
        assert_eq!(
            default_base_url("groq", Wire::OpenAi),
            Some("https://api.groq.com/openai")
        );
        assert_eq!(default_base_url("custom-thing", Wire::OpenAi), None);
        assert_eq!(api_prefix("perplexity", Wire::OpenAi), "");
        assert_eq!(api_prefix("openai", Wire::OpenAi), "/v1");
        assert_eq!(
            resource(Wire::Anthropic, RequestType::ChatCompletion),
            Some("/messages")
        );
        assert_eq!(resource(Wire::OpenAi, RequestType::CountTokens), None);
        assert!(serves(Wire::Azure, RequestType::Embedding) && !serves(Wire::Azure, RequestType::ListModels));
        assert_eq!(auth_header(Wire::Anthropic, "k").0, "x-api-key");
        assert_eq!(auth_header(Wire::Azure, "k").0, "api-key");
        assert_eq!(
            auth_header(Wire::OpenAi, "k"),
            ("authorization", "Bearer k".to_string())
        );
        let headers = wire_headers(Wire::Anthropic, &ClientHeaders::default());
        assert_eq!(
            headers,
            vec![("anthropic-version", anthropic::DEFAULT_VERSION.as_bytes())]
        );
    }
}
