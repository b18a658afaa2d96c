//! The plan of attempts: the primary target from the request's `model`, then each of its
//! `fallbacks` in order (spec §7.3).

use std::sync::Arc;

use asbru_store::Snapshot;
use asbru_store::catalog::{self, RequestType};
use asbru_store::snapshot::ProviderRuntime;

use crate::chain::{Decision, Filter, FilterAction, Rejection};
use crate::request::GatewayRequest;

/// One target to try.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The provider.
    pub provider: Arc<ProviderRuntime>,
    /// The model name at that provider (before key aliases).
    pub model: String,
    /// 0 for the primary, n for the n-th fallback.
    pub fallback_index: usize,
}

/// Builds the plan from the request's model and fallbacks.
pub struct RoutingFilter;

impl Filter for RoutingFilter {
    fn name(&self) -> &'static str {
        "routing"
    }

    fn on_request(&self, snapshot: &Snapshot, request: &GatewayRequest, decision: &mut Decision) -> FilterAction {
        let primary = match resolve_target(snapshot, &request.model_requested, request.default_provider) {
            Ok(target) => target,
            Err(rejection) => return FilterAction::Reject(rejection),
        };
        if let Err(rejection) = check_serves(&primary.0, request.request_type, request.stream) {
            return FilterAction::Reject(rejection);
        }
        decision.plan.push(Attempt {
            provider: primary.0,
            model: primary.1,
            fallback_index: 0,
        });
        // Unusable fallbacks are dropped, as Bifrost does: a bad fallback must not fail a good primary.
        let fallbacks = request
            .fallbacks
            .iter()
            .filter_map(|raw| explicit_target(snapshot, raw))
            .filter(|(provider, _)| check_serves(provider, request.request_type, request.stream).is_ok());
        for (index, (provider, model)) in fallbacks.enumerate() {
            decision.plan.push(Attempt {
                provider,
                model,
                fallback_index: index + 1,
            });
        }
        FilterAction::Continue
    }
}

fn is_provider_name(snapshot: &Snapshot, name: &str) -> bool {
    snapshot.has_provider(name) || catalog::builtin(name).is_some()
}

/// Resolves a `model` string to a configured provider and the model name at it.
pub fn resolve_target(
    snapshot: &Snapshot,
    raw: &str,
    default_provider: Option<&str>,
) -> Result<(Arc<ProviderRuntime>, String), Rejection> {
    if raw.trim().is_empty() {
        return Err(Rejection::bad_request("model is required (format: provider/model)"));
    }
    let parsed = split_model(snapshot, raw);
    let provider_name = match (parsed.0, default_provider) {
        (Some(provider), _) => provider,
        (None, Some(default)) => default,
        (None, None) => {
            return Err(Rejection::bad_request(format!(
                "provider is required in model field (format: provider/model), got {raw:?}"
            )));
        }
    };
    let model = parsed.1;
    if model.is_empty() {
        return Err(Rejection::bad_request(format!(
            "model name is missing in {raw:?} (format: provider/model)"
        )));
    }
    match snapshot.provider(provider_name) {
        Some(provider) => Ok((provider.clone(), model.to_string())),
        None => Err(Rejection::bad_request(format!(
            "provider {provider_name:?} is not configured on this gateway"
        ))),
    }
}

/// Splits `provider/model` on the first slash when the prefix is a provider name.
fn split_model<'a>(snapshot: &Snapshot, raw: &'a str) -> (Option<&'a str>, &'a str) {
    match raw.split_once('/') {
        Some((provider, model)) if is_provider_name(snapshot, provider) => (Some(provider), model),
        _ => (None, raw),
    }
}

/// A fallback must name its provider explicitly; anything else is dropped.
fn explicit_target(snapshot: &Snapshot, raw: &str) -> Option<(Arc<ProviderRuntime>, String)> {
    let (provider, model) = raw.split_once('/')?;
    if model.is_empty() {
        return None;
    }
    Some((snapshot.provider(provider)?.clone(), model.to_string()))
}

fn check_serves(provider: &ProviderRuntime, request_type: RequestType, stream: bool) -> Result<(), Rejection> {
    if !provider.wire.is_supported() {
        return Err(Rejection::bad_request(format!(
            "provider {:?} ({:?} wire) is not supported by this version of asbru yet",
            provider.name, provider.wire
        )));
    }
    if !provider.supports(request_type) {
        return Err(Rejection::bad_request(format!(
            "provider {:?} does not support {} requests",
            provider.name,
            request_type.as_str()
        )));
    }
    if !provider.allows(request_type, stream) {
        return Err(Rejection::bad_request(format!(
            "provider {:?} does not allow {} requests",
            provider.name,
            if stream {
                request_type.stream_name()
            } else {
                request_type.as_str()
            }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::FilterChain;
    use asbru_store::load_str;

    fn snapshot(src: &str) -> Snapshot {
        let loaded = load_str(src, "t.yaml").expect("valid");
        Snapshot::build_with(&loaded.config, &|_| None).0
    }

    fn request(model: &str, fallbacks: &[&str], default_provider: Option<&'static str>) -> GatewayRequest {
        GatewayRequest {
            request_type: RequestType::ChatCompletion,
            stream: false,
            model_requested: model.to_string(),
            default_provider,
            fallbacks: fallbacks.iter().map(|s| s.to_string()).collect(),
        }
    }

    const CONF: &str = "providers:\n  openai: {keys: [{value: k}]}\n  openrouter: {keys: [{value: k}]}\n  anthropic: {keys: [{value: k}]}\n";

    #[test]
    fn primary_and_fallbacks() {
        let snap = snapshot(CONF);
        let chain = FilterChain::standard();
        let decision = chain
            .run(
                &snap,
                &request(
                    "openrouter/meta/llama-3",
                    &["openai/gpt-4o", "bogus", "groq/x", "openai/"],
                    None,
                ),
            )
            .expect("plan");
        let plan: Vec<(String, String, usize)> = decision
            .plan
            .iter()
            .map(|a| (a.provider.name.clone(), a.model.clone(), a.fallback_index))
            .collect();
        assert_eq!(
            plan,
            vec![
                ("openrouter".to_string(), "meta/llama-3".to_string(), 0),
                ("openai".to_string(), "gpt-4o".to_string(), 1)
            ]
        );
    }

    #[test]
    fn rejections() {
        let snap = snapshot(CONF);
        let chain = FilterChain::standard();
        let reject = |r: GatewayRequest| chain.run(&snap, &r).expect_err("rejected");
        assert!(
            reject(request("gpt-4o", &[], None))
                .message
                .contains("provider is required")
        );
        assert!(
            reject(request("groq/llama", &[], None))
                .message
                .contains("not configured")
        );
        assert!(reject(request("", &[], None)).message.contains("model is required"));
        assert!(
            reject(request("openai/", &[], None))
                .message
                .contains("model name is missing")
        );
        let mut embed = request("anthropic/claude", &[], None);
        embed.request_type = RequestType::Embedding;
        assert!(reject(embed).message.contains("does not support embedding"));
        let ok = chain
            .run(&snap, &request("gpt-4o", &[], Some("openai")))
            .expect("default provider");
        assert_eq!(ok.plan[0].provider.name, "openai");
    }
}
