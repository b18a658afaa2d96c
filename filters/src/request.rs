//! The decoded request every filter sees.

use asbru_store::catalog::RequestType;

/// What the ingress decoded from the client's request.
#[derive(Debug, Clone)]
pub struct GatewayRequest {
    /// Chat, embeddings, ...
    pub request_type: RequestType,
    /// The client asked for a stream.
    pub stream: bool,
    /// The `model` field exactly as sent.
    pub model_requested: String,
    /// Provider implied by the route (`/openai/...` means openai) when the model has no prefix.
    pub default_provider: Option<&'static str>,
    /// Bifrost `fallbacks`, as sent.
    pub fallbacks: Vec<String>,
}
