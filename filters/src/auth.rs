//! Virtual-key extraction, as Bifrost's governance does it: `x-bf-vk` always names a virtual
//! key; `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` and `api-key` do when their value
//! is a known key or starts with `sk-bf-`, so the OpenAI, Anthropic, Gemini and Azure SDKs work
//! with a virtual key as their api_key. Keys are found by the SHA-256 of the presented value:
//! one hash-map lookup. The key found is published in [`crate::Facts::vk`].

use crate::ctx::RequestCtx;
use crate::filter::{Filter, Flow, Rejection, decision};
use crate::live::Live;
use crate::policy::key_hash;

pub use crate::ctx::Credentials;

/// The prefix of Bifrost-issued virtual keys.
pub const VK_PREFIX: &str = "sk-bf-";

fn not_found() -> Rejection {
    Rejection::refusal(
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

    fn on_request(&self, live: &Live, ctx: &mut RequestCtx) -> Flow {
        for required in &live.snapshot.observe.required_headers {
            if ctx
                .request
                .header(required.as_str())
                .is_none_or(|v| v.trim().is_empty())
            {
                return Flow::Reject(crate::filter::Rejection::bad_request(format!(
                    "missing required header: {required}"
                )));
            }
        }
        let gov = &live.governance;
        let creds = &ctx.request.credentials;
        let mut found = None;
        let mut vk_in_bearer = false;
        if let Some(value) = creds.virtual_key.as_deref() {
            match gov.key(&key_hash(value.trim())) {
                Some(vk) => found = Some(vk.clone()),
                None => return Flow::Reject(not_found()),
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
                    found = Some(vk.clone());
                    vk_in_bearer = creds.bearer.as_deref().map(str::trim) == Some(value);
                    break;
                }
                if value.starts_with(VK_PREFIX) {
                    return Flow::Reject(not_found());
                }
            }
        }
        if vk_in_bearer {
            // A virtual key is never a provider key: it is not sent upstream as one.
            ctx.request.credentials.direct_key = false;
        }
        if found.is_none() && (gov.vk_required || ctx.request.require_vk) {
            return Flow::Reject(Rejection::refusal(
                401,
                decision::VIRTUAL_KEY_REQUIRED,
                "virtual key is required. Provide a virtual key via the x-bf-vk header.".into(),
            ));
        }
        ctx.facts.vk = found;
        Flow::Continue
    }
}
