//! The `otel` plugin's exporter: spans from the `otel` filter go out over OTLP/HTTP (protobuf)
//! in batches, from the exporter's own thread, never from the request path. Configured with
//! Bifrost's `otel` plugin fields:
//!
//! ```yaml
//! plugins:
//!   - name: otel
//!     enabled: true
//!     config:
//!       collector_url: http://localhost:4318       # /v1/traces is added when no path is given
//!       trace_type: genai_extension                # the GenAI semantic conventions
//!       protocol: http                             # OTLP/HTTP; gRPC is not supported
//!       headers: {authorization: env.OTEL_TOKEN}   # env.NAME references resolved at start
//!       service_name: asbru                        # optional
//!       export_interval_ms: 1000                   # asbru: how often batches are sent
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use asbru_config::env::{self, Resolved};
use asbru_filters::Filter;
use asbru_filters::otel::OtelFilter;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use serde::Deserialize;
use serde_json::Value;

/// The `otel` plugin's config. Bifrost's plugin takes more settings (metrics push, profiles,
/// ...); those are logged as not acted on at start instead of refusing the config.
#[derive(Debug, Deserialize)]
struct OtelConfig {
    collector_url: String,
    #[serde(default)]
    trace_type: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    export_interval_ms: Option<u64>,
}

/// The traces endpoint: `collector_url` as given when it names a path, else with
/// `/v1/traces` added (OTLP/HTTP's default path).
fn traces_endpoint(url: &str) -> Result<String, String> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("collector_url {url:?} is not a URL: {e}"))?;
    match parsed.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "collector_url {url:?} uses https, which this build's OTLP exporter does not speak; send to a local collector over http"
            ));
        }
        _ => return Err(format!("collector_url {url:?} must start with http://")),
    }
    Ok(match parsed.path() {
        "" | "/" => format!("{}/v1/traces", url.trim_end_matches('/')),
        _ => url.to_string(),
    })
}

/// Builds the `otel` filter from its plugin config.
pub fn filter(config: &Value) -> Result<Arc<dyn Filter>, String> {
    // Bifrost's newer shape lists `profiles`; the first enabled one is used.
    let profile = config.get("profiles").and_then(Value::as_array).map(|profiles| {
        let enabled: Vec<&Value> = profiles
            .iter()
            .filter(|p| p.get("enabled").and_then(Value::as_bool) != Some(false))
            .collect();
        if enabled.len() > 1 {
            tracing::warn!(
                "plugins: otel lists {} enabled profiles; the first is used",
                enabled.len()
            );
        }
        enabled.first().map(|p| (*p).clone()).unwrap_or(Value::Null)
    });
    let config = profile.as_ref().unwrap_or(config);
    const KNOWN: &[&str] = &[
        "name",
        "enabled",
        "collector_url",
        "trace_type",
        "protocol",
        "headers",
        "service_name",
        "export_interval_ms",
    ];
    for field in config.as_object().into_iter().flat_map(|m| m.keys()) {
        if !KNOWN.contains(&field.as_str()) {
            tracing::warn!("plugins: otel config `{field}` is not acted on by this version of asbru");
        }
    }
    let config: OtelConfig =
        serde_json::from_value(config.clone()).map_err(|e| format!("invalid plugin config: {e}"))?;
    match config.trace_type.as_deref() {
        None | Some("genai_extension") | Some("otel") => {}
        Some(other) => {
            return Err(format!(
                "trace_type {other:?} is not supported; use genai_extension (OpenTelemetry's GenAI conventions)"
            ));
        }
    }
    match config.protocol.as_deref() {
        None | Some("http") => {}
        Some(other) => {
            return Err(format!(
                "protocol {other:?} is not supported; use http (OTLP/HTTP, port 4318)"
            ));
        }
    }
    let endpoint = traces_endpoint(&config.collector_url)?;
    let mut headers = HashMap::new();
    for (name, value) in config.headers {
        match env::resolve(&value) {
            Resolved::Value(v) => {
                headers.insert(name, v);
            }
            Resolved::MissingEnv(var) => {
                return Err(format!(
                    "header {name} refers to environment variable {var}, which is not set"
                ));
            }
        }
    }
    let interval = Duration::from_millis(config.export_interval_ms.unwrap_or(1000).max(10));
    let service = config.service_name.unwrap_or_else(|| "asbru".to_string());
    // The blocking HTTP client must not be made (or dropped) on an async runtime's thread.
    let built = std::thread::spawn(move || -> Result<SdkTracerProvider, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_headers(headers)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(interval)
                    .with_max_queue_size(8192)
                    .build(),
            )
            .build();
        Ok(SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service)
                    .build(),
            )
            .build())
    })
    .join()
    .map_err(|_| "the exporter could not be built".to_string())??;
    let tracer = built.tracer("asbru");
    Ok(Arc::new(OtelFilter::new(tracer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_refusals() {
        assert_eq!(
            traces_endpoint("http://127.0.0.1:4318").expect("ok"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_endpoint("http://c:4318/custom").expect("ok"),
            "http://c:4318/custom"
        );
        assert!(traces_endpoint("https://c:4318").is_err());
        assert!(traces_endpoint("not a url").is_err());
        assert!(filter(&serde_json::json!({"collector_url": "http://127.0.0.1:4318", "protocol": "grpc"})).is_err());
        assert!(
            filter(&serde_json::json!({"collector_url": "http://127.0.0.1:4318", "trace_type": "vercel"})).is_err()
        );
        assert!(filter(&serde_json::json!({"collector_url": "http://127.0.0.1:4318", "headers": {"x": "env.ASBRU_NOT_SET_ANYWHERE"}})).is_err());
        assert!(filter(&serde_json::json!({"collector_url": "http://127.0.0.1:4318"})).is_ok());
    }
}
