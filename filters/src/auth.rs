//! Virtual-key extraction (spec §2.1): `x-bf-vk` always names a virtual key; `Authorization:
//! Bearer`, `x-api-key`, `x-goog-api-key` and `api-key` do when their value is a known key or
//! starts with `sk-bf-`, so the OpenAI, Anthropic, Gemini and Azure SDKs work with a virtual key
//! as their api_key. Keys are found by the SHA-256 of the presented value: one hash-map lookup.

use crate::chain::{Decision, Filter, FilterAction};
use crate::governance::admit::{decision, refusal};
use crate::governance::runtime::key_hash;
use crate::live::Live;
use crate::request::GatewayRequest;

/// The prefix of Bifrost-issued virtual keys.
pub const VK_PREFIX: &str = "sk-bf-";

/// Credentials a client presented.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `x-bf-vk`.
    pub virtual_key: Option<String>,
    /// The token of `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
    /// `x-api-key` (Anthropic SDK).
    pub x_api_key: Option<String>,
    /// `x-goog-api-key` (Gemini SDK).
    pub x_goog_api_key: Option<String>,
    /// `api-key` (Azure SDK).
    pub api_key: Option<String>,
}

fn not_found() -> crate::chain::Rejection {
    refusal(
        401,
        decision::VIRTUAL_KEY_NOT_FOUND,
        "virtual key not found. The provided virtual key does not exist or has been revoked.".into(),
    )
}

/// Finds the request's virtual key.
pub struct AuthFilter;

impl Filter for AuthFilter {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn on_request(&self, live: &Live, request: &GatewayRequest, decision: &mut Decision) -> FilterAction {
        let gov = &live.governance;
        let creds = &request.credentials;
        if let Some(value) = creds.virtual_key.as_deref() {
            match gov.key(&key_hash(value.trim())) {
                Some(vk) => decision.vk = Some(vk.clone()),
                None => return FilterAction::Reject(not_found()),
            }
        } else {
            let candidates = [&creds.bearer, &creds.x_api_key, &creds.x_goog_api_key, &creds.api_key];
            for value in candidates.into_iter().flatten() {
                let value = value.trim();
                let known = if gov.has_keys() {
                    gov.key(&key_hash(value))
                } else {
                    None
                };
                if let Some(vk) = known {
                    decision.vk = Some(vk.clone());
                    break;
                }
                if value.starts_with(VK_PREFIX) {
                    return FilterAction::Reject(not_found());
                }
            }
        }
        if decision.vk.is_none() && gov.vk_required {
            return FilterAction::Reject(refusal(
                401,
                decision::VIRTUAL_KEY_REQUIRED,
                "virtual key is required. Provide a virtual key via the x-bf-vk header.".into(),
            ));
        }
        FilterAction::Continue
    }
}
