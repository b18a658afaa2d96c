//! `POST /api/providers/{provider}/test`: one minimal request through the provider with each of
//! its keys (or the one named by `key_id`), reporting the status and latency per key; the
//! dashboard's "test" button. Providers that list models are tested with the listing (free);
//! others (Azure deployments) with a one-token chat completion to the `model` the body names.

use std::sync::Arc;
use std::time::{Duration, Instant};

use asbru_config::catalog::RequestType;
use asbru_filters::snapshot::ProviderRuntime;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant as Deadline;

use super::reply::{ApiError, ApiResult, Reply};
use crate::exchange::upstream::{self, UpstreamRequest};
use crate::state::Gateway;

/// The longest a test waits for one key's answer.
const TEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TestRequest {
    key_id: Option<String>,
    model: Option<String>,
}

/// Runs the test for provider `name`.
pub async fn run(state: &Arc<Gateway>, name: &str, body: &[u8]) -> ApiResult {
    let request: TestRequest = if body.is_empty() {
        TestRequest::default()
    } else {
        super::reply::parse(body)?
    };
    let live = state.live.load_full();
    let provider = live
        .snapshot
        .provider(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("provider {name:?} (or it has no usable configuration)")))?;
    let listing = provider.path(RequestType::ListModels).map(str::to_string);
    let chat = match (&listing, &request.model) {
        (Some(_), _) => None,
        (None, Some(model)) => Some(chat_target(&provider, provider.keys.first(), model)?),
        (None, None) => {
            return Err(ApiError::bad_request(
                "model: this provider cannot list models, so name a model (or deployment) to test with",
            ));
        }
    };
    let keys: Vec<Option<usize>> = if provider.keyless {
        vec![None]
    } else {
        (0..provider.keys.len())
            .filter(|i| {
                let key = &provider.keys[*i];
                request
                    .key_id
                    .as_deref()
                    .is_none_or(|id| id == key.id || id == key.name)
            })
            .map(Some)
            .collect()
    };
    if keys.is_empty() {
        return Err(ApiError::not_found(match &request.key_id {
            Some(id) => format!("usable key {id:?} of provider {name:?}"),
            None => format!("a usable key of provider {name:?}"),
        }));
    }
    let mut results = Vec::new();
    for index in keys {
        let key = index.and_then(|i| provider.keys.get(i));
        let (path, body) = match (&listing, &chat) {
            (Some(path), _) => (path.clone(), None),
            // A Bedrock key has its own deployments, profile ARN and host.
            (None, Some(_)) if provider.wire == asbru_config::catalog::Wire::Bedrock => {
                let model = request.model.as_deref().unwrap_or_default();
                let (path, body) = chat_target(&provider, key, model)?;
                (path, Some(body))
            }
            (None, Some((path, body))) => (path.clone(), Some(body.clone())),
            (None, None) => continue,
        };
        let upstream_request = UpstreamRequest {
            method: if body.is_some() { "POST" } else { "GET" },
            path: &path,
            body,
            accept: None,
            forwarded: &[],
            attempt_headers: &[],
            anthropic_version: None,
            anthropic_beta: None,
            bearer: None,
            content_type: None,
        };
        let started = Instant::now();
        let deadline = Deadline::now() + TEST_TIMEOUT.min(provider.network.request_timeout);
        // A Bedrock key names its own regional host.
        let target = key
            .and_then(|k| k.bedrock.as_deref())
            .map_or(&provider.upstream, |b| b.upstream.as_ref());
        let outcome = upstream::send(state, &provider, target, key, &upstream_request, deadline).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut result = json!({
            "key_id": key.map(|k| k.id.clone()),
            "name": key.map(|k| k.name.clone()),
            "latency_ms": (latency_ms * 10.0).round() / 10.0,
        });
        let (status, error) = match outcome {
            Ok((session, peer)) => {
                let status = session.response_header().map(|h| h.status.as_u16()).unwrap_or(502);
                // Drain (bounded) so the connection can be reused.
                let _ = upstream::read_whole_body(state, session, &peer, 1024 * 1024, deadline).await;
                let error = (!(200..300).contains(&status)).then(|| format!("the provider answered {status}"));
                (Value::from(status), error)
            }
            Err(e) => (Value::from(e.error.status), Some(e.error.message)),
        };
        if let Some(object) = result.as_object_mut() {
            object.insert("ok".into(), Value::Bool(error.is_none()));
            object.insert("status".into(), status);
            object.insert("error".into(), error.map(Value::String).unwrap_or(Value::Null));
        }
        results.push(result);
    }
    Ok(Reply::ok(json!({ "provider": name, "results": results })))
}

/// The path and body of a one-token chat completion to `model`.
fn chat_target(
    provider: &ProviderRuntime,
    key: Option<&asbru_filters::snapshot::ProviderKey>,
    model: &str,
) -> Result<(String, Bytes), ApiError> {
    use asbru_config::catalog::Wire;
    let path = match provider.wire {
        Wire::Azure => {
            let version = provider
                .keys
                .first()
                .and_then(|k| k.azure.as_ref())
                .map(|a| a.api_version.clone())
                .unwrap_or_else(|| asbru_providers::provider::azure::DEFAULT_API_VERSION.to_string());
            asbru_providers::provider::azure::path(
                &provider.upstream.base_path,
                model,
                RequestType::ChatCompletion,
                &version,
            )
        }
        // Bedrock: a one-token Converse call, the model (or the key's deployment of it) in the
        // path, behind the key's inference-profile ARN when it has one.
        Wire::Bedrock => {
            let model = key.map_or(model, |k| k.upstream_model(model));
            let arn = key.and_then(|k| k.bedrock.as_ref()).and_then(|b| b.arn.as_deref());
            let base = key
                .and_then(|k| k.bedrock.as_ref())
                .map_or(provider.upstream.base_path.as_str(), |b| b.upstream.base_path.as_str());
            let model_id = asbru_providers::provider::bedrock::model_id(arn, model);
            let path = asbru_providers::provider::bedrock::path(base, &model_id, RequestType::ChatCompletion, false)
                .ok_or_else(|| ApiError::bad_request("bedrock has no chat endpoint"))?;
            let body = json!({"messages": [{"role": "user", "content": [{"text": "ping"}]}], "inferenceConfig": {"maxTokens": 1}});
            return Ok((path, Bytes::from(body.to_string())));
        }
        Wire::OpenAi | Wire::Anthropic | Wire::Gemini | Wire::Vertex | Wire::Cohere => {
            provider.path(RequestType::ChatCompletion).map(str::to_string)
        }
    }
    .ok_or_else(|| ApiError::bad_request(format!("provider {} has no chat endpoint", provider.name)))?;
    let body = json!({"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]});
    Ok((path, Bytes::from(body.to_string())))
}
