//! The plan of attempts: the primary target from the request's `model`, then each of its
//! `fallbacks` in order (Bifrost's fallbacks). A bare model name sent with a virtual key that has provider
//! configs goes to one of the key's providers, chosen by weight, and the others become its
//! fallbacks when the request names none (Bifrost's virtual-key provider configs).

use std::sync::Arc;

use crate::snapshot::ProviderRuntime;
use crate::snapshot::Snapshot;
use asbru_config::catalog::RequestType;

use rand::Rng;

use crate::ctx::{Attempt, GatewayRequest, RouteOverride};
use crate::filter::Rejection;
use crate::policy::VirtualKeyRuntime;

/// Builds the plan from the request's model and fallbacks (and the virtual key's providers for
/// a bare model), or from where a routing rule sent it.
pub fn build(
    snapshot: &Snapshot,
    request: &GatewayRequest,
    vk: Option<&VirtualKeyRuntime>,
    route: Option<&RouteOverride>,
) -> Result<Vec<Attempt>, Rejection> {
    if let Some(pin) = &request.pin {
        return build_pinned(snapshot, request, vk, pin);
    }
    if let Some(route) = route {
        return build_routed(snapshot, request, vk, route);
    }
    let mut plan = Vec::new();
    let bare = request.default_provider.is_none() && snapshot.split_model(&request.model_requested).0.is_none();
    if bare
        && let Some(vk) = vk
        && let Some(targets) = vk_targets(snapshot, vk, request)
    {
        let auto_fallbacks = request.fallbacks.is_empty();
        for (index, (provider, model)) in targets.into_iter().enumerate() {
            if index > 0 && !auto_fallbacks {
                break;
            }
            plan.push(attempt(Some(vk), provider, model, index));
        }
        if !auto_fallbacks {
            push_fallbacks(snapshot, request, &request.fallbacks, None, Some(vk), &mut plan);
        }
        plan.truncate(1 + snapshot.max_fallbacks);
        return Ok(plan);
    }
    let primary = resolve_target(snapshot, &request.model_requested, request.default_provider)?;
    check_serves(&primary.0, request.request_type, request.stream)?;
    plan.push(attempt(vk, primary.0, primary.1, 0));
    push_fallbacks(snapshot, request, &request.fallbacks, None, vk, &mut plan);
    // One request cannot fan out into more upstream calls than the cap allows.
    plan.truncate(1 + snapshot.max_fallbacks);
    Ok(plan)
}

/// The plan a routing rule chose: its target first (with the key it pins), then its fallbacks
/// (or the request's, when the rule has none). The virtual key's provider weights do not apply;
/// governance still checks each target.
fn build_routed(
    snapshot: &Snapshot,
    request: &GatewayRequest,
    vk: Option<&VirtualKeyRuntime>,
    route: &RouteOverride,
) -> Result<Vec<Attempt>, Rejection> {
    let Some(provider) = snapshot.provider(&route.provider) else {
        return Err(Rejection::gateway(
            500,
            format!(
                "a routing rule sends this request to provider {:?}, which is not configured",
                route.provider
            ),
        ));
    };
    if route.model.is_empty() {
        return Err(Rejection::bad_request("model is required (format: provider/model)"));
    }
    check_serves(provider, request.request_type, request.stream)?;
    let mut primary = attempt(vk, provider.clone(), route.model.clone(), 0);
    if let Some(key) = &route.key_id {
        primary.key_ids = Some(Arc::from(vec![key.clone()]));
    }
    let mut plan = vec![primary];
    let fallbacks = route.fallbacks.as_deref().unwrap_or(&request.fallbacks);
    push_fallbacks(snapshot, request, fallbacks, Some(&route.model), vk, &mut plan);
    plan.truncate(1 + snapshot.max_fallbacks);
    Ok(plan)
}

/// The one-attempt plan of a pinned request: the pinned provider and key, the request's model
/// (its `provider/` prefix, if any, dropped), no fallbacks.
fn build_pinned(
    snapshot: &Snapshot,
    request: &GatewayRequest,
    vk: Option<&VirtualKeyRuntime>,
    pin: &crate::ctx::Pin,
) -> Result<Vec<Attempt>, Rejection> {
    let Some(provider) = snapshot.provider(&pin.provider) else {
        // Its provider is gone from the config: the response cannot be reached.
        return Err(Rejection {
            status: 404,
            kind: "invalid_request_error",
            message: format!(
                "the stored response belongs to provider {:?}, which is not configured",
                pin.provider
            ),
            decision: None,
        });
    };
    check_serves(provider, request.request_type, request.stream)?;
    let model = match snapshot.split_model(&request.model_requested) {
        (Some(_), model) => model.to_string(),
        (None, _) => request.model_requested.clone(),
    };
    let mut primary = attempt(vk, provider.clone(), model, 0);
    if let Some(key) = &pin.key_id {
        primary.key_ids = Some(Arc::from(vec![key.to_string()]));
    }
    Ok(vec![primary])
}

fn attempt(vk: Option<&VirtualKeyRuntime>, provider: Arc<ProviderRuntime>, model: String, index: usize) -> Attempt {
    let key_ids = vk
        .and_then(|vk| vk.access(&provider.name))
        .filter(|a| !a.key_ids.is_empty())
        .map(|a| a.key_ids.clone());
    Attempt {
        provider,
        model: model.into(),
        fallback_index: index,
        key_ids,
    }
}

/// Fallbacks (the request's, or a routing rule's). Unusable ones are dropped, as Bifrost does: a
/// bad fallback must not fail a good primary. With `keep_model`, `provider/` means that provider
/// with the primary's model (a routing rule's fallback).
fn push_fallbacks(
    snapshot: &Snapshot,
    request: &GatewayRequest,
    fallbacks: &[String],
    keep_model: Option<&str>,
    vk: Option<&VirtualKeyRuntime>,
    plan: &mut Vec<Attempt>,
) {
    let fallbacks = fallbacks
        .iter()
        .filter_map(|raw| match (raw.strip_suffix('/'), keep_model) {
            (Some(provider), Some(model)) if !provider.contains('/') => {
                Some((snapshot.provider(provider)?.clone(), model.to_string()))
            }
            _ => explicit_target(snapshot, raw),
        })
        .filter(|(provider, _)| check_serves(provider, request.request_type, request.stream).is_ok());
    let first = plan.len();
    for (index, (provider, model)) in fallbacks.enumerate() {
        plan.push(attempt(vk, provider, model, first + index));
    }
}

/// The virtual key's providers that serve `model`: one picked by weight first, then the others
/// by weight, heaviest first. `None` when the key has no eligible provider.
fn vk_targets(
    snapshot: &Snapshot,
    vk: &VirtualKeyRuntime,
    request: &GatewayRequest,
) -> Option<Vec<(Arc<ProviderRuntime>, String)>> {
    let model = request.model_requested.as_str();
    let mut eligible: Vec<(f64, Arc<ProviderRuntime>)> = vk
        .provider_configs
        .iter()
        .filter(|a| a.weight.is_some_and(|w| w > 0.0) && a.allows(model))
        .filter_map(|a| {
            let provider = snapshot.provider(&a.provider)?;
            check_serves(provider, request.request_type, request.stream).ok()?;
            Some((a.weight.unwrap_or(0.0), provider.clone()))
        })
        .collect();
    if eligible.is_empty() {
        return None;
    }
    let total: f64 = eligible.iter().map(|(w, _)| w).sum();
    let mut point = rand::rng().random::<f64>() * total;
    let mut chosen = eligible.len() - 1;
    for (i, (weight, _)) in eligible.iter().enumerate() {
        if point < *weight {
            chosen = i;
            break;
        }
        point -= weight;
    }
    let first = eligible.remove(chosen);
    eligible.sort_by(|a, b| b.0.total_cmp(&a.0));
    Some(
        std::iter::once(first)
            .chain(eligible)
            .map(|(_, provider)| (provider, model.to_string()))
            .collect(),
    )
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
    let parsed = snapshot.split_model(raw);
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
            "unsupported operation: provider {:?} does not support {} requests",
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
    use crate::live::Live;
    use asbru_config::load_str;

    fn snapshot(src: &str) -> Live {
        let loaded = load_str(src, "t.yaml").expect("valid");
        let registry = Arc::new(crate::policy::Registry::new());
        Live::build_with(&loaded.config, &registry, 0, &|_| None).0
    }

    fn request(model: &str, fallbacks: &[&str], default_provider: Option<&'static str>) -> GatewayRequest {
        GatewayRequest {
            ingress: asbru_config::catalog::Wire::OpenAi,
            request_type: RequestType::ChatCompletion,
            stream: false,
            model_requested: model.to_string(),
            default_provider,
            fallbacks: fallbacks.iter().map(|s| s.to_string()).collect(),
            credentials: Default::default(),
            require_vk: false,
            estimate: Default::default(),
            now: 0,
            arrived_ms: 0,
            body: bytes::Bytes::new(),
            headers: Vec::new(),
            query: None,
            pin: None,
        }
    }

    const CONF: &str = "providers:\n  openai: {keys: [{value: k}]}\n  openrouter: {keys: [{value: k}]}\n  anthropic: {keys: [{value: k}]}\n";

    #[test]
    fn primary_and_fallbacks() {
        let snap = snapshot(CONF);
        let plan = build(
            &snap.snapshot,
            &request(
                "openrouter/meta/llama-3",
                &["openai/gpt-4o", "bogus", "groq/x", "openai/"],
                None,
            ),
            None,
            None,
        )
        .expect("plan");
        let plan: Vec<(String, String, usize)> = plan
            .iter()
            .map(|a| (a.provider.name.clone(), a.model.to_string(), a.fallback_index))
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
    fn fallbacks_are_capped() {
        let snap = snapshot(&format!("client: {{max_fallbacks: 2}}\n{CONF}"));
        let many: Vec<String> = (0..300).map(|i| format!("openai/m{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let plan = build(&snap.snapshot, &request("openai/gpt-4o", &many, None), None, None).expect("plan");
        assert_eq!(plan.len(), 3, "the primary and two fallbacks");
        let default = snapshot(CONF);
        let plan = build(&default.snapshot, &request("openai/gpt-4o", &many, None), None, None).expect("plan");
        assert_eq!(plan.len(), 1 + crate::snapshot::DEFAULT_MAX_FALLBACKS);
    }

    #[test]
    fn rejections() {
        let snap = snapshot(CONF);
        let reject = |r: GatewayRequest| build(&snap.snapshot, &r, None, None).expect_err("rejected");
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
        let ok = build(&snap.snapshot, &request("gpt-4o", &[], Some("openai")), None, None).expect("default provider");
        assert_eq!(ok[0].provider.name, "openai");
    }
}
