//! The effective config: the file's process settings with the store's providers and
//! governance (model price rows included), what the gateway builds its snapshot from.

use asbru_config::Config;
use asbru_config::governance::GovernanceConfig;

use serde_json::Value;

use crate::backend::entities::{Plugin, load_governance};
use crate::backend::{ConfigStore, StoreError};

/// The file's process settings with the store's providers and governance: what a snapshot is
/// built from when a config store is in use, model price rows included.
pub fn effective_config(file: &Config, store: &dyn ConfigStore) -> Result<Config, StoreError> {
    let mut config = file.clone();
    config.providers = store.providers()?;
    if let Some(stored) = store.setting("client_config")? {
        config.client = overlay_client(&file.client, &stored)?;
    }
    let file_governance = file.governance.clone().unwrap_or_default();
    let mut governance = GovernanceConfig {
        auth_config: match store.setting("auth_config")? {
            Some(value) => Some(value),
            None => file_governance.auth_config,
        },
        // A process setting: the file's, never the store's.
        cluster: file_governance.cluster,
        ..Default::default()
    };
    load_governance(store, &mut governance)?;
    config.governance = Some(governance);
    config.plugins = merged_plugins(file.plugins.as_ref(), store.list::<Plugin>()?);
    Ok(config)
}

/// The file's `client` block with the members the management API stored on top.
pub fn overlay_client(
    file: &asbru_config::model::ClientConfig,
    stored: &Value,
) -> Result<asbru_config::model::ClientConfig, StoreError> {
    let mut merged = serde_json::to_value(file).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let (Some(target), Some(source)) = (merged.as_object_mut(), stored.as_object()) {
        for (key, value) in source {
            // Bifrost's older spellings of the same setting.
            let key = match key.as_str() {
                "enforce_governance_header" | "is_vk_mandatory" => "enforce_auth_on_inference",
                other => other,
            };
            target.insert(key.to_string(), value.clone());
        }
    }
    serde_json::from_value(merged).map_err(|e| StoreError::Corrupt(format!("stored client_config: {e}")))
}

/// The file's `plugins` entries with the stored ones (written through the management API):
/// a stored entry replaces the file's entry of the same name.
fn merged_plugins(file: Option<&Value>, stored: Vec<Plugin>) -> Option<Value> {
    if stored.is_empty() {
        return file.cloned();
    }
    let mut entries: Vec<Value> = file.and_then(Value::as_array).cloned().unwrap_or_default();
    for plugin in stored {
        entries.retain(|e| e.get("name").and_then(Value::as_str) != Some(plugin.name.as_str()));
        let mut entry = serde_json::Map::new();
        entry.insert("name".into(), Value::String(plugin.name));
        entry.insert("enabled".into(), Value::Bool(plugin.enabled));
        entry.insert("config".into(), plugin.config);
        if let Some(placement) = plugin.placement {
            entry.insert("placement".into(), Value::String(placement));
        }
        if let Some(order) = plugin.order {
            entry.insert("order".into(), Value::from(order));
        }
        entries.push(Value::Object(entry));
    }
    Some(Value::Array(entries))
}
