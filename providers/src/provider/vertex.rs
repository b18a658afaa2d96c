//! Google Vertex AI: Gemini models in Gemini's own body at the Vertex URL, and Anthropic's Claude
//! models through `rawPredict`/`streamRawPredict` with the Anthropic Messages body.
//!
//! See <https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest> and
//! <https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude>:
//! - `POST {base}/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent`
//!   (`:streamGenerateContent?alt=sse` when streaming, `:countTokens`);
//! - `POST .../publishers/anthropic/models/{model}:rawPredict` (`:streamRawPredict`), whose body
//!   names no `model` and carries `anthropic_version: "vertex-2023-10-16"`;
//! - the host is `{region}-aiplatform.googleapis.com`, or `aiplatform.googleapis.com` for the
//!   `global` region;
//! - auth is an OAuth2 access token from a service account (`Authorization: Bearer`), or, for
//!   Gemini models, an API key (`x-goog-api-key`, Vertex's express mode, whose paths name no
//!   project).

use serde_json::{Map, Value};

use super::{RequestType, Wire};

/// The `anthropic_version` Vertex requires in Claude request bodies.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The OAuth2 scope of Vertex AI calls.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The region used when a key names none.
pub const DEFAULT_REGION: &str = "us-central1";

/// The base URL of Vertex AI in `region`.
pub fn base_url(region: &str) -> String {
    if region == "global" {
        "https://aiplatform.googleapis.com".to_string()
    } else {
        format!("https://{region}-aiplatform.googleapis.com")
    }
}

/// Who publishes a model on Vertex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher {
    /// Google's Gemini models (and any model not known to be another publisher's).
    Google,
    /// Anthropic's Claude models.
    Anthropic,
}

/// The publisher of `model` (`claude-…` models are Anthropic's).
pub fn publisher(model: &str) -> Publisher {
    if model.starts_with("claude") {
        Publisher::Anthropic
    } else {
        Publisher::Google
    }
}

/// The body shape a Vertex model takes: Gemini's, or Anthropic's Messages.
pub fn body_wire(model: &str) -> Wire {
    match publisher(model) {
        Publisher::Google => Wire::Gemini,
        Publisher::Anthropic => Wire::Anthropic,
    }
}

/// Whether Vertex serves `request_type` (chat, and counting tokens for Gemini models).
pub fn serves(request_type: RequestType) -> bool {
    matches!(request_type, RequestType::ChatCompletion | RequestType::CountTokens)
}

/// Where one key's requests go: the project and region, or none for an API key (express mode).
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    /// The Google Cloud project id.
    pub project: &'a str,
    /// The region (`us-central1`, `europe-west4`, `global`, ...).
    pub region: &'a str,
}

/// The path of a request for `model`; `None` where Vertex has no such endpoint.
pub fn path(
    base_path: &str,
    location: Option<Location<'_>>,
    model: &str,
    request_type: RequestType,
    stream: bool,
) -> Option<String> {
    let publisher = publisher(model);
    let method = match (publisher, request_type, stream) {
        (Publisher::Google, RequestType::ChatCompletion, false) => "generateContent",
        (Publisher::Google, RequestType::ChatCompletion, true) => "streamGenerateContent?alt=sse",
        (Publisher::Google, RequestType::CountTokens, _) => "countTokens",
        (Publisher::Anthropic, RequestType::ChatCompletion, false) => "rawPredict",
        (Publisher::Anthropic, RequestType::ChatCompletion, true) => "streamRawPredict",
        _ => return None,
    };
    let publisher = match publisher {
        Publisher::Google => "google",
        Publisher::Anthropic => "anthropic",
    };
    let model = super::name_segment(model.trim_start_matches('/'));
    Some(match location {
        Some(Location { project, region }) => format!(
            "{base_path}/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}"
        ),
        None => format!("{base_path}/v1/publishers/{publisher}/models/{model}:{method}"),
    })
}

/// An Anthropic Messages body as Vertex takes it: without `model` (the path names it), with
/// Vertex's `anthropic_version`. `None` when the body is not a JSON object.
pub fn anthropic_body(body: &[u8]) -> Option<Vec<u8>> {
    let mut object: Map<String, Value> = serde_json::from_slice(body).ok()?;
    object.remove("model");
    object.insert("anthropic_version".into(), Value::String(ANTHROPIC_VERSION.into()));
    serde_json::to_vec(&object).ok()
}

/// The header carrying an access token, or (express mode) an API key.
pub fn auth_header(bearer: Option<&str>, api_key: &str) -> (&'static str, String) {
    match bearer {
        Some(token) => ("authorization", format!("Bearer {token}")),
        None => ("x-goog-api-key", api_key.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_by_publisher_and_location() {
        let at = Some(Location {
            project: "p-1",
            region: "europe-west4",
        });
        assert_eq!(
            path("", at, "gemini-2.5-flash", RequestType::ChatCompletion, false).as_deref(),
            Some("/v1/projects/p-1/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent")
        );
        assert_eq!(
            path("", at, "gemini-2.5-flash", RequestType::ChatCompletion, true).as_deref(),
            Some(
                "/v1/projects/p-1/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            )
        );
        assert_eq!(
            path("/x", at, "claude-sonnet-4@20250514", RequestType::ChatCompletion, true).as_deref(),
            Some(
                "/x/v1/projects/p-1/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict"
            )
        );
        assert_eq!(
            path("", None, "gemini-2.5-flash", RequestType::ChatCompletion, false).as_deref(),
            Some("/v1/publishers/google/models/gemini-2.5-flash:generateContent")
        );
        assert_eq!(
            path("", None, "gemini/../../x:y?z", RequestType::ChatCompletion, false).as_deref(),
            Some("/v1/publishers/google/models/gemini%2F..%2F..%2Fx%3Ay%3Fz:generateContent"),
            "a client's model name stays one path segment"
        );
        assert_eq!(path("", at, "claude-3", RequestType::CountTokens, false), None);
        assert_eq!(path("", at, "gemini", RequestType::Embedding, false), None);
        assert_eq!(base_url("global"), "https://aiplatform.googleapis.com");
        assert_eq!(base_url("us-east5"), "https://us-east5-aiplatform.googleapis.com");
    }

    #[test]
    fn claude_bodies_name_vertex_version_and_no_model() {
        let body = anthropic_body(br#"{"model":"claude-sonnet-4","max_tokens":5,"messages":[]}"#).expect("object");
        let json: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["anthropic_version"], ANTHROPIC_VERSION);
        assert!(json.get("model").is_none());
        assert_eq!(json["max_tokens"], 5);
        assert_eq!(anthropic_body(b"[1]"), None);
    }
}
