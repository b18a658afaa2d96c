//! What `bench compare` and its `tls` scenario share: the options, the errors, the gateway's
//! config for a run and the chat body sent through it.

use std::path::PathBuf;
use std::time::Duration;

use asbru_config::Config;
use bytes::Bytes;

use super::load;

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Bundled scenario name (ignored when `config` is set).
    pub scenario: String,
    /// A gateway config file to use instead of a bundled scenario.
    pub config: Option<PathBuf>,
    /// Model to request through the gateway with `config`.
    pub model: Option<String>,
    /// Mock latencies to run, in ms.
    pub latencies_ms: Vec<u64>,
    /// Requests per second.
    pub rate: f64,
    /// Measured duration per run.
    pub duration: Duration,
    /// Warm-up before each measured gateway run.
    pub warmup: Duration,
    /// In-flight cap.
    pub max_in_flight: usize,
    /// Force streaming on or off (default: the scenario's).
    pub stream: Option<bool>,
    /// Pin the gateway to this CPU with `taskset`.
    pub gateway_cpu: Option<usize>,
    /// The `asbru` binary to run as the gateway.
    pub gateway_bin: PathBuf,
    /// A reference proxy to run the same load through (`nginx`), when installed.
    pub reference: Option<String>,
    /// Pad chat and Messages request bodies to about this many bytes.
    pub body_size: Option<usize>,
    /// Closed loop at saturation over this many connections instead of the open-loop `rate`.
    pub connections: Option<usize>,
}

/// Why a comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// Unknown scenario name.
    #[error("unknown scenario {0:?}; bundled: {1}")]
    UnknownScenario(String, String),
    /// Bad config file.
    #[error("{0}")]
    Config(String),
    /// Could not start the mock or the gateway.
    #[error("{0}")]
    Start(String),
    /// The load generator refused the options.
    #[error(transparent)]
    Load(#[from] load::LoadError),
}

/// The chat request every chat scenario sends; with `size`, its prompt is padded so that the
/// whole body is about `size` bytes.
pub fn chat_body(model: &str, stream: bool, size: Option<usize>) -> Bytes {
    let mut prompt = "Say hello in one short sentence.".to_string();
    let body = |prompt: &str| {
        serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 32,
            "stream": stream,
        })
        .to_string()
    };
    let mut text = body(&prompt);
    if let Some(size) = size
        && size > text.len()
    {
        prompt.push(' ');
        prompt.push_str(&"lorem ipsum ".repeat((size - text.len()).div_ceil(12)));
        prompt.truncate(prompt.len() - (body(&prompt).len().saturating_sub(size)).min(prompt.len()));
        text = body(&prompt);
    }
    Bytes::from(text)
}

/// A scratch directory of the gateway listening on `listen` in this bench process: `node` (its
/// data dir, with a PostgreSQL store) or `logs` (its request log).
fn scratch_dir(kind: &str, listen: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "asbru-bench-{kind}-{}-{}",
        std::process::id(),
        listen.replace([':', '.'], "-")
    ))
}

/// Removes the scratch directories of the gateway listening on `listen` when dropped: declare
/// it before the gateway's process guard, so the process has exited first.
pub struct Scratch(pub String);

impl Drop for Scratch {
    fn drop(&mut self) {
        for kind in ["node", "logs"] {
            let _ = std::fs::remove_dir_all(scratch_dir(kind, &self.0));
        }
    }
}

/// The gateway's config for a run: `base` listening on `listen`, with no store, and every
/// provider pointed at the mock.
pub fn gateway_config(base: &Config, mock_url: &str, listen: &str) -> Config {
    let mut config = base.clone();
    config.server.listen = listen.to_string();
    config.mock = None;
    let postgres = config
        .config_store
        .as_ref()
        .is_some_and(|s| s.enabled && s.kind == asbru_config::model::StoreKind::Postgres);
    if postgres {
        // A PostgreSQL store the config names (cluster mode leases from it) is kept, seeded from
        // this file at start, with a data dir (the spend journal's) of its own.
        config.server.data_dir = scratch_dir("node", listen).display().to_string();
    } else {
        // The bench measures the proxy path; a store left by another run must not redirect
        // providers.
        config.config_store = Some(asbru_config::model::ConfigStoreConfig::disabled());
    }
    // The request log is off unless the scenario turns it on, and then writes a fresh file.
    match &mut config.logs_store {
        None => {
            config.logs_store = Some(asbru_config::model::LogsStoreConfig {
                enabled: false,
                ..Default::default()
            });
        }
        Some(logs) if logs.kind == asbru_config::model::StoreKind::Sqlite => {
            let dir = scratch_dir("logs", listen);
            let _ = std::fs::remove_dir_all(&dir);
            logs.config.path = Some(dir.join("logs.db").display().to_string());
        }
        Some(_) => {}
    }
    for provider in config.providers.values_mut() {
        provider.network_config.base_url = Some(mock_url.to_string());
    }
    config
}

/// The environment variable naming the PostgreSQL database the `cluster` scenario leases from.
pub const POSTGRES_ENV: &str = "ASBRU_BENCH_POSTGRES_URL";

/// The sum of the gateway's `asbru_cluster_lease_fetches_total` series, from its `/metrics`
/// (`None` when it has none: not in cluster mode).
pub async fn lease_fetches(gateway: std::net::SocketAddr) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gateway).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = Vec::new();
    stream.read_to_end(&mut text).await.ok()?;
    let text = String::from_utf8_lossy(&text);
    let mut found = None;
    for line in text
        .lines()
        .filter(|l| l.starts_with("asbru_cluster_lease_fetches_total{"))
    {
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0) += value as u64;
    }
    found.or_else(|| text.contains("asbru_cluster_store_up").then_some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_padded_to_about_the_size_asked() {
        let plain = chat_body("openai/gpt-4o-mini", false, None);
        assert!(plain.len() < 200);
        for size in [1024, 16 * 1024] {
            let padded = chat_body("openai/gpt-4o-mini", false, Some(size));
            assert!(padded.len().abs_diff(size) <= 16, "{} for {size}", padded.len());
            let parsed: serde_json::Value = serde_json::from_slice(&padded).expect("JSON");
            assert_eq!(parsed["model"], "openai/gpt-4o-mini");
        }
        assert_eq!(chat_body("m", false, Some(10)), chat_body("m", false, None));
    }
}
