//! Azure OpenAI: the OpenAI chat wire under a per-resource endpoint, with the deployment in the
//! path and `api-version` in the query; `api-key` auth. No default host.

use asbru_config::catalog::RequestType;

/// The `api-version` used when a key names none.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Whether Azure serves `request_type` (listing models is not a deployment call).
pub fn serves(request_type: RequestType) -> bool {
    match request_type {
        RequestType::ChatCompletion
        | RequestType::Embedding
        | RequestType::Responses
        | RequestType::TextCompletion
        | RequestType::Speech
        | RequestType::Transcription
        | RequestType::Translation
        | RequestType::ImageGeneration
        | RequestType::Files
        | RequestType::Batches => true,
        RequestType::ListModels | RequestType::CountTokens | RequestType::Moderation => false,
    }
}

/// `/openai/deployments/{deployment}/{resource}?api-version=...` under `base_path`. The Responses
/// API, files and batches are Azure's v1 routes (`/openai/v1/...`); a Responses request names
/// the deployment in its body.
pub fn path(base_path: &str, deployment: &str, request_type: RequestType, api_version: &str) -> Option<String> {
    let resource = match request_type {
        RequestType::ChatCompletion => "chat/completions",
        RequestType::Embedding => "embeddings",
        RequestType::TextCompletion => "completions",
        RequestType::Speech => "audio/speech",
        RequestType::Transcription => "audio/transcriptions",
        RequestType::Translation => "audio/translations",
        RequestType::ImageGeneration => "images/generations",
        RequestType::Responses => return Some(format!("{base_path}/openai/v1/responses")),
        // Files and batches belong to the resource, not a deployment: Azure's v1 routes.
        RequestType::Files => return Some(format!("{base_path}/openai/v1/files")),
        RequestType::Batches => return Some(format!("{base_path}/openai/v1/batches")),
        RequestType::ListModels | RequestType::CountTokens | RequestType::Moderation => return None,
    };
    let deployment = super::name_segment(deployment);
    Some(format!(
        "{base_path}/openai/deployments/{deployment}/{resource}?api-version={api_version}"
    ))
}

/// `api-key: <key>`.
pub fn auth_header(secret: &str) -> (&'static str, String) {
    ("api-key", secret.to_string())
}
