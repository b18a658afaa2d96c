//! `/api/plugins[/{name}]`: the `plugins` entries kept in the store (they win over the file's
//! entries of the same name). The filter chain is assembled at start, so a change applies at the
//! next start; replies say so with `restart_required: true`. An entry the gateway could not
//! load (an unknown placement, a filter refusing its `config`) is refused with a 400.

use asbru_store::backend::entities::Plugin;
use serde_json::{Value, json};

use super::Api;
use super::reply::{ApiError, ApiResult, Reply, parse};
use crate::pipeline::{self, Services};

fn written(message: &str, plugin: &Plugin) -> Reply {
    let mut reply = Reply::written(message, "plugin", plugin);
    if let Some(body) = reply.body.as_object_mut() {
        body.insert("restart_required".into(), Value::Bool(true));
    }
    reply
}

/// Checks that the plugin list with `plugin` in it builds a chain.
fn check(api: &Api<'_>, plugin: &Plugin) -> Result<(), ApiError> {
    let mut config = asbru_config::Config::clone(&api.effective);
    let mut entries: Vec<Value> = config
        .plugins
        .take()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    entries.retain(|e| e.get("name").and_then(Value::as_str) != Some(plugin.name.as_str()));
    entries.push(json!({
        "name": plugin.name,
        "enabled": plugin.enabled,
        "config": plugin.config,
        "placement": plugin.placement,
        "order": plugin.order.unwrap_or(0),
    }));
    let services = Services {
        metrics: std::sync::Arc::new(asbru_filters::telemetry::Metrics::new()),
        request_log: None,
    };
    pipeline::build(Some(&Value::Array(entries)), &services)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET /api/plugins`.
pub fn list(api: &Api<'_>) -> ApiResult {
    let plugins = api.store.list::<Plugin>()?;
    Ok(Reply::ok(json!({ "plugins": plugins, "count": plugins.len() })))
}

/// `GET /api/plugins/{name}`.
pub fn get(api: &Api<'_>, name: &str) -> ApiResult {
    let plugin = api
        .store
        .get::<Plugin>(name)?
        .ok_or_else(|| ApiError::not_found(format!("plugin {name:?}")))?;
    Ok(Reply::ok(json!({ "plugin": plugin })))
}

/// `POST /api/plugins`.
pub fn create(api: &Api<'_>, body: &[u8]) -> ApiResult {
    let plugin: Plugin = parse(body)?;
    if plugin.name.is_empty() {
        return Err(ApiError::bad_request("name: a plugin needs a name"));
    }
    if api.store.get::<Plugin>(&plugin.name)?.is_some() {
        return Err(ApiError::conflict(format!("plugin {:?} already exists", plugin.name)));
    }
    check(api, &plugin)?;
    api.store.put(&plugin)?;
    Ok(written("Plugin created successfully", &plugin))
}

/// `PUT /api/plugins/{name}`.
pub fn update(api: &Api<'_>, name: &str, body: &[u8]) -> ApiResult {
    if api.store.get::<Plugin>(name)?.is_none() {
        return Err(ApiError::not_found(format!("plugin {name:?}")));
    }
    let mut plugin: Plugin = parse(body)?;
    plugin.name = name.to_string();
    check(api, &plugin)?;
    api.store.put(&plugin)?;
    Ok(written("Plugin updated successfully", &plugin))
}

/// `DELETE /api/plugins/{name}`.
pub fn delete(api: &Api<'_>, name: &str) -> ApiResult {
    if !api.store.delete::<Plugin>(name)? {
        return Err(ApiError::not_found(format!("plugin {name:?}")));
    }
    let mut reply = Reply::message("Plugin deleted successfully");
    if let Some(body) = reply.body.as_object_mut() {
        body.insert("restart_required".into(), Value::Bool(true));
    }
    Ok(reply)
}
