//! `GET /v1/models`: asks every configured provider for its models, concurrently, and merges the
//! lists with ids prefixed `provider/` (as Bifrost lists them). `?provider=name` lists one provider.
//! Providers that fail are named in `failed_providers`; only when every one fails is the reply an
//! error.

use std::sync::Arc;
use std::time::Duration;

use asbru_config::catalog::RequestType;
use asbru_filters::snapshot::ProviderRuntime;
use asbru_providers::errors::{ErrorContext, WireError};
use bytes::BytesMut;
use pingora::proxy::Session;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

use crate::exchange::upstream::{self, UpstreamRequest};
use crate::respond;
use crate::state::Gateway;
use asbru_config::catalog::Wire;

const MAX_LIST_BODY: usize = 8 * 1024 * 1024;
/// How long a listing waits for one provider (a hung provider must not hold the reply).
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers a model listing.
pub async fn list(
    state: &Arc<Gateway>,
    session: &mut Session,
    request_id: &str,
    default_provider: Option<&'static str>,
) -> pingora::Result<()> {
    let live = state.live.load_full();
    let snapshot = &live.snapshot;
    let query_provider = session.req_header().uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "provider")
            .map(|(_, v)| v.to_string())
    });
    let only = query_provider.or(default_provider.map(str::to_string));
    let err_ctx = ErrorContext {
        request_id: Some(request_id),
        request_type: Some(RequestType::ListModels.as_str()),
        provider: only.as_deref(),
        ..Default::default()
    };
    let providers: Vec<Arc<ProviderRuntime>> = match &only {
        Some(name) => match snapshot.provider(name) {
            Some(p) => vec![p.clone()],
            None => {
                let err = WireError::bad_request(format!("provider {name:?} is not configured on this gateway"));
                return respond::error(session, Wire::OpenAi, &err, &err_ctx).await;
            }
        },
        None => snapshot
            .provider_names
            .iter()
            .filter_map(|n| snapshot.provider(n).cloned())
            .filter(|p| p.path(RequestType::ListModels).is_some())
            .collect(),
    };
    let prefix_ids = default_provider.is_none();
    let mut tasks = tokio::task::JoinSet::new();
    for (order, provider) in providers.into_iter().enumerate() {
        let state = state.clone();
        tasks.spawn(async move {
            let result = fetch(&state, &provider).await;
            (order, provider.name.clone(), result)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(order, _, _)| *order);
    let attempted = results.len();
    let mut data = Vec::new();
    let mut first_error = None;
    let mut failed = Vec::new();
    for (_, name, result) in results {
        match result {
            Ok(models) => data.extend(models.into_iter().map(|mut m| {
                if prefix_ids && let Some(id) = m.get("id").and_then(Value::as_str) {
                    let prefixed = format!("{name}/{id}");
                    m["id"] = Value::String(prefixed);
                }
                m
            })),
            Err(e) => {
                tracing::warn!(provider = %name, "listing models failed: {}", e.message);
                failed.push(json!({"provider": name, "status": e.status, "message": e.message}));
                first_error.get_or_insert(e);
            }
        }
    }
    if data.is_empty()
        && attempted > 0
        && let Some(err) = first_error
    {
        return respond::error(session, Wire::OpenAi, &err, &err_ctx).await;
    }
    // What could be listed is: a provider that failed is named in `failed_providers` (an asbru
    // field), never a reason to fail the whole listing.
    let mut body = json!({"object": "list", "data": data});
    if !failed.is_empty() {
        body["failed_providers"] = Value::Array(failed);
    }
    respond::json(session, 200, body.to_string().into_bytes(), request_id).await
}

/// `GET /v1/models/{provider}/{model}` (the OpenAI SDK's `models.retrieve`): the model as its
/// provider lists it, id prefixed `provider/`; 404 when the provider does not list it. A provider
/// without a model listing (Gemini, Azure) answers with the model as configured, unchecked.
pub async fn retrieve(
    state: &Arc<Gateway>,
    session: &mut Session,
    request_id: &str,
    raw_name: &str,
) -> pingora::Result<()> {
    // The OpenAI SDK encodes the slash of `provider/model`.
    let decoded = percent_encoding::percent_decode_str(raw_name).decode_utf8_lossy();
    let name: &str = &decoded;
    let live = state.live.load_full();
    let snapshot = &live.snapshot;
    let err_ctx = ErrorContext {
        request_id: Some(request_id),
        request_type: Some(RequestType::ListModels.as_str()),
        model_requested: Some(name),
        ..Default::default()
    };
    let not_found = |message: String| WireError {
        status: 404,
        code: Some("model_not_found"),
        ..WireError::bad_request(message)
    };
    let Some((provider_name, model)) = name.split_once('/').filter(|(p, m)| !p.is_empty() && !m.is_empty()) else {
        let err = not_found(format!("model {name:?} must be written provider/model"));
        return respond::error(session, Wire::OpenAi, &err, &err_ctx).await;
    };
    let Some(provider) = snapshot.provider(provider_name).cloned() else {
        let err = not_found(format!("provider {provider_name:?} is not configured on this gateway"));
        return respond::error(session, Wire::OpenAi, &err, &err_ctx).await;
    };
    if provider.path(RequestType::ListModels).is_none() {
        let body = json!({"id": name, "object": "model", "created": 0, "owned_by": provider_name});
        return respond::json(session, 200, body.to_string().into_bytes(), request_id).await;
    }
    match fetch(state, &provider).await {
        Ok(models) => match models
            .into_iter()
            .find(|m| m.get("id").and_then(Value::as_str) == Some(model))
        {
            Some(mut found) => {
                found["id"] = Value::String(name.to_string());
                respond::json(session, 200, found.to_string().into_bytes(), request_id).await
            }
            None => {
                let err = not_found(format!("provider {provider_name} does not list model {model:?}"));
                respond::error(session, Wire::OpenAi, &err, &err_ctx).await
            }
        },
        Err(err) => respond::error(session, Wire::OpenAi, &err, &err_ctx).await,
    }
}

/// `GET /genai/v1beta/models` (the google-genai SDK's `models.list`): the Gemini provider's own
/// listing, passed through with the query (page size and token; never the client's `key`).
pub async fn gemini_list(state: &Arc<Gateway>, session: &mut Session, request_id: &str) -> pingora::Result<()> {
    let live = state.live.load_full();
    let snapshot = &live.snapshot;
    let err_ctx = ErrorContext {
        request_id: Some(request_id),
        request_type: Some(RequestType::ListModels.as_str()),
        ..Default::default()
    };
    let gemini = snapshot
        .provider("gemini")
        .or_else(|| {
            snapshot
                .provider_names
                .iter()
                .filter_map(|n| snapshot.provider(n))
                .find(|p| p.wire == Wire::Gemini)
        })
        .cloned();
    let Some(provider) = gemini else {
        let err = WireError {
            status: 404,
            ..WireError::bad_request("no Gemini provider is configured on this gateway")
        };
        return respond::error(session, Wire::Gemini, &err, &err_ctx).await;
    };
    let query: Vec<&str> = session
        .req_header()
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("key=") && *pair != "key")
        .collect();
    let mut path = asbru_providers::provider::gemini::models_path(&provider.upstream.base_path);
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    match get(state, &provider, &path).await {
        Ok((status, body)) => respond::json(session, status, body.to_vec(), request_id).await,
        Err(err) => respond::error(session, Wire::Gemini, &err, &err_ctx).await,
    }
}

async fn fetch(state: &Gateway, provider: &ProviderRuntime) -> Result<Vec<Value>, WireError> {
    let path = provider
        .path(RequestType::ListModels)
        .ok_or_else(|| WireError::bad_request(format!("provider {} has no model listing", provider.name)))?;
    let (status, body) = get(state, provider, path).await?;
    if !(200..300).contains(&status) {
        return Err(WireError::gateway(
            status,
            "api_error",
            format!("provider {} answered {status} to the model listing", provider.name),
        ));
    }
    let parsed: Value = serde_json::from_slice(&body).map_err(|_| {
        WireError::gateway(
            502,
            "api_error",
            format!("provider {} sent a model list that is not JSON", provider.name),
        )
    })?;
    match parsed.get("data") {
        Some(Value::Array(items)) => Ok(items.clone()),
        _ => Err(WireError::gateway(
            502,
            "api_error",
            format!("provider {} sent a model list without `data`", provider.name),
        )),
    }
}

/// `GET path` on a provider with its first key: the status and the body (at most
/// `MAX_LIST_BODY`).
async fn get(state: &Gateway, provider: &ProviderRuntime, path: &str) -> Result<(u16, BytesMut), WireError> {
    let key = if provider.keyless {
        None
    } else {
        Some(provider.keys.first().ok_or_else(|| {
            WireError::gateway(
                500,
                "api_error",
                format!("no usable keys are configured for provider {}", provider.name),
            )
        })?)
    };
    let request = UpstreamRequest {
        method: "GET",
        path,
        body: None,
        accept: None,
        forwarded: &[],
        attempt_headers: &[],
        anthropic_version: None,
        anthropic_beta: None,
        bearer: None,
        content_type: None,
    };
    let deadline = Instant::now() + LIST_TIMEOUT.min(provider.network.request_timeout);
    let (mut upstream, peer) = upstream::send(state, provider, &provider.upstream, key, &request, deadline)
        .await
        .map_err(|e| e.error)?;
    let status = upstream.response_header().map(|h| h.status.as_u16()).unwrap_or(502);
    let mut body = BytesMut::new();
    loop {
        match timeout_at(deadline, upstream.read_response_body()).await {
            Ok(Ok(Some(chunk))) if body.len() + chunk.len() <= MAX_LIST_BODY => body.extend_from_slice(&chunk),
            Ok(Ok(None)) => break,
            _ => {
                return Err(WireError::gateway(
                    502,
                    "api_error",
                    format!("provider {} sent an unreadable model list", provider.name),
                ));
            }
        }
    }
    state.connector.release_http_session(upstream, &peer, None).await;
    Ok((status, body))
}
