//! Bifrost's Helm chart values read as a config: `asbru serve/check --config values.yaml`.
//!
//! The chart renders its `bifrost:` subtree into `config.json`, renaming camelCase keys to the
//! config's snake_case ones (`client.dropExcessRequests` -> `client.drop_excess_requests`,
//! `governance.virtualKeys` -> `governance.virtual_keys`, ...). `appDir`, `port`, `host`,
//! `logLevel` and `logStyle` are not config fields there; the chart passes them to the process.
//! Here `appDir` becomes `server.data_dir` and `host`/`port` become `server.listen`. Provider
//! blocks are copied as they are, as the chart does (their keys are snake_case already, and
//! their maps such as `aliases` have names of the user's choosing).
//!
//! Also here, for every document: a virtual key's provider `keys` given as `[{name: ...}]`
//! objects (the chart's shape) are read as the key names they carry.

use serde_json::{Map, Value};

/// Whether `document` is a Helm values file: a `bifrost:` mapping and no top-level `providers`.
pub fn is_helm_values(document: &Value) -> bool {
    document.get("bifrost").is_some_and(Value::is_object) && document.get("providers").is_none()
}

/// The config a Helm values file describes; what it does not carry over is said in `warnings`.
pub fn to_config(document: Value, warnings: &mut Vec<String>) -> Value {
    let Value::Object(mut top) = document else {
        return document;
    };
    let Some(Value::Object(bifrost)) = top.remove("bifrost") else {
        return Value::Object(top);
    };
    let chart_keys: Vec<&str> = top.keys().map(String::as_str).collect();
    if !chart_keys.is_empty() {
        warnings.push(format!(
            "Helm values: {} are deployment settings of the chart, not of the gateway; only `bifrost:` is read",
            chart_keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if top.get("storage").and_then(|s| s.get("mode")).and_then(Value::as_str) == Some("postgres") {
        warnings.push(
            "Helm values: storage.mode postgres is not read; set config_store and logs_store under `bifrost:` for PostgreSQL"
                .to_string(),
        );
    }
    let mut config = Map::new();
    let mut server = Map::new();
    let (mut host, mut port) = (None, None);
    for (key, value) in bifrost {
        match key.as_str() {
            "appDir" => {
                server.insert("data_dir".into(), value);
            }
            "host" => host = value.as_str().map(str::to_string),
            "port" => port = Some(value.as_u64().map_or_else(|| value.as_str().unwrap_or("8080").to_string(), |p| p.to_string())),
            "logLevel" | "logStyle" => warnings.push(format!(
                "Helm values: bifrost.{key} is a process setting: pass --log-level / --log-style (or RUST_LOG) to asbru serve"
            )),
            "providers" => {
                config.insert(key, providers(value));
            }
            "plugins" => {
                config.insert(key, plugins(value));
            }
            "schemaUrl" => {
                config.insert("$schema".into(), value);
            }
            // Renamed by the chart's template, not by case alone.
            "cluster" => {
                config.insert("cluster_config".into(), snake_keys(value));
            }
            "loadBalancer" => {
                config.insert("load_balancer_config".into(), snake_keys(value));
            }
            "guardrails" => {
                config.insert("guardrails_config".into(), snake_keys(value));
            }
            "scim" => {
                config.insert("scim_config".into(), value);
            }
            // Names of Kubernetes secrets the chart turns into environment variables.
            "encryptionKeySecret" | "providerSecrets" => warnings.push(format!(
                "Helm values: bifrost.{key} names Kubernetes secrets for the chart; set the environment variables they hold for asbru"
            )),
            "server" => {
                if let Value::Object(fields) = snake_keys(value) {
                    server.extend(fields);
                }
            }
            _ => {
                config.insert(snake_case(&key), snake_keys(value));
            }
        }
    }
    if host.is_some() || port.is_some() {
        let host = host.unwrap_or_else(|| "0.0.0.0".to_string());
        let port = port.unwrap_or_else(|| "8080".to_string());
        server.insert("listen".into(), Value::String(format!("{host}:{port}")));
    }
    if !server.is_empty() {
        config.insert("server".into(), Value::Object(server));
    }
    Value::Object(config)
}

/// Providers as the chart copies them, with its `retry_backoff_*_ms` spelling of
/// `network_config` renamed as its template does.
fn providers(value: Value) -> Value {
    let Value::Object(mut providers) = value else {
        return value;
    };
    for provider in providers.values_mut() {
        if let Some(Value::Object(network)) = provider.get_mut("network_config") {
            for (from, to) in [
                ("retry_backoff_initial_ms", "retry_backoff_initial"),
                ("retry_backoff_max_ms", "retry_backoff_max"),
            ] {
                if let Some(v) = network.remove(from) {
                    network.insert(to.into(), v);
                }
            }
        }
    }
    Value::Object(providers)
}

/// The chart's `plugins` map (`{telemetry: {enabled, config}, semanticCache: {...}}`) as the
/// config's `plugins` list of enabled entries.
fn plugins(value: Value) -> Value {
    let Value::Object(map) = value else {
        return value;
    };
    let mut list = Vec::new();
    for (name, entry) in map {
        if name == "custom" {
            if let Value::Array(custom) = entry {
                list.extend(custom);
            }
            continue;
        }
        if entry.get("enabled").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let mut plugin = Map::new();
        plugin.insert("name".into(), Value::String(snake_case(&name)));
        plugin.insert("enabled".into(), Value::Bool(true));
        if let Some(config) = entry.get("config") {
            plugin.insert("config".into(), config.clone());
        }
        list.push(Value::Object(plugin));
    }
    Value::Array(list)
}

/// Every mapping key below `value` in snake_case.
fn snake_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (snake_case(&k), snake_keys(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_keys).collect()),
        other => other,
    }
}

/// `dropExcessRequests` -> `drop_excess_requests`, `asyncJobResultTTL` -> `async_job_result_ttl`;
/// snake_case is left as it is.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let starts_word = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase()) && next.is_some_and(|n| n.is_ascii_lowercase()));
            if starts_word {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A virtual key's provider `keys: [{name: ...}]` (or `{id: ...}`) read as the names.
pub fn key_objects_to_names(document: &mut Value) {
    let Some(keys) = document
        .get_mut("governance")
        .and_then(|g| g.get_mut("virtual_keys"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for vk in keys {
        let Some(configs) = vk.get_mut("provider_configs").and_then(Value::as_array_mut) else {
            continue;
        };
        for config in configs {
            let Some(list) = config.get_mut("keys").and_then(Value::as_array_mut) else {
                continue;
            };
            for entry in list.iter_mut() {
                let name = entry
                    .get("name")
                    .or_else(|| entry.get("id"))
                    .or_else(|| entry.get("key_id"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let Some(name) = name {
                    *entry = Value::String(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn camel_case_becomes_snake_case() {
        assert_eq!(snake_case("dropExcessRequests"), "drop_excess_requests");
        assert_eq!(snake_case("maxRequestBodySizeMb"), "max_request_body_size_mb");
        assert_eq!(snake_case("asyncJobResultTTL"), "async_job_result_ttl");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }

    #[test]
    fn the_bifrost_subtree_becomes_the_config() {
        let values = json!({
            "image": {"tag": "v1"},
            "service": {"port": 8080},
            "bifrost": {
                "appDir": "/app/data", "port": 9090, "host": "0.0.0.0", "logLevel": "info",
                "client": {"dropExcessRequests": true, "allowedOrigins": ["*"]},
                "providers": {"openai": {"keys": [{"name": "k", "value": "env.K"}],
                    "network_config": {"retry_backoff_initial_ms": 100}}},
                "governance": {"virtualKeys": [{"id": "vk", "provider_configs": [{"provider": "openai", "keys": [{"name": "k"}]}]}]},
                "plugins": {"telemetry": {"enabled": true}, "semanticCache": {"enabled": false}}
            }
        });
        assert!(is_helm_values(&values));
        let mut warnings = Vec::new();
        let mut config = to_config(values, &mut warnings);
        key_objects_to_names(&mut config);
        assert_eq!(config["server"]["data_dir"], "/app/data");
        assert_eq!(config["server"]["listen"], "0.0.0.0:9090");
        assert_eq!(config["client"]["drop_excess_requests"], true);
        assert_eq!(
            config["providers"]["openai"]["network_config"]["retry_backoff_initial"],
            100
        );
        assert_eq!(
            config["governance"]["virtual_keys"][0]["provider_configs"][0]["keys"][0],
            "k"
        );
        assert_eq!(config["plugins"], json!([{"name": "telemetry", "enabled": true}]));
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("`image`") && w.contains("`service`")),
            "{warnings:?}"
        );
        assert!(warnings.iter().any(|w| w.contains("bifrost.logLevel")), "{warnings:?}");
    }
}
