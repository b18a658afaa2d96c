//! `/api/providers`, `/api/providers/{provider}`, `/api/providers/{provider}/keys[/{key_id}]` and
//! `/api/keys`, in Bifrost's shapes. Key values never leave the gateway: replies show at most the
//! first four characters and the length, and `env.NAME` references as written. A PUT that sends
//! a key's redacted form back (or no value) keeps the stored secret.

use std::collections::BTreeMap;

use asbru_config::catalog;
use asbru_config::model::{KeyConfig, ProviderConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::reply::{ApiError, ApiResult, Reply, parse};
use super::validate::check_with;

/// Shows a secret without revealing it.
pub fn redact(value: &str) -> String {
    if asbru_config::env::reference(value).is_some() {
        return value.to_string();
    }
    let length = value.chars().count();
    if length >= 12 {
        let prefix: String = value.chars().take(4).collect();
        format!("{prefix}****({length} chars)")
    } else {
        format!("****({length} chars)")
    }
}

/// Provider-specific key configs, and the secrets in them.
const KEY_CONFIGS: [&str; 3] = ["azure_key_config", "vertex_key_config", "bedrock_key_config"];
const KEY_CONFIG_SECRETS: [&str; 5] = [
    "api_key",
    "auth_credentials",
    "secret_key",
    "session_token",
    "access_key",
];

fn key_view(provider: &str, key: &KeyConfig) -> Value {
    let mut view = serde_json::to_value(key).unwrap_or(Value::Null);
    if let Some(object) = view.as_object_mut() {
        object.insert("value".into(), Value::String(redact(&key.value)));
        object.insert("key_id".into(), json!(key.id));
        object.insert("provider".into(), Value::String(provider.to_string()));
        for field in KEY_CONFIGS {
            if let Some(Value::Object(inner)) = object.get_mut(field) {
                for secret in KEY_CONFIG_SECRETS {
                    if let Some(Value::String(s)) = inner.get(secret).cloned() {
                        inner.insert(secret.into(), Value::String(redact(&s)));
                    }
                }
            }
        }
    }
    view
}

/// Puts back every secret of `old` that `key` carries in its redacted form (or not at all, for
/// the value): a key read from the API and sent back unchanged keeps its secrets.
fn restore_secrets(old: &KeyConfig, key: &mut KeyConfig) {
    if key.value.is_empty() || key.value == redact(&old.value) {
        key.value = old.value.clone();
    }
    let (Ok(Value::Object(old_json)), Ok(Value::Object(mut new_json))) =
        (serde_json::to_value(old), serde_json::to_value(&*key))
    else {
        return;
    };
    let mut changed = false;
    for field in KEY_CONFIGS {
        let (Some(Value::Object(old_inner)), Some(Value::Object(new_inner))) =
            (old_json.get(field), new_json.get_mut(field))
        else {
            continue;
        };
        for secret in KEY_CONFIG_SECRETS {
            if let (Some(Value::String(stored)), Some(Value::String(sent))) =
                (old_inner.get(secret), new_inner.get(secret))
                && *sent == redact(stored)
                && sent != stored
            {
                new_inner.insert(secret.into(), Value::String(stored.clone()));
                changed = true;
            }
        }
    }
    if changed && let Ok(restored) = serde_json::from_value::<KeyConfig>(Value::Object(new_json)) {
        *key = restored;
    }
}

fn provider_view(name: &str, provider: &ProviderConfig) -> Value {
    let mut view = serde_json::to_value(provider).unwrap_or(Value::Null);
    if let Some(object) = view.as_object_mut() {
        object.insert("name".into(), Value::String(name.to_string()));
        object.insert(
            "keys".into(),
            Value::Array(provider.keys.iter().map(|k| key_view(name, k)).collect()),
        );
        let supported = provider_wire(name, provider).is_some_and(|w| w.is_supported());
        object.insert(
            "provider_status".into(),
            Value::String(if supported { "active" } else { "error" }.into()),
        );
    }
    view
}

fn provider_wire(name: &str, provider: &ProviderConfig) -> Option<catalog::Wire> {
    match &provider.custom_provider_config {
        Some(custom) => catalog::Wire::from_base_type(&custom.base_provider_type),
        None => catalog::builtin(name).map(|b| b.wire),
    }
}

fn load(api: &Api<'_>, name: &str) -> Result<ProviderConfig, ApiError> {
    api.store
        .provider(name)?
        .ok_or_else(|| ApiError::not_found(format!("provider {name:?}")))
}

/// `GET /api/providers`.
pub fn list(api: &Api<'_>) -> ApiResult {
    let providers: Vec<Value> = api
        .store
        .providers()?
        .iter()
        .map(|(name, p)| provider_view(name, p))
        .collect();
    let total = providers.len();
    Ok(Reply::ok(json!({ "providers": providers, "total": total })))
}

/// `GET /api/providers/{provider}`.
pub fn get(api: &Api<'_>, name: &str) -> ApiResult {
    Ok(Reply::ok(provider_view(name, &load(api, name)?)))
}

#[derive(Deserialize)]
struct CreateProvider {
    provider: String,
    #[serde(flatten)]
    config: ProviderConfig,
}

/// Gives keys without an id one, so they can be addressed under `/keys/{key_id}`.
fn assign_key_ids(keys: &mut [KeyConfig]) {
    for key in keys {
        if key.id.as_deref().is_none_or(str::is_empty) {
            key.id = Some(uuid::Uuid::new_v4().to_string());
        }
    }
}

/// `POST /api/providers`.
pub fn create(api: &Api<'_>, body: &[u8]) -> ApiResult {
    let CreateProvider {
        provider: name,
        mut config,
    } = parse(body)?;
    if api.store.provider(&name)?.is_some() {
        return Err(ApiError::conflict(format!("provider {name:?} already exists")));
    }
    assign_key_ids(&mut config.keys);
    check_with(api, |c| {
        c.providers.insert(name.clone(), config.clone());
    })?;
    api.store.put_provider(&name, &config)?;
    Ok(Reply::written(
        "Provider created successfully",
        "provider",
        provider_view(&name, &config),
    ))
}

/// `PUT /api/providers/{provider}`: each block sent replaces the stored one; keys sent keep
/// their stored secrets when their value is redacted or absent.
pub fn update(api: &Api<'_>, name: &str, body: &[u8]) -> ApiResult {
    let stored = load(api, name)?;
    let merged = merged_over(&stored, body, &["provider", "name"])?;
    let mut config: ProviderConfig = serde_json::from_value(Value::Object(merged))
        .map_err(|e| ApiError::bad_request(format!("invalid provider: {e}")))?;
    keep_secrets(&stored.keys, &mut config.keys);
    assign_key_ids(&mut config.keys);
    check_with(api, |c| {
        c.providers.insert(name.to_string(), config.clone());
    })?;
    api.store.put_provider(name, &config)?;
    Ok(Reply::written(
        "Provider updated successfully",
        "provider",
        provider_view(name, &config),
    ))
}

/// `stored` as a JSON object with the members of the request `body` written over it (a PUT
/// that sends some fields keeps the others); members named in `fixed` are never taken from the
/// body.
fn merged_over(
    stored: &impl serde::Serialize,
    body: &[u8],
    fixed: &[&str],
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let patch: serde_json::Map<String, Value> = parse(body)?;
    let mut merged = serde_json::to_value(stored)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    for (field, value) in patch {
        if !fixed.contains(&field.as_str()) {
            merged.insert(field, value);
        }
    }
    Ok(merged)
}

/// A key sent back with its redacted value (or none) keeps the stored one, matched by id.
fn keep_secrets(stored: &[KeyConfig], keys: &mut [KeyConfig]) {
    for key in keys {
        let Some(old) = stored.iter().find(|o| o.id.is_some() && o.id == key.id) else {
            continue;
        };
        restore_secrets(old, key);
    }
}

/// `DELETE /api/providers/{provider}`.
pub fn delete(api: &Api<'_>, name: &str) -> ApiResult {
    if !api.store.delete_provider(name)? {
        return Err(ApiError::not_found(format!("provider {name:?}")));
    }
    Ok(Reply::message("Provider deleted successfully"))
}

/// `GET /api/providers/{provider}/keys`.
pub fn list_keys(api: &Api<'_>, name: &str) -> ApiResult {
    let provider = load(api, name)?;
    let keys: Vec<Value> = provider.keys.iter().map(|k| key_view(name, k)).collect();
    Ok(Reply::ok(json!({ "keys": keys, "total": keys.len() })))
}

/// `GET /api/keys`: every provider's keys.
pub fn all_keys(api: &Api<'_>) -> ApiResult {
    let providers: BTreeMap<String, ProviderConfig> = api.store.providers()?;
    let keys: Vec<Value> = providers
        .iter()
        .flat_map(|(name, p)| p.keys.iter().map(move |k| key_view(name, k)))
        .collect();
    Ok(Reply::ok(Value::Array(keys)))
}

fn find_key<'a>(provider: &'a mut ProviderConfig, key_id: &str) -> Option<&'a mut KeyConfig> {
    provider
        .keys
        .iter_mut()
        .find(|k| k.id.as_deref() == Some(key_id) || (k.id.is_none() && k.name.as_deref() == Some(key_id)))
}

/// `GET /api/providers/{provider}/keys/{key_id}`.
pub fn get_key(api: &Api<'_>, name: &str, key_id: &str) -> ApiResult {
    let mut provider = load(api, name)?;
    let key = find_key(&mut provider, key_id).ok_or_else(|| ApiError::not_found(format!("key {key_id:?}")))?;
    Ok(Reply::ok(key_view(name, key)))
}

/// `POST /api/providers/{provider}/keys`.
pub fn create_key(api: &Api<'_>, name: &str, body: &[u8]) -> ApiResult {
    let mut provider = load(api, name)?;
    let mut key: KeyConfig = parse(body)?;
    if key.value.is_empty() {
        return Err(ApiError::bad_request(
            "value: a key needs a value (or an env.NAME reference)",
        ));
    }
    if let Some(id) = key.id.as_deref()
        && find_key(&mut provider, id).is_some()
    {
        return Err(ApiError::conflict(format!("key {id:?} already exists")));
    }
    assign_key_ids(std::slice::from_mut(&mut key));
    provider.keys.push(key.clone());
    check_with(api, |c| {
        c.providers.insert(name.to_string(), provider.clone());
    })?;
    api.store.put_provider(name, &provider)?;
    Ok(Reply::written("Key created successfully", "key", key_view(name, &key)))
}

/// `PUT /api/providers/{provider}/keys/{key_id}`: the fields sent replace the stored ones, the
/// others are kept; secrets sent back redacted (or a value not sent) keep the stored secret.
pub fn update_key(api: &Api<'_>, name: &str, key_id: &str, body: &[u8]) -> ApiResult {
    let mut provider = load(api, name)?;
    let stored = find_key(&mut provider, key_id)
        .ok_or_else(|| ApiError::not_found(format!("key {key_id:?}")))?
        .clone();
    let merged = merged_over(&stored, body, &["id", "key_id", "provider"])?;
    let mut key: KeyConfig = serde_json::from_value(Value::Object(merged))
        .map_err(|e| ApiError::bad_request(format!("invalid key: {e}")))?;
    key.id = stored.id.clone().or_else(|| Some(key_id.to_string()));
    restore_secrets(&stored, &mut key);
    if let Some(slot) = find_key(&mut provider, key_id) {
        *slot = key.clone();
    }
    check_with(api, |c| {
        c.providers.insert(name.to_string(), provider.clone());
    })?;
    api.store.put_provider(name, &provider)?;
    Ok(Reply::written("Key updated successfully", "key", key_view(name, &key)))
}

/// `DELETE /api/providers/{provider}/keys/{key_id}`.
pub fn delete_key(api: &Api<'_>, name: &str, key_id: &str) -> ApiResult {
    let mut provider = load(api, name)?;
    let before = provider.keys.len();
    provider
        .keys
        .retain(|k| !(k.id.as_deref() == Some(key_id) || (k.id.is_none() && k.name.as_deref() == Some(key_id))));
    if provider.keys.len() == before {
        return Err(ApiError::not_found(format!("key {key_id:?}")));
    }
    api.store.put_provider(name, &provider)?;
    Ok(Reply::message("Key deleted successfully"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_env_references_shown() {
        assert_eq!(redact("sk-proj-abcdefghijklmnop"), "sk-p****(24 chars)");
        assert_eq!(redact("short"), "****(5 chars)");
        assert_eq!(redact("env.OPENAI_API_KEY"), "env.OPENAI_API_KEY");
    }
}
