//! The decoded request every filter sees.

use asbru_store::catalog::RequestType;

use crate::auth::Credentials;
use crate::governance::Estimate;

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
    /// Credentials that may carry a virtual key.
    pub credentials: Credentials,
    /// What the request may use, for budget reservations.
    pub estimate: Estimate,
    /// Unix seconds when the request arrived.
    pub now: i64,
}
